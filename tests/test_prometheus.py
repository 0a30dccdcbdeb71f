"""The Prometheus adapter, tested by scraping the registry's text output."""

from __future__ import annotations

import threading

import anyio
import looptime
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from binance_transfers import (
    ENDPOINTS,
    BnbTransferSide,
    ConfigurationError,
    Governor,
    InsufficientBalanceError,
    IPBannedError,
    Limits,
    PoolSnapshot,
    ThrottledError,
    TooManyRequestsError,
)
from binance_transfers import prometheus as prometheus_module
from binance_transfers.prometheus import PrometheusHooks
from binance_transfers.sim import SimulatedExchange

fake_time = looptime.enabled(strict=True)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the registry's text exposition, by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples carrying ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def test_transfers_pools_and_answers_are_counted(registry: CollectorRegistry) -> None:
    """Outcomes, answers, waits and pool gauges; every admission and every answer counted."""
    metrics = PrometheusHooks(registry=registry)
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    governor = Governor(exchange.limits, clock=exchange.clock, hooks=metrics)
    metrics.watch(governor)
    async with exchange.client(governor=governor) as client:
        for _ in range(3):
            await client.transfer_to_futures(asset="USDT", amount="1")
        with pytest.raises(InsufficientBalanceError):
            await client.transfer_to_futures(asset="USDT", amount="99999999")
        account = client.account
    s = scrape(registry)
    ns = "binance_transfers"
    assert total(s, f"{ns}_transfers_total", endpoint="universal_transfer", outcome="done") == 3
    assert total(s, f"{ns}_transfers_total", outcome="refused") == 1
    assert total(s, f"{ns}_transfer_seconds_count", endpoint="universal_transfer") == 4
    assert total(s, f"{ns}_responses_total", endpoint="universal_transfer", status="200") == 3
    assert total(s, f"{ns}_responses_total", status="400") == 1
    # Complete: one admission and one answer per request the exchange received.
    received = len(exchange.ledger.entries())
    assert received >= 5  # 4 transfers + the clock sync
    assert total(s, f"{ns}_permit_wait_seconds_count") == received
    assert total(s, f"{ns}_responses_total") == received
    assert total(s, f"{ns}_response_seconds_count") == received
    uid = {"kind": "uid", "endpoint": "universal_transfer", "account": account}
    assert total(s, f"{ns}_pool_used", **uid) == 4 * 900
    assert total(s, f"{ns}_pool_limit", **uid) == 180_000
    assert total(s, f"{ns}_pool_limit", pool="papi-ip", endpoint="", account="") == 6000


@fake_time
async def test_429_and_refusals_are_counted(registry: CollectorRegistry) -> None:
    """A 429 from Binance, a cap refusing within max_wait: both show up."""
    metrics = PrometheusHooks(registry=registry)
    exchange = SimulatedExchange(limits=Limits(sapi_uid=1800))  # Binance's is smaller
    exchange.add_demo_account()
    governor = Governor(Limits(), clock=exchange.clock, hooks=metrics)
    async with exchange.client(governor=governor, retry_on_429=False) as client:
        await client.transfer_to_futures(asset="USDT", amount="1")
        await client.transfer_to_futures(asset="USDT", amount="1")
        with pytest.raises(TooManyRequestsError):
            await client.transfer_to_futures(asset="USDT", amount="1")
        for _ in range(2):
            await client.pmpro_bnb_transfer(amount="0.1", side=BnbTransferSide.TO_UM)
        with pytest.raises(ThrottledError):
            await client.pmpro_bnb_transfer(amount="0.1", side="TO_UM", max_wait=1)
    s = scrape(registry)
    ns = "binance_transfers"
    assert total(s, f"{ns}_responses_total", status="429") == 1
    assert total(s, f"{ns}_transfers_total", outcome="rate_limited") == 1
    assert total(s, f"{ns}_pool_freezes_total", reason="429") >= 1
    assert total(s, f"{ns}_refusals_total", endpoint="pmpro_bnb_transfer", reason="throttled") == 1
    assert total(s, f"{ns}_transfers_total", outcome="throttled") == 1


async def test_a_ban_refuses_queued_callers_through_the_hook(registry: CollectorRegistry) -> None:
    """Callers queued when a 418 comes get IPBannedError, and each is a refusal counted."""
    metrics = PrometheusHooks(registry=registry)
    governor = Governor(Limits(api_ip=1), hooks=metrics)
    metrics.watch(governor)
    endpoint = ENDPOINTS["server_time"]
    permit = await governor.acquire(endpoint)
    errors: list[BaseException] = []

    async def queued() -> None:
        try:
            await governor.acquire(endpoint)
        except IPBannedError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(queued)
        await anyio.wait_all_tasks_blocked()
        now = governor.server_clock.clock.monotonic()
        governor.observe(permit, sent=now, received=now, status=418, retry_after=60.0)
    s = scrape(registry)
    ns = "binance_transfers"
    assert len(errors) == 1
    assert total(s, f"{ns}_responses_total", status="418") == 1
    assert total(s, f"{ns}_refusals_total", reason="banned") == 1
    assert total(s, f"{ns}_pool_freezes_total", reason="418") == 1
    assert total(s, f"{ns}_pool_frozen", pool="api-ip") == 1


async def test_a_scrape_from_another_thread_reads_the_pools_on_the_loop(
    registry: CollectorRegistry,
) -> None:
    """start_http_server scrapes from its own thread: the snapshot is taken on the loop."""
    metrics = PrometheusHooks(registry=registry)
    governor = Governor(hooks=metrics)
    metrics.watch(governor)
    await governor.acquire(ENDPOINTS["server_time"])
    taken_on: list[int] = []
    original = governor.snapshot

    def snapshot() -> tuple[PoolSnapshot, ...]:
        taken_on.append(threading.get_ident())
        return original()

    governor.snapshot = snapshot  # type: ignore[method-assign]
    text = await anyio.to_thread.run_sync(generate_latest, registry)
    assert taken_on == [threading.get_ident()]
    assert b'binance_transfers_pool_used{account="",endpoint="server_time"' in text


def test_without_prometheus_client_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing extra is a ConfigurationError with the pip command."""
    monkeypatch.setattr(prometheus_module, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"binance-transfers\[metrics\]"):
        PrometheusHooks(registry=CollectorRegistry())
