from common.config import CommonSettings, listen_port


class EventSettings(CommonSettings):
    # Seconds the cache is bypassed after Redis failed, before trying it again.
    event_cache_retry_after: float = 2.0

    @property
    def grpc_port(self) -> int:
        return self.grpc_listen_port or listen_port(self.events_addr)
