"""The planner: target files, routes, and plans that reach the state without overdrawing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_transfers import Limits, PoolKind, PoolSnapshot
from binance_transfers.cli._plan import (
    MASTER,
    Place,
    PlanError,
    Step,
    TargetState,
    earliest_finish,
    load_targets,
    make_plan,
    route,
    weights,
)

SPOT, UM, CM, MARGIN = (Place(MASTER, w) for w in ("MAIN", "UMFUTURE", "CMFUTURE", "MARGIN"))
DESK, DESK2 = "desk-1@example.com", "desk-2@example.com"


def test_a_direct_universal_route() -> None:
    """Spot -> USDⓈ-M is one universal transfer of type MAIN_UMFUTURE."""
    (step,) = route(SPOT, UM, "USDT", Decimal(5))
    assert (step.endpoint, step.params["type"]) == ("universal_transfer", "MAIN_UMFUTURE")


def test_usdm_to_coinm_goes_through_spot() -> None:
    """Binance has no UMFUTURE_CMFUTURE type: two hops through spot."""
    steps = route(UM, CM, "USDT", Decimal(5))
    assert [s.params["type"] for s in steps] == ["UMFUTURE_MAIN", "MAIN_CMFUTURE"]


def test_sub_account_routes() -> None:
    """Sub-account spot <-> margin is a margin transfer; master futures -> sub margin goes via
    the master's spot; a sub's margin to another's spot goes margin -> margin, then to spot."""
    (margin,) = route(Place(DESK, "MAIN"), Place(DESK, "MARGIN"), "USDT", Decimal(1))
    assert (margin.endpoint, margin.params) == (
        "sub_account_margin_transfer",
        {"email": DESK, "type": "1"},
    )
    hops = route(UM, Place(DESK, "MARGIN"), "USDT", Decimal(1))
    assert [s.endpoint for s in hops] == ["universal_transfer", "sub_account_transfer"]
    assert hops[1].params == {"fromAccountType": "SPOT", "toAccountType": "MARGIN", "toEmail": DESK}
    across = route(Place(DESK, "MARGIN"), Place(DESK2, "MAIN"), "USDT", Decimal(1))
    assert [(s.source, s.target) for s in across] == [
        (Place(DESK, "MARGIN"), Place(DESK2, "MARGIN")),
        (Place(DESK2, "MARGIN"), Place(DESK2, "MAIN")),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ('[[target]]\nwallet = "spot"\nat_least = "1"\n', "asset"),
        ('[[target]]\nasset = "USDT"\nwallet = "spot"\n', "give at_least"),
        (
            '[[target]]\nasset = "USDT"\nwallet = "spot"\nexactly = "1"\nat_least = "2"\n',
            "contradict",
        ),
        ('[[target]]\nasset = "USDT"\nwallet = "spot"\nat_least = "-1"\n', "non-negative"),
        ('[[target]]\nasset = "USDT"\nwallet = "spot"\nat_least = 1.5\n', "as a string"),
        ('[[target]]\nasset = "USDT"\nwallet = "spot"\nshare = "120%"\n', "at most 100"),
        (
            '[[target]]\nasset = "USDT"\nsub_account = "x@y"\nwallet = "usdm"\nat_least = "1"\n',
            "spot and margin",
        ),
        (
            '[[target]]\nasset = "USDT"\nwallet = "spot"\nat_least = "5"\nat_most = "1"\n',
            "below the floor",
        ),
        ('[[target]]\nasset = "USDT"\nwallet = "spot"\nfloor = "5"\n', "unknown keys"),
        ("not toml [", "not TOML"),
    ],
)
def test_bad_target_files(text: str, message: str) -> None:
    """Each mistake in a target file is a PlanError naming it."""
    with pytest.raises(PlanError, match=message):
        load_targets(text)


def test_share_is_of_the_total_rounded_down_to_8_decimals() -> None:
    """share = "1/3" of 100 is 33.33333333, never more than exists."""
    state = load_targets('[[target]]\nasset = "USDT"\nwallet = "usdm"\nshare = "0.333333333333"\n')
    plan = make_plan(state, {(SPOT, "USDT"): Decimal(100)})
    (step,) = plan.steps
    assert step.amount == Decimal("33.33333333")


def test_converged_state_plans_nothing() -> None:
    """Balances that already meet every target give an empty plan."""
    state = load_targets('[[target]]\nasset = "USDT"\nwallet = "usdm"\nat_least = "5"\n')
    assert make_plan(state, {(UM, "USDT"): Decimal(5)}).converged


def test_unmet_targets_are_reported() -> None:
    """A deficit no source can fill is reported, with what is missing."""
    state = load_targets('[[target]]\nasset = "USDT"\nwallet = "usdm"\nat_least = "50"\n')
    plan = make_plan(state, {(SPOT, "USDT"): Decimal(20)})
    assert plan.unmet == ("master:UMFUTURE needs 30 USDT more than the sources can give",)


def test_keep_floor_is_respected() -> None:
    """A keep wallet gives only what it holds above its floor."""
    state = load_targets(
        'asset = "USDT"\n[[target]]\nwallet = "usdm"\nat_least = "100"\n'
        '[[target]]\nwallet = "spot"\nkeep = "80"\n'
    )
    plan = make_plan(state, {(SPOT, "USDT"): Decimal(100)})
    assert [s.amount for s in plan.steps] == [Decimal(20)]
    assert plan.unmet


def test_merged_transfers_cost_less() -> None:
    """Two moves into USDⓈ-M (one fed by a sub-account) become one universal transfer."""
    state = load_targets(
        'asset = "USDT"\n[[target]]\nwallet = "usdm"\nat_least = "100"\n'
        f'[[target]]\nsub_account = "{DESK}"\nwallet = "spot"\nat_most = "10"\n'
    )
    plan = make_plan(
        state, {(SPOT, "USDT"): Decimal(500), (Place(DESK, "MAIN"), "USDT"): Decimal(50)}
    )
    kinds = [(s.endpoint, str(s.source), str(s.target), s.amount) for s in plan.steps]
    assert kinds == [
        ("sub_account_transfer", f"{DESK}:MAIN", "master:MAIN", Decimal(40)),
        ("universal_transfer", "master:MAIN", "master:UMFUTURE", Decimal(100)),
    ]


def test_weights_and_earliest_finish() -> None:
    """250 universal transfers weigh 225,000 UID: more than one minute's 180,000."""
    step = route(SPOT, UM, "USDT", Decimal(1))[0]
    steps = [step] * 250
    limits = Limits()
    cost = weights(steps, limits, "acct")
    assert cost == {"sapi-uid acct POST /sapi/v1/asset/transfer": 225_000}
    now = 1_767_225_630.0  # 30 s into a minute
    assert earliest_finish(steps[:200], limits, "acct", now) == now  # fits the window
    assert earliest_finish(steps, limits, "acct", now) == 1_767_225_660.0  # the next minute
    busy = PoolSnapshot(
        key="sapi-uid acct POST /sapi/v1/asset/transfer",
        kind=PoolKind.UID,
        limit=180_000,
        used=179_500,
        resets_at=1_767_225_660.0,
        waiters=0,
        frozen_until=None,
    )
    assert earliest_finish(steps[:1], limits, "acct", now, [busy]) == 1_767_225_660.0


def test_rolling_caps_in_the_estimate() -> None:
    """Three PM Pro BNB transfers (2 per rolling 10 minutes): the third waits 10 minutes."""
    step = Step(
        source=SPOT,
        target=UM,
        asset="BNB",
        amount=Decimal(1),
        kind="universal",
        endpoint="pmpro_bnb_transfer",
    )
    now = 1_767_225_600.0
    assert earliest_finish([step] * 3, Limits(), "acct", now) == now + 600


# -- property: a plan, followed step by step, never overdraws and reaches the state ---------

_PLACES = [SPOT, UM, CM, MARGIN, Place(DESK, "MAIN"), Place(DESK, "MARGIN"), Place(DESK2, "MAIN")]
_amounts = st.integers(min_value=0, max_value=10_000).map(Decimal)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[TargetState, dict[tuple[Place, str], Decimal]]:
    balances = {(p, "USDT"): draw(_amounts) for p in _PLACES}
    lines = ['asset = "USDT"', 'sources = ["spot", "margin"]']
    chosen = draw(st.lists(st.sampled_from(_PLACES[1:]), unique=True, min_size=1, max_size=4))
    for place in chosen:
        kind = draw(st.sampled_from(["at_least", "at_most", "exactly", "share", "keep"]))
        value = f'"{draw(st.integers(0, 30))}%"' if kind == "share" else f'"{draw(_amounts)}"'
        account = "" if place.is_master else f'sub_account = "{place.account}"\n'
        wallet = {"MAIN": "spot", "UMFUTURE": "usdm", "CMFUTURE": "coinm", "MARGIN": "margin"}
        lines.append(f'[[target]]\n{account}wallet = "{wallet[place.wallet]}"\n{kind} = {value}')
    return load_targets("\n".join(lines)), balances


@settings(max_examples=200, deadline=None)
@given(_cases())
def test_plans_never_overdraw_and_reach_the_state(
    case: tuple[TargetState, dict[tuple[Place, str], Decimal]],
) -> None:
    """Followed in order, no step takes more than its source holds; the money is conserved;
    when nothing is reported unmet, every target holds."""
    state, balances = case
    plan = make_plan(state, balances)
    held = dict(balances)
    for step in plan.steps:
        key = (step.source, step.asset)
        assert held.get(key, Decimal(0)) >= step.amount > 0, step.route
        held[key] -= step.amount
        held[(step.target, step.asset)] = (
            held.get((step.target, step.asset), Decimal(0)) + step.amount
        )
    assert sum(held.values()) == sum(balances.values())
    if not plan.unmet:
        # Shares are of what the plan reads: the master's wallets and the named sub-accounts.
        total = sum((balances.get((p, "USDT"), Decimal(0)) for p in state.places()), Decimal(0))
        for target in state.targets:
            floor, ceiling = target.bounds(total)
            now = held.get((target.place, target.asset), Decimal(0))
            assert now >= floor and (ceiling is None or now <= ceiling), target
        assert make_plan(state, held).converged
