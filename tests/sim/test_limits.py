"""Rate limits as Binance counts them: fixed windows, usage headers, 429, 418 bans, rolling caps."""

from __future__ import annotations

import math
import re

import anyio
import httpx
import pytest

from binance_transfers import Limits, LoopClock
from binance_transfers.sim import Account, BanPolicy, SimulatedExchange

from .conftest import DOC_KEY, DOC_SECRET, EPOCH, Wire, body, error_code, fake_time

PM_ASSET = [("asset", "USDT")]
HISTORY = [("type", "MAIN_UMFUTURE")]
TRANSFER = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "1")]


async def wire_for(exchange: SimulatedExchange, ip: str = "127.0.0.1") -> Wire:
    http = httpx.AsyncClient(
        transport=exchange.transport(client_ip=ip), base_url="http://api.sim.invalid"
    )
    return Wire(exchange, http)


def pm_exchange(**limits: float) -> tuple[SimulatedExchange, Account]:
    exchange = SimulatedExchange(limits=Limits(**limits), clock=LoopClock(epoch=EPOCH))  # type: ignore[arg-type]
    account = exchange.add_account(
        api_key=DOC_KEY,
        api_secret=DOC_SECRET,
        portfolio_margin=True,
        pm_pro=True,
        balances={"UMFUTURE": {"USDT": "1000000", "BNB": "100"}, "MARGIN": {"BNB": "100"}},
    )
    exchange.server_time()  # anchor the server clock at EPOCH now, inside the test
    return exchange, account


async def test_api_weight_header_counts_up_in_the_window(wire: Wire) -> None:
    """Each GET /api/v3/time adds 1 to X-MBX-USED-WEIGHT-1M."""
    seen = [(await wire.call("server_time")).headers["X-MBX-USED-WEIGHT-1M"] for _ in range(3)]
    assert seen == ["1", "2", "3"]


async def test_sapi_headers_report_the_endpoints_own_ip_and_uid_buckets(wire: Wire) -> None:
    """/sapi: IP and UID weight per endpoint in X-SAPI-USED-IP/UID-WEIGHT-1M, not the /api one."""
    history = await wire.call("transfer_history", HISTORY)
    assert history.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"
    assert "X-SAPI-USED-UID-WEIGHT-1M" not in history.headers
    assert "X-MBX-USED-WEIGHT-1M" not in history.headers
    transfer = await wire.call("universal_transfer", TRANSFER)
    assert transfer.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "900"
    assert "X-SAPI-USED-IP-WEIGHT-1M" not in transfer.headers
    sub = await wire.call(
        "sub_account_transfer",
        [
            ("toEmail", "desk-1@example.com"),
            ("fromAccountType", "SPOT"),
            ("toAccountType", "SPOT"),
            ("asset", "USDT"),
            ("amount", "1"),
        ],
    )
    assert (sub.headers["X-SAPI-USED-IP-WEIGHT-1M"], sub.headers["X-SAPI-USED-UID-WEIGHT-1M"]) == (
        "1",
        "360",
    )
    # Another /sapi endpoint has a bucket of its own.
    again = await wire.call("transfer_history", HISTORY)
    assert again.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "2"
    other = await wire.call("sub_account_transfer_history")
    assert other.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


async def test_papi_pool_is_shared_by_papi_endpoints_and_apart_from_api(wire: Wire) -> None:
    """/papi endpoints share one pool (30 + 750), separate from /api's."""
    await wire.call("server_time")
    first = await wire.call("pm_collect_asset", PM_ASSET)
    assert first.headers["X-MBX-USED-WEIGHT-1M"] == "30"
    second = await wire.call("pm_auto_collect")
    assert second.headers["X-MBX-USED-WEIGHT-1M"] == "780"
    assert (await wire.call("server_time")).headers["X-MBX-USED-WEIGHT-1M"] == "2"


async def test_requests_refused_for_key_signature_or_timestamp_still_spend_weight(
    wire: Wire,
) -> None:
    """-1022, -1021 and -2015 answers carry the weight they spent, like Binance's."""
    bad_sig = await wire.call("transfer_history", HISTORY, secret="z" * 64)
    assert error_code(bad_sig) == -1022
    assert bad_sig.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"
    stale = await wire.call("transfer_history", HISTORY, timestamp=1)
    assert error_code(stale) == -1021
    assert stale.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "2"
    unknown = await wire.call("transfer_history", HISTORY, key="Q" * 64)
    assert error_code(unknown) == -2015
    assert unknown.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "3"
    # A bad signature with a known key spends the account's UID weight too.
    refused = await wire.call("universal_transfer", TRANSFER, secret="z" * 64)
    assert refused.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "900"


@fake_time
async def test_fixed_window_resets_at_the_server_clock_boundary() -> None:
    """Weight resets exactly when the server's minute changes, not 60 s after the first call."""
    exchange, _ = pm_exchange()
    wire = await wire_for(exchange)
    await anyio.sleep(59.0)  # the server clock started at EPOCH, a minute boundary
    assert (await wire.call("server_time")).headers["X-MBX-USED-WEIGHT-1M"] == "1"
    await anyio.sleep(0.998)
    assert (await wire.call("server_time")).headers["X-MBX-USED-WEIGHT-1M"] == "2"
    await anyio.sleep(0.004)
    assert (await wire.call("server_time")).headers["X-MBX-USED-WEIGHT-1M"] == "1"


@fake_time
async def test_over_the_limit_is_429_with_retry_after_to_the_window_end() -> None:
    """The request that would exceed the pool gets 429, -1003 and Retry-After (whole seconds)."""
    exchange, _ = pm_exchange(papi_ip=100)
    wire = await wire_for(exchange)
    await anyio.sleep(20.5)
    for _ in range(3):
        assert (await wire.call("pm_collect_asset", PM_ASSET)).status_code == 200
    refused = await wire.call("pm_collect_asset", PM_ASSET)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"  # 39.5 s to the minute's end, rounded up
    assert body(refused) == {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 100 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
    }
    assert refused.headers["X-MBX-USED-WEIGHT-1M"] == "120"
    assert [e.executed for e in exchange.ledger.entries("pm_collect_asset")] == [True] * 3 + [False]


@fake_time
async def test_waiting_out_retry_after_avoids_a_ban() -> None:
    """A caller that waits Retry-After after a 429 is served again, not banned."""
    exchange, _ = pm_exchange(papi_ip=60)
    wire = await wire_for(exchange)
    await wire.call("pm_collect_asset", PM_ASSET)
    await wire.call("pm_collect_asset", PM_ASSET)
    refused = await wire.call("pm_collect_asset", PM_ASSET)
    assert refused.status_code == 429
    await anyio.sleep(float(refused.headers["Retry-After"]))
    assert (await wire.call("pm_collect_asset", PM_ASSET)).status_code == 200


@fake_time
async def test_ignoring_a_429_gets_the_ip_banned_for_two_minutes() -> None:
    """Over the limit again before Retry-After: 418 with the ban's end, on every path of the IP."""
    exchange, _ = pm_exchange(papi_ip=60)
    wire = await wire_for(exchange)
    for _ in range(2):
        await wire.call("pm_collect_asset", PM_ASSET)
    assert (await wire.call("pm_collect_asset", PM_ASSET)).status_code == 429
    banned = await wire.call("pm_collect_asset", PM_ASSET)
    assert banned.status_code == 418
    assert banned.headers["Retry-After"] == "120"
    until = exchange.server_ms() + 120_000
    assert body(banned) == {
        "code": -1003,
        "msg": f"Way too much request weight used; IP banned until {until}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
    }
    # The whole IP is banned: /api too, and the count no longer matters.
    await anyio.sleep(100)
    during = await wire.call("server_time")
    assert during.status_code == 418
    assert during.headers["Retry-After"] == "20"
    other_ip = await wire_for(exchange, "10.0.0.2")
    assert (await other_ip.call("server_time")).status_code == 200
    await anyio.sleep(20.001)
    assert (await wire.call("server_time")).status_code == 200


@fake_time
async def test_bans_escalate_for_repeat_offenders() -> None:
    """The second ban lasts twice as long as the first (2 min, then 4 min)."""
    exchange, _ = pm_exchange(papi_ip=60)
    wire = await wire_for(exchange)
    durations = []
    for _ in range(2):
        statuses = [(await wire.call("pm_collect_asset", PM_ASSET)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        banned = await wire.call("pm_collect_asset", PM_ASSET)
        assert banned.status_code == 418
        durations.append(int(banned.headers["Retry-After"]))
        await anyio.sleep(durations[-1] + 0.001)
        # Start the next round at a fresh minute.
        await anyio.sleep(60 - exchange.server_time() % 60 + 0.001)
    assert durations == [120, 240]


@fake_time
async def test_sapi_can_be_configured_to_answer_only_429() -> None:
    """With BanPolicy(prefixes={'api','papi'}) a /sapi caller ignoring 429s keeps getting 429."""
    exchange = SimulatedExchange(
        limits=Limits(sapi_ip=2),
        clock=LoopClock(epoch=EPOCH),
        bans=BanPolicy(prefixes=frozenset({"api", "papi"})),
    )
    exchange.add_account(api_key=DOC_KEY, api_secret=DOC_SECRET)
    wire = await wire_for(exchange)
    statuses = [(await wire.call("transfer_history", HISTORY)).status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]


@fake_time
async def test_time_scale_shrinks_windows_retry_after_and_bans() -> None:
    """time_scale=60: 1 s windows, fractional Retry-After, a 2 s ban; timestamps stay unscaled."""
    exchange = SimulatedExchange(
        limits=Limits(time_scale=60, papi_ip=60), clock=LoopClock(epoch=EPOCH)
    )
    exchange.add_account(api_key=DOC_KEY, api_secret=DOC_SECRET, portfolio_margin=True)
    exchange.server_time()  # anchor the server clock at EPOCH now
    wire = await wire_for(exchange)
    await anyio.sleep(0.25)
    await wire.call("pm_collect_asset", PM_ASSET)
    await wire.call("pm_collect_asset", PM_ASSET)
    refused = await wire.call("pm_collect_asset", PM_ASSET)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "0.75"
    banned = await wire.call("pm_collect_asset", PM_ASSET)
    assert banned.headers["Retry-After"] == "2"
    await anyio.sleep(2.001)
    # A request 3 s old is still inside the (unscaled) 5 s recvWindow.
    stamp = exchange.server_ms() - 3000
    await anyio.sleep(0.5)  # next 1 s window
    assert (await wire.call("pm_collect_asset", PM_ASSET, timestamp=stamp)).status_code == 200


async def test_per_ip_pools_are_keyed_by_the_callers_ip(
    exchange: SimulatedExchange, master: Account
) -> None:
    """Two IPs each get their own /api pool; one account's UID pool is shared across IPs."""
    one, two = await wire_for(exchange, "10.0.0.1"), await wire_for(exchange, "10.0.0.2")
    await one.call("server_time")
    await one.call("server_time")
    assert (await two.call("server_time")).headers["X-MBX-USED-WEIGHT-1M"] == "1"
    await one.call("universal_transfer", TRANSFER)
    from_two = await two.call("universal_transfer", TRANSFER)
    assert from_two.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "1800"


async def test_uid_pool_429_is_per_account(exchange: SimulatedExchange) -> None:
    """Past an account's UID limit that account is refused; another account behind the IP is not."""
    small = SimulatedExchange(limits=Limits(sapi_uid=1000), clock=exchange.clock)
    small.add_account(api_key=DOC_KEY, api_secret=DOC_SECRET, balances={"MAIN": {"USDT": "10"}})
    other = small.add_account(balances={"MAIN": {"USDT": "10"}})
    wire = await wire_for(small)
    assert (await wire.call("universal_transfer", TRANSFER)).status_code == 200
    assert (await wire.call("universal_transfer", TRANSFER)).status_code == 429
    secret = other.api_key.secret
    assert secret is not None
    from_other = await wire.call(
        "universal_transfer", TRANSFER, key=other.api_key.key, secret=secret
    )
    assert from_other.status_code == 200


@fake_time
async def test_rolling_cap_refuses_with_429_until_the_oldest_call_is_an_interval_old() -> None:
    """PM Pro BNB transfer: 2 per rolling 10 min; the 3rd is 429 until the 1st is 600 s old."""
    exchange, _ = pm_exchange()
    wire = await wire_for(exchange)
    params = [("amount", "1"), ("transferSide", "TO_UM")]
    assert (await wire.call("pmpro_bnb_transfer", params)).status_code == 200
    await anyio.sleep(100)
    assert (await wire.call("pmpro_bnb_transfer", params)).status_code == 200
    await anyio.sleep(200)
    refused = await wire.call("pmpro_bnb_transfer", params)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "300"
    assert body(refused) == {
        "code": -1003,
        "msg": "Too many requests; current request has limited.",
    }
    # Rolling, not fixed: after 300 s more the first call has left the window.
    await anyio.sleep(299.9)
    assert (await wire.call("pmpro_bnb_transfer", params)).status_code == 429
    await anyio.sleep(0.2)
    assert (await wire.call("pmpro_bnb_transfer", params)).status_code == 200
    executed = [e.monotonic for e in exchange.ledger.executed("pmpro_bnb_transfer")]
    assert len(executed) == 3


@fake_time
async def test_auto_collection_is_capped_at_500_per_rolling_hour() -> None:
    """pm_auto_collect: 500 calls in an hour pass, the 501st is 429, an hour later it passes."""
    exchange, _ = pm_exchange(papi_ip=10**9)
    wire = await wire_for(exchange)
    for _ in range(500):
        assert (await wire.call("pm_auto_collect")).status_code == 200
        await anyio.sleep(1.0)
    refused = await wire.call("pm_auto_collect")
    assert refused.status_code == 429
    # The first call was 500 s ago: it leaves the hour in 3100 s.
    assert refused.headers["Retry-After"] == "3100"
    await anyio.sleep(3100)
    assert (await wire.call("pm_auto_collect")).status_code == 200


@fake_time
async def test_rolling_caps_are_per_account_and_scale_with_time() -> None:
    """Another account has its own cap; with time_scale=60 the 10-minute cap lasts 10 s."""
    exchange = SimulatedExchange(limits=Limits(time_scale=60), clock=LoopClock(epoch=EPOCH))
    first = exchange.add_account(
        api_key=DOC_KEY, api_secret=DOC_SECRET, pm_pro=True, balances={"MARGIN": {"BNB": "9"}}
    )
    second = exchange.add_account(pm_pro=True, balances={"MARGIN": {"BNB": "9"}})
    wire = await wire_for(exchange)
    params = [("amount", "1"), ("transferSide", "TO_UM")]
    for _ in range(2):
        await wire.call("pmpro_bnb_transfer", params)
    refused = await wire.call("pmpro_bnb_transfer", params)
    assert refused.status_code == 429
    assert math.isclose(float(refused.headers["Retry-After"]), 10.0)
    secret = second.api_key.secret
    assert secret is not None
    other = await wire.call("pmpro_bnb_transfer", params, key=second.api_key.key, secret=secret)
    assert other.status_code == 200
    await anyio.sleep(10.001)
    assert (await wire.call("pmpro_bnb_transfer", params)).status_code == 200
    assert first.balance("BNB", "UMFUTURE") == 3


def test_retry_after_formats() -> None:
    """Retry-After: whole seconds rounded up at scale 1; milliseconds, trimmed, when scaled."""
    plain = SimulatedExchange().limiter
    scaled = SimulatedExchange(limits=Limits(time_scale=60)).limiter
    assert [plain.retry_after_header(s) for s in (0.2, 1.0, 39.5, 120)] == ["1", "1", "40", "120"]
    assert [scaled.retry_after_header(s) for s in (0.25, 0.0004, 2.0, 0.6666)] == [
        "0.25",
        "0.001",
        "2",
        "0.667",
    ]
    assert re.fullmatch(r"\d+(\.\d+)?", scaled.retry_after_header(1 / 3))


@pytest.mark.parametrize("name", ["pm_collect_asset", "transfer_history", "server_time"])
async def test_every_response_carries_usage_headers(wire: Wire, name: str) -> None:
    """Success and error answers alike report the pools' usage."""
    params = {"pm_collect_asset": PM_ASSET, "transfer_history": HISTORY, "server_time": []}[name]
    response = await wire.call(name, params)
    assert any(h.startswith(("x-mbx-used-weight", "x-sapi-used")) for h in response.headers)
