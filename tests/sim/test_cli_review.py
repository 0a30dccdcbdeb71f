"""Regression tests for the CLI's review findings (breaker R-3..R-10, B-5, B-6).

Each test is the review's failing test, copied as written (only imports merged).
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import looptime
import pytest
import redis
from typer.testing import CliRunner

from binance_transfers import BinanceAPIError, Client, InvalidInputError, LoopClock, RedisStorage
from binance_transfers._redis_server import RedisServer
from binance_transfers.cli._app import app
from binance_transfers.cli._apply import apply
from binance_transfers.cli._plan import PlanError, load_targets
from binance_transfers.cli._settings import EXIT_OK, EXIT_UNKNOWN, Env, Settings
from binance_transfers.sim import Fault, SimulatedExchange

from .conftest import EPOCH, fake_time
from .test_cli_app import invoke


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`reconcile` keeps its verdicts in ./binance-transfers.journal by default: not in the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


def _exchange() -> SimulatedExchange:
    sim = SimulatedExchange()
    sim.add_demo_account()
    return sim


def vouch_fresh(server: RedisServer) -> None:
    """Say of the test's new Redis what whoever started it would say: it holds the
    whole budget. A Redis with no budget at all may be one restarted empty, so new
    leases stop for a window or two (minutes with 60-s windows): not what these test."""

    async def connect_fresh() -> None:
        await (await RedisStorage.connect(server.url, fresh=True)).aclose()

    anyio.run(connect_fresh)


def test_breaker3_limits_redis_gives_back_what_it_leased(server: RedisServer) -> None:
    """`limits --redis URL` is a read-only view for an operator. It must not take
    the running bots' budget: once it exits, Redis must hold no more for it than
    it actually sent. It leases a quarter of every pool (current and next window)
    and never gives it back (the storage is never closed)."""
    vouch_fresh(server)
    sim = _exchange()
    result = invoke(sim, "limits", "--redis", server.url, "--json")
    assert result.exit_code == EXIT_OK, result.output
    sent = sum(sim.ledger.window_weights("api-ip").values())
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        leased = {
            key: int(client.hget(key, "t") or 0)
            for key in client.scan_iter("{binance_transfers}:ip:default:api-ip:*")
        }
    finally:
        client.close()
    assert leased, "the probe should have gone through Redis"
    # No window holds more than was sent. (Changed from the review's "the sum over
    # windows <= sent": a probe answered near a window's boundary may have landed in
    # either window, and the governor counts it in both until they end. Still fails
    # on the old code, which left 3000 + 1500 leased.)
    assert max(leased.values()) <= sent, (leased, sent)
    assert sum(leased.values()) <= 2 * sent, (leased, sent)


def test_breaker3_limits_redis_shows_an_untouched_budget_as_unused(server: RedisServer) -> None:
    """A fresh Redis, nobody has sent anything: `limits --redis --no-probe` must
    show every pool with 0 used. It shows every pool used == limit (the governor's
    snapshot counts capacity not leased *to this process* as used)."""
    sim = _exchange()
    result = invoke(sim, "limits", "--redis", server.url, "--json", "--no-probe")
    assert result.exit_code == EXIT_OK, result.output
    pools = json.loads(result.stdout)
    full = [(p["pool"], p["used"], p["limit"]) for p in pools if p["used"]]
    assert full == [], full[:5]
    assert len(sim.ledger) == 0


TWO_STEPS = """
asset = "USDT"

[[target]]
wallet = "usdm"
at_least = "150000"

[[target]]
wallet = "funding"
at_least = "20000.000000001"
"""


def test_breaker3_a_target_with_nine_decimals_is_refused_at_load() -> None:
    """An amount Binance cannot take (9 decimals) must be a PlanError when the file
    is read, before any balance is read (weight spent) or anything is sent."""
    with pytest.raises(PlanError):
        load_targets(TWO_STEPS)


async def test_breaker3_apply_does_not_half_apply_a_plan_it_cannot_finish(tmp_path: Path) -> None:
    """apply sends the usdm step, then dies on the 9-decimal funding step
    (InvalidInputError, uncaught): the plan is left half applied. A step
    that cannot be sent must be found before the first one is sent (or the
    file refused when read)."""
    sim = _exchange()
    demo = sim.demo_account
    assert demo is not None
    try:
        state = load_targets(TWO_STEPS)
    except PlanError:
        return  # refused when read: nothing read, nothing sent
    async with sim.client(demo, journal=tmp_path / "j.sqlite") as client:
        with contextlib.suppress(InvalidInputError):
            await apply(client, state)
    assert sim.ledger.times_executed("universal_transfer") == 0, "half applied"
    assert demo.balance("USDT", "UMFUTURE") == Decimal(100000)


def _reconcile(sim: SimulatedExchange, timestamp: int, *params: str) -> tuple[int, list[Any]]:
    args = ["--settle-margin", "0", "reconcile", "--endpoint", "universal_transfer"]
    args += ["--timestamp", str(timestamp), "--json"]
    for param in params:
        args += ["--param", param]
    result = invoke(sim, *args)
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else []


def test_breaker3_two_reconciles_do_not_both_claim_one_transfer() -> None:
    """One 5 USDT transfer executed (tranId N). An operator has two unknown outcomes
    of that same transfer (a resend after a timeout, 500 ms later) and settles both
    with `binance-transfers reconcile`. Only one of them executed, but each
    invocation starts with no claims (the command has no journal), so both are
    settled "executed" with the same tranId: the operator believes 10 USDT moved."""
    sim = _exchange()
    sent = invoke(sim, "transfer", "--type", "MAIN_UMFUTURE", "--asset", "USDT", "--amount", "5")
    assert sent.exit_code == EXIT_OK, sent.output
    (row,) = sim.ledger.executions("universal_transfer")
    first = int(row.params["timestamp"])
    params = ("type=MAIN_UMFUTURE", "asset=USDT", "amount=5")
    verdicts = [_reconcile(sim, ts, *params) for ts in (first, first + 500)]
    claimed = [v[0]["tranId"] for _, v in verdicts if v and v[0]["executed"]]
    assert sim.ledger.times_executed("universal_transfer") == 1
    assert len(claimed) <= 1, verdicts


def test_breaker3_reconcile_refuses_a_malformed_param() -> None:
    """`--param amount5` (no '=') is silently dropped; the verdict is then "unknown"
    with exit 3 ("money may have moved, look before resending") for what is a typo.
    It must be a usage error (2) or a refusal (1), naming the bad parameter."""
    sim = _exchange()
    code, _ = _reconcile(sim, 1_796_000_000_000, "type=MAIN_UMFUTURE", "asset=USDT", "amount5")
    assert code in (1, 2), code
    assert len(sim.ledger) == 0


# USDⓈ-M -> COIN-M has no universal transfer type: the route goes through spot.
HOP_TARGETS = """
asset = "USDT"
sources = ["usdm"]

[[target]]
wallet = "coinm"
at_least = "5000"
"""


@fake_time
async def test_breaker3_second_hop_waits_for_the_first_hops_pending_credit(tmp_path: Path) -> None:
    """Spot is empty; the plan is usdm -> spot -> coinm. The first hop stays PENDING
    30 s (debited from usdm, not yet credited to spot). apply sends the second hop at
    once: Binance refuses it (spot has nothing), apply raises BinanceAPIError (the
    CLI's exit 1, "refused, nothing moved", though 5,000 USDT left usdm). The
    second hop depends on the first one's money: it must be sent after the credit."""
    exchange = SimulatedExchange(clock=LoopClock(epoch=EPOCH))
    account = exchange.add_account(
        "hops@sim.invalid",
        balances={"MAIN": {"USDT": "0"}, "UMFUTURE": {"USDT": "20000"}, "CMFUTURE": {"BTC": "1"}},
    )
    exchange.faults.add(Fault.pending(30.0), endpoint="universal_transfer", times=1)
    raised: BinanceAPIError | None = None
    async with exchange.client(account, journal=tmp_path / "j.sqlite") as client:
        try:
            report = await apply(client, load_targets(HOP_TARGETS))
        except BinanceAPIError as error:
            raised = error
    refused = [
        e.params.get("type")
        for e in exchange.ledger.entries("universal_transfer")
        if e.status is not None and e.status >= 400
    ]
    assert raised is None and refused == [], (raised, refused)
    assert not report.unsettled and not report.pending, report
    assert account.balance("USDT", "CMFUTURE") == Decimal(5000)
    assert exchange.ledger.times_executed("universal_transfer") == 2


SPOT_TARGETS = """
asset = "USDT"

[[target]]
wallet = "usdm"
at_least = "150000"

[[target]]
wallet = "spot"
keep = "1000"
"""


@looptime.enabled(strict=True)
async def test_breaker2_two_overlapping_applies_do_not_fill_one_deficit_twice(
    tmp_path: Path,
) -> None:
    """``apply`` is sold as idempotent ("running apply again sends nothing"), so it goes
    into cron; a slow run overlaps the next one. Both read the same balances, both plan
    the same 50,000 USDT for USD-M, both send it: 100,000 moved for one deficit. Nothing
    stops a second run on the same account and journal (the journal says one process at
    a time per file, but nothing enforces it)."""
    exchange = SimulatedExchange()
    account = exchange.add_demo_account()
    state = load_targets(SPOT_TARGETS)
    journal = tmp_path / "j.sqlite"

    async def run() -> None:
        async with exchange.client(journal=journal) as client:
            await apply(client, state)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        group.start_soon(run)
    assert account.balance("USDT", "UMFUTURE") == Decimal(150000)


def _invoke(exchange: SimulatedExchange, *args: str) -> Any:
    """The CLI, its clients wired to ``exchange`` in-process (as tests/sim/test_cli_app.py)."""

    def factory(settings: Settings, **kwargs: Any) -> Client:
        kwargs.setdefault("recv_window", settings.recv_window)
        kwargs.setdefault("settle_margin", settings.settle_margin)
        return exchange.client(**kwargs)

    return CliRunner().invoke(app, list(args), obj=Env(client_factory=factory))


def test_breaker2_cli_reconcile_finds_a_transfer_given_as_it_was_typed() -> None:
    """``transfer --asset usdt`` works (the asset is upper-cased before sending). Its answer is
    lost: the CLI says "settle it with ... reconcile". The user passes what they typed,
    ``--param asset=usdt``: reconcile compares the history's ``USDT`` with ``usdt``, finds
    nothing, and answers executed = false, "safe to send again", for a transfer that moved
    the money. Sending again moves it twice. The command's parameters are never normalised
    as the transfer's were (nor is ``type``)."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    fast = ("--recv-window", "300", "--settle-margin", "0.05")
    sent = _invoke(
        exchange, *fast, "transfer", "--type", "MAIN_UMFUTURE", "--asset", "usdt", "--amount", "7"
    )
    assert sent.exit_code == EXIT_UNKNOWN, sent.output
    (executed,) = exchange.ledger.executed("universal_transfer")
    assert executed.timestamp is not None
    settled = _invoke(
        exchange,
        *fast,
        "reconcile",
        "--endpoint",
        "universal_transfer",
        "--timestamp",
        str(executed.timestamp),  # the exact one: more than a user could know
        "--param",
        "type=MAIN_UMFUTURE",
        "--param",
        "asset=usdt",
        "--param",
        "amount=7",
        "--json",
    )
    assert settled.exit_code == EXIT_OK, settled.output
    (verdict,) = json.loads(settled.stdout)
    assert verdict["executed"] is True, verdict


# -- the fixes' own tests (beyond the review's) ---------------------------------------------

BOTH = TWO_STEPS.replace("20000.000000001", "20000")


def test_a_share_may_be_finer_than_an_amount() -> None:
    """Only amounts are held to Binance's 8 decimals: a share is cut to them when planned."""
    state = load_targets('asset = "USDT"\n[[target]]\nwallet = "usdm"\nshare = "33.3333333333%"\n')
    assert state.targets[0].share == Decimal("0.333333333333")


@pytest.mark.parametrize("amount", ["1.123456789", "1e-9", "123456789012345678901"])
def test_amounts_the_wire_refuses_are_refused_at_load(amount: str) -> None:
    with pytest.raises(PlanError, match="at_least"):
        load_targets(f'asset = "USDT"\n[[target]]\nwallet = "usdm"\nat_least = "{amount}"\n')


@looptime.enabled(strict=True)
async def test_a_refusal_midway_reports_what_was_sent() -> None:
    """The first step is sent; then spot's money goes elsewhere and Binance refuses the
    second (-5013): apply returns (no exception) with the first step in ``sent`` and the
    refusal in ``error``."""
    exchange = SimulatedExchange()
    account = exchange.add_demo_account()

    def after(report: Any) -> None:
        if report.done == 1 and report.error is None:
            account.deposit("USDT", -account.balance("USDT", "MAIN"))

    async with exchange.client() as client:
        report = await apply(client, load_targets(BOTH), on_progress=after)
    assert exchange.ledger.times_executed("universal_transfer") == 1
    assert [s.amount for s in report.sent] == [Decimal(50000)], report
    assert report.error is not None and report.failed, report
    assert account.balance("USDT", "UMFUTURE") == Decimal(150000)


def test_cli_apply_stopped_after_a_hop_exits_unknown_and_says_what_moved(tmp_path: Path) -> None:
    """The route's first hop stays PENDING past --pending-timeout: apply stops before the
    second hop. Money is in flight, so the exit code is 3 (look), never 1 or 4 (nothing
    sent), and the JSON lists the hop that was sent."""
    exchange = SimulatedExchange()
    exchange.demo_account = exchange.add_account(
        "hops@sim.invalid",
        balances={"MAIN": {"USDT": "0"}, "UMFUTURE": {"USDT": "20000"}, "CMFUTURE": {"BTC": "1"}},
    )
    exchange.faults.add(Fault.pending(30.0), endpoint="universal_transfer", times=1)
    targets = tmp_path / "t.toml"
    targets.write_text(HOP_TARGETS)
    result = _invoke(
        exchange,
        "apply",
        str(targets),
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--pending-timeout",
        "0",
        "--json",
    )
    assert result.exit_code == EXIT_UNKNOWN, result.output
    out = json.loads(result.stdout)
    assert [(s["from"], s["to"]) for s in out["sent"]] == [("master:UMFUTURE", "master:MAIN")], out
    assert out["pending"] and exchange.ledger.times_executed("universal_transfer") == 1


def test_reconcile_refuses_a_name_the_endpoint_never_sends() -> None:
    """A misspelt name (``amout``) is a usage error, before anything is read."""
    sim = _exchange()
    code, _ = _reconcile(sim, 1_796_000_000_000, "type=MAIN_UMFUTURE", "asset=USDT", "amout=5")
    assert code == 2
    assert len(sim.ledger) == 0


def test_reconcile_settles_the_row_transfer_journaled(tmp_path: Path) -> None:
    """`transfer --journal J` loses its answer; `reconcile --journal J` settles that very
    row (executed, with its tranId), so `recover --journal J` finds nothing left open and
    a later reconcile of another request cannot take the same tranId."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    fast = ("--recv-window", "300", "--settle-margin", "0.05")
    journal = str(tmp_path / "j.sqlite")
    args = ("--type", "MAIN_UMFUTURE", "--asset", "USDT", "--amount", "7", "--journal", journal)
    sent = _invoke(exchange, *fast, "transfer", *args)
    assert sent.exit_code == EXIT_UNKNOWN, sent.output
    (executed,) = exchange.ledger.executed("universal_transfer")
    assert executed.timestamp is not None

    def reconcile(timestamp: int) -> Any:
        result = _invoke(
            exchange,
            *fast,
            "reconcile",
            "--endpoint",
            "universal_transfer",
            "--timestamp",
            str(timestamp),
            "--param",
            "type=MAIN_UMFUTURE",
            "--param",
            "asset=USDT",
            "--param",
            "amount=7",
            "--journal",
            journal,
            "--json",
        )
        return result.exit_code, json.loads(result.stdout)[0]

    code, verdict = reconcile(executed.timestamp)
    assert (code, verdict["executed"], verdict["journalId"]) == (EXIT_OK, True, 1), verdict
    recovered = _invoke(exchange, *fast, "recover", "--journal", journal, "--json")
    assert (recovered.exit_code, json.loads(recovered.stdout)) == (EXIT_OK, [])
    _, other = reconcile(executed.timestamp + 300)
    assert other["executed"] is not True, other


def test_limits_redis_shows_what_the_probe_sent(server: RedisServer) -> None:
    """After the probe, the shared view's api-ip pool shows what was sent, not a lease."""
    vouch_fresh(server)
    sim = _exchange()
    result = invoke(sim, "limits", "--redis", server.url, "--json")
    assert result.exit_code == EXIT_OK, result.output
    sent = sum(sim.ledger.window_weights("api-ip").values())
    used = [p["used"] for p in json.loads(result.stdout) if p["pool"] == "api-ip"]
    # What was sent, not a lease (the old view showed 3002); 0 if the window turned since.
    assert sent > 0 and len(used) == 1 and used[0] in (0, sent), (used, sent)


def test_an_unknown_transfer_prints_the_reconcile_command_that_settles_it(tmp_path: Path) -> None:
    """The user need not guess the timestamp or how the parameters were sent: the
    printed command, run as printed, settles the transfer (executed)."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    fast = ["--recv-window", "300", "--settle-margin", "0.05"]
    journal = str(tmp_path / "j.sqlite")
    args = ["--type", "MAIN_UMFUTURE", "--asset", "usdt", "--amount", "7", "--journal", journal]
    sent = _invoke(exchange, *fast, "transfer", *args)
    assert sent.exit_code == EXIT_UNKNOWN, sent.output
    (line,) = [w for w in sent.stderr.splitlines() if w.startswith("binance-transfers reconcile")]
    (executed,) = exchange.ledger.executed("universal_transfer")
    assert f"--timestamp {executed.timestamp}" in line and "asset=USDT" in line, line
    settled = _invoke(exchange, *fast, *shlex.split(line)[1:], "--json")
    assert settled.exit_code == EXIT_OK, settled.output
    assert json.loads(settled.stdout)[0]["executed"] is True
