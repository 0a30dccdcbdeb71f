"""Executing a plan: journaled, settled as it goes, resumable, idempotent.

``apply`` never trusts a plan made before something went wrong. It settles
what an earlier run left open in the journal, reads the balances, plans, and
sends the steps in order. A step whose outcome is unknown is settled before
anything else is sent (the next hop of its route depends on it); then the
balances are read and the plan made again. Once the state is reached the
plan is empty: running ``apply`` again sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import attrs

from .._client import Client
from .._exceptions import BinanceTransfersError, NotExecutedError, OutcomeUnknownError
from .._journal import DONE, EXECUTED
from .._models import MarginTransferDirection
from .._params import amount_param
from .._reconcile import Settlement
from ._plan import Place, Plan, Step, TargetState, make_plan
from ._read import read_places

__all__ = ["ApplyReport", "apply", "plan_now", "send"]

#: Plans made (and re-made after an unknown outcome) before giving up.
MAX_ROUNDS = 5
#: How far back journal rows are checked for transfers still PENDING (ms).
PENDING_LOOKBACK_MS = 24 * 3600 * 1000
_PENDING = frozenset({"PENDING", "PROCESS", "PROCESSING"})
#: Searched from this long before a transfer was sent (our clock estimate may lag Binance's).
_SLACK_MS = 60_000


@attrs.frozen(kw_only=True)
class Sent:
    """A transfer Binance took, to check for PENDING before planning on balances again."""

    endpoint: str
    params: dict[str, str]
    tran_id: int | None
    sent_ms: int


@attrs.define(kw_only=True)
class ApplyReport:
    """What ``apply`` did: counts for the live display, and what needs attention."""

    total: int = 0
    done: int = 0
    unknown: int = 0
    """Steps whose outcome was unknown when sent (settled or not)."""
    settled: list[Settlement] = attrs.field(factory=list)
    unsettled: list[str] = attrs.field(factory=list)
    """Outcomes nobody could settle: money may have moved; nothing more was sent."""
    unmet: tuple[str, ...] = ()
    sent: list[Step] = attrs.field(factory=list)
    pending: list[str] = attrs.field(factory=list)
    """Transfers still PENDING when ``pending_timeout`` ran out: nothing more was sent."""
    failed: list[str] = attrs.field(factory=list)
    """A definite error (Binance refused, bad input, rate limit...) that stopped the run."""
    error: BinanceTransfersError | None = None
    """The exception behind ``failed``: with ``sent`` empty, nothing moved."""

    @property
    def waiting(self) -> int:
        return max(self.total - self.done, 0)


async def plan_now(client: Client, state: TargetState) -> Plan:
    """Read what the targets need and plan from it (nothing is sent)."""
    balances = await read_places(client, state.places(), state.assets)
    return make_plan(state, balances)


async def send(client: Client, step: Step) -> Sent | None:
    """Send one step; on an unknown outcome, settle it (raising what the settlement says).

    Returns what to check for PENDING (None: a margin transfer, which has no pending state).
    """
    amount = str(step.amount)
    sent_ms = client.governor.server_clock.now_ms()
    if step.kind == "universal":
        kind = step.params["type"]
        done = await client.transfer(
            type=kind, asset=step.asset, amount=amount, on_unknown="reconcile"
        )
        return Sent(
            endpoint=step.endpoint, params={"type": kind}, tran_id=done.tran_id, sent_ms=sent_ms
        )
    if step.kind == "sub_transfer":
        result = await client.sub_account_transfer(
            from_account_type=step.params["fromAccountType"],
            to_account_type=step.params["toAccountType"],
            from_email=step.params.get("fromEmail"),
            to_email=step.params.get("toEmail"),
            asset=step.asset,
            amount=amount,
            on_unknown="retry",
        )
        params = dict(step.params)
        params["clientTranId"] = result.client_tran_id or ""
        return Sent(endpoint=step.endpoint, params=params, tran_id=result.tran_id, sent_ms=sent_ms)
    email = step.params["email"]
    baseline = await client.margin_transfer_baseline(email=email, asset=step.asset)
    try:
        await client.sub_account_margin_transfer(
            email=email,
            asset=step.asset,
            amount=amount,
            direction=MarginTransferDirection(int(step.params["type"])),
        )
    except OutcomeUnknownError as unknown:
        settlement = await client.reconcile_margin_transfer(unknown, baseline)
        if settlement.executed is None:
            raise
        if not settlement.executed:
            raise NotExecutedError(
                f"sub_account_margin_transfer: settled, not executed: {settlement.reason}",
                settlement=settlement,
                unknown=unknown,
            ) from unknown
    return None


async def _is_pending(client: Client, sent: Sent) -> bool:
    """Whether Binance still shows ``sent`` as PENDING (or does not show it yet)."""
    start = sent.sent_ms - _SLACK_MS
    if sent.endpoint == "universal_transfer":
        async for row in client.transfer_history(type=sent.params["type"], start_time=start):
            if row.tran_id == sent.tran_id:
                return str(row.status).upper() in _PENDING
        return True  # not in the history yet: its row lags; wait for it
    client_tran_id = sent.params.get("clientTranId")
    if not client_tran_id:
        return False
    from_email = sent.params.get("fromEmail")
    history = client.sub_account_transfer_history(
        client_tran_id=client_tran_id,
        from_email=from_email,
        to_email=None if from_email is not None else sent.params.get("toEmail"),
        start_time=start,
    )
    async for record in history:
        if record.client_tran_id == client_tran_id:
            return record.status.upper() in _PENDING
    return True


async def wait_until_settled(client: Client, sent: list[Sent], patience: float) -> list[Sent]:
    """Wait (backing off, up to ``patience`` seconds) until none of ``sent`` is PENDING.

    A pending transfer has left its source but not reached its target: planning on the
    balances then would send the money again. Returns those still pending at the end.
    """
    clock = client.governor.server_clock.clock
    deadline = clock.monotonic() + patience
    delay = 0.5
    waiting = list(sent)
    while True:
        waiting = [s for s in waiting if await _is_pending(client, s)]
        left = deadline - clock.monotonic()
        if not waiting or left <= 0:
            return waiting
        # Binance offers no notification of a transfer settling: its history is read again.
        await anyio.sleep(min(delay, left))
        delay = min(delay * 2, 10.0)


async def _journaled(client: Client) -> list[Sent]:
    """Transfers an earlier run journaled as executed, recently: they may still be PENDING."""
    if client.journal is None:
        return []
    since = client.governor.server_clock.now_ms() - PENDING_LOOKBACK_MS
    found = []
    for row in await client.journal.rows():
        if row.state not in (DONE, EXECUTED) or row.created_ms < since:
            continue
        if row.endpoint in ("universal_transfer", "sub_account_transfer"):
            params = {k: v for k, v in row.params.items() if k != "signature"}
            found.append(
                Sent(
                    endpoint=row.endpoint,
                    params=params,
                    tran_id=row.tran_id,
                    sent_ms=row.created_ms,
                )
            )
    return found


async def apply(
    client: Client,
    state: TargetState,
    *,
    pending_timeout: float = 300.0,
    on_progress: Callable[[ApplyReport], None] = lambda report: None,
) -> ApplyReport:
    """Bring the account to ``state``; see the module docstring.

    Transfers still PENDING (an earlier run's, or this round's) are waited for,
    up to ``pending_timeout`` seconds, before the balances are planned on again.
    """
    report = ApplyReport()
    try:
        return await _apply(client, state, report, pending_timeout, on_progress)
    except (OutcomeUnknownError, NotExecutedError):
        raise  # _apply settles these itself; one reaching here is a bug, not a refusal
    except BinanceTransfersError as exc:
        # Refused midway (a read, a step, the journal in use by another run): what was
        # sent before stays in ``report.sent``, so the caller never hears "nothing moved"
        # when something did.
        report.error = exc
        report.failed.append(f"{type(exc).__name__}: {exc}")
        on_progress(report)
        return report


async def _apply(
    client: Client,
    state: TargetState,
    report: ApplyReport,
    pending_timeout: float,
    on_progress: Callable[[ApplyReport], None],
) -> ApplyReport:
    if client.journal is not None:
        for settlement in await client.recover():
            report.settled.append(settlement)
            if settlement.executed is None:
                report.unsettled.append(f"journal: {settlement.endpoint}: {settlement.reason}")
        if report.unsettled:
            return report  # an earlier run left money in an unknown state: look first
    to_check = await _journaled(client)
    for _ in range(MAX_ROUNDS):
        still = await wait_until_settled(client, to_check, pending_timeout)
        if still:
            report.pending = [f"{s.endpoint} {s.params} tranId {s.tran_id}" for s in still]
            return report
        to_check = []
        plan = await plan_now(client, state)
        report.unmet = plan.unmet
        if plan.unmet or not plan.steps:
            return report
        for step in plan.steps:
            # Every step must be one the wire takes before the first is sent: a plan
            # that fails midway leaves money half moved.
            amount_param(step.amount, f"{step.route} amount")
        report.total = report.done + len(plan.steps)
        on_progress(report)
        replan = False
        # What this round sent into each place: a route's next hop spends that money,
        # so it waits until the credit has arrived (a transfer can stay PENDING).
        incoming: dict[Place, list[Sent]] = {}
        for step in plan.steps:
            if incoming.get(step.source):
                still = await wait_until_settled(client, incoming.pop(step.source), pending_timeout)
                if still:
                    report.pending = [f"{s.endpoint} {s.params} tranId {s.tran_id}" for s in still]
                    on_progress(report)
                    return report
            try:
                sent = await send(client, step)
            except NotExecutedError as not_run:
                # Settled: it did not run. Plan again from what the balances say.
                report.unknown += 1
                if isinstance(not_run.settlement, Settlement):
                    report.settled.append(not_run.settlement)
                replan = True
                break
            except OutcomeUnknownError as unknown:
                report.unknown += 1
                report.unsettled.append(f"{step.route} {step.amount} {step.asset}: {unknown}")
                on_progress(report)
                return report
            if sent is not None:
                to_check.append(sent)
                incoming.setdefault(step.target, []).append(sent)
            report.done += 1
            report.sent.append(step)
            on_progress(report)
        if not replan:
            continue  # the next round's plan should be empty: check it
    report.unsettled.append(f"the state was not reached after {MAX_ROUNDS} plans")
    return report
