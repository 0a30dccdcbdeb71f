"""The transport against what a review found: each test failed on main when written."""

from __future__ import annotations

import gc

import httpx
import looptime
import pytest

from binance_transfers import (
    BinanceTransfersError,
    Client,
    IPBannedError,
    TransferType,
)
from binance_transfers._governor._geometry import BAN_PAD
from binance_transfers._transport import MAX_RETRY_AFTER

from .conftest import API_KEY, SECRET, SERVER_MS, FakeBinance, error, ok


class _ReturnsNone:
    def sign(self, payload: bytes) -> str:
        return None  # type: ignore[return-value]  # a buggy signer


class _Remote:
    async def sign(self, payload: bytes) -> str:  # a remote signer is naturally async
        return "00"


# The async case drops a never-awaited coroutine: collect it here, not in a later test.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("signer", [_ReturnsNone(), _Remote()], ids=["returns None", "async"])
async def test_a_signer_that_returns_no_str_is_a_typed_error(
    signer: object, fake: FakeBinance
) -> None:
    """make_signer accepts any object with a sign() method, unchecked. One that returns None,
    or an ``async def sign`` (a remote signer), makes ``quote()`` raise a plain TypeError
    from Client.transfer (the async one also leaves a never-awaited coroutine)."""
    caught: tuple[str, bool] | None = None
    async with Client(API_KEY, signer, transport=httpx.MockTransport(fake)) as c:  # type: ignore[arg-type]
        try:
            await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        except Exception as exc:  # kept as text: the traceback (and the coroutine) can go
            caught = repr(exc), isinstance(exc, BinanceTransfersError)
    gc.collect()
    assert fake.transfers == []
    assert caught is not None and caught[1], caught


async def test_a_418_naming_a_ban_until_the_year_5138_is_clamped(fake: FakeBinance) -> None:
    """Retry-After is clamped to Binance's longest ban (3 days, issue 7 #2), but the ban
    time inside a 418's message ("IP banned until <ms>") is believed as is: one such answer
    (a proxy's rewrite, a bug) tells the caller to retry in 3,000 years (IPBannedError's
    retry_after), and on main's governor stops every later call until then."""
    fake.script(
        "POST",
        "/sapi/v1/asset/transfer",
        error(418, -1003, "Way too much request weight used; IP banned until 99999999999999."),
    )
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as c:
        with pytest.raises(IPBannedError) as info:
            await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        banned_until = c.governor.banned_until
        now = c.governor.server_clock.now()
    # Clamped, and waited out a minute longer (the margin of every ban's end).
    assert info.value.retry_after <= MAX_RETRY_AFTER + BAN_PAD
    assert banned_until is not None and banned_until - now <= MAX_RETRY_AFTER + BAN_PAD + 1


async def test_an_error_page_that_echoes_the_headers_keeps_the_key_out(
    fake: FakeBinance,
) -> None:
    """A proxy or WAF block page that echoes the request's headers (a debugging proxy,
    some corporate gateways): MalformedResponseError keeps 500 characters of it in ``body``,
    which callers log to see what came back; it carries the full API key. The transport
    knows the key and can mask it, as ``_scrubbed`` does for messages."""

    def echo(request: httpx.Request) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        return httpx.Response(403, text=f"<html>Request blocked:\n{headers}</html>")

    fake.script("GET", "/sapi/v1/asset/transfer", echo)
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as c:
        with pytest.raises(BinanceTransfersError) as info:
            await c.transfer_history(type=TransferType.MAIN_UMFUTURE).__anext__()
    assert API_KEY not in repr(vars(info.value))


@looptime.enabled(strict=True)
async def test_wait_on_ban_also_waits_out_a_ban_met_by_the_clock_sync(
    fake: FakeBinance,
) -> None:
    """wait_on_ban=True (issue 7 #10: the 418 a call's own request meets is waited out). The
    call's first request is the clock sync; when *it* meets the 418, the sync path does not
    retry and IPBannedError reaches the caller at once."""
    fake.script(
        "GET",
        "/api/v3/time",
        error(418, -1003, "Way too much request weight used.", **{"Retry-After": "120"}),
        ok({"serverTime": SERVER_MS}),
    )
    fake.script("POST", "/sapi/v1/asset/transfer", ok({"tranId": 3}))
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), wait_on_ban=True) as c:
        done = await c.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert done.tran_id == 3
