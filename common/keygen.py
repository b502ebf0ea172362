"""The deployment's keys, made where they are missing: `python -m common.keygen DIR`.

- `jwt_private_key.pem`: the auth service's Ed25519 signing key (PKCS8 PEM).
- `service_key`: the key internal callers sign their service tokens with
  (`common.service_identity`), shared by the event, sharing and history services.
- `database_password`: the password of Compose's PostgreSQL (hex, so URL-safe).

A key that exists is left alone, so running this on every start (the Compose
`keygen` service) keeps the keys of the first run. Files are written readable by
their owner only (the images' uid 10001), never replaced half-written. That is
enough for PostgreSQL too: its image reads `POSTGRES_PASSWORD_FILE` as root, before
it drops to its own user.
"""

import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

JWT_KEY_NAME = "jwt_private_key.pem"
SERVICE_KEY_NAME = "service_key"
DATABASE_PASSWORD_NAME = "database_password"


def signing_key_pem() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def service_key() -> bytes:
    """256 random bits, hex-encoded."""
    return secrets.token_hex(32).encode()


def database_password() -> bytes:
    """128 random bits, hex-encoded."""
    return secrets.token_hex(16).encode()


def write_if_missing(path: Path, content: bytes) -> bool:
    """Put `content` in a new file readable by its owner only; False if `path` existed.
    Written aside and linked into place, so nobody reads a half-written key."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.link(aside, path)
    except FileExistsError:
        return False
    finally:
        aside.unlink()
    return True


def ensure_keys(directory: Path) -> dict[str, Path]:
    """Every key in `directory`, made if missing."""
    made = {
        JWT_KEY_NAME: signing_key_pem,
        SERVICE_KEY_NAME: service_key,
        DATABASE_PASSWORD_NAME: database_password,
    }
    paths = {}
    for name, make in made.items():
        paths[name] = directory / name
        if write_if_missing(paths[name], make()):
            print(f"made {paths[name]}", file=sys.stderr)
    return paths


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m common.keygen DIRECTORY")
    ensure_keys(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
