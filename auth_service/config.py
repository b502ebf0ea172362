from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from common.config import CommonSettings, listen_port


class AuthSettings(CommonSettings):
    # The Ed25519 signing key as PKCS8 PEM, given inline or as a file (one is required).
    jwt_private_key: SecretStr | None = None
    jwt_private_key_file: Path | None = None
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 86_400
    # argon2id cost (RFC 9106 second recommended profile by default).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    argon2_parallelism: int = 1
    # Memory all password hashes and checks running at once may take (each takes
    # argon2_memory_kib), and how long a login waits for room before it is answered 503.
    password_hashing_memory_mib: int = 256
    password_hashing_wait: float = 2.0
    # Where Prometheus scrapes this service's metrics (on grpc_listen_host); 0: nowhere.
    metrics_port: int = Field(default=9101, ge=0, le=65535)

    @model_validator(mode="after")
    def _signing_key_given(self) -> "AuthSettings":
        if not self._inline_key() and self.jwt_private_key_file is None:
            raise ValueError("set EVENTHUB_JWT_PRIVATE_KEY or EVENTHUB_JWT_PRIVATE_KEY_FILE")
        return self

    def _inline_key(self) -> str:
        return self.jwt_private_key.get_secret_value() if self.jwt_private_key else ""

    @property
    def grpc_port(self) -> int:
        return self.grpc_listen_port or listen_port(self.auth_addr)

    def signing_key_pem(self) -> bytes:
        if inline := self._inline_key():
            return inline.encode()
        assert self.jwt_private_key_file is not None
        return self.jwt_private_key_file.read_bytes()
