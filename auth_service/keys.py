"""The access-token signing key and its public half."""

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str
    public_pem: str

    @classmethod
    def from_pem(cls, pem: bytes) -> "SigningKey":
        key = load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the JWT signing key must be an Ed25519 private key")
        public = key.public_key()
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        # The key id is a digest of the public key, so it changes exactly when the key does.
        kid = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode().rstrip("=")
        pem_text = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        return cls(private_key=key, kid=kid, public_pem=pem_text)
