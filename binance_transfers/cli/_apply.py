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

import attrs

from .._client import Client
from .._exceptions import NotExecutedError, OutcomeUnknownError
from .._models import MarginTransferDirection
from .._reconcile import Settlement
from ._plan import Plan, Step, TargetState, make_plan
from ._read import read_places

__all__ = ["ApplyReport", "apply", "plan_now", "send"]

#: Plans made (and re-made after an unknown outcome) before giving up.
MAX_ROUNDS = 5


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

    @property
    def waiting(self) -> int:
        return max(self.total - self.done, 0)


async def plan_now(client: Client, state: TargetState) -> Plan:
    """Read what the targets need and plan from it (nothing is sent)."""
    balances = await read_places(client, state.places(), state.assets)
    return make_plan(state, balances)


async def send(client: Client, step: Step) -> None:
    """Send one step; on an unknown outcome, settle it (raising what the settlement says)."""
    amount = str(step.amount)
    if step.kind == "universal":
        await client.transfer(
            type=step.params["type"], asset=step.asset, amount=amount, on_unknown="reconcile"
        )
        return
    if step.kind == "sub_transfer":
        await client.sub_account_transfer(
            from_account_type=step.params["fromAccountType"],
            to_account_type=step.params["toAccountType"],
            from_email=step.params.get("fromEmail"),
            to_email=step.params.get("toEmail"),
            asset=step.asset,
            amount=amount,
            on_unknown="retry",
        )
        return
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


async def apply(
    client: Client,
    state: TargetState,
    *,
    on_progress: Callable[[ApplyReport], None] = lambda report: None,
) -> ApplyReport:
    """Bring the account to ``state``; see the module docstring."""
    report = ApplyReport()
    if client.journal is not None:
        for settlement in await client.recover():
            report.settled.append(settlement)
            if settlement.executed is None:
                report.unsettled.append(f"journal: {settlement.endpoint}: {settlement.reason}")
        if report.unsettled:
            return report  # an earlier run left money in an unknown state: look first
    for _ in range(MAX_ROUNDS):
        plan = await plan_now(client, state)
        report.unmet = plan.unmet
        if plan.unmet or not plan.steps:
            return report
        report.total = report.done + len(plan.steps)
        on_progress(report)
        replan = False
        for step in plan.steps:
            try:
                await send(client, step)
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
            report.done += 1
            report.sent.append(step)
            on_progress(report)
        if not replan:
            continue  # the next round's plan should be empty: check it
    report.unsettled.append(f"the state was not reached after {MAX_ROUNDS} plans")
    return report
