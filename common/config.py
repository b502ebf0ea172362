"""Settings every process shares. Each service subclasses `CommonSettings` with its own fields.

All variables carry the `EVENTHUB_` prefix, e.g. `EVENTHUB_DATABASE_URL`.
"""

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTHUB_", extra="ignore")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/eventhub"
    # A file holding the database password, put into `database_url` (Compose and
    # Kubernetes mount it, so the URL itself holds no secret).
    database_password_file: Path | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    # Prefix of every Redis key, NATS subject and stream name, so that several
    # deployments (or test runs) can share one Redis and one NATS.
    namespace: str = Field(default="eventhub", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    log_level: str = "INFO"

    # Where each service listens; a comma-separated list spreads calls over replicas.
    auth_addr: str = "127.0.0.1:50051"
    events_addr: str = "127.0.0.1:50052"
    sharing_addr: str = "127.0.0.1:50053"
    history_addr: str = "127.0.0.1:50054"
    # The port this process listens on, when not the first one of its service's address
    # list (each replica of a service on one machine has a port of its own).
    grpc_listen_port: int | None = Field(default=None, ge=1, le=65535)
    # The interface services listen on: loopback unless set (Compose and Kubernetes set
    # 0.0.0.0, where their networks and network policies keep strangers out).
    grpc_listen_host: str = "127.0.0.1"
    # Deadline of one gRPC call between services, seconds.
    grpc_deadline: float = 5.0
    # Seconds a stopping server lets in-flight calls finish.
    shutdown_grace: float = 10.0
    db_pool_size: int = 10
    # Seconds an event stays in the read cache (Redis); writes replace it at once anyway.
    event_cache_ttl: int = 300
    # How long an Idempotency-Key's answer is kept (gateway) and its write's record
    # (the services that write), seconds.
    idempotency_ttl: int = 86_400

    # Traces (`common.tracing`): the OTLP/gRPC collector they go to (`host:port`, or
    # `https://host:port` for TLS); empty: tracing is off, and nothing of it is installed.
    otel_endpoint: str = ""
    # The share of requests the gateway traces (picked at random), through every hop.
    otel_sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)

    # Access-token claims every verifier checks.
    jwt_issuer: str = "eventhub-auth"
    jwt_audience: str = "eventhub"

    # The key internal callers sign their service tokens with (`common.service_identity`),
    # inline or as a file; the event, sharing and history services need it.
    service_key: SecretStr | None = None
    service_key_file: Path | None = None

    @model_validator(mode="after")
    def _password_in_url(self) -> "CommonSettings":
        if self.database_password_file is not None:
            password = self.database_password_file.read_text().strip()
            url = make_url(self.database_url).set(password=password)
            self.database_url = url.render_as_string(hide_password=False)
        return self

    def internal_service_key(self) -> bytes:
        """The service key; ValueError naming the settings when neither is set."""
        if self.service_key is not None and self.service_key.get_secret_value():
            return self.service_key.get_secret_value().encode()
        if self.service_key_file is not None:
            return self.service_key_file.read_bytes().strip()
        raise ValueError("set EVENTHUB_SERVICE_KEY or EVENTHUB_SERVICE_KEY_FILE")

    def redis_key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))


def listen_port(addr: str) -> int:
    """The port of the first address in a (possibly comma-separated) address list."""
    return int(addr.split(",")[0].rsplit(":", 1)[1])
