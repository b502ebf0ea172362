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
    # Peers whose X-Forwarded-For is believed (exact addresses or CIDR ranges).
    trusted_proxies: list[str] = Field(default_factory=list)
