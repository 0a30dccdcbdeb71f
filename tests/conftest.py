"""Shared test helpers and fixtures, each defined once.

* a scripted fake of Binance on an httpx MockTransport (``FakeBinance``, ``fake``,
  ``client``);
* the simulated exchange with the demo account (``demo_exchange``, ``exchange``)
  and governors/clients of it on a shared storage (``synced``, ``governor_on``,
  ``client_on``, ``refusals``);
* a redis-server of the test's own (``redis_server``), a Redis client to look at
  it (``raw``) and a storage on it (``redis_storage``);
* a script run in a fresh interpreter (``run_python``, ``last_json``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import looptime
import pytest
import redis.asyncio as aioredis
from hypothesis import settings

from binance_transfers import Client, Governor, Limits, RedisStorage, Storage
from binance_transfers._redis_server import RedisServer
from binance_transfers.sim import SimulatedExchange

# `make test` (and so CI) draws the same examples every run: a red build then
# means the code changed, not the dice. Exploration runs with fresh examples:
# `pytest --hypothesis-profile=explore` (the property tests' failures found that
# way become explicit example tests).
settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("default")

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SERVER_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

Responder = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeBinance:
    """Answers scripted responses per (method, path) and records every request.

    ``GET /api/v3/time`` answers ``server_ms`` unless scripted otherwise.
    """

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.scripts: dict[tuple[str, str], list[Responder]] = {}
        self.server_ms = SERVER_MS

    def script(self, method: str, path: str, *responses: Responder) -> None:
        self.scripts.setdefault((method, path), []).extend(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        queue = self.scripts.get(key)
        if queue:
            responder = queue.pop(0) if len(queue) > 1 else queue[0]
            return responder(request) if callable(responder) else responder
        if key == ("GET", "/api/v3/time"):
            return httpx.Response(200, json={"serverTime": self.server_ms})
        return httpx.Response(404, json={"code": -1000, "msg": f"no script for {key}"})

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    @property
    def transfers(self) -> list[httpx.Request]:
        """Requests other than the clock sync."""
        return [r for r in self.requests if r.url.path != "/api/v3/time"]


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def error(status: int, code: int, msg: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": msg}, headers=headers)


def wire_params(request: httpx.Request) -> list[tuple[str, str]]:
    """The decoded parameters on the wire (query for GET, form body for POST)."""
    raw = request.url.query if request.method == "GET" else request.content
    return parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)


def payload_and_signature(request: httpx.Request) -> tuple[bytes, str]:
    """Split the exact wire payload (query + body) from its trailing signature."""
    payload = request.url.query + request.content
    head, _, signature = payload.rpartition(b"&signature=")
    assert head and signature, payload
    return head, signature.decode()


def expected_hmac(payload: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


@pytest.fixture
def fake() -> FakeBinance:
    return FakeBinance()


@pytest.fixture
async def client(fake: FakeBinance) -> AsyncIterator[Client]:
    async with Client(
        API_KEY, SECRET, transport=httpx.MockTransport(fake), governor=Governor()
    ) as c:
        yield c


def body_json(response: httpx.Response) -> Any:
    return json.loads(response.content)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every asyncio test runs on a looptime-ready loop (fake time only where marked).

    Going through pytest-asyncio's factory hook also makes it set the loop as
    current, so looptime's plugin never has to create (and leak) one of its own.
    """
    return {"looptime": functools.partial(looptime.new_event_loop, _enabled=False)}


# -- the simulated exchange ----------------------------------------------------


def demo_exchange(*, limits: Limits | None = None, **options: Any) -> SimulatedExchange:
    """A simulated exchange (``SimulatedExchange(limits=..., **options)``) holding
    the demo account: Portfolio Margin and PM Pro, funded, two sub-accounts."""
    exchange = SimulatedExchange(limits=limits, **options)
    exchange.add_demo_account()
    return exchange


@pytest.fixture
def exchange() -> SimulatedExchange:
    """:func:`demo_exchange` on Binance's limits. A module that needs others
    overrides this fixture and says why (``tests/sim`` has its own, without
    the demo account)."""
    return demo_exchange()


def synced(governor: Governor, sim: SimulatedExchange) -> Governor:
    """Read the exchange's clock as a signed call would (server_time alone does not sync)."""
    clock = governor.server_clock
    mono = clock.clock.monotonic()
    clock.update(sent=mono - 0.001, received=mono + 0.001, server_ms=round(sim.clock.time() * 1000))
    return governor


def governor_on(
    sim: SimulatedExchange, limits: Limits, storage: Storage, **options: Any
) -> Governor:
    """One process's governor of ``sim`` on ``storage`` (shared through Redis, say):
    the exchange's clock, read already, and a 20 ms shortest round trip."""
    return synced(Governor(limits, clock=sim.clock, storage=storage, latency=0.02, **options), sim)


def client_on(sim: SimulatedExchange, limits: Limits, storage: Storage) -> Client:
    """A client of ``sim`` whose governor is :func:`governor_on` ``storage``."""
    return sim.client(governor=governor_on(sim, limits, storage))


def refusals(sim: SimulatedExchange) -> int:
    """Answers with 429 or 418, as the exchange's ledger recorded them."""
    return len(sim.ledger.entries(status=429)) + len(sim.ledger.entries(status=418))


# -- Redis ---------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own (no persistence, a free loopback port),
    stopped by its PID at the end of the test."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A Redis client of the test's own, to look at (and break) what the storages wrote."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_storage(redis_server: RedisServer) -> AsyncIterator[RedisStorage]:
    """``RedisStorage.connect`` to ``redis_server`` (defaults), closed at the end."""
    async with await RedisStorage.connect(redis_server.url) as storage:
        yield storage


# -- a fresh interpreter ---------------------------------------------------------


def run_python(script: str, *, timeout: float = 60) -> str:
    """Run ``script`` with ``python -c`` in a fresh interpreter (this one's
    executable, so the same environment) and return its stdout; a failing script
    fails the test with its stderr."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def last_json(script: str, *, timeout: float = 60) -> Any:
    """The JSON that :func:`run_python` ``script`` printed on its last line of output."""
    return json.loads(run_python(script, timeout=timeout).strip().splitlines()[-1])
