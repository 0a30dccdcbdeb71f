"""Request signatures: HMAC-SHA256, RSA (PKCS#1 v1.5, SHA-256) and Ed25519.

The signature covers exactly the percent-encoded bytes that go on the wire
(query string followed by body). No signer keeps the secret as a ``str`` or
``bytes`` attribute: HMAC keeps its two keyed SHA-256 states and copies them per request,
RSA and Ed25519 keep ``cryptography`` key objects, none of which print their
key material in a ``repr`` or a traceback's locals.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Protocol

from ._exceptions import ConfigurationError

__all__ = ["Ed25519Signer", "HmacSigner", "RsaSigner", "Signer", "make_signer"]


class Signer(Protocol):
    """Turns the exact payload sent into the ``signature`` parameter's value."""

    def sign(self, payload: bytes) -> str: ...


class HmacSigner:
    """HMAC-SHA256 over the payload, hex encoded."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if not key:
            raise ConfigurationError("the API secret is empty")
        # RFC 2104, as hmac.HMAC does it, but the two keyed SHA-256 states are
        # kept and copied per request: hmac.HMAC.copy() is Python code that
        # builds an object, and costs as much as the two C-level copies here.
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def sign(self, payload: bytes) -> str:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(<secret>)"


_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class RsaSigner:
    """RSA PKCS#1 v1.5 with SHA-256, base64 (percent-encoded on the wire by the caller)."""

    __slots__ = ("_key",)

    def __init__(self, key: Any) -> None:
        self._key = key

    def sign(self, payload: bytes) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return base64.b64encode(
            self._key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        ).decode()

    def __repr__(self) -> str:
        return f"RsaSigner(<{self._key.key_size}-bit private key>)"


class Ed25519Signer:
    """Ed25519, base64."""

    __slots__ = ("_key",)

    def __init__(self, key: Any) -> None:
        self._key = key

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._key.sign(payload)).decode()

    def __repr__(self) -> str:
        return "Ed25519Signer(<private key>)"


def make_signer(secret: object, password: bytes | None = None) -> Signer:
    """Pick the signer from the key given.

    * a PEM private key (``str``/``bytes`` starting ``-----BEGIN``): RSA or
      Ed25519 by the key's type (needs the ``crypto`` extra);
    * a ``cryptography`` RSA or Ed25519 private key object: the same;
    * any other ``str``/``bytes``: an HMAC secret;
    * an object with a ``sign(payload: bytes) -> str`` method: used as is
      (a hardware module, a remote signer).
    """
    if isinstance(secret, str | bytes):
        raw = secret.encode() if isinstance(secret, str) else secret
        if raw.lstrip().startswith(b"-----BEGIN"):
            return _from_key(_load_pem(raw, password))
        return HmacSigner(raw)
    if callable(getattr(secret, "sign", None)):
        try:
            return _from_key(secret)
        except ConfigurationError:
            return secret  # type: ignore[return-value]
    raise ConfigurationError(
        f"api_secret must be a str, bytes, PEM key or key object, not {type(secret).__name__}"
    )


def _load_pem(raw: bytes, password: bytes | None) -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise ConfigurationError(_MISSING) from None
    try:
        return serialization.load_pem_private_key(raw, password=password)
    except (ValueError, TypeError) as exc:
        # The message of these errors never contains key material.
        raise ConfigurationError(f"cannot load the PEM private key: {exc}") from None


def _from_key(key: Any) -> Signer:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    except ImportError:
        raise ConfigurationError(_MISSING) from None
    if isinstance(key, rsa.RSAPrivateKey):
        return RsaSigner(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Ed25519Signer(key)
    raise ConfigurationError(
        f"unsupported private key type {type(key).__name__}: Binance takes RSA or Ed25519"
    )


_MISSING = (
    "RSA and Ed25519 keys need the 'cryptography' package: pip install 'binance-transfers[crypto]'"
)
