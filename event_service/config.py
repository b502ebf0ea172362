from pydantic import Field

from common.config import CommonSettings, listen_port


class EventSettings(CommonSettings):
    # Seconds the cache is bypassed after Redis failed, before trying it again.
    event_cache_retry_after: float = 2.0
    # Where Prometheus scrapes this service's metrics (on grpc_listen_host); 0: nowhere.
    metrics_port: int = Field(default=9102, ge=0, le=65535)

    @property
    def grpc_port(self) -> int:
        return self.grpc_listen_port or listen_port(self.events_addr)
