"""Helpers for the simulated exchange's tests: requests built by hand, as Binance documents them.

Fixtures never read a clock: the exchange's ``LoopClock`` anchors its wall
time on first use, inside the test, so the server clock starts at ``EPOCH``,
the start of a window of every length used here. Tests marked ``@fake_time``
run on looptime's fake loop clock (the project's loops are looptime-ready,
see ``tests/conftest.py``), so hours pass in milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
import looptime
import pytest

from binance_transfers import ENDPOINTS, LoopClock
from binance_transfers.sim import Account, SimulatedExchange

# The plugin's fixtures, for the tests of the plugin's users' view.
from binance_transfers.sim.pytest_plugin import (  # noqa: F401
    binance_client,
    binance_sim,
    binance_sim_account,
    binance_sim_limits,
)

#: The test runs on the event loop's fake clock: sleeps take no real time.
fake_time = looptime.enabled(strict=True)

#: 2026-01-01T00:00:00Z: a multiple of every window length used here, so
#: windows start at loop time 0.
EPOCH = 1_767_225_600.0
EPOCH_MS = int(EPOCH * 1000)

#: The API key and secret of Binance's documented HMAC example (rest-api.md).
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
MASTER_EMAIL = "master@example.com"
SUB_EMAIL = "desk-1@example.com"

Pairs = Sequence[tuple[str, str]]


def hmac_hex(payload: bytes | str, secret: str = DOC_SECRET) -> str:
    """HMAC-SHA256 hex, as Binance's docs compute it with ``openssl dgst``."""
    raw = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def body(response: httpx.Response) -> Any:
    return json.loads(response.content)


def error_code(response: httpx.Response) -> int:
    code = body(response)["code"]
    assert isinstance(code, int)
    return code


class Wire:
    """Sends requests built by hand: params, ``recvWindow``, ``timestamp``, then ``signature``.

    GET parameters go in the query string, POST ones in a form body, both
    percent-encoded first and then signed exactly as sent.
    """

    def __init__(self, exchange: SimulatedExchange, http: httpx.AsyncClient) -> None:
        self.exchange = exchange
        self.http = http

    async def send(
        self,
        method: str,
        path: str,
        params: Pairs = (),
        *,
        signed: bool = True,
        in_query: bool | None = None,
        timestamp: int | None = None,
        recv_window: int | None = None,
        key: str | None = DOC_KEY,
        secret: str = DOC_SECRET,
        signature: str | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        pairs = list(params)
        if signed:
            if recv_window is not None:
                pairs.append(("recvWindow", str(recv_window)))
            stamp = self.exchange.server_ms() if timestamp is None else timestamp
            pairs.append(("timestamp", str(stamp)))
        encoded = urlencode(pairs)
        if signed:
            sig = hmac_hex(encoded, secret) if signature is None else signature
            encoded = f"{encoded}&signature={sig}"
        headers = {} if key is None else {"X-MBX-APIKEY": key}
        query = method == "GET" if in_query is None else in_query
        extra: dict[str, Any] = {}
        if read_timeout is not None:
            extra["timeout"] = httpx.Timeout(5.0, read=read_timeout)
        if query:
            return await self.http.request(
                method, f"{path}?{encoded}" if encoded else path, headers=headers, **extra
            )
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return await self.http.request(
            method, path, content=encoded.encode(), headers=headers, **extra
        )

    async def call(self, name: str, params: Pairs = (), **kwargs: Any) -> httpx.Response:
        """Send to the endpoint ``name`` of the table (method, path and security from it)."""
        endpoint = ENDPOINTS[name]
        kwargs.setdefault("signed", endpoint.security.signed)
        return await self.send(endpoint.method, endpoint.path, params, **kwargs)

    def from_ip(self, ip: str) -> Wire:
        """The same sender, leaving from another IP."""
        http = httpx.AsyncClient(
            transport=self.exchange.transport(client_ip=ip), base_url=self.http.base_url
        )
        return Wire(self.exchange, http)


@pytest.fixture
def exchange() -> SimulatedExchange:
    """An exchange whose server clock starts at ``EPOCH`` (on first use)."""
    return SimulatedExchange(clock=LoopClock(epoch=EPOCH))


@pytest.fixture
def master(exchange: SimulatedExchange) -> Account:
    """A master account holding Binance's documented HMAC key, with one sub-account."""
    account = exchange.add_account(
        MASTER_EMAIL,
        api_key=DOC_KEY,
        api_secret=DOC_SECRET,
        balances={
            "MAIN": {"USDT": "1000", "BNB": "10"},
            "UMFUTURE": {"USDT": "500", "BNB": "3"},
            "CMFUTURE": {"BTC": "1", "USDT": "20"},
            "MARGIN": {"USDT": "100", "BNB": "5"},
            "ISOLATEDMARGIN:BNBUSDT": {"USDT": "50"},
            "OPTION": {"USDT": "7"},
        },
    )
    account.add_sub_account(SUB_EMAIL, balances={"MAIN": {"USDT": "200"}})
    return account


@pytest.fixture
async def wire(exchange: SimulatedExchange, master: Account) -> AsyncIterator[Wire]:
    """Hand-built requests from 127.0.0.1 with the master's key."""
    async with httpx.AsyncClient(
        transport=exchange.transport(), base_url="http://api.sim.invalid"
    ) as http:
        yield Wire(exchange, http)
