"""A plan with its cost, as ``binance-transfers plan`` prints it (the demo prints one too)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import attrs
from rich.console import Console
from rich.table import Table

from .._client import Client
from ._apply import plan_now
from ._plan import Plan, Step, TargetState, earliest_finish, load_targets, weights

__all__ = ["DEMO_TARGETS", "CostedPlan", "costed_plan", "demo_plan", "print_plan"]

#: The state ``make demo`` plans for once its random walk is over.
DEMO_TARGETS = """\
asset = "USDT"

[[target]]
wallet = "spot"
keep = "500000"

[[target]]
wallet = "usdm"
at_least = "150000"

[[target]]
wallet = "margin"
at_least = "120000"

[[target]]
sub_account = "desk-1@sim.invalid"
wallet = "margin"
exactly = "5000"

[[target]]
sub_account = "desk-2@sim.invalid"
wallet = "spot"
share = "1%"
"""


@attrs.frozen(kw_only=True)
class CostedPlan:
    """A plan, the weight it takes from each pool, and when the governor can be done."""

    plan: Plan
    weight: dict[str, int]
    finish: float
    """Binance epoch seconds."""


async def costed_plan(client: Client, state: TargetState) -> CostedPlan:
    """Read the balances ``state`` needs, plan, and cost the plan (nothing is sent)."""
    plan = await plan_now(client, state)
    governor = client.governor
    limits = governor.limits
    now = governor.server_clock.now_ms() / 1000
    return CostedPlan(
        plan=plan,
        weight=weights(plan.steps, limits, client.account, client.endpoints),
        finish=earliest_finish(
            plan.steps, limits, client.account, now, governor.snapshot(), client.endpoints
        ),
    )


def amount(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def how(step: Step) -> str:
    """The route's wire name: the universal type, the account types, or the margin direction."""
    if "type" in step.params and step.kind == "universal":
        return step.params["type"]
    if step.kind == "sub_margin":
        return "SPOT->MARGIN" if step.params.get("type") == "1" else "MARGIN->SPOT"
    return f"{step.params['fromAccountType']}->{step.params['toAccountType']} (sub-account)"


def print_plan(console: Console, costed: CostedPlan, title: str) -> None:
    """The plan's table, its weight per pool and its earliest finish."""
    plan = costed.plan
    if plan.converged:
        console.print("Nothing to do: the state is reached.")
    elif plan.steps:
        table = Table("#", "from", "to", "amount", "route", title=title)
        for n, s in enumerate(plan.steps, 1):
            table.add_row(
                str(n), str(s.source), str(s.target), f"{amount(s.amount)} {s.asset}", how(s)
            )
        console.print(table)
        for pool, weight in sorted(costed.weight.items()):
            console.print(f"  weight {weight:>6} from {pool}")
        when = datetime.fromtimestamp(costed.finish, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        console.print(f"Earliest finish: {when} (nothing was sent)")
    for line in plan.unmet:
        console.print(f"[red]cannot reach:[/] {line}")


async def demo_plan(client: Client, console: Console) -> CostedPlan:
    """What ``binance-transfers plan`` says about :data:`DEMO_TARGETS` for ``client``'s account."""
    costed = await costed_plan(client, load_targets(DEMO_TARGETS))
    print_plan(console, costed, "binance-transfers plan (the demo's target state)")
    return costed
