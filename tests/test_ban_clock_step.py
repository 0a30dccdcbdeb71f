"""A 418 that shows Binance's clock stepped back: its ``Retry-After`` is the floor.

Found by review (real sockets, a CPU hog, the independent stand-in with 1-s
windows and 2-s bans): after Binance's clock stepped back 0.15-1.5 s, the ban's
end, read on our estimate of Binance's clock, came early; every caller
resumed inside the ban, and each later 418's end, already past on that
estimate, stopped nothing: 413 requests in 1.2 s, all answered 418, and
``IPBannedError.retry_after`` down to -0.86 s. ``Retry-After`` counts from the
answer on no clock: the ban now lasts at least that long, and where the two
disagree beyond the header's rounding, the clock estimate's uncertainty grows
to the error shown and the clock is synced again before the next signed
request (``ServerClock.doubt``).
"""

from __future__ import annotations

import anyio
import httpx
import looptime
import pytest

from binance_transfers import ENDPOINTS, Client, Governor, IPBannedError, Limits, ThrottledError

from .conftest import API_KEY, SECRET, SERVER_MS, FakeBinance, ok
from .test_governor import E0, mono, server_now, synced

PM_ASSET = ENDPOINTS["pm_collect_asset"]
TRANSFER = "/sapi/v1/asset/transfer"


def _governor() -> Governor:
    return synced(Governor(Limits(papi_ip=30), latency=0.0, cold_start=False), E0 + 1)


async def _ban(g: Governor, *, behind: float, retry_after: float) -> None:
    """A 418 for a request answered in 50 ms: banned for ``retry_after`` s on a
    Binance clock ``behind`` s behind our estimate of it."""
    permit = await g.acquire(PM_ASSET)
    sent = mono(g)
    await anyio.sleep(0.05)
    end = server_now(g) - behind + retry_after
    g.observe(
        permit,
        sent=sent,
        received=mono(g),
        status=418,
        retry_after=retry_after,
        banned_until=end,
    )


@looptime.enabled(strict=True)
async def test_a_ban_whose_end_comes_early_on_our_clock_lasts_its_retry_after() -> None:
    g = _governor()
    await _ban(g, behind=1.5, retry_after=2.0)
    start = anyio.current_time()
    await g.acquire(PM_ASSET, wait_on_ban=True)
    assert anyio.current_time() - start >= 2.0  # was 0.5 s and the margin
    clock = g.server_clock
    assert clock.doubted and clock.needs_sync()
    assert clock.uncertainty >= 1.5  # the error the 418 shows, at least


@looptime.enabled(strict=True)
async def test_a_418_whose_end_is_already_past_on_our_clock_still_stops_the_ip() -> None:
    g = _governor()
    await _ban(g, behind=2.0, retry_after=1.5)  # its end 0.5 s ago, on our estimate
    start = anyio.current_time()
    with pytest.raises(IPBannedError) as info:
        await g.acquire(PM_ASSET)
    assert info.value.retry_after >= 1.5
    await g.acquire(PM_ASSET, wait_on_ban=True)
    assert anyio.current_time() - start >= 1.5  # was at once: nothing stopped


@pytest.mark.parametrize("retry_after", [120.0, 2.125])
@looptime.enabled(strict=True)
async def test_a_418_agreeing_with_our_clock_leaves_it_trusted(retry_after: float) -> None:
    """Within the header's rounding (whole seconds, or milliseconds scaled), no doubt:
    the ban ends at its end on Binance's clock, with its margin, as before."""
    g = _governor()
    version = g.server_clock.version
    await _ban(g, behind=0.0, retry_after=retry_after)
    clock = g.server_clock
    assert not clock.doubted and clock.version == version and not clock.needs_sync()
    banned = g.banned_until
    assert banned is not None
    # (plus the guard band and the clock step the estimate allows: 0.1 s at most here)
    assert retry_after < banned - server_now(g) + 0.05 < retry_after * 1.05 + 0.15


@looptime.enabled(strict=True)
async def test_wait_on_ban_resyncs_the_clock_a_418_showed_stepped_before_resending(
    fake: FakeBinance,
) -> None:
    """Through the client: the resend waits for ``Retry-After``, and a clock sync goes first."""
    sent: list[tuple[float, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((anyio.current_time(), request.url.path))
        if [path for _, path in sent].count(TRANSFER) == 1:  # Binance's clock 1.5 s behind
            end = SERVER_MS - 1500 + 2000
            return httpx.Response(
                418,
                json={
                    "code": -1003,
                    "msg": f"Way too much request weight used; IP banned until {end}.",
                },
                headers={"Retry-After": "2"},
            )
        return ok({"tranId": 7})

    def clock(request: httpx.Request) -> httpx.Response:
        sent.append((anyio.current_time(), request.url.path))
        return ok({"serverTime": fake.server_ms})

    fake.script("POST", TRANSFER, answer)
    fake.script("GET", "/api/v3/time", clock)
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), wait_on_ban=True) as c:
        result = await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")
    assert result.tran_id == 7
    paths = [path for _, path in sent]
    assert paths == ["/api/v3/time", TRANSFER, "/api/v3/time", TRANSFER], sent
    banned_at, resent_at = sent[1][0], sent[3][0]
    assert resent_at - banned_at >= 2.0, sent  # was 0.5 s and the margin, without a sync


@looptime.enabled(strict=True)
async def test_the_418_met_tells_its_caller_its_retry_after_at_least(fake: FakeBinance) -> None:
    end = SERVER_MS - 2000 + 1500  # on a Binance clock 2 s behind: already past on ours
    fake.script(
        "POST",
        TRANSFER,
        httpx.Response(
            418,
            json={
                "code": -1003,
                "msg": f"Way too much request weight used; IP banned until {end}.",
            },
            headers={"Retry-After": "1.5"},
        ),
    )
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as c:
        with pytest.raises(IPBannedError) as info:
            await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")
    assert info.value.retry_after >= 1.5  # was -0.5


@looptime.enabled(strict=True)
async def test_a_418_wildly_off_our_clock_widens_the_estimate_by_a_window_at_most() -> None:
    """An end 3 days after its Retry-After (a header gone wrong): doubted, by a window at most."""
    g = _governor()
    await _ban(g, behind=-3 * 86400.0, retry_after=120.0)
    clock = g.server_clock
    assert clock.doubted and clock.uncertainty <= g.limits.window
    banned = g.banned_until
    assert banned is not None and banned - server_now(g) > 86400  # the body's end, clamped


@pytest.mark.parametrize("step", [0.0, 1.5])
@looptime.enabled(strict=True)
async def test_a_max_wait_shorter_than_the_ban_is_refused_at_once_clock_doubted_or_not(
    step: float,
) -> None:
    """A 30-s ban, ``max_wait=10``, ``wait_on_ban``: refused at once, as without a doubt
    (review: with Binance's clock stepped back 1.5 s, the sync the doubt asks for sat
    out the whole max_wait, and its refusal blamed the sync)."""
    t0 = anyio.current_time()
    stepped = 0.0
    transfers = 0

    def server_ms() -> int:
        return round(SERVER_MS + (anyio.current_time() - t0 - stepped) * 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal stepped, transfers
        if request.url.path == "/api/v3/time":
            return ok({"serverTime": server_ms()})
        transfers += 1
        stepped = step
        end = server_ms() + 30_000
        return httpx.Response(
            418,
            json={
                "code": -1003,
                "msg": f"Way too much request weight used; IP banned until {end}.",
            },
            headers={"Retry-After": "30"},
        )

    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(handler), wait_on_ban=True
    ) as c:
        start = anyio.current_time()
        with pytest.raises(ThrottledError) as info:
            await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=10)
        assert anyio.current_time() - start < 0.01  # was 10 s with the step
        assert info.value.retry_after >= 30
        assert c.governor.server_clock.doubted is (step > 0)
        # A new call during the ban: with the clock doubted, its sync is refused
        # at once too, and says why.
        with pytest.raises(ThrottledError) as again:
            await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=10)
        assert anyio.current_time() - start < 0.01
        assert again.value.retry_after >= 29
        assert ("the IP is banned past max_wait" in str(again.value)) is (step > 0)
    assert transfers == 1


@looptime.enabled(strict=True)
async def test_a_call_waiting_for_a_permit_when_a_418_shows_a_step_syncs_before_it_signs() -> None:
    """B waits out a 429 while A's transfer meets a 418 that shows Binance's clock 1.5 s
    back: B goes after the sync, never signed on the old estimate (review: it went
    first, 1500 ms ahead of Binance, and met a -1021)."""
    t0 = anyio.current_time()
    stepped = 0.0
    sent: list[tuple[str, int | None]] = []

    def server_ms() -> int:
        return round(SERVER_MS + (anyio.current_time() - t0 - stepped) * 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal stepped
        if request.url.path == "/api/v3/time":
            sent.append(("time", None))
            return ok({"serverTime": server_ms()})
        ahead = int(httpx.QueryParams(request.content.decode())["timestamp"]) - server_ms()
        sent.append(("transfer", ahead))
        if len(sent) == 2:  # B: a 429 for 5 s
            return httpx.Response(
                429, json={"code": -1003, "msg": "Too many requests."}, headers={"Retry-After": "5"}
            )
        if len(sent) == 3:  # A: a 418, and Binance's clock steps back 1.5 s
            stepped = 1.5
            end = server_ms() + 30_000
            return httpx.Response(
                418,
                json={
                    "code": -1003,
                    "msg": f"Way too much request weight used; IP banned until {end}.",
                },
                headers={"Retry-After": "30"},
            )
        if ahead > 1000:
            return httpx.Response(400, json={"code": -1021, "msg": "Timestamp ahead."})
        return ok({"tranId": len(sent)})

    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(handler), wait_on_ban=True
    ) as c:

        async def one(delay: float) -> None:
            await anyio.sleep(delay)
            await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0.0)
            tg.start_soon(one, 0.5)
    assert [what for what, _ in sent] == [
        "time",
        "transfer",
        "transfer",
        "time",
        "transfer",
        "transfer",
    ], sent
    assert all(ahead is None or ahead <= 1000 for _, ahead in sent), sent


@looptime.enabled(strict=True)
async def test_a_permit_waiting_for_a_connection_slot_is_not_signed_on_a_doubted_clock() -> None:
    """Two clients on one governor. X (one connection) holds its slot with a slow read
    while its transfer, permitted before any doubt, waits for it; Y's 418 shows
    Binance's clock 1.5 s back, and its 1-s ban ends long before the slot frees. The
    transfer goes after the sync (review: it was signed 1500 ms ahead, a -1021)."""
    t0 = anyio.current_time()
    stepped = 0.0
    sent: list[tuple[str, int | None]] = []

    def server_ms() -> int:
        return round(SERVER_MS + (anyio.current_time() - t0 - stepped) * 1000)

    def ahead(request: httpx.Request) -> int:
        return int(httpx.QueryParams(request.content.decode())["timestamp"]) - server_ms()

    async def x_answers(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/time":
            sent.append(("X time", None))
            return ok({"serverTime": server_ms()})
        if request.method == "GET":  # the slow read
            sent.append(("X read", None))
            await anyio.sleep(5)
            return ok([])
        sent.append(("X transfer", ahead(request)))
        if ahead(request) > 1000:
            return httpx.Response(400, json={"code": -1021, "msg": "Timestamp ahead."})
        return ok({"tranId": len(sent)})

    def y_answers(request: httpx.Request) -> httpx.Response:
        nonlocal stepped
        if request.url.path == "/api/v3/time":
            return ok({"serverTime": server_ms()})
        sent.append(("Y transfer", ahead(request)))
        stepped = 1.5
        end = server_ms() + 1000
        return httpx.Response(
            418,
            json={
                "code": -1003,
                "msg": f"Way too much request weight used; IP banned until {end}.",
            },
            headers={"Retry-After": "1"},
        )

    g = Governor(Limits())
    x = Client(
        API_KEY, SECRET, transport=httpx.MockTransport(x_answers), governor=g, max_in_flight=1
    )
    y = Client(API_KEY[::-1], SECRET, transport=httpx.MockTransport(y_answers), governor=g)
    async with x, y:

        async def x_read() -> None:
            await anyio.sleep(1.0)
            await x.wallet_balances()

        async def x_transfer() -> None:
            await anyio.sleep(1.1)
            await x.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")

        async def y_transfer() -> None:
            await anyio.sleep(1.2)
            with pytest.raises(IPBannedError):
                await y.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")

        await x.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(x_read)
            tg.start_soon(x_transfer)
            tg.start_soon(y_transfer)
    assert sent == [
        ("X time", None),
        ("X transfer", 0),
        ("X read", None),
        ("Y transfer", 0),
        ("X time", None),
        ("X transfer", 0),
    ], sent


@pytest.mark.parametrize(
    ("body", "retry_after"),
    [("IP banned.", "0"), (f"IP banned until {SERVER_MS - 5000}.", None)],
)
@looptime.enabled(strict=True)
async def test_a_418_without_a_wait_ahead_stops_the_ip_for_the_shortest_ban(
    fake: FakeBinance, body: str, retry_after: str | None
) -> None:
    """``Retry-After: 0`` with no end, or an end already past with no ``Retry-After``:
    the IP still stops, for Binance's shortest ban (review: with ``wait_on_ban`` the
    call was sent again at once, and again, without end)."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    fake.script(
        "POST",
        TRANSFER,
        httpx.Response(418, json={"code": -1003, "msg": body}, headers=headers),
        ok({"tranId": 9}),
    )
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake), wait_on_ban=True) as c:
        start = anyio.current_time()
        result = await c.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1")
        assert anyio.current_time() - start >= 120
    assert result.tran_id == 9
    assert len(fake.transfers) == 2
