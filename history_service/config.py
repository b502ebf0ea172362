from pydantic import Field

from common.config import CommonSettings, listen_port


class HistorySettings(CommonSettings):
    # How long a read waits for the consumer to store the event's current version.
    history_read_your_writes_timeout: float = Field(default=3.0, gt=0)
    # How often a waiting read re-checks the database (another replica may store
    # the version, and only its own waiters hear about it at once).
    history_read_your_writes_poll: float = Field(default=0.05, gt=0)
    # Messages fetched from JetStream per batch, and stored in one transaction.
    history_consumer_batch_size: int = Field(default=100, ge=1, le=1000)
    # Seconds JetStream waits for an ack before redelivering (to this or another replica).
    history_consumer_ack_wait: float = Field(default=5.0, gt=0)
    # Delay before a message that failed for a passing reason (database down) returns.
    history_consumer_retry_delay: float = Field(default=1.0, gt=0)
    # Where Prometheus scrapes this service's metrics (on grpc_listen_host); 0: nowhere.
    metrics_port: int = Field(default=9104, ge=0, le=65535)

    @property
    def grpc_port(self) -> int:
        return self.grpc_listen_port or listen_port(self.history_addr)

    @property
    def durable_name(self) -> str:
        """The JetStream consumer every history replica of this deployment shares."""
        return f"{self.namespace}_history"
