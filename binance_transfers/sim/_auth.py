"""API keys and request authentication, as Binance checks them.

The signature covers the exact bytes received: the raw query string
concatenated with the raw body (no separator), without the ``signature``
parameter. Nothing is decoded or re-encoded before checking, so a client
that signs one encoding and sends another (the classic ``@`` in an e-mail)
is refused with -1022, as Binance does since 2026-01-15.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string
from typing import Any
from urllib.parse import unquote_plus

import attrs

__all__ = ["ApiKey", "generate_key", "split_signature"]

KEY_FORMAT = re.compile(r"[A-Za-z0-9]{64}")
_ALPHABET = string.ascii_letters + string.digits


def generate_key() -> str:
    """A random 64-character key or secret, shaped like Binance's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(64))


@attrs.frozen(kw_only=True, repr=False)
class ApiKey:
    """An API key registered with the simulated exchange.

    HMAC keys keep their ``secret`` (the exchange needs it to verify, and tests
    need it to build a client); RSA and Ed25519 keys keep only the public key.
    Neither appears in the ``repr``.
    """

    key: str
    account: int
    """UID of the account the key belongs to."""
    secret: str | None = attrs.field(default=None)
    public_key: Any = attrs.field(default=None)

    @property
    def kind(self) -> str:
        """``HMAC``, ``RSA`` or ``Ed25519``."""
        if self.public_key is None:
            return "HMAC"
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return "Ed25519" if isinstance(self.public_key, ed25519.Ed25519PublicKey) else "RSA"

    def verify(self, payload: bytes, signature: str) -> bool:
        """Whether ``signature`` (already percent-decoded) signs ``payload``."""
        if self.secret is not None:
            expected = hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8"))
        return _verify_asymmetric(self.public_key, payload, signature)

    def __repr__(self) -> str:
        return f"<ApiKey {self.kind} {self.key[:4]}…{self.key[-4:]} account={self.account}>"


def load_public_key(key: object) -> Any:
    """A ``cryptography`` public key from a PEM (public or private) or a key object."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if isinstance(key, str | bytes):
        raw = key.encode() if isinstance(key, str) else key
        if b"PRIVATE KEY" in raw:
            key = serialization.load_pem_private_key(raw, password=None)
        else:
            key = serialization.load_pem_public_key(raw)
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise TypeError(f"Binance takes RSA or Ed25519 keys, not {type(key).__name__}")
    return key


def _verify_asymmetric(public_key: Any, payload: bytes, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding

    try:
        raw = base64.b64decode(signature, validate=True)
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(raw, payload)
        else:
            public_key.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def split_signature(query: bytes, body: bytes) -> tuple[bytes, str | None]:
    """(signed payload, signature) from the raw query string and body.

    The payload is query + body exactly as received, less the ``signature``
    pair; the signature is percent-decoded (RSA and Ed25519 ones are base64,
    sent encoded). When both parts carry one, the query's wins, as Binance's
    parameters do.
    """
    query, from_query = _strip(query)
    body, from_body = _strip(body)
    raw = from_query if from_query is not None else from_body
    signature = None if raw is None else unquote_plus(raw.decode("utf-8", "replace"))
    return query + body, signature


def _strip(part: bytes) -> tuple[bytes, bytes | None]:
    if b"signature=" not in part:
        return part, None
    kept, found = [], None
    for pair in part.split(b"&"):
        if pair.startswith(b"signature="):
            if found is None:
                found = pair[len(b"signature=") :]
        else:
            kept.append(pair)
    return b"&".join(kept), found
