from pydantic import Field

from common.config import CommonSettings


class GatewaySettings(CommonSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # Uvicorn worker processes; each is a full gateway sharing Redis state.
    gateway_workers: int = 1
    max_body_bytes: int = 1024 * 1024

    # Rate limits as "<amount>/<period>" ("20/minute", "100/5 minutes"); shared across
    # replicas via Redis (see gateway/ratelimit.py).
    rate_limit_login: str = "20/minute"  # login and register, per client address
    # Login attempts per username, from any address: slows guessing one account's
    # password from many addresses.
    rate_limit_login_user: str = "10/minute"
    rate_limit_refresh: str = "60/minute"
    rate_limit_user: str = "600/minute"
    # Reads of one secret calendar feed (`GET /api/calendar/feed/{secret}.ics`), which
    # need no token: calendar apps poll them.
    rate_limit_feed: str = "60/minute"
    # Peers whose X-Forwarded-For is believed (exact addresses or CIDR ranges).
    trusted_proxies: list[str] = Field(default_factory=list)

    # The change stream (`GET /api/events/stream`): a `: ping` comment at least this
    # often (seconds); open streams per user across replicas; notices buffered per
    # stream before a client that falls behind gets `reset`; how long a stream's slot
    # outlives a replica that died (seconds); how often open streams renew their slots
    # and check their token's revocation (seconds).
    stream_ping_interval: float = Field(default=10.0, gt=0, le=15)
    streams_per_user: int = Field(default=5, ge=1)
    stream_buffer: int = Field(default=256, ge=1)
    stream_slot_lease: float = Field(default=15.0, gt=0)
    stream_upkeep_interval: float = Field(default=2.0, gt=0)
