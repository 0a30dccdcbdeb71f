"""The ``binance-transfers`` commands (typer + rich)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import attrs
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .._client import Client, _enum_or_name
from .._endpoints import ENDPOINTS
from .._exceptions import BinanceTransfersError, ConfigurationError, OutcomeUnknownError
from .._governor import Governor, PoolSnapshot
from .._journal import EXECUTED, NOT_EXECUTED, OPEN, UNKNOWN, UNSETTLED
from .._limits import PoolKind, PoolSpec, pools_for
from .._models import SubAccountAccountType, TransferType, converter
from .._params import amount_param, asset_param, client_id_param, email_param, symbol_param
from .._reconcile import Settlement
from ._apply import ApplyReport, apply
from ._plan import Plan, PlanError, TargetState, load_targets
from ._read import read_all
from ._settings import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_RETRY,
    EXIT_UNKNOWN,
    SIM_URL,
    Env,
    Settings,
    exit_code,
)
from ._show import amount, costed_plan, print_plan

__all__ = ["app"]

_T = TypeVar("_T")

app = typer.Typer(
    name="binance-transfers",
    help=(
        "Move money between Binance wallets, read balances, plan and apply a rebalance.\n\n"
        "Credentials: BINANCE_API_KEY and BINANCE_API_SECRET, or --key-file (never an argument).\n"
        "Exit codes: 0 done, 1 refused (nothing moved), 2 usage, "
        "3 unknown outcome (look before resending), 4 try again later (nothing sent)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
JournalOption = Annotated[
    Path | None,
    typer.Option("--journal", help="SQLite intent journal (written before each transfer)."),
]


@attrs.define
class _State:
    settings: Settings
    env: Env


@app.callback()
def _main(
    ctx: typer.Context,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="One base URL for every Binance host.")
    ] = None,
    sim: Annotated[
        bool,
        typer.Option(
            "--sim",
            help="Use the simulated exchange (BINANCE_SIM_URL, default http://127.0.0.1:8765; "
            "its demo key unless BINANCE_API_KEY is set).",
        ),
    ] = False,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="TOML file with api_key and api_secret.")
    ] = None,
    recv_window: Annotated[int, typer.Option(help="recvWindow, milliseconds.")] = 5000,
    settle_margin: Annotated[
        float, typer.Option(help="Seconds past recvWindow before Binance's records are read.")
    ] = 60.0,
    time_scale: Annotated[
        float, typer.Option(help="Divide rate-limit windows by this (a simulator's --time-scale).")
    ] = 1.0,
) -> None:
    env = ctx.obj if isinstance(ctx.obj, Env) else Env()
    settings = Settings(
        base_url=base_url,
        sim=sim,
        key_file=key_file,
        recv_window=recv_window,
        settle_margin=settle_margin,
        time_scale=time_scale,
    )
    ctx.obj = _State(settings, env)


def _state(ctx: typer.Context) -> _State:
    state = ctx.obj
    if not isinstance(state, _State):  # pragma: no cover - the callback always runs first
        raise RuntimeError("the CLI's callback did not run")
    return state


def _console(json_out: bool) -> Console:
    # With --json, stdout carries JSON only: everything else goes to stderr.
    return Console(stderr=json_out, highlight=False, soft_wrap=True)


def _run(
    ctx: typer.Context,
    body: Callable[[Client], Awaitable[_T]],
    *,
    journal: Path | None = None,
) -> _T:
    """Run ``body`` with a client, turning errors into messages and exit codes."""
    state = _state(ctx)
    err = Console(stderr=True, highlight=False)
    try:
        kwargs: dict[str, Any] = {}
        if journal is not None:
            kwargs["journal"] = journal
        client = state.env.client_factory(state.settings, **kwargs)
    except BinanceTransfersError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exit_code(exc)) from None

    async def main() -> _T:
        async with client:
            return await body(client)

    try:
        result: _T = state.env.run(main)
    except BinanceTransfersError as exc:
        err.print(f"[red]{type(exc).__name__}:[/] {exc}")
        if isinstance(exc, OutcomeUnknownError):
            err.print(
                "[yellow]The transfer may have happened.[/] Settle it with "
                "`binance-transfers recover --journal ...` or, as sent:",
            )
            err.print(_reconcile_command(exc, journal), markup=False, soft_wrap=True)
        raise typer.Exit(exit_code(exc)) from None
    return result


def _reconcile_command(error: OutcomeUnknownError, journal: Path | None) -> str:
    """The ``reconcile`` command line that settles ``error``, with the parameters as sent."""
    words = ["binance-transfers", "reconcile", "--endpoint", error.endpoint]
    if error.timestamp is not None:
        words += ["--timestamp", str(error.timestamp)]
    for name, value in error.params.items():
        if name not in ("timestamp", "recvWindow", "signature"):
            words += ["--param", f"{name}={value}"]
    if journal is not None:
        words += ["--journal", str(journal)]
    return shlex.join(words)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


_decimal = amount


# -- transfer and history ------------------------------------------------------------


@app.command()
def transfer(
    ctx: typer.Context,
    type: Annotated[
        str, typer.Option("--type", help="Universal transfer type, e.g. MAIN_UMFUTURE.")
    ],
    asset: Annotated[str, typer.Option(help="Asset, e.g. USDT.")],
    amount: Annotated[str, typer.Option(help="Amount, as a decimal string.")],
    from_symbol: Annotated[str | None, typer.Option(help="Isolated-margin source pair.")] = None,
    to_symbol: Annotated[str | None, typer.Option(help="Isolated-margin target pair.")] = None,
    reconcile: Annotated[
        bool, typer.Option(help="On an unknown outcome, wait for Binance's records to settle it.")
    ] = False,
    journal: JournalOption = None,
    json_out: JsonOption = False,
) -> None:
    """Move AMOUNT of ASSET between two of your wallets (user universal transfer)."""

    async def body(client: Client) -> Any:
        return await client.transfer(
            type=type,
            asset=asset,
            amount=amount,
            from_symbol=from_symbol,
            to_symbol=to_symbol,
            on_unknown="reconcile" if reconcile else "raise",
        )

    result = _run(ctx, body, journal=journal)
    if json_out:
        _print_json({"tranId": result.tran_id})
    else:
        _console(False).print(f"transferred {amount} {asset} ({type}): tranId {result.tran_id}")


@app.command()
def history(
    ctx: typer.Context,
    type: Annotated[str, typer.Option("--type", help="Universal transfer type.")],
    days: Annotated[int, typer.Option(min=1, max=180, help="How far back (days).")] = 7,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """The universal transfers of one type, newest first."""

    async def body(client: Client) -> list[Any]:
        end = client.governor.server_clock.now_ms()
        start = end - days * 86_400_000
        rows: list[Any] = []
        # Binance's history takes ranges of at most 30 days per call.
        while end > start and len(rows) < limit:
            chunk = max(start, end - 30 * 86_400_000)
            async for row in client.transfer_history(type=type, start_time=chunk, end_time=end):
                rows.append(row)
                if len(rows) >= limit:
                    break
            end = chunk - 1
        return rows

    rows = _run(ctx, body)
    if json_out:
        _print_json([converter.unstructure(r) for r in rows])
        return
    table = Table("time (UTC)", "tranId", "type", "asset", "amount", "status")
    for r in rows:
        when = datetime.fromtimestamp(r.timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, str(r.tran_id), str(r.type), r.asset, _decimal(r.amount), str(r.status))
    _console(False).print(table)


# -- balances --------------------------------------------------------------------------


@app.command()
def balances(
    ctx: typer.Context,
    asset: Annotated[str | None, typer.Option(help="Only this asset.")] = None,
    subs: Annotated[bool, typer.Option(help="Include the sub-accounts (master only).")] = True,
    json_out: JsonOption = False,
) -> None:
    """One table of every wallet, and of every sub-account's spot and margin."""
    rows = _run(ctx, lambda client: read_all(client, asset=asset, subs=subs))
    if json_out:
        _print_json(
            [
                {
                    "account": r.account,
                    "wallet": r.wallet,
                    "asset": r.asset,
                    "amount": _decimal(r.amount),
                    "free": _decimal(r.free),
                }
                for r in rows
            ]
        )
        return
    table = Table("account", "wallet", "asset", "amount", "free", title="Balances")
    for r in rows:
        table.add_row(r.account, r.wallet, r.asset, _decimal(r.amount), _decimal(r.free))
    _console(False).print(table)


# -- limits ------------------------------------------------------------------------------


def shared_storage(url: str) -> Any:
    """The shared (Redis) budget's storage for ``url``.

    Hook for the Redis-backed :class:`~binance_transfers.Storage` (issue 10):
    it returns that backend's storage once the module is in the package.
    """
    try:
        from .. import _redis  # issue 10's module
    except ImportError:
        raise ConfigurationError(
            "--redis: this build has no shared Redis budget (binance_transfers._redis)"
        ) from None
    factory = getattr(_redis, "storage_from_url", None)
    if factory is None:
        raise ConfigurationError("--redis: binance_transfers._redis has no storage_from_url(url)")
    return factory(url)


def _pools_table(snapshot: Sequence[PoolSnapshot], now: float) -> Table:
    table = Table(
        "pool", "kind", "used / limit", "resets in", "waiters", "frozen for", title="Pools"
    )
    for pool in sorted(snapshot, key=lambda p: p.key):
        frozen = "" if pool.frozen_until is None else f"{max(pool.frozen_until - now, 0):.1f}s"
        table.add_row(
            pool.key,
            pool.kind.value,
            f"{pool.used} / {pool.limit}",
            f"{max(pool.resets_at - now, 0):.1f}s",
            str(pool.waiters),
            frozen,
        )
    return table


@app.command()
def limits(
    ctx: typer.Context,
    watch: Annotated[
        float, typer.Option(help="Refresh the view for this many seconds (0: print once).")
    ] = 0.0,
    probe: Annotated[
        bool,
        typer.Option(help="First read the clock and balances so usage headers fill the pools."),
    ] = True,
    redis: Annotated[
        str | None, typer.Option(help="Show the shared Redis budget at this URL instead.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Every pool the governor knows: used / limit, window reset, waiters, freezes."""
    state = _state(ctx)
    storage: Any = None
    if redis is not None:
        try:
            storage = shared_storage(redis)
        except ConfigurationError as exc:
            Console(stderr=True).print(f"[red]error:[/] {exc}")
            raise typer.Exit(EXIT_REFUSED) from None
        # The probe's weight goes through the shared budget like any process's...
        governor = Governor(state.settings.limits, storage=storage)
    else:
        governor = Governor(state.settings.limits)

    make_client = state.env.client_factory

    def factory(settings: Settings, **kwargs: Any) -> Client:
        return make_client(settings, governor=governor, **kwargs)

    state.env = attrs.evolve(state.env, client_factory=factory)

    async def body(client: Client) -> list[PoolSnapshot]:
        if storage is not None and redis is not None:
            try:
                if probe:
                    await client.server_time()
                    await read_all(client, subs=False)
            finally:
                # ...and what it leased and did not use goes back to the running bots.
                await storage.aclose()
            if watch > 0:
                import anyio

                monotonic = governor.server_clock.clock.monotonic
                ends = monotonic() + watch
                view = await _shared_view(redis, client, governor)
                with Live(_pools_table(view, _now(governor)), transient=False) as live:
                    while monotonic() < ends:
                        await anyio.sleep(min(1.0, max(ends - monotonic(), 0)))
                        view = await _shared_view(redis, client, governor)
                        live.update(_pools_table(view, _now(governor)))
            return await _shared_view(redis, client, governor)
        for endpoint in client.endpoints.values():
            governor.estimate(endpoint, account=client.account)  # every pool, even unused
        if probe:
            await client.server_time()
            await read_all(client, subs=False)
        if watch > 0:
            import anyio

            monotonic = governor.server_clock.clock.monotonic
            ends = monotonic() + watch
            with Live(_pools_table(governor.snapshot(), _now(governor)), transient=False) as live:
                while monotonic() < ends:
                    # A display refreshed once a second: the pools change with every answer.
                    await anyio.sleep(min(1.0, max(ends - monotonic(), 0)))
                    live.update(_pools_table(governor.snapshot(), _now(governor)))
        return list(governor.snapshot())

    snapshot = _run(ctx, body)
    if json_out:
        _print_json(
            [
                {
                    "pool": p.key,
                    "kind": p.kind.value,
                    "used": p.used,
                    "limit": p.limit,
                    "resetsAt": p.resets_at,
                    "waiters": p.waiters,
                    "frozenUntil": p.frozen_until,
                }
                for p in snapshot
            ]
        )
        return
    if watch <= 0:
        _console(False).print(_pools_table(snapshot, _now(governor)))


async def _shared_view(url: str, client: Client, governor: Governor) -> list[PoolSnapshot]:
    """Every pool as the shared budget counts it: what all processes leased in the
    current window (``used``), read from Redis without leasing anything."""
    now = governor.server_clock.now_ms() / 1000
    specs: dict[str, PoolSpec] = {}
    for endpoint in client.endpoints.values():
        for spec in pools_for(endpoint, governor.limits, client.account):
            specs.setdefault(spec.key, spec)
    reader = shared_storage(url)
    try:
        rows = []
        for spec in specs.values():
            window = int(now // spec.period)
            if spec.kind is PoolKind.CAP:
                continue  # rolling caps are counted per process, not in Redis
            used = (await reader.usage(spec, window)).get("total", 0)
            rows.append(
                PoolSnapshot(
                    key=spec.key,
                    kind=spec.kind,
                    limit=spec.limit,
                    used=used,
                    resets_at=(window + 1) * spec.period,
                    waiters=0,  # other processes' queues are not in Redis
                    frozen_until=None,
                )
            )
        return rows
    finally:
        await reader.aclose()


def _now(governor: Governor) -> float:
    return governor.server_clock.now_ms() / 1000


# -- settling ----------------------------------------------------------------------------


def _settlement_json(s: Settlement) -> dict[str, Any]:
    return {
        "endpoint": s.endpoint,
        "executed": s.executed,
        "by": s.by.value,
        "reason": s.reason,
        "tranId": s.tran_id,
        "status": s.status,
        "journalId": s.journal_id,
        "params": dict(s.params),
    }


def _print_settlements(settlements: Sequence[Settlement], json_out: bool) -> int:
    if json_out:
        _print_json([_settlement_json(s) for s in settlements])
    else:
        table = Table("endpoint", "executed", "by", "tranId", "reason", title="Settlements")
        for s in settlements:
            verdict = {True: "yes", False: "no", None: "[yellow]unknown[/]"}[s.executed]
            table.add_row(s.endpoint, verdict, s.by.value, str(s.tran_id or ""), s.reason)
        _console(False).print(table)
    return EXIT_UNKNOWN if any(s.executed is None for s in settlements) else EXIT_OK


#: How each parameter a transfer sends is checked and written on the wire (as the
#: client's own methods do): a parameter given to ``reconcile`` as it was typed at
#: ``transfer`` (``usdt``) is compared with Binance's records as it was sent (``USDT``).
_WIRE: dict[str, Callable[[str, str], str]] = {
    "asset": asset_param,
    "amount": amount_param,
    "email": email_param,
    "fromEmail": email_param,
    "toEmail": email_param,
    "fromSymbol": symbol_param,
    "toSymbol": symbol_param,
    "symbol": symbol_param,
    "clientTranId": client_id_param,
    "fromAccountType": lambda v, n: _enum_or_name(SubAccountAccountType, v, n),
    "toAccountType": lambda v, n: _enum_or_name(SubAccountAccountType, v, n),
}
#: The names each endpoint with a history sends: anything else is a typo.
_NAMES = {
    "universal_transfer": {"type", "asset", "amount", "fromSymbol", "toSymbol"},
    "sub_account_transfer": {
        "fromEmail",
        "toEmail",
        "fromAccountType",
        "toAccountType",
        "clientTranId",
        "symbol",
        "asset",
        "amount",
    },
}


def _wire_params(endpoint: str, given: Sequence[str]) -> dict[str, str]:
    """``--param NAME=VALUE``s as the client would have sent them, or a usage error (exit 2)."""
    params: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"{item!r}: give NAME=VALUE", param_hint="--param")
        known = _NAMES.get(endpoint)
        if known is not None and name not in known:
            raise typer.BadParameter(
                f"{name!r} is not sent by {endpoint} ({', '.join(sorted(known))})",
                param_hint="--param",
            )
        if name in params:
            raise typer.BadParameter(f"{name!r} given twice", param_hint="--param")
        check = _WIRE.get(name)
        if endpoint == "universal_transfer" and name == "type":
            check = lambda v, n: _enum_or_name(TransferType, v, n)  # noqa: E731
        try:
            params[name] = check(value, name) if check is not None else value
        except BinanceTransfersError as exc:
            raise typer.BadParameter(str(exc), param_hint="--param") from None
    return params


async def _reconcile_claimed(
    client: Client, error: OutcomeUnknownError, recv_window: int
) -> Settlement:
    """Settle ``error`` against every transfer the journal already knows the owner of.

    Each ``reconcile`` is a new process: without the journal's claims, two requests
    matching one history row would each be settled "executed" by that row. The
    verdict is written back, so the next run will not give the same row away.
    """
    journal = client.journal
    if journal is None:  # pragma: no cover - the command always gives one
        return await client.reconcile(error)
    # Rows whose transfer is known: claimed, as recover() treats them.
    claimed = client._reconciler.claimed
    for tran_id in await journal.claimed():
        claimed.setdefault(tran_id, None)
    own = [
        row
        for row in await journal.rows()
        if row.endpoint == error.endpoint
        and row.timestamp == error.timestamp
        and row.state in (OPEN, UNKNOWN, UNSETTLED)
    ]
    if len(own) == 1:  # `transfer --journal` wrote this very request: settle its row
        error.journal_id, error.journal_path = own[0].id, journal.path
        return await client.reconcile(error)
    settlement = await client.reconcile(error)
    if settlement.executed is not None and error.timestamp is not None:
        row = await journal.open(
            error.endpoint, sorted(error.params.items()), recv_window, error.timestamp
        )
        state = EXECUTED if settlement.executed else NOT_EXECUTED
        journal.outcome(
            row,
            state,
            timestamp=error.timestamp,
            tran_id=settlement.tran_id,
            note=f"reconcile: {settlement.reason}",
        )
        await journal.flush()
    return settlement


@app.command()
def reconcile(
    ctx: typer.Context,
    endpoint: Annotated[
        str, typer.Option(help="Endpoint name, e.g. universal_transfer or sub_account_transfer.")
    ],
    timestamp: Annotated[int, typer.Option(help="The request's timestamp (epoch ms).")],
    param: Annotated[list[str], typer.Option(help="A parameter sent, NAME=VALUE (repeat).")],
    journal: Annotated[
        Path,
        typer.Option(
            "--journal",
            help="Intent journal: transfers it knows are never claimed twice, and the "
            "verdict is kept there (the one `transfer --journal` and `apply` write).",
        ),
    ] = Path("binance-transfers.journal"),
    json_out: JsonOption = False,
) -> None:
    """Settle one transfer whose outcome is unknown, from Binance's records."""
    if endpoint not in ENDPOINTS or not ENDPOINTS[endpoint].mutating:
        Console(stderr=True).print(f"[red]error:[/] {endpoint!r} is not a transfer endpoint")
        raise typer.Exit(EXIT_REFUSED)
    params = _wire_params(endpoint, param)
    error = OutcomeUnknownError(
        "given on the command line", endpoint=endpoint, params=params, timestamp=timestamp
    )
    window = _state(ctx).settings.recv_window
    settlement = _run(
        ctx, lambda client: _reconcile_claimed(client, error, window), journal=journal
    )
    raise typer.Exit(_print_settlements([settlement], json_out))


@app.command()
def recover(
    ctx: typer.Context,
    journal: Annotated[Path, typer.Option("--journal", help="The intent journal to settle.")],
    json_out: JsonOption = False,
) -> None:
    """Settle everything a journal left open (a crash, an interrupted apply)."""
    if not journal.exists():
        Console(stderr=True).print(f"[red]error:[/] no journal at {journal}")
        raise typer.Exit(EXIT_REFUSED)
    settlements = _run(ctx, lambda client: client.recover(), journal=journal)
    raise typer.Exit(_print_settlements(settlements, json_out))


# -- plan and apply ------------------------------------------------------------------------


def _targets(file: Path) -> TargetState:
    try:
        return load_targets(file.read_text())
    except (OSError, PlanError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {file}: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None


def _plan_json(plan: Plan, cost: dict[str, int], finish: float) -> dict[str, Any]:
    return {
        "converged": plan.converged,
        "steps": [
            {
                "from": str(s.source),
                "to": str(s.target),
                "asset": s.asset,
                "amount": _decimal(s.amount),
                "endpoint": s.endpoint,
                "params": dict(s.params),
            }
            for s in plan.steps
        ],
        "unmet": list(plan.unmet),
        "weight": cost,
        "earliestFinish": datetime.fromtimestamp(finish, UTC).isoformat(),
    }


@app.command()
def plan(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="TOML file declaring the target state.")],
    json_out: JsonOption = False,
) -> None:
    """Print the transfers that reach FILE's state: amounts, routes, weight, earliest finish.

    Nothing is sent.
    """
    state = _targets(file)
    costed = _run(ctx, lambda client: costed_plan(client, state))
    if json_out:
        _print_json(_plan_json(costed.plan, costed.weight, costed.finish))
    else:
        print_plan(_console(False), costed, f"Plan for {file}")
    raise typer.Exit(EXIT_REFUSED if costed.plan.unmet else EXIT_OK)


@app.command(name="apply")
def apply_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="TOML file declaring the target state.")],
    journal: Annotated[
        Path,
        typer.Option("--journal", help="Intent journal (resumes what an earlier run left open)."),
    ] = Path("binance-transfers.journal"),
    pending_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for PENDING transfers before planning again.")
    ] = 300.0,
    json_out: JsonOption = False,
) -> None:
    """Execute FILE's plan through the intent journal; resumable, and idempotent once reached."""
    state = _targets(file)
    console = _console(json_out)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    )
    task = progress.add_task("planning", total=None)

    def show(report: ApplyReport) -> None:
        progress.update(
            task,
            total=report.total,
            completed=report.done,
            description=(
                f"done {report.done} · waiting {report.waiting} · unknown {report.unknown}"
            ),
        )

    async def body(client: Client) -> ApplyReport:
        with progress:
            return await apply(client, state, pending_timeout=pending_timeout, on_progress=show)

    report = _run(ctx, body, journal=journal)
    code = EXIT_OK
    if report.unsettled:
        code = EXIT_UNKNOWN
    elif report.error is not None:
        # Stopped by a refusal: "nothing moved" (its own code) only if nothing was sent.
        code = exit_code(report.error)
    elif report.pending:
        code = EXIT_RETRY
    elif report.unmet:
        code = EXIT_REFUSED
    if code in (EXIT_REFUSED, EXIT_RETRY) and report.sent:
        # Those codes promise that nothing moved; this run moved money and stopped midway.
        code = EXIT_UNKNOWN
    if json_out:
        _print_json(
            {
                "done": report.done,
                "unknown": report.unknown,
                "sent": [
                    {
                        "from": str(s.source),
                        "to": str(s.target),
                        "amount": _decimal(s.amount),
                        "asset": s.asset,
                    }
                    for s in report.sent
                ],
                "settled": [_settlement_json(s) for s in report.settled],
                "unsettled": report.unsettled,
                "failed": report.failed,
                "unmet": list(report.unmet),
                "pending": report.pending,
                "converged": code == EXIT_OK,
            }
        )
    else:
        for line in report.unsettled:
            console.print(f"[red]needs attention:[/] {line}")
        for line in report.failed:
            console.print(f"[red]stopped:[/] {line}")
        if code != EXIT_OK:
            for s in report.sent:
                console.print(f"sent: {s.route} {_decimal(s.amount)} {s.asset}")
        for line in report.unmet:
            console.print(f"[red]cannot reach:[/] {line}")
        for line in report.pending:
            console.print(f"[yellow]still pending, run again later:[/] {line}")
        if code == EXIT_OK:
            console.print(f"Converged: {report.done} transfer(s) sent.")
    raise typer.Exit(code)


# -- the simulator -------------------------------------------------------------------------


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def sim(ctx: typer.Context) -> None:
    """Serve the simulated exchange (options as `python -m binance_transfers.sim --help`)."""
    from ..sim.__main__ import main as sim_main

    args = list(ctx.args)
    if not any(a == "--port" or a.startswith("--port=") for a in args):
        args = ["--port", SIM_URL.rsplit(":", 1)[1], *args]  # where --sim looks
    raise typer.Exit(sim_main(args))
