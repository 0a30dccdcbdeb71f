"""Prometheus metrics for the governor and the client (``pip install binance-transfers[metrics]``).

::

    from prometheus_client import start_http_server
    from binance_transfers import Client, Governor
    from binance_transfers.prometheus import PrometheusHooks

    metrics = PrometheusHooks()  # prometheus_client's default registry unless registry=
    governor = Governor(hooks=metrics)
    metrics.watch(governor)  # from the event loop: pool gauges are read there at each scrape
    start_http_server(9108)
    async with Client(api_key, api_secret, governor=governor) as client:
        ...

Every metric is named ``binance_transfers_...`` (``namespace=``):

=====================================  =========  =====================================
``pool_used``, ``pool_limit``          gauge      each pool's count in its window and limit
``pool_waiters``, ``pool_frozen``      gauge      calls queued on it; 1 while a 429/418 stops it
``permit_wait_seconds``                histogram  wait for a permit, every admission
``queued_total``                       counter    calls that had to queue for a permit
``refusals_total``                     counter    no permit: ``reason`` throttled or banned
``responses_total``                    counter    answers by HTTP ``status`` (429, 418...; none)
``response_seconds``                   histogram  round trip of every request written
``transfers_total``                    counter    mutating calls by ``outcome`` (done, refused...)
``transfer_seconds``                   histogram  a mutating call, start to end, waits included
``pool_freezes_total``                 counter    pools stopped, by ``reason`` (429 or 418)
=====================================  =========  =====================================

Pool gauges carry ``pool`` (the key), ``kind``, ``endpoint`` and ``account``
labels (``""`` where a pool is shared); the others an ``endpoint`` label.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._exceptions import ConfigurationError
from ._governor import Governor, GovernorHooks, PoolSnapshot

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

try:
    import prometheus_client
    from prometheus_client.core import GaugeMetricFamily
except ImportError:  # pragma: no cover - exercised by the packaging test's clean venv
    prometheus_client = None  # type: ignore[assignment]

__all__ = ["PrometheusHooks"]

#: Permit waits range from nothing to an hourly cap.
WAIT_BUCKETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
#: Round trips and whole calls.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: How long a scrape from another thread waits for the event loop's snapshot.
SNAPSHOT_TIMEOUT = 5.0


class PrometheusHooks(GovernorHooks):
    """:class:`GovernorHooks` that count in Prometheus metrics; see the module docstring.

    ``registry`` defaults to prometheus_client's global one; two instances
    need two registries (metric names are unique per registry). Hooks run on
    the event loop and only increment; the pool gauges are read from
    :meth:`Governor.snapshot` when scraped (on the event loop's thread, see
    :meth:`watch`).
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, namespace: str = "binance_transfers"
    ) -> None:
        if prometheus_client is None:
            raise ConfigurationError(
                "the Prometheus adapter needs prometheus-client: "
                "pip install 'binance-transfers[metrics]'"
            )
        pc = prometheus_client
        reg = registry if registry is not None else pc.REGISTRY
        kw: dict[str, Any] = {"namespace": namespace, "registry": reg}
        self._wait = pc.Histogram(
            "permit_wait_seconds",
            "Seconds a call waited for its permit (0: at once)",
            ["endpoint"],
            buckets=WAIT_BUCKETS,
            **kw,
        )
        self._queued = pc.Counter(
            "queued", "Calls that had to queue for a permit", ["endpoint"], **kw
        )
        self._refusals = pc.Counter(
            "refusals", "Calls refused a permit (nothing sent)", ["endpoint", "reason"], **kw
        )
        self._responses = pc.Counter(
            "responses", "Answers to requests written, by HTTP status", ["endpoint", "status"], **kw
        )
        self._round_trip = pc.Histogram(
            "response_seconds",
            "Seconds from writing a request to its answer",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self._transfers = pc.Counter(
            "transfers", "Mutating calls, by how they ended", ["endpoint", "outcome"], **kw
        )
        self._transfer_time = pc.Histogram(
            "transfer_seconds",
            "Seconds a mutating call took, permit waits included",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self._freezes = pc.Counter(
            "pool_freezes", "Pools stopped by Binance, by cause", ["reason"], **kw
        )
        self._pools = _PoolCollector(namespace)
        reg.register(self._pools)

    def watch(self, governor: Governor) -> None:
        """Report ``governor``'s pools at each scrape (call it from its event loop).

        A scrape from another thread (``start_http_server``) reads the pools
        on the event loop, waiting at most :data:`SNAPSHOT_TIMEOUT`.
        """
        self._pools.governor = governor
        self._pools.run = _on_this_loop()

    # -- GovernorHooks ------------------------------------------------------------

    def admitted(self, endpoint: str, waited: float) -> None:
        self._wait.labels(endpoint).observe(waited)

    def throttled(self, endpoint: str, wait: float) -> None:
        self._queued.labels(endpoint).inc()

    def refused(self, endpoint: str, reason: str, retry_after: float) -> None:
        self._refusals.labels(endpoint, reason).inc()

    def frozen(self, pool: str, until: float, reason: str) -> None:
        self._freezes.labels(reason.split(" ", 1)[0]).inc()

    def answered(self, endpoint: str, status: int | None, seconds: float | None) -> None:
        self._responses.labels(endpoint, "none" if status is None else str(status)).inc()
        if seconds is not None:
            self._round_trip.labels(endpoint).observe(seconds)

    def transferred(self, endpoint: str, outcome: str, seconds: float) -> None:
        self._transfers.labels(endpoint, outcome).inc()
        self._transfer_time.labels(endpoint).observe(seconds)


Runner = Callable[[Callable[[], tuple[PoolSnapshot, ...]]], tuple[PoolSnapshot, ...]]


def _on_this_loop() -> tuple[int, Runner] | None:
    """A way to run a function on the current event loop from another thread, if in one."""
    thread = threading.get_ident()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:

        def on_asyncio(fn: Callable[[], tuple[PoolSnapshot, ...]]) -> tuple[PoolSnapshot, ...]:
            future: concurrent.futures.Future[tuple[PoolSnapshot, ...]] = (
                concurrent.futures.Future()
            )

            def run() -> None:
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)

            loop.call_soon_threadsafe(run)
            return future.result(timeout=SNAPSHOT_TIMEOUT)

        return thread, on_asyncio
    try:
        import trio

        token = trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return None

    def on_trio(fn: Callable[[], tuple[PoolSnapshot, ...]]) -> tuple[PoolSnapshot, ...]:
        return trio.from_thread.run_sync(fn, trio_token=token)

    return thread, on_trio


class _PoolCollector:
    """The pool gauges, read from the governor's snapshot at each scrape."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.governor: Governor | None = None
        self.run: tuple[int, Runner] | None = None

    def describe(self) -> Iterable[Any]:
        return self._families([])

    def collect(self) -> Iterable[Any]:
        governor = self.governor
        pools: Iterable[PoolSnapshot] = ()
        if governor is not None:
            run = self.run
            if run is None or run[0] == threading.get_ident():
                pools = governor.snapshot()
            else:
                try:
                    pools = run[1](governor.snapshot)
                except (RuntimeError, concurrent.futures.TimeoutError):
                    pools = ()  # the loop is gone or stuck: no pool gauges this time
        return self._families(pools)

    def _families(self, pools: Iterable[PoolSnapshot]) -> Iterator[Any]:
        labels = ["pool", "kind", "endpoint", "account"]
        names = {
            "used": "Count in the pool's current window (calls, for a rolling cap)",
            "limit": "The pool's limit",
            "waiters": "Calls queued on the pool",
            "frozen": "1 while a 429 or a ban stops the pool",
        }
        families = {
            name: GaugeMetricFamily(f"{self.namespace}_pool_{name}", text, labels=labels)
            for name, text in names.items()
        }
        for pool in pools:
            values = [pool.key, pool.kind.value, pool.endpoint or "", pool.account or ""]
            families["used"].add_metric(values, pool.used)
            families["limit"].add_metric(values, pool.limit)
            families["waiters"].add_metric(values, pool.waiters)
            families["frozen"].add_metric(values, 0 if pool.frozen_until is None else 1)
        yield from families.values()
