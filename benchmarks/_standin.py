"""A strict stand-in for Binance's rate limits, independent of the package's own sim.

Run in its own process by ``bench_stress``::

    python -m benchmarks._standin '{"jitter": 0.01}'

It listens on 127.0.0.1 (an ephemeral port, printed as the first line of its
stdout), serves until its stdin closes or ``lifetime`` seconds pass, and
counts the way Binance says it counts, with code of its own (only the weights
and pools come from the package's endpoint table and ``pools_for``):

* every request is counted when it *arrives*, on the stand-in's own clock
  (``time.time() + offset``, which may jump or drift after the first time sync),
  in fixed windows of ``60 / time_scale`` seconds; arrival is after an inbound
  delay of ``uniform(0, jitter)`` (plus ``spike`` for requests read within
  ``spike_span / 2`` of one chosen window boundary);
* a request that takes a weight pool over its limit is still counted, and
  answered 429 with ``Retry-After`` (seconds to the window's end); a rolling cap
  is a deque of accepted arrivals;
* an over-limit request that arrives more than ``ban_grace`` seconds after the
  first 429 of a pool, before that 429's ``Retry-After`` is over, ignored it: the
  IP is banned (418) for 2 minutes (scaled), twice as long each time;
* ``foreign`` weight is spent on ``/papi`` by "another process" at the start of
  every window, visible to the client only through the usage header.

``GET /_standin/mark`` records the current window (the end of the measured
span); ``GET /_standin/report`` returns every window's counts as JSON.
Signatures are accepted unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import attrs

from binance_transfers import ENDPOINTS, Endpoint, Limits, PoolKind, PoolSpec, pools_for

_PAPI_POOL = "papi-ip"
_REASONS = {200: "OK", 404: "Not Found", 418: "I'm a teapot", 429: "Too Many Requests"}


@attrs.frozen(kw_only=True)
class Config:
    """How the stand-in behaves; durations in real seconds."""

    time_scale: float = 60.0
    jitter: float = 0.010
    """Inbound delay before a request is counted: uniform in [0, jitter]."""
    offset: float = 0.0
    """The stand-in's clock minus the machine's."""
    step: float = 0.0
    """Added to the clock at once right after the first time sync is answered."""
    drift: float = 0.0
    """Added to the clock gradually over ``drift_span`` seconds after the first sync."""
    drift_span: float = 2.0
    spike: float = 0.0
    """Extra inbound delay for requests read near one window boundary."""
    spike_window: int = 3
    """That boundary: this many windows after the first weighted request's window."""
    spike_span: float = 0.5
    foreign: int = 0
    """Weight another process spends on /papi at the start of every window."""
    ban_grace: float = 0.1
    """How long after a pool's first 429 requests already on their way are forgiven."""
    lifetime: float = 300.0


@attrs.define
class _Window:
    arrived: int = 0  # everything received, ours and the foreign process's
    accepted: int = 0  # ours, answered 200
    refused: int = 0  # ours, answered 429
    foreign: int = 0


@attrs.define
class _Refusal:
    first: float  # stand-in time of the pool's first 429 of this episode
    until: float  # when its Retry-After ends


class StandIn:
    """Counts and answers; every time is read from :meth:`now`."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock  # the machine's epoch seconds
        self.limits = Limits(time_scale=config.time_scale)
        self.period = self.limits.window
        self.windows: dict[str, dict[int, _Window]] = {}
        self.limit_of: dict[str, int] = {}
        self.calls: dict[str, deque[float]] = {}
        self.refusals: dict[str, _Refusal] = {}
        self.banned_until = -math.inf
        self.ban_length = 120.0 / config.time_scale
        self.answers: Counter[int] = Counter()
        self.events: list[tuple[int, int, str]] = []  # (status, window, pool) of 429/418
        self.synced_at: float | None = None  # machine time of the first time sync
        self.first_window: int | None = None
        self.mark_window: int | None = None
        self._plans: dict[tuple[Endpoint, str], tuple[PoolSpec, ...]] = {}
        self._seq = 0
        self.served = 0
        self._cpu = time.process_time()  # after the imports: report only serving's CPU

    def now(self) -> float:
        """The stand-in's clock, epoch seconds."""
        c = self.config
        t = self._clock()
        shift = c.offset
        if self.synced_at is not None:
            shift += c.step + c.drift * min(1.0, (t - self.synced_at) / c.drift_span)
        return t + shift

    def delay(self, read_at: float) -> float:
        """Inbound delay of a request read at stand-in time ``read_at``."""
        c = self.config
        extra = 0.0
        if c.spike and self.first_window is not None:
            boundary = (self.first_window + c.spike_window) * self.period
            if abs(read_at - boundary) <= c.spike_span / 2:
                extra = c.spike
        return random.uniform(0.0, c.jitter) + extra

    def answer(
        self, method: str, path: str, api_key: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, body) for a request arriving now."""
        self.served += 1
        now = self.now()
        if path == "/_standin/mark":
            self.mark_window = math.floor(now / self.period)
            return 200, {}, {"window": self.mark_window}
        if path == "/_standin/report":
            return 200, {}, self.report()
        endpoint = ENDPOINTS.route(method, path)
        if endpoint is None:
            return 404, {}, {"code": -1, "msg": f"no such endpoint {method} {path}"}
        if now < self.banned_until:
            return self._banned(now)
        specs = self._specs(endpoint, api_key)
        window = math.floor(now / self.period)
        if self.first_window is None and endpoint.name != "server_time":
            self.first_window = window
        headers: dict[str, str] = {}
        over: list[tuple[PoolSpec, float]] = []
        counted: list[tuple[_Window, int]] = []
        for spec in specs:
            if spec.kind is PoolKind.CAP:
                calls = self.calls.setdefault(spec.key, deque())
                while calls and calls[0] <= now - spec.period:
                    calls.popleft()
                if len(calls) + 1 > spec.limit:
                    over.append((spec, calls[0] + spec.period - now))
                continue
            w = self._window(spec, window)
            if w.arrived + spec.weight > spec.limit:
                over.append((spec, (window + 1) * spec.period - now))
            w.arrived += spec.weight  # Binance counts what it receives
            counted.append((w, spec.weight))
            if spec.header is not None:
                headers[spec.header] = str(w.arrived)
        if not over:
            for spec in specs:
                if spec.kind is PoolKind.CAP:
                    self.calls[spec.key].append(now)
            for w, weight in counted:
                w.accepted += weight
            return 200, headers, self._body(endpoint, now)
        for w, weight in counted:
            w.refused += weight
        for spec, _ in over:
            seen = self.refusals.get(spec.key)
            if (
                spec.kind is not PoolKind.CAP  # caps answer 429, never ban
                and seen is not None
                and now < seen.until
                and now - seen.first > self.config.ban_grace
            ):
                return self._ban(now, spec, window)
        wait = max(retry for _, retry in over)
        for spec, retry in over:
            seen = self.refusals.get(spec.key)
            if seen is None or now >= seen.until:
                self.refusals[spec.key] = _Refusal(first=now, until=now + retry)
            self.events.append((429, window, spec.key))
        self.answers[429] += 1
        headers["Retry-After"] = _seconds(wait)
        return (
            429,
            headers,
            {"code": -1003, "msg": "Too many requests; current limit is exceeded."},
        )

    def _ban(self, now: float, spec: PoolSpec, window: int) -> tuple[int, dict[str, str], Any]:
        self.banned_until = now + self.ban_length
        self.ban_length = min(self.ban_length * 2, 3 * 24 * 3600 / self.config.time_scale)
        self.events.append((418, window, spec.key))
        return self._banned(now)

    def _banned(self, now: float) -> tuple[int, dict[str, str], Any]:
        self.answers[418] += 1
        until_ms = math.ceil(self.banned_until * 1000)
        return (
            418,
            {"Retry-After": _seconds(self.banned_until - now)},
            {"code": -1003, "msg": f"Way too much request weight used; IP banned until {until_ms}"},
        )

    def _specs(self, endpoint: Endpoint, account: str) -> tuple[PoolSpec, ...]:
        specs = self._plans.get((endpoint, account))
        if specs is None:
            specs = self._plans[endpoint, account] = pools_for(endpoint, self.limits, account)
            for spec in specs:
                self.limit_of[spec.key] = spec.limit
        return specs

    def _window(self, spec: PoolSpec, index: int) -> _Window:
        windows = self.windows.setdefault(spec.key, {})
        w = windows.get(index)
        if w is None:
            w = windows[index] = _Window()
            if spec.key == _PAPI_POOL and self.config.foreign:
                # The other process's burst opened the window before anything of ours.
                w.arrived = w.foreign = self.config.foreign
        return w

    def _body(self, endpoint: Endpoint, now: float) -> dict[str, Any]:
        self._seq += 1
        if endpoint.name == "server_time":
            if self.synced_at is None:
                self.synced_at = self._clock()
            return {"serverTime": math.floor(now * 1000)}
        if endpoint.name == "sub_account_margin_transfer":
            return {"txnId": str(self._seq)}
        if endpoint.name.endswith("_history"):
            return {"total": 0, "rows": [], "totalCount": 0, "result": []}
        if endpoint.name.endswith(("transfer", "bnb_transfer")):
            return {"tranId": self._seq, "clientTranId": str(self._seq)}
        return {"msg": "success"}

    def report(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "cpu": time.process_time() - self._cpu,
            "served": self.served,
            "first_window": self.first_window,
            "mark_window": self.mark_window,
            "answers": {str(k): v for k, v in self.answers.items()},
            "events": self.events,
            "pools": {
                key: {
                    "limit": self.limit_of[key],
                    "windows": {str(i): attrs.astuple(w) for i, w in windows.items()},
                }
                for key, windows in self.windows.items()
            },
        }


def _seconds(value: float) -> str:
    """``Retry-After`` in seconds, to the millisecond (windows are scaled)."""
    return f"{max(math.ceil(value * 1000), 1) / 1000:.3f}"


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1, one request at a time (httpx never pipelines).

    A protocol and a timer per request rather than streams and a task: the stand-in
    shares the machine with the client it measures, so it must cost as little CPU as
    it can.
    """

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None  # the client hung up; an answer still due is dropped

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            total = end + 4 + int(fields.get("content-length", "0"))
            if len(self.buffer) < total:
                return  # the body is still coming
            del self.buffer[:total]
            method, target, _ = lines[0].split(" ", 2)
            request = (method, target.split("?", 1)[0], fields.get("x-mbx-apikey", ""))
            standin = self.standin
            delay = standin.delay(standin.now())
            asyncio.get_running_loop().call_later(delay, self._respond, request)

    def _respond(self, request: tuple[str, str, str]) -> None:
        if self.transport is None:
            return
        status, headers, body = self.standin.answer(*request)
        content = json.dumps(body).encode()
        out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        out += ["Content-Type: application/json", f"Content-Length: {len(content)}"]
        out += [f"{k}: {v}" for k, v in headers.items()]
        self.transport.write(("\r\n".join(out) + "\r\n\r\n").encode() + content)


async def main(config: Config) -> None:
    standin = StandIn(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(standin), "127.0.0.1", 0, backlog=2048)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    # Stop when the parent closes our stdin (or dies), or after `lifetime` at most.
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async with server:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stdin.read(), config.lifetime)


if __name__ == "__main__":
    asyncio.run(main(Config(**json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
