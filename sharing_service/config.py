from pydantic import Field

from common.config import CommonSettings, listen_port


class SharingSettings(CommonSettings):
    # Access-change notifications fetched per batch, and audited in one transaction.
    audit_batch_size: int = Field(default=100, ge=1, le=1000)
    # Seconds JetStream waits for an ack before redelivering (to this or another replica).
    audit_ack_wait: float = Field(default=5.0, gt=0)
    # Delay before a notification that failed for a passing reason (database down) returns.
    audit_retry_delay: float = Field(default=1.0, gt=0)
    # Where Prometheus scrapes this service's metrics (on grpc_listen_host); 0: nowhere.
    metrics_port: int = Field(default=9103, ge=0, le=65535)

    @property
    def grpc_port(self) -> int:
        return self.grpc_listen_port or listen_port(self.sharing_addr)
