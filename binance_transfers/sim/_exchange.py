"""The simulated exchange: state, limits, authentication and faults, wired together.

Every request goes through the same steps, in Binance's order:

1. fault draw (travel, settlement, answer), then the request's travel time
   (``Fault.latency``);
2. a WAF block stops it before the API (no weight, no trace but the ledger's);
3. an IP ban answers 418;
4. weight is counted in every fixed-window pool, *before* anything is checked:
   a request over a limit is answered 429, or 418 if the caller ignored an
   earlier 429 from that pool;
5. API key, ``timestamp``/``recvWindow`` and signature (-2014/-2015, -1102,
   -1131, -1021, -1022), all answered after the weight was spent;
6. rolling call caps (429; a call the next step refuses gives its slot back);
7. the endpoint's own parameters and rules, then execution (a transfer with a
   history may settle later, or fail: ``Fault.pending``, ``Fault.failed``);
8. the answer fault, if any, shapes the answer (5xx, drop, reset, late...).

Steps 2 to 7 run without yielding to the event loop, so concurrent requests
are atomic with respect to each other, as on one matching engine.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._clock import Clock, LoopClock
from .._endpoints import ENDPOINTS, Endpoint, EndpointTable
from .._extras import extra
from .._limits import Limits, PoolKind, PoolSpec
from . import _errors as err
from ._auth import KEY_FORMAT, ApiKey, split_signature
from ._errors import BinanceReject
from ._faults import Fault, FaultDecision, FaultKind, Faults
from ._handlers import HANDLERS, Context
from ._ledger import Charge, Ledger, LedgerEntry
from ._limits import BanPolicy, RateLimiter
from ._params import Params
from ._state import Account, Bank, Money, WalletSpec

if TYPE_CHECKING:
    import httpx

    from .._client import Client
    from .._governor import Governor

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "DEMO_EMAIL",
    "HISTORY_RETENTION",
    "Incoming",
    "Outgoing",
    "SimulatedExchange",
]

#: The demo account's credentials, printed by ``python -m binance_transfers.sim``.
DEMO_API_KEY = "SimDemoKey000000000000000000000000000000000000000000000000000001"
DEMO_API_SECRET = "SimDemoSecret000000000000000000000000000000000000000000000000001"  # noqa: S105 - public demo secret
DEMO_EMAIL = "demo@sim.invalid"
#: ASGI scope extension a server or transport provides so the app can close
#: the connection without answering: ``scope["extensions"][DROP_EXTENSION]()``.
DROP_EXTENSION = "binance_sim.drop"
#: How far back the histories reach: Binance serves "the last 6 months only"
#: (taken as 180 days, the shorter reading, so a client assuming more is caught).
HISTORY_RETENTION = 180 * 24 * 3600.0
#: ASGI scope extension to close the connection *after* part of the answer was
#: sent (``Fault.reset``): ``scope["extensions"][CUT_EXTENSION]()``.
CUT_EXTENSION = "binance_sim.cut"

_DEMO_BALANCES: Mapping[WalletSpec, Mapping[str, Money]] = {
    "MAIN": {"USDT": "1000000", "BTC": "10", "BNB": "1000"},
    "FUNDING": {"USDT": "10000"},
    "UMFUTURE": {"USDT": "100000", "BNB": "100"},
    "CMFUTURE": {"BTC": "1"},
    "MARGIN": {"USDT": "100000", "BNB": "100"},
    "ISOLATEDMARGIN:BNBUSDT": {"USDT": "10000", "BNB": "10"},
    "OPTION": {"USDT": "1000"},
    "PORTFOLIO_MARGIN": {"USDT": "1000"},
}


@attrs.define(kw_only=True)
class _Visit:
    """What the ledger will say about one request, filled in as it is processed."""

    seq: int
    arrived: float
    monotonic: float
    ip: str
    method: str
    path: str
    endpoint: str | None
    fault: str | None
    account: int | None = None
    charges: tuple[Charge, ...] = ()
    code: int | None = None
    executed: bool = False
    signature: str | None = None
    result: object = None
    params: Mapping[str, str] = attrs.field(factory=dict)
    timestamp: int | None = None
    settlement: str | None = None
    settles_at: float | None = None
    latency: float = 0.0
    late_by: float = 0.0
    reads: bool = False


@attrs.frozen(kw_only=True)
class Incoming:
    """A request as it reached the exchange, framework-free."""

    method: str
    path: str
    query: bytes
    """The raw query string, exactly as sent."""
    body: bytes
    api_key: str | None
    ip: str


@attrs.frozen(kw_only=True)
class Outgoing:
    """What the exchange answers (or, with ``drop``, that it hangs up)."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    content_type: str = "application/json"
    drop: bool = False
    reset: bool = False
    """Headers and half the body leave, then the connection closes (``Fault.reset``)."""


class SimulatedExchange:
    """A simulated Binance serving every endpoint of the endpoint table.

    In-process (fast tests)::

        exchange = SimulatedExchange()
        account = exchange.add_account(balances={"MAIN": {"USDT": "100"}})
        async with exchange.client(account) as client:
            await client.transfer_to_futures(asset="USDT", amount="40")
        assert account.balance("USDT", "UMFUTURE") == Decimal("40")

    Over TCP: ``async with serve(exchange) as server`` (see :func:`serve`), or
    ``python -m binance_transfers.sim --port 8765``.

    ``limits`` sizes the pools (``Limits(time_scale=60)`` makes a minute last
    a second); ``clock`` is read for durations (``monotonic``) and for the
    server's clock (``time() + skew``, ``skew`` adjustable at any time);
    ``seed`` makes random faults reproducible; ``bans`` shapes 418 bans.

    ``history_lag`` (seconds on the server clock, default 0) is how long an
    executed transfer takes to appear in its history, as on Binance, where a
    row shows some time after the transfer: a client settling an unknown
    outcome must wait at least that long before reading "absent" as "never
    ran". ``history_retention`` (default 180 days, Binance's "last 6 months
    only"; None: forever) is how far back the histories reach: older rows are
    never returned, whatever ``startTime`` asks. Both apply as given, not
    divided by ``limits.time_scale``: they are about Binance's records, like
    ``timestamp`` and ``recvWindow``, not about rate-limit windows.
    """

    #: Base URLs for the in-process transport (they never resolve: ``.invalid``).
    api_url = "http://api.sim.invalid"
    papi_url = "http://papi.sim.invalid"
    fapi_url = "http://fapi.sim.invalid"
    dapi_url = "http://dapi.sim.invalid"

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        endpoints: EndpointTable = ENDPOINTS,
        clock: Clock | None = None,
        skew: float = 0.0,
        seed: int | None = None,
        bans: BanPolicy | None = None,
        history_lag: float = 0.0,
        history_retention: float | None = HISTORY_RETENTION,
    ) -> None:
        missing = sorted(set(endpoints) - set(HANDLERS))
        if missing:
            raise ValueError(f"the simulated exchange cannot serve {missing}: no handler")
        if history_lag < 0 or (history_retention is not None and history_retention <= 0):
            raise ValueError("history_lag must be >= 0 and history_retention > 0 (or None)")
        self.limits = limits if limits is not None else Limits()
        self.endpoints = endpoints
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.skew = skew
        """Seconds added to ``clock.time()`` to make the server's clock."""
        self.history_lag = history_lag
        """Seconds between a transfer's execution and its row's appearance in the history."""
        self.history_retention = history_retention
        """Seconds of history served (None: all of it)."""
        self.bank = Bank(now_ms=self.server_ms)
        self.faults = Faults(seed)
        self.ledger = Ledger()
        self.limiter = RateLimiter(self.limits, bans if bans is not None else BanPolicy())
        self.demo_account: Account | None = None
        self._seq = itertools.count(1)
        self._app: Any = None

    # -- time -------------------------------------------------------------------

    def server_time(self) -> float:
        """The server's clock, epoch seconds."""
        return self.clock.time() + self.skew

    def server_ms(self) -> int:
        """The server's clock, epoch milliseconds, as ``GET /api/v3/time`` answers it."""
        return int(self.server_time() * 1000)

    # -- accounts ---------------------------------------------------------------

    def add_account(
        self,
        email: str | None = None,
        *,
        balances: Mapping[WalletSpec, Mapping[str, Money]] | None = None,
        portfolio_margin: bool = False,
        pm_pro: bool = False,
        margin: bool = True,
        api_key: str | None = None,
        api_secret: object = None,
    ) -> Account:
        """Open a master account with one API key (generated unless given).

        ``api_secret`` is an HMAC secret, or an RSA / Ed25519 public key (PEM or
        ``cryptography`` object). ``balances`` maps wallets to assets to amounts:
        ``{"MAIN": {"USDT": "1000"}, "ISOLATEDMARGIN:BNBUSDT": {"BNB": "2"}}``.
        """
        if email is None:
            email = f"user{len(self.bank.accounts) + 1}@sim.invalid"
        account = self.bank.open(
            email=email,
            master=None,
            portfolio_margin=portfolio_margin,
            pm_pro=pm_pro,
            margin=margin,
        )
        account.add_api_key(api_key, api_secret)
        account.fund(balances)
        return account

    def add_demo_account(self) -> Account:
        """The account ``python -m binance_transfers.sim`` and the pytest plugin use.

        Portfolio Margin and PM Pro, funded in every wallet, with two
        sub-accounts (``desk-1@sim.invalid``, ``desk-2@sim.invalid``).
        """
        demo = self.add_account(
            DEMO_EMAIL,
            balances=_DEMO_BALANCES,
            portfolio_margin=True,
            pm_pro=True,
            api_key=DEMO_API_KEY,
            api_secret=DEMO_API_SECRET,
        )
        for n in (1, 2):
            demo.add_sub_account(
                f"desk-{n}@sim.invalid",
                balances={"MAIN": {"USDT": "10000"}, "MARGIN": {"USDT": "1000"}},
            )
        self.demo_account = demo
        return demo

    def account(self, who: str | int) -> Account:
        """An account by e-mail or UID."""
        found = self.bank.by_email.get(who) if isinstance(who, str) else self.bank.accounts.get(who)
        if found is None:
            raise LookupError(f"no account {who!r}")
        return found

    # -- wiring -----------------------------------------------------------------

    @property
    def app(self) -> Any:
        """The ASGI application (Starlette), one route per endpoint of the table."""
        if self._app is None:
            with extra("sim", "the simulated exchange"):
                from ._app import build_app

            self._app = build_app(self)
        return self._app

    def transport(self, *, client_ip: str = "127.0.0.1") -> httpx.AsyncBaseTransport:
        """An in-process httpx transport to this exchange, seen as coming from ``client_ip``.

        Unlike ``httpx.ASGITransport`` it behaves as a network does: a dropped
        connection raises ``httpx.RemoteProtocolError`` (before the answer, or
        while reading a body cut short by ``Fault.reset``), an answer later than
        the request's read timeout raises ``httpx.ReadTimeout``, and a request
        once sent is served to the end even if its caller is cancelled.
        """
        from ._transport import SimTransport

        return SimTransport(self.app, client_ip=client_ip)

    def client(
        self,
        account: Account | None = None,
        *,
        api_key: ApiKey | None = None,
        governor: Governor | None = None,
        client_ip: str = "127.0.0.1",
        **kwargs: Any,
    ) -> Client:
        """A :class:`~binance_transfers.Client` for ``account`` (default: the demo one), in-process.

        Its governor uses this exchange's limits and clock unless one is given,
        and it reads this exchange's endpoint table; other keyword arguments go
        to ``Client``.
        """
        from .._client import Client
        from .._governor import Governor

        if api_key is None:
            owner = account if account is not None else self.demo_account
            if owner is None:
                raise LookupError("no account given and no demo account added")
            api_key = owner.api_key
        if api_key.secret is None:
            raise ValueError("an RSA or Ed25519 key: build the Client with your private key")
        if governor is None:
            governor = Governor(self.limits, clock=self.clock)
        kwargs.setdefault("endpoints", self.endpoints)
        return Client(
            api_key.key,
            api_key.secret,
            governor=governor,
            transport=self.transport(client_ip=client_ip),
            api_url=self.api_url,
            papi_url=self.papi_url,
            fapi_url=self.fapi_url,
            dapi_url=self.dapi_url,
            **kwargs,
        )

    # -- serving ----------------------------------------------------------------

    async def handle(self, endpoint: Endpoint, request: Incoming) -> Outgoing:
        """Serve one request for ``endpoint``: travel time, processing, late answer."""
        decision = self.faults.decide(endpoint.name)
        if decision.latency > 0:
            await anyio.sleep(decision.latency)
        answer = self._process(endpoint, request, decision)
        if decision.late_by > 0:
            await anyio.sleep(decision.late_by)
        return answer

    def unserved(self, request: Incoming, status: int) -> None:
        """Record a request for a path or method the endpoint table does not have."""
        visit = self._visit(request, None, None)
        self._finish(visit, Outgoing(status=status, body=b"", headers={}))

    def _visit(
        self,
        request: Incoming,
        endpoint: str | None,
        fault: Fault | None,
        params: Params | None = None,
    ) -> _Visit:
        """Start the ledger's record of ``request``, as it arrives."""
        values = {} if params is None else params.values
        stamp = values.get("timestamp", "")
        return _Visit(
            params={k: v for k, v in values.items() if k != "signature"},
            timestamp=int(stamp) if stamp.isdigit() else None,
            seq=next(self._seq),
            arrived=self.server_time(),
            monotonic=self.clock.monotonic(),
            ip=request.ip,
            method=request.method,
            path=request.path,
            endpoint=endpoint,
            fault=None if fault is None else fault.kind.value,
        )

    def _process(self, endpoint: Endpoint, request: Incoming, decision: FaultDecision) -> Outgoing:
        fault = decision.fault
        params = Params.parse(request.query, request.body)
        visit = self._visit(request, endpoint.name, fault, params)
        visit.reads = endpoint.reads
        visit.latency, visit.late_by = decision.latency, decision.late_by
        self.bank.settle(int(visit.arrived * 1000))
        if fault is not None and fault.kind is FaultKind.WAF:
            waf = Outgoing(status=403, body=err.WAF_PAGE, headers={}, content_type="text/html")
            return self._finish(visit, waf)
        key = None
        if endpoint.security.signed:
            key = self.bank.keys.get(request.api_key) if request.api_key else None
            visit.account = None if key is None else key.account
            visit.signature = split_signature(request.query, request.body)[1]
        specs = self.limiter.pools(endpoint, None if key is None else str(key.account))
        headers: dict[str, str] = {}
        try:
            self._admit(visit, endpoint, specs, headers)
            if fault is not None and fault.kind is FaultKind.UNAVAILABLE:
                raise err.service_unavailable()
            self._authenticate(endpoint, request, params, key, visit.arrived)
            wait = self.limiter.admit_call(specs, visit.monotonic)
            if wait is not None:
                headers["Retry-After"] = self.limiter.retry_after_header(wait)
                raise err.call_cap()
            body = None
            if fault is None or fault.executes:
                body = self._execute(visit, endpoint, key, params, specs, decision)
        except BinanceReject as reject:
            visit.code = reject.code
            status, payload = reject.status, reject.body()
        else:
            status = 200
            payload = b"{}" if body is None else json.dumps(body, separators=(",", ":")).encode()
        for spec in specs:
            if spec.kind is not PoolKind.CAP and spec.header is not None:
                used = self.limiter.used(spec, request.ip, visit.arrived)
                headers[spec.header.upper()] = str(used)
        answer = Outgoing(status=status, body=payload, headers=headers)
        return self._finish(visit, self._apply(fault, answer, visit))

    def _admit(
        self,
        visit: _Visit,
        endpoint: Endpoint,
        specs: tuple[PoolSpec, ...],
        headers: dict[str, str],
    ) -> None:
        """Ban check, then weight: raise 418 or 429 (with ``Retry-After``) when refused."""
        limiter, ip, now = self.limiter, visit.ip, visit.monotonic
        banned_until = limiter.banned_until(ip, now)
        if banned_until is not None:
            headers["Retry-After"] = limiter.retry_after_header(banned_until - now)
            raise err.banned(self._server_ms_at(banned_until, visit))
        charges, exceeded = limiter.charge(specs, ip, visit.arrived)
        visit.charges = tuple(charges)
        if not exceeded:
            return
        if limiter.ignored_backoff(ip, exceeded, now) and limiter.bans_on(endpoint):
            until = limiter.ban(ip, now)
            headers["Retry-After"] = limiter.retry_after_header(until - now)
            raise err.banned(self._server_ms_at(until, visit))
        headers["Retry-After"] = limiter.retry_after_header(
            max(item.retry_after for item in exceeded)
        )
        raise err.too_much_weight(exceeded[0].spec.limit)

    def _execute(
        self,
        visit: _Visit,
        endpoint: Endpoint,
        key: ApiKey | None,
        params: Params,
        specs: tuple[PoolSpec, ...],
        decision: FaultDecision,
    ) -> Any:
        context = Context(
            bank=self.bank,
            account=None if key is None else self.bank.accounts[key.account],
            now_ms=int(visit.arrived * 1000),
            settlement=decision.settlement,
            settle_after_ms=math.ceil(decision.settle_after * 1000),
            history_lag_ms=math.ceil(self.history_lag * 1000),
            retention_ms=None
            if self.history_retention is None
            else int(self.history_retention * 1000),
        )
        try:
            body, visit.result = HANDLERS[endpoint.name](context, params)
        except BinanceReject:
            # Not executed: it did not use the endpoint's rolling cap either.
            self.limiter.release_call(specs, visit.monotonic)
            raise
        visit.executed = True
        posting = self.bank.postings.get(visit.result) if isinstance(visit.result, int) else None
        if posting is not None:
            visit.settlement = posting.status
            visit.settles_at = posting.settles_at / 1000
        return body

    def _apply(self, fault: Fault | None, answer: Outgoing, visit: _Visit) -> Outgoing:
        """Let the fault shape the answer (after execution, if it executes)."""
        if fault is None:
            return answer
        kind = fault.kind
        if kind is FaultKind.SERVER_ERROR:
            reject = err.server_error(fault.status, fault.code, fault.msg)
            visit.code = reject.code  # the ledger records the answer as sent
            return attrs.evolve(answer, status=fault.status, body=reject.body())
        if kind is FaultKind.DROP:
            return attrs.evolve(answer, drop=True)
        if kind is FaultKind.RESET:
            return attrs.evolve(answer, reset=True)
        if kind is FaultKind.MALFORMED:
            # Half of the real answer: what a cut connection behind a proxy delivers.
            return attrs.evolve(
                answer, status=200, body=answer.body[: max(1, len(answer.body) // 2)]
            )
        return answer

    def _finish(self, visit: _Visit, answer: Outgoing) -> Outgoing:
        self.ledger.record(
            LedgerEntry(
                **attrs.asdict(visit, recurse=False), status=None if answer.drop else answer.status
            )
        )
        return answer

    def _authenticate(
        self,
        endpoint: Endpoint,
        request: Incoming,
        params: Params,
        key: ApiKey | None,
        server_now: float,
    ) -> None:
        if not endpoint.security.signed:
            return
        if request.api_key is None or not KEY_FORMAT.fullmatch(request.api_key):
            raise err.key_format()
        if key is None:
            raise err.key_rejected()
        timestamp = params.integer("timestamp", low=0)
        if timestamp is None:
            raise err.mandatory("timestamp")
        recv_window = params.integer("recvWindow", low=0)
        if recv_window is None:
            recv_window = 5000
        elif recv_window > 60000:
            raise err.recv_window_too_big()
        payload, signature = split_signature(request.query, request.body)
        if signature is None:
            raise err.mandatory("signature")
        server_ms = int(server_now * 1000)
        if timestamp >= server_ms + 1000:
            raise err.timestamp_ahead()
        if server_ms - timestamp > recv_window:
            raise err.timestamp_outside()
        if not key.verify(payload, signature):
            raise err.bad_signature()

    def _server_ms_at(self, monotonic: float, visit: _Visit) -> int:
        """Server epoch ms at a monotonic instant (a ban's end, for its message)."""
        return math.ceil((visit.arrived + monotonic - visit.monotonic) * 1000)

    def __repr__(self) -> str:
        return (
            f"<SimulatedExchange accounts={len(self.bank.accounts)} "
            f"requests={len(self.ledger)} time_scale={self.limits.time_scale}>"
        )
