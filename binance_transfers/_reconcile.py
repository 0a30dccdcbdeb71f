"""Settling unknown outcomes from Binance's own records.

Binance refuses a request whose ``timestamp`` is more than ``recvWindow``
behind its clock (-1021), so a request sent with timestamp ``t`` can only
have executed at a server time within ``(t - 1000, t + recvWindow]`` (it also
refuses timestamps 1000 ms or more ahead). Once Binance's clock has passed
``t + recvWindow`` plus a margin for history lag, the history is complete for
that request: a transfer absent from it never ran, and never will.

Binance documents no bound on that lag, so the margin is a guess; a wrong
"not executed" would authorise a second transfer, so absence is only
believed after a second empty search one more margin later (see ``LOOKS``),
and a row that shows up only then is logged as a sign the margin is too short.

How each endpoint is settled (the README's table comes from here):

* user universal transfer: by its history (type, asset, amount and time),
  excluding every ``tranId`` already confirmed by an answer or claimed by an
  earlier settlement, so that one of several identical transfers is never
  taken for another;
* sub-account universal transfer: by its ``clientTranId`` (always sent);
* the others: Binance keeps no history that identifies them, so they cannot
  be settled here; the :class:`Settlement` says why.
"""

import contextvars
import enum
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from ._exceptions import (
    BinanceTransfersError,
    InvalidInputError,
    IPBannedError,
    OutcomeUnknownError,
    RateLimitError,
)
from ._models import SubAccountTransferRecord, TransferRecord, TransferType
from ._params import RawType

if TYPE_CHECKING:
    from ._claims import Claims
    from ._client import Client

__all__ = ["SettleBy", "Settlement"]

log = logging.getLogger("binance_transfers.reconcile")

_T = TypeVar("_T")


class InFlight:
    """One mutating call on its way: set once its outcome is known.

    An ``anyio.Event`` made only when somebody waits (a settlement, ``aclose``):
    nearly every call ends unwaited, and an event costs a backend lookup.
    """

    __slots__ = ("_done", "_event")

    def __init__(self) -> None:
        self._done = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self._done = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._done

    async def wait(self) -> None:
        """Until it is set (a checkpoint, like ``anyio.Event.wait``, if it is already)."""
        if self._done:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


# The mutating call the running code belongs to (set by Reconciler.started).
_CURRENT_CALL: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "binance_transfers_current_call", default=None
)

#: When a settlement searches, in settle_margins past Binance's window: a
#: transfer found settles at the first look; "not executed" needs both to be
#: empty, so a history lagging up to twice the margin cannot fake absence.
LOOKS = (1, 2)
#: After a resend with the same clientTranId was refused as a duplicate (proof
#: that an earlier attempt executed): look later and later for its record.
LOOKS_AFTER_DUPLICATE = (3, 6, 12)

#: Seconds a settlement waits at least before reading again after a refusal by
#: Binance's limits: a refusal may name no wait, and a settlement is never in a
#: hurry (its margins are seconds); a hot loop would flood the log.
_LEAST_WAIT = 0.1
#: Binance answers a timestamp up to 999 ms ahead of its clock.
_AHEAD_MS = 1000
#: Confirmed ids are pruned every this many (see Reconciler._prune).
_PRUNE_EVERY = 512
#: Kept past the earliest time any new settlement can search (clock steps, lag).
_SLACK_MS = 60_000
#: "Only can query the data for the last six months" (history endpoints).
_HISTORY_KEPT_MS = 180 * 24 * 3600 * 1000
#: The sub-account history takes ranges shorter than 7 days.
_SUB_RANGE_MS = 7 * 24 * 3600 * 1000 - 1

_EXECUTED = frozenset({"CONFIRMED", "SUCCESS"})
_PENDING = frozenset({"PENDING", "PROCESS", "PROCESSING"})
_FAILED = frozenset({"FAILED", "FAILURE"})


class SettleBy(enum.StrEnum):
    """How an endpoint's unknown outcome is settled."""

    HISTORY = "history"
    """Searched in the transfer history by type, asset, amount and time."""
    CLIENT_TRAN_ID = "client_tran_id"
    """Looked up by the ``clientTranId`` the transfer carried."""
    BALANCES = "balances"
    """Only by comparing balances (not possible with this release)."""
    NONE = "none"
    """Binance keeps no record that identifies the request."""


#: Endpoint name -> how its unknown outcome is settled, and why not when it is not.
HOW: Mapping[str, tuple[SettleBy, str]] = {
    "universal_transfer": (SettleBy.HISTORY, "searched in GET /sapi/v1/asset/transfer"),
    "sub_account_transfer": (
        SettleBy.CLIENT_TRAN_ID,
        "looked up by clientTranId in GET /sapi/v1/sub-account/universalTransfer",
    ),
    "sub_account_margin_transfer": (
        SettleBy.BALANCES,
        "Binance keeps no history of sub-account margin transfers; only the "
        "sub-account's balances can tell, and balance reads are not in this release",
    ),
    "pm_collect_asset": (
        SettleBy.NONE,
        "fund collections return no id and appear in no history Binance offers",
    ),
    "pm_auto_collect": (
        SettleBy.NONE,
        "fund collections return no id and appear in no history Binance offers",
    ),
    "pmpro_collect_asset": (
        SettleBy.NONE,
        "fund collections return no id and appear in no history Binance offers",
    ),
    "pmpro_auto_collect": (
        SettleBy.NONE,
        "fund collections return no id and appear in no history Binance offers",
    ),
    "pm_bnb_transfer": (
        SettleBy.NONE,
        "Binance offers no history of Portfolio Margin BNB transfers",
    ),
    "pmpro_bnb_transfer": (
        SettleBy.NONE,
        "Binance offers no history of Portfolio Margin Pro BNB transfers",
    ),
}


def _as_dict(params: Mapping[str, str]) -> dict[str, str]:
    return dict(params)


@attrs.frozen(kw_only=True)
class Settlement:
    """What Binance's records say about a request whose outcome was unknown.

    ``executed`` is True (it ran: ``tran_id`` names it), False (it did not
    run and never will: sending again is safe) or None (Binance's records
    cannot tell: ``reason`` says why). ``pending`` marks a transfer Binance
    executed but still shows as pending. ``status`` is the history row's
    status when one was found.
    """

    endpoint: str
    params: Mapping[str, str] = attrs.field(converter=_as_dict, eq=False)
    """The parameters sent (without signature)."""
    executed: bool | None
    by: SettleBy
    reason: str
    tran_id: int | None = None
    status: str | None = None
    pending: bool = False
    journal_id: int | None = None
    """The journal row settled, if the client keeps a journal."""

    @property
    def settled(self) -> bool:
        """Whether Binance's records gave a definite answer."""
        return self.executed is not None


@attrs.frozen(kw_only=True)
class Window:
    """Where a request may have executed: server epoch ms, both ends included."""

    first_ms: int
    last_ms: int


def claimant(endpoint: str, params: Mapping[str, str], timestamp: int | None) -> Hashable | None:
    """What a request looks like from outside: endpoint, parameters and timestamp.

    Two copies of one request look the same (an error pickled, or rebuilt
    from stored fields); so do two identical requests sent in the same
    millisecond, which is why a match on it is ambiguous, never proof.
    """
    if timestamp is None:
        return None
    sent = frozenset((k, v) for k, v in params.items() if k not in ("timestamp", "recvWindow"))
    return (endpoint, timestamp, sent)


class Reconciler:
    """Settles unknown outcomes for one client; remembers which ids are taken.

    ``claimed`` maps the ``tranId`` of every transfer this client knows the
    owner of to who claimed it: None when Binance's answer confirmed it (or an
    earlier run's journal knows it), else the :func:`claimant` of the request
    whose settlement claimed it. History rows with those ids are never
    matched again.
    """

    def __init__(self, client: "Client", *, margin: float) -> None:
        self._client = client
        self.margin = margin
        self.claimed: dict[int, Hashable | None] = {}
        # Mutating calls on the wire, by endpoint: a settlement waits for those
        # that may have landed in its window, so their answers claim their rows first.
        self._in_flight: dict[str, set[InFlight]] = {}
        # Confirmed tranIds in the order they came, with Binance's clock then
        # (ms): forgotten once no settlement can search that far back (_prune).
        self._confirmed: dict[int, int] = {}
        # Unknown outcomes of this client not settled yet, by request_id: the
        # earliest time their searches reach. They keep the ids confirmed since.
        self._open: dict[str, int] = {}
        self._open_rows: dict[int, str] = {}  # journal row -> request_id, for recover()
        # shared with the account's other processes (Redis, an SQLite
        # file), or None: then this client's claims are its own (see _claims).
        self.claims: Claims | None = None

    # -- bookkeeping ----------------------------------------------------------

    def confirm(self, data: Any, endpoint: str | None = None) -> None:
        """Note the ``tranId`` of a successful answer: that row is somebody's.

        Published to the shared claims too for an ``endpoint`` settled by
        history (only there can another process's settlement take the row).
        """
        if isinstance(data, Mapping):
            tran_id = data.get("tranId")
            if isinstance(tran_id, int) and not isinstance(tran_id, bool):
                self.claimed[tran_id] = None
                now_ms = self._client.governor.server_clock.now_ms()
                self._confirmed[tran_id] = now_ms
                if self.claims is not None and endpoint in _BY_HISTORY:
                    self.claims.answered(self._client.account, tran_id, now_ms)
                if len(self._confirmed) % _PRUNE_EVERY == 0:
                    self._prune()

    def opened(self, error: OutcomeUnknownError, intent: int | None = None) -> None:
        """An unknown outcome of this client: keep what its settlement must exclude."""
        window = self.window_of(error)
        if window is not None and error.request_id is not None:
            self._open[error.request_id] = window.first_ms - self._margin_ms()
            if intent is not None:
                self._open_rows[intent] = error.request_id

    def closed(self, request_id: str | None = None, intent: int | None = None) -> None:
        """That unknown outcome is settled: its search no longer pins anything."""
        if intent is not None:
            request_id = self._open_rows.pop(intent, request_id)
        if request_id is not None:
            self._open.pop(request_id, None)

    def _prune(self) -> None:
        """Forget confirmed ids no settlement can still need (memory stays bounded).

        A settlement searches from its request's window minus a margin; a
        request not sent yet has a window after now. So an id confirmed
        before both now - (1 s ahead + margin + a minute of slack) and the
        earliest search of an unknown outcome still open is never needed:
        no window can reach it. Ids claimed by a settlement stay.
        """
        horizon = self._client.governor.server_clock.now_ms() - _AHEAD_MS - self._margin_ms()
        horizon -= _SLACK_MS
        if self._open:
            horizon = min(horizon, min(self._open.values()))
        for tran_id, at in list(self._confirmed.items()):
            if at >= horizon:
                break  # in time order: the rest is newer
            del self._confirmed[tran_id]
            if tran_id in self.claimed and self.claimed[tran_id] is None:
                del self.claimed[tran_id]

    def started(self, endpoint: str) -> InFlight:
        """A mutating call goes out; set the returned event once its outcome is known."""
        done = InFlight()
        self._in_flight.setdefault(endpoint, set()).add(done)
        # A settlement started from inside this call (an on_detached hook) must not
        # wait for the call it runs in: it would wait for itself, forever.
        _CURRENT_CALL.set(done)
        return done

    def finished(self, endpoint: str, done: InFlight) -> None:
        self._in_flight.get(endpoint, set()).discard(done)
        done.set()

    # -- settling -------------------------------------------------------------

    async def settle_error(
        self,
        error: OutcomeUnknownError,
        *,
        looks: Sequence[int] = LOOKS,
        owner: str | None = None,
    ) -> Settlement:
        """Settle an :class:`OutcomeUnknownError` (waits until Binance's records are final).

        ``owner`` names the request in the shared claims (default: its ``request_id``).
        """
        if not isinstance(error, OutcomeUnknownError):
            raise InvalidInputError(
                f"reconcile takes an OutcomeUnknownError, not {type(error).__name__}"
            )
        params = _as_sent(
            {k: v for k, v in error.params.items() if k not in ("timestamp", "recvWindow")}
        )
        window = self.window_of(error)
        if window is None:
            return self._unsettled(
                error.endpoint, params, "the error carries no timestamp: no window to search"
            )
        return await self.settle(
            error.endpoint,
            params,
            window,
            looks=looks,
            claimant=claimant(error.endpoint, params, self.timestamp_of(error)),
            # Built by hand (from stored fields?): it may be a request already settled.
            maybe_settled=error.request_id is None,
            owner=owner or error.request_id,
        )

    def timestamp_of(self, error: OutcomeUnknownError) -> int | None:
        """The ``timestamp`` the request of ``error`` was sent with, if known."""
        if error.timestamp is not None:
            return error.timestamp
        return _int(error.params.get("timestamp"))

    def window_of(self, error: OutcomeUnknownError) -> Window | None:
        """Where the request of ``error`` can have executed (None: no timestamp to tell)."""
        timestamp = self.timestamp_of(error)
        recv_window = error.recv_window or _int(error.params.get("recvWindow"))
        if recv_window is None:
            recv_window = self._client._transport.recv_window
        if timestamp is None:
            return None
        return Window(first_ms=timestamp - _AHEAD_MS, last_ms=timestamp + recv_window)

    async def settle(
        self,
        endpoint: str,
        params: Mapping[str, str],
        window: Window,
        *,
        looks: Sequence[int] = LOOKS,
        claimant: Hashable | None = None,
        maybe_settled: bool = False,
        owner: str | None = None,
    ) -> Settlement:
        """Settle a request that can only have executed within ``window``.

        ``looks`` are the moments to search, in margins past the window's end.
        A row found (or a record that says FAILED) settles it at once; absence
        is only believed when every look found nothing: a "not executed"
        verdict authorises sending again, so Binance's history lag has to
        outlast the last look, not the first, to fool it. ``claimant`` (see
        :func:`claimant`) is noted with the row the settlement claims;
        ``maybe_settled``: the request may have been settled already under
        another name (an error rebuilt by hand), so a row claimed by an
        identical request cannot prove it absent. ``owner`` names the request
        in the claims shared with other processes: the same for every
        settlement of one request (its journal row, its ``request_id``);
        None: a name of its own.
        """
        if owner is None:
            owner = uuid.uuid4().hex
        by, why = HOW.get(endpoint, (SettleBy.NONE, "an endpoint this release cannot settle"))
        if by not in (SettleBy.HISTORY, SettleBy.CLIENT_TRAN_ID):
            return Settlement(endpoint=endpoint, params=params, executed=None, by=by, reason=why)
        clock = self._client.governor.server_clock
        if clock.now_ms() - window.first_ms > _HISTORY_KEPT_MS:
            return self._unsettled(
                endpoint, params, "older than the 6 months Binance keeps in its history", by
            )
        search = Window(
            first_ms=window.first_ms - self._margin_ms(),
            last_ms=window.last_ms + self._margin_ms(),
        )
        settlement: Settlement | None = None
        for n, look in enumerate(looks):

            async def search_once(look: int = look) -> Settlement:
                await self._wait_until_final(window, look)
                await self._wait_for_calls_in_flight(endpoint)
                if by is SettleBy.CLIENT_TRAN_ID:
                    return await self._by_client_tran_id(endpoint, params, search)
                return await self._by_history(
                    endpoint, params, search, claimant if maybe_settled else None, claimant, owner
                )

            # Reads only, and nothing is claimed before the last one: a search
            # that meets a ban (or a 429) is simply made again once it is over.
            settlement = await through_limits(search_once, endpoint, self.margin)
            if not _absent(settlement):
                if n > 0 and settlement.executed:
                    log.warning(
                        "%s: Binance's history showed the transfer only %d settle_margins "
                        "past its window (%s): its history lag exceeds settle_margin=%ss; "
                        "raise it",
                        endpoint,
                        look,
                        settlement.reason,
                        self.margin,
                    )
                return settlement
        if settlement is None:
            return self._unsettled(endpoint, params, "no search was asked for", by)
        if _absent(settlement):
            searched = f"; searched {len(looks)} times, the last {looks[-1]} settle_margins late"
            settlement = attrs.evolve(settlement, reason=settlement.reason + searched)
        return settlement

    def _margin_ms(self) -> int:
        uncertainty = self._client.governor.server_clock.uncertainty
        return math.ceil((self.margin + uncertainty) * 1000)

    async def _wait_until_final(self, window: Window, margins: int = 1) -> None:
        """Sleep (one timer) until Binance's clock is past the window plus ``margins`` margins."""
        clock = self._client.governor.server_clock
        await self._client._transport.sync_time()
        while True:
            # Recomputed after each sleep: a resync may have moved our estimate.
            left_ms = window.last_ms + margins * self._margin_ms() - clock.now_ms()
            if left_ms <= 0:
                return
            await anyio.sleep(left_ms / 1000)

    async def wait_for_all_in_flight(self, *, but_not: InFlight | None = None) -> None:
        """Until every mutating call started so far has its outcome.

        ``but_not``: the call this runs inside, if any (it would wait for itself).
        """
        for calls in list(self._in_flight.values()):
            for done in list(calls):
                if done is not but_not:
                    await done.wait()

    async def _wait_for_calls_in_flight(self, endpoint: str) -> None:
        mine = _CURRENT_CALL.get()
        for done in list(self._in_flight.get(endpoint, ())):
            if done is not mine:
                await done.wait()

    async def _by_history(
        self,
        endpoint: str,
        params: Mapping[str, str],
        search: Window,
        suspect: Hashable | None = None,
        claimant: Hashable | None = None,
        owner: str = "",
    ) -> Settlement:
        amount = _decimal(params.get("amount"))
        kind = params.get("type")
        if amount is None or kind is None:
            return self._unsettled(endpoint, params, "no type or amount in the parameters sent")
        rows = _history_rows(
            self._client,
            kind,
            params.get("fromSymbol"),
            params.get("toSymbol"),
            search.first_ms,
            search.last_ms,
        )
        matches = [
            row
            async for row in rows
            if row.asset == params.get("asset")
            and row.amount == amount
            and search.first_ms <= row.timestamp <= search.last_ms
        ]
        # No await from here to the claim in _from_row (without shared claims):
        # two settlements running at once can never pick the same row.
        free = [row for row in matches if row.tran_id not in self.claimed]
        # The oldest first: several identical transfers are claimed in order.
        free.sort(key=lambda row: (row.timestamp, row.tran_id))
        found = free[0] if free else None
        if found is not None and self.claims is not None:
            try:
                found = await self._claim_shared(free, owner)
            except BinanceTransfersError as exc:
                return self._unsettled(
                    endpoint,
                    params,
                    f"the claims shared with other processes could not be read: {exc!r:.200}",
                    SettleBy.HISTORY,
                )
        if found is None and suspect is not None:
            twins = sorted(r.tran_id for r in matches if self.claimed.get(r.tran_id) == suspect)
            if twins:
                # Claimed by a request that looks exactly like this one: this very
                # request settled from another copy of its error (this one was
                # rebuilt by hand), or an identical twin sent in the same millisecond.
                # "Not executed" could authorise a second transfer; "executed" could
                # take the twin's row: the records cannot tell.
                return self._unsettled(
                    endpoint,
                    params,
                    f"record {twins[0]} matches, but was claimed by the settlement of an "
                    "identical request (same parameters and timestamp): either this one, "
                    "settled from another copy of its error without its request_id, or a "
                    "twin; Binance's records cannot tell which",
                    SettleBy.HISTORY,
                )
        if found is None:
            return Settlement(
                endpoint=endpoint,
                params=params,
                executed=False,
                by=SettleBy.HISTORY,
                reason="no unclaimed matching row in the history once Binance's window had closed",
            )
        return self._from_row(
            endpoint, params, SettleBy.HISTORY, found.tran_id, str(found.status), claimant
        )

    async def _claim_shared(self, free: list[Any], owner: str) -> Any:
        """The first of ``free`` that the shared claims give to ``owner``.

        Atomic in the store: of two processes' settlements (or two of this
        one's, interleaved at these awaits) only one gets a row; a row
        answered to, or claimed by, anybody else is skipped from now on.
        """
        assert self.claims is not None  # noqa: S101 - checked by the caller
        now_ms = self._client.governor.server_clock.now_ms()
        for row in free:
            if row.tran_id in self.claimed and self.claimed[row.tran_id] is not _ELSEWHERE:
                continue  # taken by this client meanwhile (an answer, a settlement)
            holder = await self.claims.claim(self._client.account, row.tran_id, owner, now_ms)
            if holder == owner:
                return row
            self.claimed.setdefault(row.tran_id, _ELSEWHERE)
        return None

    async def _by_client_tran_id(
        self, endpoint: str, params: Mapping[str, str], search: Window
    ) -> Settlement:
        client_tran_id = params.get("clientTranId")
        if client_tran_id is None:
            return self._unsettled(endpoint, params, "sent without a clientTranId")
        # Binance's lookup is scoped by e-mail: ask as the transfer was sent.
        from_email, to_email = params.get("fromEmail"), params.get("toEmail")
        if from_email is not None:
            to_email = None
        start = search.first_ms
        rows: list[SubAccountTransferRecord] = []
        while start <= search.last_ms:  # ranges under 7 days (Binance's rule)
            end = min(start + _SUB_RANGE_MS - 1, search.last_ms)
            history = self._client.sub_account_transfer_history(
                client_tran_id=client_tran_id,
                from_email=from_email,
                to_email=to_email,
                start_time=start,
                end_time=end,
            )
            rows += [row async for row in history if row.client_tran_id == client_tran_id]
            start = end + 1
        if not rows:
            return Settlement(
                endpoint=endpoint,
                params=params,
                executed=False,
                by=SettleBy.CLIENT_TRAN_ID,
                reason=f"no transfer with clientTranId {client_tran_id} once Binance's "
                "window had closed",
            )
        row = rows[0]
        if row.asset != params.get("asset") or row.amount != _decimal(params.get("amount")):
            return self._unsettled(
                endpoint,
                params,
                f"clientTranId {client_tran_id} names a transfer of {row.amount} {row.asset}, "
                "not the one sent",
                SettleBy.CLIENT_TRAN_ID,
            )
        return self._from_row(endpoint, params, SettleBy.CLIENT_TRAN_ID, row.tran_id, row.status)

    def _from_row(
        self,
        endpoint: str,
        params: Mapping[str, str],
        by: SettleBy,
        tran_id: int,
        status: str,
        claimant: Hashable | None = None,
    ) -> Settlement:
        status = status.upper()
        if status in _FAILED:
            executed, pending, why = False, False, f"Binance's record {tran_id} says {status}"
        elif status in _PENDING:
            executed, pending = True, True
            why = f"executed, still pending at Binance (record {tran_id})"
        elif status in _EXECUTED:
            executed, pending, why = True, False, f"executed: Binance's record {tran_id}"
        else:
            return self._unsettled(
                endpoint,
                params,
                f"record {tran_id} has a status this release does not know: {status}",
                by,
            )
        self.claimed[tran_id] = claimant
        return Settlement(
            endpoint=endpoint,
            params=params,
            executed=executed,
            by=by,
            reason=why,
            tran_id=tran_id,
            status=status,
            pending=pending,
        )

    def _unsettled(
        self,
        endpoint: str,
        params: Mapping[str, str],
        reason: str,
        by: SettleBy = SettleBy.NONE,
    ) -> Settlement:
        return Settlement(endpoint=endpoint, params=params, executed=None, by=by, reason=reason)


async def through_limits(read: Callable[[], Awaitable[_T]], what: str, floor: float) -> _T:
    """``read()``, made again after each refusal by Binance's limits, once it is over.

    A settlement only reads, and what it reads is needed: an IP ban (418), a
    429 past the transport's retries, or no permit within the client's
    ``max_wait`` is waited out (their end is known: ``retry_after``), never
    raised: the demo lost track of its unknown transfers when a ban met its
    settlements. Nothing is sent meanwhile (the governor refuses during a
    ban it knows). ``floor``: seconds to wait when the end given is already
    past (a 418 whose stated end is behind our clock). Cancel the caller to
    stop waiting. ``what`` names the reads in the log (an endpoint). Never
    less than :data:`_LEAST_WAIT` between reads (B8-4: a refusal
    naming no wait, with ``settle_margin=0``, was retried in a hot loop).
    """
    while True:
        try:
            return await read()
        except RateLimitError as limited:
            wait = max(limited.retry_after if limited.retry_after > 0 else floor, _LEAST_WAIT)
            kind = "the IP is banned (418)" if isinstance(limited, IPBannedError) else "limited"
            log.warning(
                "%s: settling waits %.3f s: %s (%s), then reads again",
                what,
                wait,
                kind,
                limited,
            )
            await anyio.sleep(wait)


#: Endpoints settled by history, whose answered ids the shared claims publish.
_BY_HISTORY = frozenset(name for name, (by, _) in HOW.items() if by is SettleBy.HISTORY)
#: A row claimed in the shared store by another process's settlement.
_ELSEWHERE = "claimed elsewhere"

#: Parameters the client upper-cases before sending (assets, symbols, type names).
_SENT_UPPER = ("asset", "type", "fromSymbol", "toSymbol", "fromAccountType", "toAccountType")


def _as_sent(params: Mapping[str, str]) -> dict[str, str]:
    """``params`` as the client would have sent them.

    An error rebuilt by hand may say ``asset="usdt"``: the client sent (and
    Binance's history shows) ``USDT``. Compared as typed, the executed
    transfer would not match and be declared "not executed".
    """
    sent = dict(params)
    for key in _SENT_UPPER:
        value = sent.get(key)
        if isinstance(value, str):
            sent[key] = value.strip().upper()
    return sent


def _absent(settlement: Settlement) -> bool:
    """Nothing found, as opposed to a record found (whatever it says)."""
    return settlement.executed is False and settlement.tran_id is None


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None


def _decimal(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _history_rows(
    client: "Client",
    kind: str,
    from_symbol: str | None,
    to_symbol: str | None,
    start_ms: int,
    end_ms: int,
) -> AsyncIterator[TransferRecord]:
    """The universal history a settlement searches (a type sent may be a RawType)."""
    known = kind in TransferType.__members__
    return client.transfer_history(
        type=TransferType(kind) if known else RawType(kind),
        from_symbol=from_symbol,
        to_symbol=to_symbol,
        start_time=start_ms,
        end_time=end_ms,
    )
