"""Settling a mutating call's unknown outcome: the client's side of it.

:class:`~binance_transfers._reconcile.Reconciler` searches Binance's records;
this is what :class:`~binance_transfers.Client` wraps around it: one
settlement of a request at a time (copies of its error included), the journal
row's verdict (from this run or an earlier one), the settlements that
``on_unknown="reconcile"``/``"retry"`` run for a waiting caller, and the
journal's record of every verdict. Split out of ``_client.py``, which keeps
the calls' own path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from ._arguments import _echo
from ._exceptions import BinanceAPIError, InvalidInputError, NotExecutedError, OutcomeUnknownError
from ._journal import EXECUTED, NOT_EXECUTED, UNKNOWN, UNSETTLED, Intent
from ._models import converter
from ._reconcile import HOW, LOOKS_AFTER_DUPLICATE, SettleBy, Settlement, Window
from ._settle_balances import MarginTransferBaseline, settle_by_balances
from ._transport import ExchangeOutcome

if TYPE_CHECKING:
    from ._client import Client

log = logging.getLogger("binance_transfers.client")

_T = TypeVar("_T")

#: What an endpoint Binance keeps no history of is settled by (HOW has no entry).
NO_HISTORY = (SettleBy.NONE, "")

#: What identifies one request (see :func:`request_keys`).
Key = tuple[Any, ...]


async def reconcile(client: Client, error: OutcomeUnknownError) -> Settlement:
    """The body of :meth:`Client.reconcile` (its docstring says what it does)."""
    if not isinstance(error, OutcomeUnknownError):
        raise InvalidInputError(
            f"reconcile takes an OutcomeUnknownError, not {type(error).__name__}"
        )
    client._check_open()
    intent = intent_of(client, error)
    keys = request_keys(error, intent)
    async with settling_once(client, keys) as known:
        if known is None and intent is not None:
            known = await settled_in_journal(client, intent)
        if known is not None:
            return known
        # The row's name wherever the error is settled (a copy in another
        # process, recover() after a restart): one owner, one verdict.
        owner = error_owner(error) or await owner_of(client, intent)
        settlement = await client._reconciler.settle_error(error, owner=owner)
        if intent is not None:
            settlement = attrs.evolve(settlement, journal_id=intent)
            await journal_settlement(client, intent, settlement)
        remember(client, settlement, keys)
        if settlement.executed is not None:
            client._reconciler.closed(error.request_id, intent)
        return settlement


@contextlib.asynccontextmanager
async def settling_once(client: Client, keys: list[Key]) -> AsyncIterator[Settlement | None]:
    """One settlement of a request at a time; yields its earlier "executed" verdict.

    Once a request is settled as executed its history row is claimed (by
    it), so searching again, one after the other or at the same time,
    would miss it and wrongly conclude "not executed".
    """
    if not keys:
        yield None
        return
    lock = client._settling.setdefault(keys[0], anyio.Lock())
    try:
        async with lock:
            yield next((client._executed[k] for k in keys if k in client._executed), None)
    finally:
        if not lock.locked() and lock.statistics().tasks_waiting == 0:
            client._settling.pop(keys[0], None)


async def owner_of(client: Client, intent: int | None) -> str | None:
    """The request's name in the claims shared with other processes: its journal row.

    The same for every settlement of it (reconcile() now, recover() after a
    crash): a row it claimed before is still its own. None: its request_id.
    """
    if intent is None or client.journal is None:
        return None
    row = await client.journal.row(intent)
    return None if row is None else row_owner(row)


def intent_of(client: Client, error: OutcomeUnknownError) -> int | None:
    """The journal row of ``error``'s request, if it is in this client's journal.

    An error can come from another process (pickled) whose journal is
    another file: its row number means nothing here.
    """
    intent = getattr(error, "journal_id", None)
    path = getattr(error, "journal_path", None)
    if client.journal is None or not isinstance(intent, int) or not isinstance(path, str):
        return None
    return intent if same_file(path, client.journal.path) else None


async def settled_in_journal(client: Client, intent: int) -> Settlement | None:
    """The journal's "executed" verdict on the row, from this run or an earlier one."""
    assert client.journal is not None  # noqa: S101 - intent_of found a row in it
    row = await client.journal.row(intent)
    if row is None or row.state != EXECUTED:
        return None
    return Settlement(
        endpoint=row.endpoint,
        params=row.params,
        executed=True,
        by=HOW.get(row.endpoint, NO_HISTORY)[0],
        reason=f"settled earlier (journal row {intent}): {row.note or 'executed'}",
        tran_id=row.tran_id,
        journal_id=intent,
    )


def remember(client: Client, settlement: Settlement, keys: list[Key]) -> None:
    if settlement.executed:
        for key in keys:
            client._executed[key] = settlement


async def journal_settlement(client: Client, intent: int, settlement: Settlement) -> None:
    if client.journal is None:
        return
    state = {True: EXECUTED, False: NOT_EXECUTED, None: UNSETTLED}[settlement.executed]
    client.journal.outcome(intent, state, tran_id=settlement.tran_id, note=settlement.reason)
    await client.journal.flush()


async def reconcile_by_balances(
    client: Client, error: OutcomeUnknownError, baseline: MarginTransferBaseline
) -> Settlement:
    """The body of :meth:`Client.reconcile_margin_transfer`."""
    settlement = await settle_by_balances(client, error, baseline)
    intent = intent_of(client, error)
    if settlement.executed is not None and intent is not None:
        await journal_settlement(client, intent, settlement)
    return settlement


async def settle_for_caller(
    client: Client, unknown: OutcomeUnknownError, settling: Awaitable[Settlement]
) -> Settlement:
    """Await ``settling``; if the caller is cancelled meanwhile, don't lose track.

    Like a caller cancelled on the wire: the unknown outcome is logged and
    handed to ``on_detached``, and its journal row stays ``unknown`` for
    :meth:`Client.recover`. If settling fails (a history read that cannot get
    through), the caller gets ``unknown`` itself, the failure as its cause.
    """
    try:
        return await settling
    except anyio.get_cancelled_exc_class():
        intent = intent_of(client, unknown)
        outcome = ExchangeOutcome(
            endpoint=unknown.endpoint,
            params=unknown.params,
            timestamp=unknown.timestamp,
            recv_window=unknown.recv_window,
            data=None,
            error=unknown,
            detached=True,
        )
        await client._detached(outcome, intent, "request, being settled,")
        if client.journal is not None:
            with anyio.CancelScope(shield=True):  # its `unknown` row, on disk now
                try:
                    await client.journal.flush()
                except Exception:  # the caller's cancellation is what it must see
                    log.exception("%s: the journal could not be written", unknown.endpoint)
        raise
    except Exception as exc:
        # A failed settlement read (ConnectionFailedError: "nothing sent")
        # must not stand for the transfer, whose outcome is still unknown.
        unknown.add_note(f"settling it failed: {type(exc).__name__}: {exc!s:.200}")
        raise unknown from exc


async def after_duplicate(
    client: Client,
    name: str,
    params: Sequence[tuple[str, str]],
    model: type[_T],
    unknowns: list[OutcomeUnknownError],
    refused: BinanceAPIError,
) -> _T:
    """An earlier attempt executed: find its record (waiting longer), or raise its error."""
    first = unknowns[0]
    windows = [w for w in map(client._reconciler.window_of, unknowns) if w is not None]
    settlement = None
    if windows:
        window = Window(
            first_ms=min(w.first_ms for w in windows), last_ms=max(w.last_ms for w in windows)
        )
        sent = {k: v for k, v in first.params.items() if k not in ("timestamp", "recvWindow")}
        settlement = await settle_for_caller(
            client,
            first,
            client._reconciler.settle(name, sent, window, looks=LOOKS_AFTER_DUPLICATE),
        )
    intent = intent_of(client, first)
    if settlement is not None and settlement.executed and settlement.tran_id is not None:
        log.warning(
            "%s: a resend was refused as a duplicate clientTranId: the earlier attempt "
            "executed (%s)",
            name,
            settlement.reason,
        )
        if intent is not None:
            settlement = attrs.evolve(settlement, journal_id=intent)
            await journal_settlement(client, intent, settlement)
        remember(client, settlement, request_keys(first, intent))
        answer = {"tranId": settlement.tran_id, **_echo(params)}
        return converter.structure(answer, model)
    if settlement is not None and settlement.executed is False and settlement.tran_id:
        # The earlier attempt's record, found late, says FAILED: nothing moved.
        if intent is not None:
            settlement = attrs.evolve(settlement, journal_id=intent)
            await journal_settlement(client, intent, settlement)
        raise NotExecutedError(
            f"{name}: settled, not executed: {settlement.reason}",
            settlement=settlement,
            unknown=first,
        ) from refused
    note = (
        f"a resend with the same clientTranId was refused as a duplicate ({refused.code}): "
        "an earlier attempt executed, but Binance's history does not show it yet"
    )
    if intent is not None and client.journal is not None:
        # Its earlier "not executed" was wrong: open to reconcile()/recover() again.
        client.journal.outcome(intent, UNKNOWN, note=note)
        await client.journal.flush()
    log.warning("%s: %s; raising the original OutcomeUnknownError", name, note)
    first.add_note(note)
    raise first from refused


def request_keys(error: OutcomeUnknownError | None, intent: int | None) -> list[Key]:
    """What identifies one request: its journal row, and its error's ``request_id``.

    The request_id is shared by every copy of the error (pickled, deep-copied),
    so two copies settled at once are one settlement. Not the parameters and
    timestamp: two identical transfers sent in the same millisecond are two
    requests, and each must get its own verdict.
    """
    keys: list[Key] = []
    if intent is not None:
        keys.append(("intent", intent))
    request_id = getattr(error, "request_id", None)
    if isinstance(request_id, str):
        keys.append(("request", request_id))
    elif error is not None:
        keys.append(("error", error))  # one without (hand-made): by identity
    return keys


def row_owner(row: Intent) -> str:
    """A journal row's name in the shared claims: the run that wrote it, its id.

    Not the file's path (its first name): a journal moved between a
    crash and recover() would find its own claim under another name, take
    it for another process's and settle an executed transfer "not executed".
    """
    return f"journal:{row.session}:{row.id}"


def error_owner(error: OutcomeUnknownError) -> str | None:
    """The error's journal row's name in the shared claims, if the error carries it.

    (An error unpickled from an older release has no ``journal_session``.)
    """
    session = getattr(error, "journal_session", None)
    row = getattr(error, "journal_id", None)
    if isinstance(session, str) and isinstance(row, int):
        return f"journal:{session}:{row}"
    return None


def same_file(one: str, other: str) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:  # gone, or never existed here
        return os.path.realpath(one) == os.path.realpath(other)
