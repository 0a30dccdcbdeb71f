"""Signatures: Binance's own HMAC example, RSA and Ed25519 verified with the public key."""

from __future__ import annotations

import base64
import sys

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from binance_transfers import ConfigurationError
from binance_transfers._signing import Ed25519Signer, HmacSigner, RsaSigner, make_signer

from .conftest import SECRET, expected_hmac

BINANCE_EXAMPLE = (
    b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    b"&recvWindow=5000&timestamp=1499827319559"
)


def test_hmac_matches_binances_published_example() -> None:
    """The documented HMAC-SHA256 example signs to the documented value."""
    signer = make_signer(SECRET)
    assert isinstance(signer, HmacSigner)
    assert signer.sign(BINANCE_EXAMPLE) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


@given(st.binary(max_size=300), st.text(min_size=1, max_size=80))
def test_hmac_equals_the_standard_library(payload: bytes, secret: str) -> None:
    """Copying the keyed hash per request gives exactly hmac.new(secret, payload)."""
    signer = HmacSigner(secret)
    assert signer.sign(payload) == expected_hmac(payload, secret)
    assert signer.sign(payload) == signer.sign(payload)  # no state leaks between calls


@pytest.mark.parametrize("length", [1, 63, 64, 65, 128, 300])
def test_hmac_keys_around_the_block_size_equal_the_standard_library(length: int) -> None:
    """Keys shorter than, equal to and longer than SHA-256's 64-byte block (hashed first)."""
    import hashlib
    import hmac

    secret = bytes((i * 7 + 1) % 256 for i in range(length))
    expected = hmac.new(secret, BINANCE_EXAMPLE, hashlib.sha256).hexdigest()
    assert HmacSigner(secret).sign(BINANCE_EXAMPLE) == expected


def _pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, password: bytes | None = None
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def test_rsa_pem_signs_pkcs1v15_sha256() -> None:
    """An RSA PKCS#8 PEM yields base64 signatures the public key verifies."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = make_signer(_pem(key).decode())
    assert isinstance(signer, RsaSigner)
    signature = base64.b64decode(signer.sign(BINANCE_EXAMPLE))
    key.public_key().verify(signature, BINANCE_EXAMPLE, padding.PKCS1v15(), hashes.SHA256())


def test_ed25519_pem_with_password() -> None:
    """An encrypted Ed25519 PEM is loaded with its password and verifies."""
    key = ed25519.Ed25519PrivateKey.generate()
    signer = make_signer(_pem(key, b"pw"), password=b"pw")
    assert isinstance(signer, Ed25519Signer)
    key.public_key().verify(base64.b64decode(signer.sign(BINANCE_EXAMPLE)), BINANCE_EXAMPLE)


def test_key_objects_are_accepted() -> None:
    """cryptography key objects choose their signer by type."""
    assert isinstance(make_signer(ed25519.Ed25519PrivateKey.generate()), Ed25519Signer)


def test_custom_signer_objects_are_used_as_is() -> None:
    """Anything with sign(payload) -> str (an HSM, a remote signer) is used unchanged."""

    class Remote:
        def sign(self, payload: bytes) -> str:
            return "remote:" + payload.decode()

    signer = make_signer(Remote())
    assert signer.sign(b"a=1") == "remote:a=1"


@pytest.mark.parametrize(
    "bad", [b"-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n", 12, None, ""]
)
def test_unusable_keys_are_configuration_errors(bad: object) -> None:
    """Garbage PEMs, wrong types and empty secrets fail at construction, clearly."""
    with pytest.raises(ConfigurationError):
        make_signer(bad)


def test_missing_cryptography_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the crypto extra an RSA key names the package to install."""
    key = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ConfigurationError, match=r"binance-transfers\[crypto\]"):
        make_signer(key)


def test_reprs_never_show_key_material() -> None:
    """Signers print a placeholder, never the secret."""
    assert SECRET not in repr(make_signer(SECRET))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "PRIVATE" not in repr(make_signer(_pem(rsa_key)))
