"""From a declared target state and the balances read, the transfers that reach it.

A target file (TOML) names wallets of the master account or of its
sub-accounts and what each should hold of one asset::

    asset = "USDT"

    [[target]]
    wallet = "usdm"              # USDⓈ-M futures holds at least 5,000 USDT
    at_least = "5000"

    [[target]]
    wallet = "spot"              # spot gives money, but keeps 1,000 USDT
    keep = "1000"

    [[target]]
    sub_account = "desk-1@example.com"
    wallet = "spot"
    share = "20%"                # 20 % of all the USDT read

Wallets: ``spot`` (``MAIN``), ``funding``, ``margin`` (cross), ``usdm``
(``UMFUTURE``) and ``coinm`` (``CMFUTURE``) for the master; ``spot`` and
``margin`` for a sub-account (the only sub-account wallets Binance reports
per asset). Constraints: ``at_least``, ``at_most``, ``exactly``, ``share``
(of the total of the asset over every wallet read) and ``keep`` (a floor,
and the wallet may give what it holds above it). Money comes from wallets
above their ceiling first, then from ``keep`` wallets and ``sources``
(default: the master's spot, when nothing else is declared a source); money
above a ceiling that no deficit needs goes to ``sink`` (default: the
master's spot).

Everything here is pure: :func:`make_plan` takes balances and returns steps;
nothing is read or sent.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Literal

import attrs

from .._endpoints import ENDPOINTS, EndpointTable
from .._exceptions import InvalidInputError
from .._governor import PoolSnapshot
from .._limits import Limits, PoolKind, pools_for
from .._models import TransferType
from .._params import amount_param

__all__ = [
    "MASTER",
    "Place",
    "Plan",
    "PlanError",
    "Step",
    "Target",
    "TargetState",
    "earliest_finish",
    "load_targets",
    "make_plan",
]

MASTER = "master"
_ALIASES = {
    "spot": "MAIN",
    "main": "MAIN",
    "funding": "FUNDING",
    "margin": "MARGIN",
    "usdm": "UMFUTURE",
    "umfuture": "UMFUTURE",
    "coinm": "CMFUTURE",
    "cmfuture": "CMFUTURE",
}
_MASTER_WALLETS = ("MAIN", "FUNDING", "MARGIN", "UMFUTURE", "CMFUTURE")
_SUB_WALLETS = ("MAIN", "MARGIN")
#: Sub-account wallet -> the account type of the sub-account universal transfer.
_SUB_TYPES = {"MAIN": "SPOT", "MARGIN": "MARGIN"}
_EIGHT = Decimal("0.00000001")
_KEYS = {"wallet", "sub_account", "asset", "at_least", "at_most", "exactly", "share", "keep"}


class PlanError(ValueError):
    """The target file is not a state this planner can reach (nothing was read or sent)."""


@attrs.frozen(order=True)
class Place:
    """A wallet of the master account or of one sub-account."""

    account: str
    """``master``, or a sub-account's e-mail."""
    wallet: str
    """``MAIN``, ``FUNDING``, ``MARGIN``, ``UMFUTURE`` or ``CMFUTURE``."""

    @property
    def is_master(self) -> bool:
        return self.account == MASTER

    def __str__(self) -> str:
        return f"{self.account}:{self.wallet}"


@attrs.frozen(kw_only=True)
class Target:
    """What one wallet should hold of ``asset``."""

    place: Place
    asset: str
    at_least: Decimal | None = None
    at_most: Decimal | None = None
    exactly: Decimal | None = None
    share: Decimal | None = None
    """A fraction (0.2 for "20%") of the total of the asset over the wallets read."""
    keep: Decimal | None = None
    """A floor; the wallet may give what it holds above it."""

    def bounds(self, total: Decimal) -> tuple[Decimal, Decimal | None]:
        """Floor and ceiling (None: no ceiling), given the asset's total."""
        if self.exactly is not None:
            return self.exactly, self.exactly
        if self.share is not None:
            amount = (self.share * total).quantize(_EIGHT, rounding=ROUND_DOWN)
            return amount, amount
        floor = max((v for v in (self.at_least, self.keep) if v is not None), default=Decimal(0))
        return floor, self.at_most


@attrs.frozen(kw_only=True)
class TargetState:
    """A whole target file."""

    targets: tuple[Target, ...]
    sources: tuple[Place, ...]
    sink: Place

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.asset for t in self.targets))

    def places(self) -> tuple[Place, ...]:
        """Every wallet to read: the master's, and the named sub-accounts' spot and margin."""
        subs = dict.fromkeys(t.place.account for t in self.targets if not t.place.is_master)
        subs.update(dict.fromkeys(p.account for p in self.sources if not p.is_master))
        master = [Place(MASTER, w) for w in _MASTER_WALLETS]
        return (*master, *(Place(email, w) for email in subs for w in _SUB_WALLETS))


Kind = Literal["universal", "sub_transfer", "sub_margin"]


@attrs.frozen(kw_only=True)
class Step:
    """One transfer of the plan: from where to where, how, and by which endpoint."""

    source: Place
    target: Place
    asset: str
    amount: Decimal
    kind: Kind
    endpoint: str
    params: Mapping[str, str] = attrs.field(factory=dict)
    """What identifies the route: ``type``, or the e-mails and account types."""

    @property
    def route(self) -> str:
        how = self.params.get("type") or (
            f"{self.params.get('fromAccountType')}->{self.params.get('toAccountType')}"
        )
        return f"{self.source} -> {self.target} ({self.endpoint} {how})"


@attrs.frozen(kw_only=True)
class Plan:
    """The steps, in order, and what the planner could not reach."""

    steps: tuple[Step, ...]
    unmet: tuple[str, ...] = ()
    """Targets no money could be found for, with how much is missing."""
    balances: Mapping[tuple[Place, str], Decimal] = attrs.field(factory=dict)

    @property
    def converged(self) -> bool:
        return not self.steps and not self.unmet


# -- the target file ------------------------------------------------------------


def _decimal(value: object, where: str, *, amount: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PlanError(f"{where}: give an amount as a string or an integer, not {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise PlanError(f"{where}: not an amount: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise PlanError(f"{where}: not a non-negative amount: {value!r}")
    if amount and number > 0:
        # What the wire would refuse (more than 8 decimals, too many digits) is refused
        # here: a plan built on it would fail midway, after its first steps moved money.
        try:
            amount_param(number, where)
        except InvalidInputError as exc:
            raise PlanError(str(exc)) from None
    return number


def _share(value: object, where: str) -> Decimal:
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.endswith("%"):
        # A share is no amount: any precision; what it yields is cut to 8 decimals.
        fraction = _decimal(text[:-1].strip(), where, amount=False) / 100
    else:
        fraction = _decimal(text, where, amount=False)
    if fraction > 1:
        raise PlanError(f"{where}: a share is at most 100 %")
    return fraction


def _place(wallet: object, account: object, where: str) -> Place:
    if not isinstance(wallet, str) or wallet.lower() not in _ALIASES:
        raise PlanError(f"{where}: unknown wallet {wallet!r} (spot, funding, margin, usdm, coinm)")
    name = _ALIASES[wallet.lower()]
    if account is None or account == MASTER:
        return Place(MASTER, name)
    if not isinstance(account, str) or "@" not in account:
        raise PlanError(f"{where}: sub_account must be an e-mail, not {account!r}")
    if name not in _SUB_WALLETS:
        raise PlanError(f"{where}: a sub-account's {wallet} is not planned (spot and margin only)")
    return Place(account, name)


def _parse_place(value: object, where: str) -> Place:
    """``"spot"``, ``"usdm"``, ``"desk-1@example.com:spot"``."""
    if not isinstance(value, str):
        raise PlanError(f"{where}: a wallet name, not {value!r}")
    account, _, wallet = value.rpartition(":")
    return _place(wallet, account or None, where)


def load_targets(text: str) -> TargetState:
    """Parse a target file; :class:`PlanError` says what is wrong and where."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"not TOML: {exc}") from None
    default_asset = data.get("asset")
    rows = data.get("target")
    if not isinstance(rows, list) or not rows:
        raise PlanError("declare at least one [[target]]")
    targets: list[Target] = []
    for n, row in enumerate(rows, 1):
        where = f"target {n}"
        if not isinstance(row, dict):
            raise PlanError(f"{where}: a table, not {row!r}")
        unknown = set(row) - _KEYS
        if unknown:
            raise PlanError(f"{where}: unknown keys {sorted(unknown)}")
        asset = row.get("asset", default_asset)
        if not isinstance(asset, str) or not asset.isalnum() or not asset.isupper():
            raise PlanError(f'{where}: give the asset (e.g. asset = "USDT")')
        place = _place(row.get("wallet"), row.get("sub_account"), where)
        target = Target(
            place=place,
            asset=asset,
            at_least=_opt(row, "at_least", where),
            at_most=_opt(row, "at_most", where),
            exactly=_opt(row, "exactly", where),
            keep=_opt(row, "keep", where),
            share=None if "share" not in row else _share(row["share"], f"{where} share"),
        )
        fixed = [k for k in ("exactly", "share") if getattr(target, k) is not None]
        ranged = [k for k in ("at_least", "at_most", "keep") if getattr(target, k) is not None]
        if not fixed and not ranged:
            raise PlanError(f"{where}: give at_least, at_most, exactly, share or keep")
        if len(fixed) > 1 or (fixed and ranged):
            raise PlanError(f"{where}: {' and '.join(fixed + ranged)} contradict each other")
        floor = max((v for v in (target.at_least, target.keep) if v is not None), default=None)
        if floor is not None and target.at_most is not None and floor > target.at_most:
            raise PlanError(f"{where}: at_most is below the floor")
        if any(t.place == place and t.asset == asset for t in targets):
            raise PlanError(f"{where}: {place} already has a target for {asset}")
        targets.append(target)
    raw_sources = data.get("sources")
    if raw_sources is None:
        has_keep = any(t.keep is not None for t in targets)
        sources: tuple[Place, ...] = () if has_keep else (Place(MASTER, "MAIN"),)
    elif isinstance(raw_sources, list):
        sources = tuple(_parse_place(v, "sources") for v in raw_sources)
    else:
        raise PlanError("sources: a list of wallets")
    sink = _parse_place(data.get("sink", "spot"), "sink")
    return TargetState(targets=tuple(targets), sources=sources, sink=sink)


def _opt(row: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    return None if key not in row else _decimal(row[key], f"{where} {key}")


# -- planning -------------------------------------------------------------------


def make_plan(state: TargetState, balances: Mapping[tuple[Place, str], Decimal]) -> Plan:
    """The transfers that bring ``balances`` (by wallet and asset) to ``state``.

    Deficits are filled in the file's order, from money above a ceiling
    first, then from ``keep`` wallets and sources (in the file's order);
    money still above a ceiling goes to the sink. Each move is routed in one
    or two hops (see :func:`route`).
    """
    steps: list[Step] = []
    unmet: list[str] = []
    for asset in state.assets:
        held = {p: balances.get((p, asset), Decimal(0)) for p in state.places()}
        total = sum(held.values(), Decimal(0))
        targets = [t for t in state.targets if t.asset == asset]
        bounds = {t.place: t.bounds(total) for t in targets}
        need: dict[Place, Decimal] = {}
        excess: dict[Place, Decimal] = {}
        for place, (floor, ceiling) in bounds.items():
            if held[place] < floor:
                need[place] = floor - held[place]
            elif ceiling is not None and held[place] > ceiling:
                excess[place] = held[place] - ceiling
        spare: dict[Place, Decimal] = {}
        givers = [t.place for t in targets if t.keep is not None] + list(state.sources)
        for place in givers:
            if place in need or place in excess or place in spare:
                continue
            floor = bounds[place][0] if place in bounds else Decimal(0)
            if held.get(place, Decimal(0)) > floor:
                spare[place] = held[place] - floor
        moves: list[tuple[Place, Place, Decimal]] = []
        for place, missing in need.items():
            for pool in (excess, spare):
                for giver in list(pool):
                    if missing <= 0:
                        break
                    if giver == place:
                        continue
                    amount = min(missing, pool[giver])
                    moves.append((giver, place, amount))
                    missing -= amount
                    pool[giver] -= amount
                    if pool[giver] <= 0:
                        del pool[giver]
            if missing > 0:
                unmet.append(f"{place} needs {missing} {asset} more than the sources can give")
        for giver, amount in excess.items():
            if giver != state.sink:
                moves.append((giver, state.sink, amount))
        for source, target, amount in moves:
            steps += route(source, target, asset, amount)
    snapshot = {
        (p, a): balances.get((p, a), Decimal(0)) for p in state.places() for a in state.assets
    }
    return Plan(steps=coalesce(steps), unmet=tuple(unmet), balances=snapshot)


def coalesce(steps: Sequence[Step]) -> tuple[Step, ...]:
    """Merge steps that send the same asset the same way into one (a universal transfer
    costs UID weight 900 however large).

    Only steps into a final destination merge (a wallet no later step takes
    money from), at the place of the last of them, so that whatever fed any
    part has been sent before.
    """
    sources = {(s.source, s.asset) for s in steps}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for n, step in enumerate(steps):
        if (step.target, step.asset) in sources:
            continue
        key = (step.source, step.target, step.asset, step.kind, tuple(sorted(step.params.items())))
        groups.setdefault(key, []).append(n)
    merged: dict[int, Step] = {}
    dropped: set[int] = set()
    for members in groups.values():
        if len(members) > 1:
            total = sum((steps[n].amount for n in members), Decimal(0))
            merged[members[-1]] = attrs.evolve(steps[members[-1]], amount=total)
            dropped.update(members[:-1])
    return tuple(merged.get(n, step) for n, step in enumerate(steps) if n not in dropped)


def route(source: Place, target: Place, asset: str, amount: Decimal) -> list[Step]:
    """The transfers, one or two, that move ``amount`` from ``source`` to ``target``.

    * master wallet -> master wallet: the universal transfer of that type,
      or two through spot where Binance has no such type (USDⓈ-M -> COIN-M);
    * a sub-account's spot <-> its margin: the sub-account margin transfer;
    * master <-> sub-account: the sub-account universal transfer, through
      the master's spot (Binance's documented scenarios start or end there);
    * sub-account -> another: spot to spot or margin to margin (Binance's
      scenarios), the other wallet of the target reached by a margin transfer.
    """
    if source == target:
        return []
    spot = Place(MASTER, "MAIN")
    if source.is_master and target.is_master:
        kind = f"{source.wallet}_{target.wallet}"
        if kind in TransferType.__members__:
            return [_universal(source, target, asset, amount, kind)]
        return route(source, spot, asset, amount) + route(spot, target, asset, amount)
    if source.account == target.account:  # one sub-account: spot <-> margin
        direction = "1" if source.wallet == "MAIN" else "2"
        params = {"email": source.account, "type": direction}
        return [_step(source, target, asset, amount, "sub_margin", params)]
    if source.is_master and source != spot:
        return route(source, spot, asset, amount) + route(spot, target, asset, amount)
    if target.is_master and target != spot:
        return route(source, spot, asset, amount) + route(spot, target, asset, amount)
    params = {
        "fromAccountType": _SUB_TYPES[source.wallet],
        "toAccountType": _SUB_TYPES[target.wallet],
    }
    if not source.is_master:
        params["fromEmail"] = source.account
    if not target.is_master:
        params["toEmail"] = target.account
    if not source.is_master and not target.is_master and source.wallet != target.wallet:
        # Binance lets sub-accounts exchange spot to spot (or margin to margin) only.
        via = Place(target.account, source.wallet)
        return route(source, via, asset, amount) + route(via, target, asset, amount)
    return [_step(source, target, asset, amount, "sub_transfer", params)]


def _universal(source: Place, target: Place, asset: str, amount: Decimal, kind: str) -> Step:
    return _step(source, target, asset, amount, "universal", {"type": kind})


_ENDPOINT_OF = {
    "universal": "universal_transfer",
    "sub_transfer": "sub_account_transfer",
    "sub_margin": "sub_account_margin_transfer",
}


def _step(
    source: Place, target: Place, asset: str, amount: Decimal, kind: Kind, params: dict[str, str]
) -> Step:
    return Step(
        source=source,
        target=target,
        asset=asset,
        amount=amount,
        kind=kind,
        endpoint=_ENDPOINT_OF[kind],
        params=params,
    )


# -- cost -------------------------------------------------------------------------


def weights(
    steps: Iterable[Step], limits: Limits, account: str, endpoints: EndpointTable = ENDPOINTS
) -> dict[str, int]:
    """Weight (or calls, for rolling caps) each pool gives to ``steps``."""
    out: dict[str, int] = {}
    for step in steps:
        for spec in pools_for(endpoints[step.endpoint], limits, account):
            out[spec.key] = out.get(spec.key, 0) + spec.weight
    return out


def earliest_finish(
    steps: Sequence[Step],
    limits: Limits,
    account: str,
    now: float,
    snapshot: Iterable[PoolSnapshot] = (),
    endpoints: EndpointTable = ENDPOINTS,
) -> float:
    """Binance epoch seconds before which the governor cannot have admitted every step.

    A lower bound: each pool admits its limit per window (fixed, clock-aligned
    windows; rolling caps per period), after what ``snapshot`` shows used now.
    """
    seen = {s.key: s for s in snapshot}
    specs = {
        spec.key: spec
        for step in steps
        for spec in pools_for(endpoints[step.endpoint], limits, account)
    }
    finish = now
    for key, total in weights(steps, limits, account, endpoints).items():
        spec = specs[key]
        pool = seen.get(key)
        used = 0 if pool is None else pool.used
        if used + total <= spec.limit:
            continue
        if spec.kind is PoolKind.CAP:
            # Rolling: the calls past the cap wait a whole period per cap's worth.
            periods = math.ceil((used + total - spec.limit) / spec.limit)
            finish = max(finish, now + periods * spec.period)
            continue
        start = now - now % spec.period
        resets = start + spec.period if pool is None else max(pool.resets_at, now)
        windows = math.ceil((used + total - spec.limit) / spec.limit)
        finish = max(finish, resets + (windows - 1) * spec.period)
    return finish
