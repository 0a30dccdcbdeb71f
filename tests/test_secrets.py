"""The API secret (and the full API key) never leaks: reprs, logs, errors, tracebacks."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest

from binance_transfers import BinanceTransfersError, Client, TransferType

from .conftest import API_KEY, SECRET, FakeBinance, error

LEAKS = (SECRET, API_KEY)


def _assert_clean(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text


async def test_nothing_leaks_through_reprs_logs_and_errors(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    """Drive every error path with DEBUG logging on, then search everything printed."""
    caplog.set_level(logging.DEBUG)

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake.script(
        "POST",
        "/sapi/v1/asset/transfer",
        error(400, -1022, "Signature for this request is not valid."),
        httpx.Response(503, text="<html>busy</html>"),
        error(400, -3041, "Balance is not enough"),
        drop,
    )
    errors: list[BaseException] = []
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as client:
        _assert_clean(repr(client))
        _assert_clean(repr(client.governor))
        _assert_clean(repr(client._transport._signer))
        for _ in range(4):
            try:
                await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount=1)
            except BinanceTransfersError as exc:
                errors.append(exc)
    assert len(errors) == 4
    for caught in errors:
        _assert_clean(str(caught))
        _assert_clean(repr(caught))
        _assert_clean("".join(traceback.format_exception(caught)))
        with_locals = traceback.TracebackException.from_exception(caught, capture_locals=True)
        _assert_clean("".join(with_locals.format()))
    _assert_clean(caplog.text)
    assert caplog.records  # the paths above did log something


def test_a_bad_pem_error_does_not_echo_the_key() -> None:
    """A key that fails to load is not quoted back in the error."""
    bad = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(BinanceTransfersError) as info:
        Client(API_KEY, bad)
    assert "TOPSECRETMATERIAL" not in str(info.value)
    assert "TOPSECRETMATERIAL" not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize(
    "bad", [{"max_in_flight": 0}, {"recv_window": 70_000}, {"http_client": 1, "transport": 2}]
)
def test_a_failed_construction_keeps_credentials_out_of_traceback_locals(
    bad: dict[str, object],
) -> None:
    """Even a traceback that prints every frame's locals shows neither key nor secret."""
    with pytest.raises(BinanceTransfersError) as info:
        Client(API_KEY, SECRET, **bad)  # type: ignore[arg-type]
    with_locals = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    _assert_clean("".join(with_locals.format()))


def test_a_bad_pem_error_leaves_no_chained_traceback_with_the_key() -> None:
    """The ConfigurationError for a bad key carries no context whose frames hold it."""
    bad = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(BinanceTransfersError) as info:
        Client(API_KEY, bad)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    with_locals = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    ours = [f for f in with_locals.stack if "binance_transfers" in f.filename]
    assert ours  # the frames of the package itself (the test's own locals hold the PEM)
    for frame in ours:
        assert "TOPSECRETMATERIAL" not in repr(frame.locals)
