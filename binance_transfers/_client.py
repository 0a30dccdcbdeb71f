"""The client: one typed coroutine per Binance transfer endpoint."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import anyio
import attrs

from . import _models
from ._arguments import (
    OnUnknown,
    Params,
    _claims_for,
    _echo,
    _enum,
    _file_param,
    _Hidden,
    _mask,
    _not_bnb,
    _on_unknown_param,
    _range,
    _signer,
    _url_param,
    new_client_tran_id,
)

# Imported from here by cli/_app.py and tests/test_hot_path.py ("as": re-exported, for mypy).
from ._arguments import _enum_or_name as _enum_or_name
from ._arguments import _transfer_params as _transfer_params
from ._baseline import MarginTransferBaseline  # at run time: typing.get_type_hints needs it
from ._closing import to_the_end
from ._endpoints import ENDPOINTS, Endpoint, EndpointTable, Host
from ._exceptions import (
    BinanceAPIError,
    BinanceTransfersError,
    ClientClosedError,
    ConfigurationError,
    InvalidInputError,
    NotExecutedError,
    OutcomeUnknownError,
)
from ._governor import Governor
from ._governor._core import overridden
from ._lazy import LazyModule
from ._logs import TRANSFERS, logged_transfer, redact_httpx, unlogged
from ._models import (
    _PARSERS,
    Acknowledgement,
    AssetBalance,
    BnbTransferResult,
    BnbTransferSide,
    FuturesAccountSummary,
    FuturesBalance,
    FuturesMarket,
    FutureType,
    MarginAccount,
    MarginAccountSummary,
    MarginTransferDirection,
    MarginTransferResult,
    PortfolioMarginAccount,
    PortfolioMarginBalance,
    ServerTime,
    SubAccount,
    SubAccountAccountType,
    SubAccountAssets,
    SubAccountFuturesRow,
    SubAccountFuturesSummaryPage,
    SubAccountList,
    SubAccountMarginAccount,
    SubAccountTransferPage,
    SubAccountTransferRecord,
    SubAccountTransferResult,
    TransferPage,
    TransferRecord,
    TransferResult,
    TransferType,
    WalletBalance,
    parser,
)
from ._outcome import ExchangeOutcome
from ._params import (
    Amount,
    amount_param,
    api_key_param,
    asset_param,
    client_id_param,
    email_param,
    max_wait_param,
    positive_int_param,
    recv_window_param,
    symbol_param,
)
from ._reconcile import (
    HOW,
    InFlight,
    Reconciler,
    SettleBy,
    Settlement,
)
from ._signing import Signer

if TYPE_CHECKING:
    import httpx
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from . import _claims, _journal, _settling
    from ._journal import PendingIntent
else:
    # issue 9: httpx (and the transport built on it) is imported when a client
    # is built, not with this module: about half of `from binance_transfers
    # import Client`. The signatures name these modules' classes as attributes
    # of stand-ins, which typing.get_type_hints imports when it resolves them.
    httpx = LazyModule("httpx")
    ed25519 = LazyModule("cryptography.hazmat.primitives.asymmetric.ed25519")
    rsa = LazyModule("cryptography.hazmat.primitives.asymmetric.rsa")
    _claims = LazyModule("binance_transfers._claims")
    _journal = LazyModule("binance_transfers._journal")

# issue 9: the journal, recovery and settlement modules (and sqlite's, the
# claims') are imported where they are first needed: by a client given a
# journal, by the first unknown outcome settled, by recover(). Importing them
# for every client was ~8 % of `import binance_transfers`'s CPU.

__all__ = ["ApiSecret", "Client", "OnUnknown"]

#: What ``Client(api_key, api_secret)`` signs with: an HMAC secret (``str`` or
#: ``bytes``), a PEM RSA or Ed25519 private key (``str``/``bytes``, the
#: ``crypto`` extra), a ``cryptography`` key object, or any :class:`Signer`.
ApiSecret: TypeAlias = "str | bytes | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | Signer"

log = logging.getLogger("binance_transfers.client")

#: How many times ``on_unknown="retry"`` sends a sub-account transfer in all.
_RETRY_ATTEMPTS = 3
#: Binance's refusal of a second transfer with a clientTranId it has seen.
_DUPLICATED_CLIENT_TRAN_ID = -4115
#: Seconds past Binance's recvWindow before its history is searched (twice:
#: "not executed" needs a second empty search one margin later). Binance
#: documents no bound on its history lag; a minute each is cheap next to a
#: transfer moved twice.
DEFAULT_SETTLE_MARGIN = 60.0
#: Seconds to (connect, read, write, wait for a pooled connection): an
#: ``httpx.Timeout`` in a tuple, which httpx takes as is. Generous on reading:
#: a slow transfer answered late is far better than one whose outcome is
#: unknown. Connecting fails fast (nothing was sent).
DEFAULT_TIMEOUT = (10.0, 30.0, 10.0, 30.0)


class _CallState:
    """The mutating call running in this context: its journal row, its last outcome."""

    __slots__ = ("closing", "ending", "outcome", "pending", "reported")

    def __init__(self, pending: PendingIntent | None) -> None:
        self.pending = pending
        self.outcome: ExchangeOutcome | None = None
        self.reported = False  # on_detached has been told
        self.closing = False  # aclose() stopped it: its caller is still there
        # Past what aclose() stops: answered (only its journal flush is left), or
        # cancelled already (handing its outcome to on_detached). aclose() leaves
        # it be: on asyncio its cancellation would cut the flush or the hook short,
        # where an anyio scope's did not pierce their shields (B9-1, B9-6).
        self.ending = False

    @property
    def intent(self) -> int | None:
        return None if self.pending is None else self.pending.id


# The transport's on_outcome hook runs in the caller's context (or a copy of
# it, for a request that outlives its cancelled caller): it finds the call here.
_CALL: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar(
    "binance_transfers_call", default=None
)

# The in-flight event of the mutating call running in this context, if any.
_SENDING: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "binance_transfers_sending", default=None
)

#: Endpoints whose outcome Binance's history can settle after a crash.
_SETTLEABLE = (SettleBy.HISTORY, SettleBy.CLIENT_TRAN_ID)

_T = TypeVar("_T")
_SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
#: Binance's largest pages: sub-account list (200), futures summary (20).
_SUB_ACCOUNT_PAGE = 200
_FUTURES_SUMMARY_PAGE = 20

#: Methods whose endpoint has another name (the others share theirs), for estimate().
_ENDPOINT_OF = {
    "transfer": "universal_transfer",
    "transfer_to_futures": "universal_transfer",
    "transfer_from_futures": "universal_transfer",
}


class Client:
    """An asyncio (and trio) client for Binance wallet transfers.

    ::

        async with Client(api_key, api_secret) as client:
            done = await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=100)
            print(done.tran_id)

    ``api_secret`` is an HMAC secret, or a PEM (or ``cryptography``) RSA or
    Ed25519 private key. Every method is keyword-only, checks its arguments
    before anything is sent or any rate-limit weight spent, waits for the
    :class:`Governor`'s permit and returns a frozen model.

    Clients that leave through the same IP should share one ``governor``.
    ``account`` names the Binance account for UID limits and rolling caps
    (default: derived from the API key; give the same name to several keys of
    one account). ``max_wait`` is the default bound, in seconds, on waiting
    for a permit (None: wait as long as needed). After a 429 the request,
    which Binance did not execute, is sent again once the governor's wait is
    over, unless ``retry_on_429`` is False. During a 418 ban calls fail at once
    with :class:`IPBannedError` unless ``wait_on_ban``. ``http_client`` or
    ``transport`` let you bring your own httpx setup (proxies, HTTP/2, TLS);
    the client closes only what it created.

    Unknown outcomes (money safety): ``on_unknown`` says what a transfer
    whose outcome is unknown does (see :data:`OnUnknown`; per call for
    :meth:`transfer` and :meth:`sub_account_transfer`); :meth:`reconcile`
    settles an :class:`OutcomeUnknownError` from Binance's records, waiting
    ``settle_margin`` seconds past Binance's recvWindow for its history to
    catch up: "not executed" (safe to send again) is only concluded after a
    second empty search one more ``settle_margin`` later. Binance documents
    no bound on that lag: the default (60 s) favours a right answer over a
    fast one. ``journal`` is a path to an SQLite intent journal (or a
    :class:`Journal`, e.g. ``Journal(path, durable=True)`` to fsync every
    write): every mutating call is written there before it is sent, and
    :meth:`recover` settles what a crash left open. A caller cancelled while its transfer is
    on the wire gets its ``CancelledError``, but the request runs on to its
    answer; ``on_detached`` (a function or coroutine function) then receives
    that outcome, which is also logged at WARNING and journaled. So does a
    caller cancelled while ``on_unknown="reconcile"`` settles its unknown
    outcome (``on_detached`` gets the :class:`OutcomeUnknownError`); its
    journal row stays ``unknown`` and :meth:`recover` settles it.

    Several processes of one account settling identical universal transfers
    must share which history row is whose: with a governor on a
    :class:`RedisStorage` the claims go to that Redis; ``claims`` is a path
    to an SQLite file that every process of the account on this host names
    (or a :class:`~binance_transfers._claims.Claims`). Without either, each
    client's claims are its own (see the README's "Settling across processes").

    Errors: a call that moves money raises

    - :class:`BinanceAPIError` (``InsufficientBalanceError``...): Binance
      refused it, nothing moved;
    - :class:`OutcomeUnknownError`: it may have executed: settle it
      (:meth:`reconcile`), never send it again blindly;
    - :class:`InvalidInputError`: a bad argument: nothing sent, no weight spent;
    - :class:`ClientClosedError`: the client is closed: nothing sent;
    - :class:`ThrottledError`: no permit within ``max_wait`` (``retry_at``):
      nothing sent;
    - :class:`IPBannedError`, :class:`TooManyRequestsError`: Binance's limits
      (``retry_at``): not executed;
    - :class:`ConnectionFailedError`: Binance was never reached: nothing happened.

    A query raises the same, except :class:`OutcomeUnknownError`: reads are
    retried within ``max_wait``, then :class:`ServiceUnavailableError` or
    :class:`MalformedResponseError` say that no usable answer came.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: ApiSecret,
        *,
        governor: Governor | None = None,
        account: str | None = None,
        api_url: str = "https://api.binance.com",
        papi_url: str = "https://papi.binance.com",
        fapi_url: str = "https://fapi.binance.com",
        dapi_url: str = "https://dapi.binance.com",
        recv_window: int = 5000,
        max_wait: float | None = None,
        retry_on_429: bool = True,
        wait_on_ban: bool = False,
        timeout: httpx.Timeout | float | tuple[float, float, float, float] = DEFAULT_TIMEOUT,
        max_in_flight: int = 100,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        endpoints: EndpointTable | None = None,
        private_key_password: bytes | None = None,
        journal: str | os.PathLike[str] | _journal.Journal | None = None,
        on_unknown: OnUnknown = "raise",
        settle_margin: float = DEFAULT_SETTLE_MARGIN,
        on_detached: Callable[[ExchangeOutcome], Awaitable[None] | None] | None = None,
        claims: str | os.PathLike[str] | _claims.Claims | None = None,
    ) -> None:
        # Hide the credentials from every frame's locals at once, so that no
        # traceback (even one that prints locals) can show them.
        key, secret = _Hidden(api_key), _Hidden((api_secret, private_key_password))
        del api_key, api_secret, private_key_password
        api_key_param(key.value)
        if http_client is not None and transport is not None:
            raise InvalidInputError("give http_client or transport, not both")
        positive_int_param(max_in_flight, "max_in_flight", 100_000)
        window = recv_window_param(recv_window)
        self.on_unknown = _on_unknown_param(on_unknown)
        margin = max_wait_param(settle_margin, "settle_margin")
        if margin is None:
            raise InvalidInputError("settle_margin must be seconds, not None")
        if on_detached is not None and not callable(on_detached):
            raise InvalidInputError("on_detached must be callable")
        self.on_detached = on_detached
        urls = _url_param(api_url, "api_url"), _url_param(papi_url, "papi_url")
        futures_urls = _url_param(fapi_url, "fapi_url"), _url_param(dapi_url, "dapi_url")
        if journal is not None:
            from ._journal import Journal

            if not isinstance(journal, Journal):
                journal = Journal(_file_param(journal, "journal"))
        self.journal = journal
        signer = _signer(secret)
        # Imported here, not with this module (issue 9): httpx and the
        # transport, cattrs and the models' converter, before any first call.
        import httpx

        from ._http import default_http_client
        from ._transport import Transport

        _models.get_converter()
        redact_httpx()  # httpx logs every URL at INFO: a signed GET's signature too
        self._owns_http = http_client is None
        if http_client is None and transport is None:
            # aiohttp under httpx on asyncio (about half httpcore's CPU per call),
            # httpcore on trio: chosen at the first request.
            http_client = default_http_client(timeout=timeout, max_in_flight=max_in_flight)
        elif http_client is None:
            limits = httpx.Limits(
                max_connections=max_in_flight, max_keepalive_connections=max_in_flight
            )
            http_client = httpx.AsyncClient(timeout=timeout, transport=transport, limits=limits)
        self._http = http_client
        self.governor = governor if governor is not None else Governor()
        # The governor's metrics hook for whole calls, when it has one.
        self._transferred = overridden(self.governor.hooks, "transferred")
        self.endpoints = endpoints = endpoints if endpoints is not None else ENDPOINTS
        self.max_wait = max_wait_param(max_wait)
        self.retry_on_429 = retry_on_429
        self._key_hint = _mask(key.value)
        self.account = account or "key-" + hashlib.sha256(key.value.encode()).hexdigest()[:12]
        self._transport = Transport(
            api_key=key.value,
            signer=signer,
            governor=self.governor,
            account=self.account,
            base_urls={
                Host.API: urls[0],
                Host.PAPI: urls[1],
                Host.FAPI: futures_urls[0],
                Host.DAPI: futures_urls[1],
            },
            http=http_client,
            time_endpoint=endpoints["server_time"],
            recv_window=window,
            max_in_flight=max_in_flight,
            wait_on_ban=wait_on_ban,
            owns_http=self._owns_http,
            retry_on_429=retry_on_429,
        )
        self._urls = urls
        self._closed = False
        self._closing: anyio.Event | None = None  # set once aclose() is done
        # Journal rows of this run whose caller is gone (cancelled while its
        # outcome was unknown): nobody else will settle them, recover() does.
        self._orphans: set[int] = set()
        # Mutating calls under way: what aclose() stops (see _send).
        self._calls: dict[InFlight, tuple[anyio.CancelScope | asyncio.Task[Any], _CallState]] = {}
        # trio: the backend's cancel scope class (anyio.CancelScope() asks sniffio each time).
        self._scope_type: type[anyio.CancelScope] | None = None
        # Requests settled as executed, and the settlements under way (_settling.settling_once).
        self._executed: dict[_settling.Key, Settlement] = {}
        self._settling: dict[_settling.Key, anyio.Lock] = {}
        self._transport.on_outcome = self._on_outcome
        self._reconciler = Reconciler(self, margin=margin)
        self._reconciler.claims, self._owns_claims = _claims_for(claims, self.governor.storage)
        # The governor learns from the journal what earlier runs sent to capped
        # endpoints, once, before this run's first mutating call (see _seed).
        self._seeded: anyio.Event | None = None

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._check_open()
        # (B7-2) The loop is known here, before any call: what its
        # requests import is imported now, not inside the first call's max_wait.
        self._transport.prepare()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client: later calls raise :class:`ClientClosedError`.

        Calls still waiting for a permit stop with :class:`ClientClosedError`
        (nothing sent), or, if an earlier attempt was refused (a 429 or 418:
        nothing executed) and they waited to send again, with that refusal.
        Transfers already on the wire are not cut off: closing
        waits until each has its answer (bounded by the read timeout), which
        its caller gets, and its outcome is journaled. The HTTP client is
        closed too if this client created it. Cancelling the closing task
        (``async with`` unwinding in a failing task group) does not cut this
        short: its cancellation is raised once closing is done. Closing again
        waits until the first close is done (from inside a call, e.g. an
        ``on_detached`` hook, it returns at once).
        """
        if self._closed:
            # a second closer (a signal handler's, beside ``async with``)
            # must not see the journal and the claims closed before they are.
            done = self._closing
            if done is not None and _SENDING.get() is None:
                await done.wait()
            return
        self._closed = True
        self._closing = anyio.Event()
        try:
            await self._aclose()
        finally:
            self._closing.set()

    async def _aclose(self) -> None:
        self._transport.closed = True
        # Calls waiting for a permit stop now, with nothing sent; those on the
        # wire finish. Called from inside a call (an on_detached hook), it
        # neither stops nor waits for that one.
        mine = _SENDING.get()
        for in_flight, (stopper, call) in list(self._calls.items()):
            if in_flight is not mine and not call.ending:
                call.closing = True
                stopper.cancel()  # the call's cancel scope (trio), or its task (asyncio)
        # to the end even when the closing task is cancelled (``async with``
        # unwinding in a failing TaskGroup): transfers on the wire get their answers
        # journaled, and the queued outcomes and answered ids reach the disk.
        await to_the_end(self._close(mine))

    async def _close(self, mine: InFlight | None) -> None:
        # Each step in the finally of the one before: none failing may leave the
        # http client, the claims or the journal open.
        try:
            await self._transport.stop_tasks()  # no task of ours outlives the client
        finally:
            await self._reconciler.wait_for_all_in_flight(but_not=mine)
            try:
                if self._owns_http:
                    await self._http.aclose()
            finally:
                try:
                    if self._owns_claims and self._reconciler.claims is not None:
                        await self._reconciler.claims.aclose()
                finally:
                    if self.journal is not None:
                        await self.journal.aclose()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has run (the client then refuses every call)."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(
                "this client is closed (aclose() or the end of `async with`); create a new one"
            )

    def __repr__(self) -> str:
        # getattr: a traceback may show a client whose __init__ failed half-way.
        urls = getattr(self, "_urls", ("?",))
        return (
            f"<Client key={getattr(self, '_key_hint', '?')} "
            f"account={getattr(self, 'account', '?')} api={urls[0]}>"
        )

    # -- universal transfer ---------------------------------------------------

    async def transfer(
        self,
        *,
        type: TransferType | str,
        asset: str,
        amount: Amount,
        from_symbol: str | None = None,
        to_symbol: str | None = None,
        max_wait: float | None = None,
        recv_window: int | None = None,
        on_unknown: OnUnknown | None = None,
    ) -> TransferResult:
        """Move ``amount`` of ``asset`` between two of your wallets (user universal transfer).

        A type name this release does not know is refused (a misspelling
        costs no weight); wrap one Binance added since in :class:`RawType`.
        Binance would execute a universal transfer sent again, so it never is::

            await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount="250.5")

        Args:
            type: Source and target: a :class:`TransferType` or its name
                (``TransferType.MAIN_UMFUTURE``: spot to USDⓈ-M futures).
            asset: The coin, e.g. ``"USDT"``.
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a
                float with at most 15 significant digits.
            from_symbol: The isolated-margin pair, required when the source is one.
            to_symbol: The isolated-margin pair, required when the target is one.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).
            recv_window: Milliseconds Binance accepts the request after its
                timestamp (None: the client's).
            on_unknown: What an unknown outcome does for this call (None: the
                client's); ``"retry"`` acts as ``"reconcile"`` here.

        Returns:
            :class:`TransferResult`, with Binance's ``tran_id``.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
            NotExecutedError: with ``on_unknown="reconcile"``: settled, it never ran.
        """
        params = _transfer_params(type, from_symbol, to_symbol)
        params[1:1] = [("asset", asset_param(asset)), ("amount", amount_param(amount))]
        return await self._call(
            "universal_transfer", params, TransferResult, max_wait, recv_window, on_unknown
        )

    async def transfer_to_futures(
        self,
        *,
        asset: str,
        amount: Amount,
        market: FuturesMarket | Literal["UMFUTURE", "CMFUTURE"] = FuturesMarket.USDM,
        max_wait: float | None = None,
    ) -> TransferResult:
        """Spot -> futures wallet (USDⓈ-M by default): Binance's futures "Transfer" page::

            await client.transfer_to_futures(asset="USDT", amount="1000")

        Args:
            asset: The coin, e.g. ``"USDT"``.
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a short float.
            market: ``FuturesMarket.USDM`` (default) or ``FuturesMarket.COINM``, or their values.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`TransferResult`, with Binance's ``tran_id``.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        kind = TransferType(f"MAIN_{_enum(FuturesMarket, market, 'market')}")
        return await self.transfer(type=kind, asset=asset, amount=amount, max_wait=max_wait)

    async def transfer_from_futures(
        self,
        *,
        asset: str,
        amount: Amount,
        market: FuturesMarket | Literal["UMFUTURE", "CMFUTURE"] = FuturesMarket.USDM,
        max_wait: float | None = None,
    ) -> TransferResult:
        """Futures wallet -> spot (USDⓈ-M by default)::

            await client.transfer_from_futures(asset="USDT", amount="1000")

        Args:
            asset: The coin, e.g. ``"USDT"``.
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a short float.
            market: ``FuturesMarket.USDM`` (default) or ``FuturesMarket.COINM``, or their values.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`TransferResult`, with Binance's ``tran_id``.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        kind = TransferType(f"{_enum(FuturesMarket, market, 'market')}_MAIN")
        return await self.transfer(type=kind, asset=asset, amount=amount, max_wait=max_wait)

    def transfer_history(
        self,
        *,
        type: TransferType | str,
        start_time: datetime | int | None = None,
        end_time: datetime | int | None = None,
        from_symbol: str | None = None,
        to_symbol: str | None = None,
        page_size: int = 100,
        max_wait: float | None = None,
    ) -> AsyncIterator[TransferRecord]:
        """Every universal transfer of ``type``, newest first, page by page.

        Without times Binance returns the last 7 days; it keeps 6 months. The
        arguments are checked here; requests go out as you iterate::

            async for row in client.transfer_history(type=TransferType.MAIN_UMFUTURE):
                print(row.tran_id, row.amount, row.status, row.datetime)

        Args:
            type: A :class:`TransferType` or its name.
            start_time: An aware ``datetime`` or epoch milliseconds.
            end_time: An aware ``datetime`` or epoch milliseconds.
            from_symbol: The isolated-margin pair, for an isolated source.
            to_symbol: The isolated-margin pair, for an isolated target.
            page_size: Rows per request (1 to 100).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            An async iterator of :class:`TransferRecord`.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
            (InvalidInputError at once; the others while iterating.)
        """
        self._check_open()
        params = _transfer_params(type, from_symbol, to_symbol)
        params += _range(start_time, end_time)
        size = positive_int_param(page_size, "page_size", 100)
        max_wait = max_wait_param(max_wait)

        async def pages() -> AsyncIterator[TransferRecord]:
            seen, current = 0, 1
            while True:
                page_params = [*params, ("current", str(current)), ("size", str(size))]
                page = await self._call("transfer_history", page_params, TransferPage, max_wait)
                for row in page.rows:
                    yield row
                seen += len(page.rows)
                if len(page.rows) < size or seen >= page.total:
                    return
                current += 1

        return pages()

    # -- Portfolio Margin -----------------------------------------------------

    async def pm_collect_asset(
        self,
        *,
        asset: str,
        amount: Amount | None = None,
        future_type: FutureType | Literal["UM", "CM", "OPTION"] | None = None,
        max_wait: float | None = None,
    ) -> Acknowledgement:
        """Portfolio Margin: collect ``asset`` from the futures wallets to margin::

            await client.pm_collect_asset(asset="USDT")

        Args:
            asset: The coin; Binance refuses BNB here (use :meth:`pm_bnb_transfer`).
            amount: How much, with ``future_type``; neither: the whole asset.
            future_type: The futures wallet to take ``amount`` from (a :class:`FutureType`).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`Acknowledgement` (Binance returns no id).

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        params = [("asset", _not_bnb(asset, "pm_collect_asset"))]
        if (amount is None) != (future_type is None):
            raise InvalidInputError("amount and future_type go together: give both or neither")
        if amount is not None:
            params += [
                ("amount", amount_param(amount)),
                ("futureType", _enum(FutureType, future_type, "future_type")),
            ]
        return await self._call("pm_collect_asset", params, Acknowledgement, max_wait)

    async def pm_auto_collect(self, *, max_wait: float | None = None) -> Acknowledgement:
        """Portfolio Margin: collect every asset but BNB from futures to margin (500 an hour)::

            await client.pm_auto_collect()

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`Acknowledgement`.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        return await self._call("pm_auto_collect", [], Acknowledgement, max_wait)

    async def pm_bnb_transfer(
        self,
        *,
        amount: Amount,
        side: BnbTransferSide | Literal["TO_UM", "FROM_UM"],
        max_wait: float | None = None,
    ) -> BnbTransferResult:
        """Portfolio Margin: move BNB to or from the USDⓈ-M wallet (10 per rolling 10 minutes)::

            await client.pm_bnb_transfer(amount="1.5", side=BnbTransferSide.TO_UM)

        Args:
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a short float.
            side: ``BnbTransferSide.TO_UM`` or ``FROM_UM`` (or ``"TO_UM"``/``"FROM_UM"``).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`BnbTransferResult`, with Binance's ``tran_id``.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        params = [
            ("amount", amount_param(amount)),
            ("transferSide", _enum(BnbTransferSide, side, "side")),
        ]
        return await self._call("pm_bnb_transfer", params, BnbTransferResult, max_wait)

    async def pmpro_auto_collect(self, *, max_wait: float | None = None) -> Acknowledgement:
        """Portfolio Margin Pro: collect every asset but BNB to margin (500 an hour, weight 1500)::

            await client.pmpro_auto_collect()

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`Acknowledgement`.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        return await self._call("pmpro_auto_collect", [], Acknowledgement, max_wait)

    async def pmpro_collect_asset(
        self, *, asset: str, max_wait: float | None = None
    ) -> Acknowledgement:
        """Portfolio Margin Pro: collect one asset (not BNB) from futures to margin::

            await client.pmpro_collect_asset(asset="USDT")

        Args:
            asset: The coin (not BNB).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`Acknowledgement`.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        params = [("asset", _not_bnb(asset, "pmpro_collect_asset"))]
        return await self._call("pmpro_collect_asset", params, Acknowledgement, max_wait)

    async def pmpro_bnb_transfer(
        self,
        *,
        amount: Amount,
        side: BnbTransferSide | Literal["TO_UM", "FROM_UM"],
        max_wait: float | None = None,
    ) -> BnbTransferResult:
        """Portfolio Margin Pro: move BNB to or from USDⓈ-M (2 per rolling 10 minutes)::

            await client.pmpro_bnb_transfer(amount="0.5", side=BnbTransferSide.FROM_UM)

        Args:
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a short float.
            side: ``BnbTransferSide.TO_UM`` or ``FROM_UM`` (or ``"TO_UM"``/``"FROM_UM"``).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`BnbTransferResult`, with Binance's ``tran_id``.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        params = [
            ("amount", amount_param(amount)),
            ("transferSide", _enum(BnbTransferSide, side, "side")),
        ]
        return await self._call("pmpro_bnb_transfer", params, BnbTransferResult, max_wait)

    # -- sub-accounts ---------------------------------------------------------

    async def sub_account_margin_transfer(
        self,
        *,
        email: str,
        asset: str,
        amount: Amount,
        direction: MarginTransferDirection | Literal[1, 2],
        max_wait: float | None = None,
    ) -> MarginTransferResult:
        """Master account: move funds between a sub-account's spot and margin wallets::

            await client.sub_account_margin_transfer(
                email="desk-1@example.com", asset="USDT", amount="50", direction=1
            )

        Binance keeps no history of these: on an unknown outcome, check the
        sub-account's balances before sending again.

        Args:
            email: The sub-account's e-mail.
            asset: The coin.
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a short float.
            direction: ``MarginTransferDirection.SPOT_TO_MARGIN`` (1) or ``MARGIN_TO_SPOT`` (2).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`MarginTransferResult`, with Binance's ``txn_id``.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
        """
        if isinstance(direction, bool):
            raise InvalidInputError("direction must be a MarginTransferDirection, not a bool")
        params = [
            ("email", email_param(email)),
            ("asset", asset_param(asset)),
            ("amount", amount_param(amount)),
            ("type", _enum(MarginTransferDirection, direction, "direction")),
        ]
        return await self._call(
            "sub_account_margin_transfer", params, MarginTransferResult, max_wait
        )

    async def sub_account_transfer(
        self,
        *,
        from_account_type: SubAccountAccountType | str,
        to_account_type: SubAccountAccountType | str,
        asset: str,
        amount: Amount,
        from_email: str | None = None,
        to_email: str | None = None,
        client_tran_id: str | None = None,
        symbol: str | None = None,
        max_wait: float | None = None,
        on_unknown: OnUnknown | None = None,
    ) -> SubAccountTransferResult:
        """Master account: universal transfer between master and sub-accounts.

        Every transfer carries a unique ``clientTranId``; Binance refuses a
        second transfer with the same id, so an unknown outcome is settled by
        looking it up (:meth:`reconcile`) and a retry with the same id can
        never move the money twice (``on_unknown="retry"`` does it for you)::

            await client.sub_account_transfer(
                to_email="desk-1@example.com", from_account_type="SPOT",
                to_account_type="USDT_FUTURE", asset="USDT", amount="100",
            )

        Args:
            from_account_type: A :class:`SubAccountAccountType` or its name.
            to_account_type: A :class:`SubAccountAccountType` or its name.
            asset: The coin.
            amount: A ``Decimal``, ``int`` or decimal string (sent exactly), or a short float.
            from_email: The source sub-account (None: the master account).
            to_email: The target sub-account (None: the master account).
            client_tran_id: Your id for it (None: ``bt-`` + 29 random hex digits).
            symbol: The isolated-margin pair: required with ``ISOLATED_MARGIN``, refused otherwise.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).
            on_unknown: What an unknown outcome does for this call (None: the client's).

        Returns:
            :class:`SubAccountTransferResult`, with ``tran_id`` and the ``client_tran_id`` sent.

        Raises:
            The errors of a call that moves money (see :class:`Client`, *Errors*).
            NotExecutedError: with ``on_unknown="reconcile"``/``"retry"``: settled, it never ran.
        """
        source = _enum_or_name(SubAccountAccountType, from_account_type, "from_account_type")
        target = _enum_or_name(SubAccountAccountType, to_account_type, "to_account_type")
        params: Params = []
        if from_email is not None:
            params.append(("fromEmail", email_param(from_email, "from_email")))
        if to_email is not None:
            params.append(("toEmail", email_param(to_email, "to_email")))
        if source == target and from_email is None and to_email is None:
            raise InvalidInputError(
                "from_email or to_email is required when both account types are the same"
            )
        if from_email is not None and from_email == to_email and source == target:
            raise InvalidInputError("a transfer from a wallet to itself does nothing")
        params += [("fromAccountType", source), ("toAccountType", target)]
        tran_id = (
            new_client_tran_id() if client_tran_id is None else client_id_param(client_tran_id)
        )
        params.append(("clientTranId", tran_id))
        isolated = SubAccountAccountType.ISOLATED_MARGIN.value in (source, target)
        if isolated and symbol is None:
            raise InvalidInputError("symbol is required with ISOLATED_MARGIN")
        if symbol is not None:
            if not isolated:
                raise InvalidInputError("symbol is only meaningful with ISOLATED_MARGIN")
            params.append(("symbol", symbol_param(symbol, "symbol")))
        params += [("asset", asset_param(asset)), ("amount", amount_param(amount))]
        result = await self._call(
            "sub_account_transfer",
            params,
            SubAccountTransferResult,
            max_wait,
            on_unknown=on_unknown,
        )
        if result.client_tran_id is None:
            # Binance does not always echo it: return the id that identifies the transfer.
            result = attrs.evolve(result, client_tran_id=tran_id)
        return result

    def sub_account_transfer_history(
        self,
        *,
        from_email: str | None = None,
        to_email: str | None = None,
        client_tran_id: str | None = None,
        start_time: datetime | int | None = None,
        end_time: datetime | int | None = None,
        page_size: int = 500,
        max_wait: float | None = None,
    ) -> AsyncIterator[SubAccountTransferRecord]:
        """Sub-account universal transfers, page by page (a range under 7 days).

        Without ``from_email``/``to_email`` Binance lists transfers *from* the
        master account only; ask with ``to_email=`` or by ``client_tran_id``
        for the others::

            async for row in client.sub_account_transfer_history(client_tran_id="rebal-0001"):
                print(row.tran_id, row.status, row.datetime)

        Args:
            from_email: Transfers from this sub-account (not with ``to_email``).
            to_email: Transfers to this sub-account (not with ``from_email``).
            client_tran_id: The transfer with this ``clientTranId``.
            start_time: An aware ``datetime`` or epoch milliseconds.
            end_time: An aware ``datetime`` or epoch ms (less than 7 days after ``start_time``).
            page_size: Rows per request (1 to 500).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            An async iterator of :class:`SubAccountTransferRecord`.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
            (InvalidInputError at once; the others while iterating.)
        """
        self._check_open()
        params: Params = []
        if from_email is not None and to_email is not None:
            raise InvalidInputError("give from_email or to_email, not both (Binance's rule)")
        if from_email is not None:
            params.append(("fromEmail", email_param(from_email, "from_email")))
        if to_email is not None:
            params.append(("toEmail", email_param(to_email, "to_email")))
        if client_tran_id is not None:
            params.append(("clientTranId", client_id_param(client_tran_id)))
        window = _range(start_time, end_time)
        if len(window) == 2 and int(window[1][1]) - int(window[0][1]) >= _SEVEN_DAYS_MS:
            raise InvalidInputError("the range must be shorter than 7 days (Binance's rule)")
        params += window
        limit = positive_int_param(page_size, "page_size", 500)
        max_wait = max_wait_param(max_wait)

        async def pages() -> AsyncIterator[SubAccountTransferRecord]:
            seen, page_no = 0, 1
            while True:
                page_params = [*params, ("page", str(page_no)), ("limit", str(limit))]
                page = await self._call(
                    "sub_account_transfer_history", page_params, SubAccountTransferPage, max_wait
                )
                for row in page.result:
                    yield row
                seen += len(page.result)
                if len(page.result) < limit or seen >= page.total_count:
                    return
                page_no += 1

        return pages()

    # -- balances (issue 11) ----------------------------------------------------
    # Reads, under the same governor as the transfers: each names its endpoint
    # in the table, whose weight and pool (the futures hosts have their own)
    # the governor charges before anything is sent.

    async def wallet_balances(
        self, *, quote_asset: str | None = None, max_wait: float | None = None
    ) -> tuple[WalletBalance, ...]:
        """Every wallet's value in ``quote_asset`` (Binance's default: BTC), IP weight 60::

        for wallet in await client.wallet_balances(quote_asset="USDT"):
            print(wallet.wallet_name, wallet.balance)

        Args:
            quote_asset: The asset to value each wallet in (None: Binance's default, BTC).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            One :class:`WalletBalance` per wallet.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        params: Params = []
        if quote_asset is not None:
            params.append(("quoteAsset", asset_param(quote_asset, "quote_asset")))
        return await self._call("wallet_balance", params, tuple[WalletBalance, ...], max_wait)

    async def spot_balances(
        self, *, asset: str | None = None, max_wait: float | None = None
    ) -> tuple[AssetBalance, ...]:
        """Spot assets held (Binance lists positive ones only), IP weight 5::

        usdt = await client.spot_balances(asset="USDT")

        Args:
            asset: Only this asset (None: every asset).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            One :class:`AssetBalance` per asset held.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        params: Params = [] if asset is None else [("asset", asset_param(asset))]
        return await self._call("user_assets", params, tuple[AssetBalance, ...], max_wait)

    async def funding_balances(
        self, *, asset: str | None = None, max_wait: float | None = None
    ) -> tuple[AssetBalance, ...]:
        """Funding wallet assets, IP weight 1::

        await client.funding_balances()

        Args:
            asset: Only this asset (None: every asset).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            One :class:`AssetBalance` per asset held.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        params: Params = [] if asset is None else [("asset", asset_param(asset))]
        return await self._call("funding_assets", params, tuple[AssetBalance, ...], max_wait)

    async def margin_account(self, *, max_wait: float | None = None) -> MarginAccount:
        """The cross-margin account and its assets, IP weight 10::

        row = (await client.margin_account()).asset("USDT")

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            The :class:`MarginAccount`.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        return await self._call("margin_account", [], MarginAccount, max_wait)

    async def futures_balances(
        self,
        *,
        market: FuturesMarket | Literal["UMFUTURE", "CMFUTURE"] = FuturesMarket.USDM,
        max_wait: float | None = None,
    ) -> tuple[FuturesBalance, ...]:
        """A futures wallet's assets: USDⓈ-M (``fapi_url``) or COIN-M (``dapi_url``).

        Each host has its own IP pool (2400 per minute)::

            for row in await client.futures_balances(market=FuturesMarket.COINM):
                print(row.asset, row.balance, row.transferable)

        Args:
            market: ``FuturesMarket.USDM`` (default) or ``FuturesMarket.COINM``, or their values.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            One :class:`FuturesBalance` per asset of that wallet.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        kind = _enum(FuturesMarket, market, "market")
        name = "um_balance" if kind == FuturesMarket.USDM.value else "cm_balance"
        return await self._call(name, [], tuple[FuturesBalance, ...], max_wait)

    async def pm_balances(
        self, *, asset: str | None = None, max_wait: float | None = None
    ) -> tuple[PortfolioMarginBalance, ...]:
        """Portfolio Margin balances per asset (``/papi``, weight 20).

        ``asset`` filters here rather than at Binance (which then answers one
        object instead of a list, for the same weight)::

            await client.pm_balances(asset="USDT")

        Args:
            asset: Only this asset (None: every asset).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            One :class:`PortfolioMarginBalance` per asset.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        wanted = None if asset is None else asset_param(asset)
        rows = await self._call("pm_balance", [], tuple[PortfolioMarginBalance, ...], max_wait)
        return rows if wanted is None else tuple(r for r in rows if r.asset == wanted)

    async def pm_account(self, *, max_wait: float | None = None) -> PortfolioMarginAccount:
        """The Portfolio Margin account: equity, margins, status (``/papi``)::

        print((await client.pm_account()).account_status)

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            The :class:`PortfolioMarginAccount`.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        return await self._call("pm_account", [], PortfolioMarginAccount, max_wait)

    async def pmpro_balances(
        self, *, asset: str | None = None, max_wait: float | None = None
    ) -> tuple[PortfolioMarginBalance, ...]:
        """Portfolio Margin Pro balances per asset (``/sapi``, weight 20)::

        await client.pmpro_balances()

        Args:
            asset: Only this asset (None: every asset).
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            One :class:`PortfolioMarginBalance` per asset.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        wanted = None if asset is None else asset_param(asset)
        rows = await self._call("pmpro_balance", [], tuple[PortfolioMarginBalance, ...], max_wait)
        return rows if wanted is None else tuple(r for r in rows if r.asset == wanted)

    async def sub_accounts(self, *, max_wait: float | None = None) -> tuple[SubAccount, ...]:
        """Master account: every sub-account, 200 a page (IP weight 1 a page)::

        emails = [sub.email for sub in await client.sub_accounts()]

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            Every :class:`SubAccount` of this master account.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        found: list[SubAccount] = []
        page = 1
        while True:
            params = [("page", str(page)), ("limit", str(_SUB_ACCOUNT_PAGE))]
            batch = await self._call("sub_account_list", params, SubAccountList, max_wait)
            found += batch.sub_accounts
            if len(batch.sub_accounts) < _SUB_ACCOUNT_PAGE:
                return tuple(found)
            page += 1

    async def sub_account_assets(
        self, *, email: str, max_wait: float | None = None
    ) -> SubAccountAssets:
        """Master account: a sub-account's spot assets (UID weight 60)::

        held = (await client.sub_account_assets(email="desk-1@example.com")).free("USDT")

        Args:
            email: The sub-account's e-mail.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            The sub-account's :class:`SubAccountAssets`.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        params = [("email", email_param(email))]
        return await self._call("sub_account_assets", params, SubAccountAssets, max_wait)

    async def sub_account_futures_summary(
        self,
        *,
        market: FuturesMarket | Literal["UMFUTURE", "CMFUTURE"] = FuturesMarket.USDM,
        max_wait: float | None = None,
    ) -> FuturesAccountSummary:
        """Master account: every sub-account's USDⓈ-M or COIN-M wallet, all pages merged.

        IP weight 10 a page of 20 sub-accounts::

            for row in (await client.sub_account_futures_summary()).sub_account_list:
                print(row.email, row.total_wallet_balance)

        Args:
            market: ``FuturesMarket.USDM`` (default) or ``FuturesMarket.COINM``, or their values.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            A :class:`FuturesAccountSummary` of every sub-account.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        kind = _enum(FuturesMarket, market, "market")
        futures_type = "1" if kind == FuturesMarket.USDM.value else "2"
        rows: list[SubAccountFuturesRow] = []
        page = 1
        while True:
            params = [
                ("futuresType", futures_type),
                ("page", str(page)),
                ("limit", str(_FUTURES_SUMMARY_PAGE)),
            ]
            answer = await self._call(
                "sub_account_futures_summary", params, SubAccountFuturesSummaryPage, max_wait
            )
            summary = (
                answer.future_account_summary_resp
                if futures_type == "1"
                else answer.delivery_account_summary_resp
            ) or FuturesAccountSummary()
            rows += summary.sub_account_list
            if len(summary.sub_account_list) < _FUTURES_SUMMARY_PAGE:
                return attrs.evolve(summary, sub_account_list=tuple(rows))
            page += 1

    async def sub_account_margin_summary(
        self, *, max_wait: float | None = None
    ) -> MarginAccountSummary:
        """Master account: every sub-account's margin account, valued in BTC (IP weight 10).

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            A :class:`MarginAccountSummary` of every sub-account.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        return await self._call("sub_account_margin_summary", [], MarginAccountSummary, max_wait)

    async def sub_account_margin_account(
        self, *, email: str, max_wait: float | None = None
    ) -> SubAccountMarginAccount:
        """Master account: one sub-account's margin assets in detail (IP weight 10)::

        row = (await client.sub_account_margin_account(email="desk-1@example.com")).asset("USDT")

        Args:
            email: The sub-account's e-mail.
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            The sub-account's :class:`SubAccountMarginAccount`.

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        params = [("email", email_param(email))]
        return await self._call(
            "sub_account_margin_account", params, SubAccountMarginAccount, max_wait
        )

    async def margin_transfer_baseline(self, *, email: str, asset: str) -> MarginTransferBaseline:
        """Master account: read what :meth:`reconcile_margin_transfer` compares with.

        Take it just before :meth:`sub_account_margin_transfer`, while nothing
        else moves ``asset`` on that sub-account (UID weight 60 + IP weight 10)::

            baseline = await client.margin_transfer_baseline(email=desk, asset="USDT")
            try:
                await client.sub_account_margin_transfer(email=desk, asset="USDT", ...)
            except OutcomeUnknownError as unknown:
                settlement = await client.reconcile_margin_transfer(unknown, baseline)

        Args:
            email: The sub-account's e-mail.
            asset: Only this asset (None: every asset).

        Returns:
            A :class:`MarginTransferBaseline` (both wallets' balances, Binance's time).

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        from ._settle_balances import take_baseline

        return await take_baseline(self, email=email_param(email), asset=asset_param(asset))

    async def reconcile_margin_transfer(
        self, error: OutcomeUnknownError, baseline: MarginTransferBaseline
    ) -> Settlement:
        """Settle an unknown sub-account margin transfer by the sub-account's balances.

        Binance keeps no history of these transfers; once its clock is past
        the request's window, the balances moved by exactly the amount
        (executed), not at all (not executed), or otherwise (None: something
        else moved the asset). The journal row, if any, records the verdict.

        Args:
            error: The :class:`OutcomeUnknownError` of a :meth:`sub_account_margin_transfer`.
            baseline: What :meth:`margin_transfer_baseline` read just before that transfer.

        Returns:
            A :class:`Settlement`: ``executed`` True, False or None (``reason``).

        Raises:
            InvalidInputError: ``error`` is not an :class:`OutcomeUnknownError` of that transfer.
            ServiceUnavailableError, ConnectionFailedError, ThrottledError: the balances
                could not be read (the outcome stays unknown; try again).
        """
        from . import _settling

        return await _settling.reconcile_by_balances(self, error, baseline)

    # -- misc -----------------------------------------------------------------

    def estimate(self, method: str) -> float:
        """Binance epoch seconds before which a call to ``method`` cannot be sent.

        A lower bound counting the calls already queued, for a caller that
        prefers an immediate "not before 12:00:41" to a wait::

            if client.estimate("pm_auto_collect") - time.time() > 5:
                ...  # do something else first

        Args:
            method: A method of this client (``"transfer"``, ``"pm_auto_collect"``...)
                or an endpoint name of its table (``"universal_transfer"``).

        Returns:
            Epoch seconds on Binance's clock (now, or earlier, when a permit is free).

        Raises:
            InvalidInputError: not a method or endpoint this client knows (the
                message lists them).
        """
        try:
            endpoint = self.endpoints[_ENDPOINT_OF.get(method, method)]
        except (KeyError, TypeError):
            names = ", ".join(sorted({*self.endpoints, *_ENDPOINT_OF}))
            raise InvalidInputError(
                f"no method or endpoint named {method!r}; one of: {names}"
            ) from None
        return self.governor.estimate(endpoint, account=self.account)

    async def server_time(self, *, max_wait: float | None = None) -> ServerTime:
        """Binance's clock (also what the client syncs its timestamps with)::

            print((await client.server_time()).datetime)

        Args:
            max_wait: Seconds to wait for a permit (None: the client's ``max_wait``).

        Returns:
            :class:`ServerTime` (``server_time`` in epoch ms, ``datetime``).

        Raises:
            The errors of a query (see :class:`Client`, *Errors*).
        """
        return await self._call("server_time", [], ServerTime, max_wait)

    # -- settling unknown outcomes ---------------------------------------------

    async def reconcile(self, error: OutcomeUnknownError) -> Settlement:
        """Settle an :class:`OutcomeUnknownError` from Binance's own records.

        Waits (on the event loop's clock, one timer) until Binance's clock
        has passed the request's ``timestamp + recvWindow`` plus
        ``settle_margin`` (twice that before concluding "not executed"), after
        which Binance can no longer execute it and its history is complete,
        then looks it up: by type, asset, amount and time for a universal
        transfer (never matching a ``tranId`` this client already knows the
        owner of), by ``clientTranId`` for a sub-account transfer. Endpoints
        Binance keeps no history of come back unsettled (``executed=None``)
        with the reason::

            try:
                await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=5)
            except OutcomeUnknownError as unknown:
                settled = await client.reconcile(unknown)
                if settled.executed is False:
                    ...  # safe to send again

        Args:
            error: The :class:`OutcomeUnknownError` a call of this client raised.

        Returns:
            A :class:`Settlement`: ``executed`` True, False (safe to send again)
            or None (Binance's records cannot tell: ``reason``).

        Raises:
            InvalidInputError: ``error`` is not an :class:`OutcomeUnknownError`.
            ClientClosedError: the client is closed.
            ServiceUnavailableError, ConnectionFailedError, ThrottledError: the
                history could not be read (the outcome stays unknown; try again).
        """
        from . import _settling

        return await _settling.reconcile(self, error)

    def _mark(self, error: OutcomeUnknownError, intent: int | None) -> None:
        """Note the request's journal row on its error (it travels with the error)."""
        if self.journal is not None and intent is not None:
            error.journal_id = intent
            error.journal_path = os.path.abspath(self.journal.path)
            error.journal_session = self.journal.session

    async def recover(self) -> tuple[Settlement, ...]:
        """Settle every call a previous run left open in the journal, and say what it found.

        A request sent before a crash carries a timestamp no later than now,
        so once Binance's clock passes now + its recvWindow + ``settle_margin``
        the history is final for all of them; each is then settled as
        :meth:`reconcile` does and the journal updated. Calls of this run are
        not touched, but for those whose caller was cancelled while their
        outcome was unknown (handed to ``on_detached``): nobody else settles
        them. Requires ``Client(journal=PATH)``::

            async with Client(key, secret, journal="transfers.sqlite") as client:
                for settled in await client.recover():
                    print(settled.endpoint, settled.executed, settled.reason)

        Returns:
            One :class:`Settlement` per journal row settled (empty: nothing was open).

        Raises:
            ConfigurationError: the client has no journal, or it cannot be written.
            ClientClosedError: the client is closed.
            ServiceUnavailableError, ConnectionFailedError, ThrottledError: a
                history could not be read; rows not yet settled stay open.
        """
        from . import _recovery

        return await _recovery.recover(self)

    async def _seed(self, journal: _journal.Journal) -> None:
        """Tell the governor what earlier runs sent (see :func:`_recovery.seed`)."""
        from . import _recovery

        await _recovery.seed(self, journal)

    # -- the one way out ------------------------------------------------------

    async def _on_outcome(self, outcome: ExchangeOutcome) -> None:
        """The transport's hook: every attempt of a mutating request that may have left."""
        call = _CALL.get()
        if outcome.error is None:
            self._reconciler.confirm(outcome.data, outcome.endpoint)
        elif isinstance(outcome.error, OutcomeUnknownError) and outcome.error.request_id is None:
            # Names this request from now on, in every copy of its error.
            outcome.error.request_id = uuid.uuid4().hex
            self._reconciler.opened(outcome.error, None if call is None else call.intent)
        if call is not None:
            if call.closing and outcome.detached:
                # Cut off by aclose(), not by its caller, who still gets this outcome.
                outcome = attrs.evolve(outcome, detached=False)
            call.outcome = outcome
        pending = None if call is None else call.pending  # (call.intent, without its call)
        intent = None if pending is None else pending.id
        if isinstance(outcome.error, OutcomeUnknownError):
            # before on_detached sees it: settled from there, the error
            # must name the journal row recover() settles, or the two disagree.
            self._mark(outcome.error, intent)
        journal = self.journal
        if journal is not None and intent is not None:
            from ._journal import DONE, REFUSED, UNKNOWN

            if outcome.error is None:
                tran_id = outcome.data.get("tranId") if isinstance(outcome.data, dict) else None
                journal.outcome(
                    intent,
                    DONE,
                    timestamp=outcome.timestamp,
                    tran_id=tran_id if isinstance(tran_id, int) else None,
                )
            elif isinstance(outcome.error, OutcomeUnknownError):
                journal.outcome(intent, UNKNOWN, timestamp=outcome.timestamp)
            elif outcome.detached:
                # Refused, and the caller is gone: no retry will follow.
                journal.outcome(intent, REFUSED, timestamp=outcome.timestamp)
        if outcome.detached:
            if call is not None:
                call.reported = True
            await self._detached(outcome, intent)

    async def _detached(
        self, outcome: ExchangeOutcome, intent: int | None, when: str = "request"
    ) -> None:
        """A cancelled caller will never see ``outcome``: log it, hand it to ``on_detached``."""
        if intent is not None and isinstance(outcome.error, OutcomeUnknownError):
            self._orphans.add(intent)
        log.warning(
            "%s: the cancelled caller's %s %s; recorded%s",
            outcome.endpoint,
            when,
            "executed" if outcome.error is None else f"ended in {outcome.error!r:.200}",
            "" if self.journal is None else f" in {self.journal.path}",
        )
        hook = self.on_detached
        if hook is not None:
            with anyio.CancelScope(shield=True):
                try:
                    result = hook(outcome)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("%s: on_detached hook failed", outcome.endpoint)

    async def _call(
        self,
        name: str,
        params: Sequence[tuple[str, str]],
        model: type[_T],
        max_wait: float | None,
        recv_window: int | None = None,
        on_unknown: OnUnknown | None = None,
    ) -> _T:
        if self._closed:
            self._check_open()
        endpoint: Endpoint = self.endpoints[name]
        hook = self._transferred
        if endpoint.mutating and (hook or TRANSFERS.isEnabledFor(logging.INFO)) and unlogged():
            # One record (and hook call) per transfer, however it ends (see _logs).
            call = self._call(name, params, model, max_wait, recv_window, on_unknown)
            clock = self.governor.server_clock.clock
            return await logged_transfer(call, endpoint, params, clock, hook)
        if max_wait is not None:
            max_wait = max_wait_param(max_wait)
        if recv_window is not None:
            recv_window = recv_window_param(recv_window)
        mode = self.on_unknown if on_unknown is None else _on_unknown_param(on_unknown)
        wait = self.max_wait if max_wait is None else max_wait

        parse = _PARSERS.get(model) or parser(model)
        if not endpoint.mutating:
            # A read's unreadable answer is the transport's MalformedResponseError.
            result: _T = await self._transport.call(
                endpoint, params, max_wait=wait, retry_on_429=self.retry_on_429, parse=parse
            )
            return result
        attempts = _RETRY_ATTEMPTS if mode == "retry" and name == "sub_account_transfer" else 1
        unknowns: list[OutcomeUnknownError] = []  # attempts settled "not executed"
        for attempt in range(1, attempts + 1):
            try:
                return await self._send(endpoint, params, wait, recv_window, parse)
            except OutcomeUnknownError as unknown:
                if mode == "raise":
                    raise
                from . import _settling

                settlement = await _settling.settle_for_caller(
                    self, unknown, self.reconcile(unknown)
                )
                if settlement.executed is None:
                    raise  # Binance's records cannot tell: the caller must know
                if settlement.executed:
                    answer = {"tranId": settlement.tran_id, **_echo(params)}
                    return _models.converter.structure(answer, model)
                # A FAILED record holds the clientTranId: a resend would be refused.
                if attempt == attempts or settlement.tran_id is not None:
                    raise NotExecutedError(
                        f"{name}: settled, not executed: {settlement.reason}",
                        settlement=settlement,
                        unknown=unknown,
                    ) from unknown
                unknowns.append(unknown)
                log.warning(
                    "%s: not executed (%s); sending it again with the same clientTranId",
                    name,
                    settlement.reason,
                )
            except BinanceAPIError as refused:
                if not unknowns or refused.code != _DUPLICATED_CLIENT_TRAN_ID:
                    raise
                # The resend was refused because Binance has seen this
                # clientTranId: an earlier attempt executed after all (its
                # record lagged past the settlement). Never a refusal.
                from . import _settling

                return await _settling.after_duplicate(self, name, params, model, unknowns, refused)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _close_intent(self, call: _CallState, note: str) -> None:
        """Mark the call's row refused, if it is still open (nothing was sent)."""
        if self.journal is None or call.pending is None:
            return
        last = call.outcome
        if last is not None and (last.error is None or isinstance(last.error, OutcomeUnknownError)):
            # The exchange executed it, or may have: never "refused", whatever
            # failed afterwards (its DONE/UNKNOWN outcome is the row's).
            return
        # Not awaited: a caller cancelled while its intent commits must not wait
        # for that commit (a locked journal holds it up to busy_timeout). The
        # writer finds the row id itself (no row if the insert failed).
        from ._journal import REFUSED

        self.journal.outcome(call.pending, REFUSED, note=note, only_if_open=True)

    async def _send(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        max_wait: float | None,
        recv_window: int | None,
        parse: Callable[[Any], _T],
    ) -> _T:
        """Send a mutating request: journal first, track it while on the wire."""
        # Tracked from before its intent is written: aclose() waits for it, and
        # a settlement waits for its identical calls still on the wire.
        in_flight = self._reconciler.started(endpoint.name)
        token = _SENDING.set(in_flight)
        call = _CallState(None)
        # aclose() cancels it: one not yet written stops there (nothing sent),
        # one written runs on to its answer, which this caller then gets.
        loop = asyncio._get_running_loop()
        if loop is None:  # trio: in a cancel scope of its own, which aclose() cancels
            known = self._scope_type
            scope = anyio.CancelScope() if known is None else known()
            self._scope_type = type(scope)
            self._calls[in_flight] = (scope, call)
            try:
                with scope:
                    return await self._send_journaled(
                        endpoint, params, max_wait, recv_window, parse, call, None
                    )
                # Stopped by aclose(): unless its caller's scope is cancelled too,
                # whose cancellation it then gets (below).
                await anyio.lowlevel.checkpoint_if_cancelled()
                return self._after_close(endpoint, call, parse)
            except anyio.get_cancelled_exc_class():
                if call.closing:  # and cancelled from outside too (B9-2)
                    await self._unseen(call)
                raise
            finally:
                del self._calls[in_flight]
                _SENDING.reset(token)
                self._reconciler.finished(endpoint.name, in_flight)
        # asyncio: aclose() cancels the caller's task itself, once, as
        # asyncio.timeout() does, and the cancellation is taken back here
        # (uncancel). An anyio cancel scope did the same for ~18k CPU
        # instructions a call (5 % of a transfer; issue 9). A written request
        # runs in a task of its own (Transport._detachable), which no
        # cancellation of this one reaches.
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - a coroutine always runs in a task here
            raise ConfigurationError("binance_transfers runs inside an asyncio task")
        self._calls[in_flight] = (task, call)
        try:
            return await self._send_journaled(
                endpoint, params, max_wait, recv_window, parse, call, loop
            )
        except asyncio.CancelledError:
            # Ours (aclose() set `closing` before cancelling), and no other one
            # pending (the caller's own, a timeout's): the caller gets what
            # became of its call, as anyio's scope gave it.
            if not call.closing:
                raise
            if task.uncancel() == 0:
                return self._after_close(endpoint, call, parse)
            await self._unseen(call)  # cancelled by its caller too (B9-2)
            raise
        finally:
            del self._calls[in_flight]
            _SENDING.reset(token)
            self._reconciler.finished(endpoint.name, in_flight)

    async def _unseen(self, call: _CallState) -> None:
        """A call stopped by aclose() whose caller is cancelled too (its
        timeout, a task group): the caller never sees the outcome, which _on_outcome
        did not hand to on_detached (the call was closing: "its caller gets it")."""
        last = call.outcome
        if last is not None and not call.reported:
            call.reported = True
            await self._detached(attrs.evolve(last, detached=True), call.intent)

    def _after_close(self, endpoint: Endpoint, call: _CallState, parse: Callable[[Any], _T]) -> _T:
        """What a call stopped by aclose() returns or raises: its last attempt's outcome."""
        last = call.outcome
        if last is None:
            raise ClientClosedError(
                f"{endpoint.name}: the client was closed before this call was sent; "
                "nothing was sent"
            )
        if last.error is not None:
            if isinstance(last.error, OutcomeUnknownError):
                self._mark(last.error, call.intent)
            raise last.error
        return parse(last.data)

    async def _send_journaled(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]],
        max_wait: float | None,
        recv_window: int | None,
        parse: Callable[[Any], _T],
        call: _CallState,
        loop: asyncio.AbstractEventLoop | None,
    ) -> _T:
        """``loop``: this task's running asyncio loop, None under trio (read once per call)."""
        journal = self.journal
        pending = None
        deadline: float | None = None  # monotonic, with a journal and a max_wait
        if journal is not None:
            # Binance's clock first: the intent's time bounds the request's timestamp.
            # One deadline for the whole call: the sync, the seeding and the intent's
            # commit spend max_wait, the transport gets what is left of it.
            clock = self.governor.server_clock.clock
            deadline = None if max_wait is None else clock.monotonic() + max_wait
            await self._transport.sync_time(deadline=deadline)
            if self._seeded is None or not self._seeded.is_set():
                await self._seed(journal)
            pending = journal.begin(
                endpoint.name,
                params,
                recv_window or self._transport.recv_window,
                self.governor.server_clock.now_ms(),
            )
        call.pending = pending
        token = _CALL.set(call)
        try:
            if pending is not None:
                # Inside the try: a caller cancelled while its intent commits sent
                # nothing, and its row (committed anyway) is closed as refused.
                await pending.committed()
            if deadline is not None:
                max_wait = max(deadline - self.governor.server_clock.clock.monotonic(), 0.0)
            result: _T = await self._transport.call(
                endpoint,
                params,
                max_wait=max_wait,
                recv_window=recv_window,
                retry_on_429=self.retry_on_429,
                parse=parse,
                loop=loop,
            )
            call.ending = True  # answered: the caller gets it (after the flush below)
            how = HOW.get(endpoint.name)
            if journal is not None and (how is None or how[0] not in _SETTLEABLE):
                # No history can settle this one after a crash: its outcome must be
                # on disk before the caller acts on it (one commit; rare, heavy calls).
                try:
                    await journal.flush()
                except ConfigurationError as exc:
                    # Binance answered: the caller gets that answer. The journal's
                    # failure must not read as "nothing was sent" (ConfigurationError)
                    # nor mark the row refused: a retry would move the money twice.
                    # The outcome stays queued for the next commit; if none succeeds,
                    # the row stays open and recover() reports it as maybe executed.
                    log.error(
                        "%s: executed, but the journal could not record its outcome "
                        "(row %s left open until a later write succeeds): %s",
                        endpoint.name,
                        call.intent,
                        exc,
                    )
            return result
        except OutcomeUnknownError as unknown:
            self._mark(unknown, call.intent)
            raise
        except anyio.get_cancelled_exc_class():
            call.ending = True  # cancelled already: aclose() need not (see _CallState)
            last = call.outcome
            if call.closing:
                # Stopped by aclose(): _send hands the caller what became of it.
                if last is None:
                    await self._close_intent(call, "the client was closed before it was sent")
                elif last.error is not None and not isinstance(last.error, OutcomeUnknownError):
                    await self._close_intent(call, str(last.error)[:200])
            elif last is not None and not call.reported:
                # Cancelled just as the answer arrived: the transport learned the
                # outcome in time for us, but this caller will never see it.
                await self._detached(attrs.evolve(last, detached=True), call.intent)
            else:
                await self._close_intent(call, "cancelled before sending")
            raise
        except BaseException as exc:
            # Refused by Binance, or never written: nothing happened. A request
            # cut off on the wire was journaled by _on_outcome (the row is no
            # longer open), so only a still-open row is closed here.
            note = str(exc) if isinstance(exc, BinanceTransfersError) else type(exc).__name__
            await self._close_intent(call, note[:200])
            raise
        finally:
            _CALL.reset(token)
