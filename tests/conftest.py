"""Shared test helpers: a scripted fake of Binance on an httpx MockTransport."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import looptime
import pytest
from hypothesis import settings

from binance_transfers import Client, Governor

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
