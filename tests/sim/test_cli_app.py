"""The ``binance-transfers`` CLI driven in-process (typer's CliRunner) against the simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from binance_transfers import Client
from binance_transfers.cli._app import app
from binance_transfers.cli._settings import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNKNOWN,
    Env,
    Settings,
)
from binance_transfers.sim import Account, Fault, SimulatedExchange

from ..conftest import demo_exchange

DESK = "desk-1@sim.invalid"
SECRET_MARK = "TopSecretValue0000000000000000000000000000000000000000000000000"

TARGETS = """
asset = "USDT"

[[target]]
wallet = "usdm"
at_least = "150000"

[[target]]
wallet = "spot"
keep = "1000"

[[target]]
sub_account = "desk-1@sim.invalid"
wallet = "margin"
exactly = "4000"

[[target]]
sub_account = "desk-2@sim.invalid"
wallet = "spot"
at_most = "6000"
"""


@pytest.fixture
def exchange() -> SimulatedExchange:
    """The demo exchange (tests/sim's own ``exchange`` has no demo account)."""
    return demo_exchange()


@pytest.fixture
def demo(exchange: SimulatedExchange) -> Account:
    account = exchange.demo_account
    assert account is not None
    return account


def invoke(exchange: SimulatedExchange, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run the CLI with its clients wired to ``exchange`` in-process."""

    def factory(settings: Settings, **kwargs: Any) -> Client:
        kwargs.setdefault("recv_window", settings.recv_window)
        kwargs.setdefault("settle_margin", settings.settle_margin)
        return exchange.client(**kwargs)

    runner = CliRunner()
    return runner.invoke(app, list(args), obj=Env(client_factory=factory), env=env)


def write(tmp_path: Path, text: str = TARGETS) -> str:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    return str(path)


def moved(exchange: SimulatedExchange) -> int:
    """Requests that executed and may change state (transfers, not reads)."""
    return sum(1 for e in exchange.ledger if e.executed and e.changes)


def test_balances_json_is_one_table_across_wallets_and_sub_accounts(
    exchange: SimulatedExchange, demo: Account
) -> None:
    """balances --json lists the master's wallets and each sub-account's, as the sim holds them."""
    result = invoke(exchange, "balances", "--asset", "USDT", "--json")
    assert result.exit_code == EXIT_OK, result.output
    rows = {(r["account"], r["wallet"]): Decimal(r["amount"]) for r in json.loads(result.stdout)}
    assert rows[("master", "UMFUTURE")] == demo.balance("USDT", "UMFUTURE")
    assert rows[("master", "MAIN")] == demo.balance("USDT")
    assert rows[(DESK, "MARGIN")] == demo.sub_accounts[DESK].balance("USDT", "MARGIN")
    assert rows[("desk-2@sim.invalid", "MAIN")] == Decimal(10000)


def test_plan_prints_transfers_and_sends_nothing(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """plan --json: the moves, routes and weights; the exchange executed no transfer."""
    result = invoke(exchange, "plan", write(tmp_path), "--json")
    assert result.exit_code == EXIT_OK, result.output
    plan = json.loads(result.stdout)
    net: dict[str, Decimal] = {}
    for step in plan["steps"]:
        net[step["from"]] = net.get(step["from"], Decimal(0)) - Decimal(step["amount"])
        net[step["to"]] = net.get(step["to"], Decimal(0)) + Decimal(step["amount"])
    assert net["master:UMFUTURE"] == Decimal(50000)
    assert net[f"{DESK}:MARGIN"] == Decimal(3000)
    assert net["desk-2@sim.invalid:MAIN"] == Decimal(-4000)  # its excess goes first
    assert net["master:MAIN"] == Decimal(-49000)
    universal = [w for k, w in plan["weight"].items() if k.endswith("POST /sapi/v1/asset/transfer")]
    assert universal == [900]  # one universal transfer: UID weight 900
    assert not plan["converged"]
    assert moved(exchange) == 0


def test_plan_that_cannot_be_met_is_refused(exchange: SimulatedExchange, tmp_path: Path) -> None:
    """More than the sources hold: exit 1 and the reason, nothing sent."""
    text = '[[target]]\nasset = "USDT"\nwallet = "usdm"\nat_least = "99999999"\n'
    result = invoke(exchange, "plan", write(tmp_path, text))
    assert result.exit_code == EXIT_REFUSED
    assert "cannot reach" in result.output
    assert moved(exchange) == 0


def test_a_bad_target_file_is_refused_before_anything_is_read(
    exchange: SimulatedExchange, tmp_path: Path
) -> None:
    """A target file with an unknown wallet: exit 1 with where, no request at all."""
    result = invoke(
        exchange, "plan", write(tmp_path, '[[target]]\nasset="USDT"\nwallet="bank"\nat_least="1"\n')
    )
    assert result.exit_code == EXIT_REFUSED
    assert "unknown wallet" in result.output
    assert len(exchange.ledger) == 0


def test_apply_reaches_the_state_and_a_rerun_sends_nothing(
    exchange: SimulatedExchange, demo: Account, tmp_path: Path
) -> None:
    """apply converges (balances as declared); applying again sends nothing."""
    targets = write(tmp_path)
    journal = str(tmp_path / "j.sqlite")
    first = invoke(exchange, "apply", targets, "--journal", journal, "--json")
    assert first.exit_code == EXIT_OK, first.output
    assert json.loads(first.stdout)["converged"]
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)
    assert demo.sub_accounts[DESK].balance("USDT", "MARGIN") == Decimal(4000)
    assert demo.sub_accounts["desk-2@sim.invalid"].balance("USDT") == Decimal(6000)
    assert demo.balance("USDT") >= Decimal(1000)
    sent = moved(exchange)
    again = invoke(exchange, "apply", targets, "--journal", journal, "--json")
    assert again.exit_code == EXIT_OK, again.output
    assert json.loads(again.stdout)["sent"] == []
    assert moved(exchange) == sent
    assert exchange.ledger.duplicates() == []


def test_apply_settles_an_unknown_outcome_before_going_on(
    exchange: SimulatedExchange, demo: Account, tmp_path: Path
) -> None:
    """A transfer whose answer is lost (executed) is settled from the history, never resent."""
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    result = invoke(
        exchange,
        "--recv-window",
        "300",
        "--settle-margin",
        "0.05",
        "apply",
        write(tmp_path),
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--json",
    )
    assert result.exit_code == EXIT_OK, result.output
    dropped = exchange.ledger.executed("universal_transfer")[0]
    assert dropped.status is None  # its answer never came back
    assert exchange.ledger.times_executed("universal_transfer", **dict(dropped.params)) == 1
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)
    assert exchange.ledger.duplicates() == []


def test_apply_after_an_interrupted_run_settles_the_journal_first(
    exchange: SimulatedExchange, demo: Account, tmp_path: Path
) -> None:
    """A run cut off with an unknown outcome in its journal: the next apply settles it, then
    plans from the balances, so the executed transfer is not sent again."""
    journal = str(tmp_path / "j.sqlite")
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    cut = invoke(
        exchange,
        "--recv-window",
        "300",
        "transfer",
        "--type",
        "MAIN_UMFUTURE",
        "--asset",
        "USDT",
        "--amount",
        "50000",
        "--journal",
        journal,
    )
    assert cut.exit_code == EXIT_UNKNOWN, cut.output
    assert "may have happened" in cut.output
    resumed = invoke(
        exchange,
        "--recv-window",
        "300",
        "--settle-margin",
        "0.05",
        "apply",
        write(tmp_path),
        "--journal",
        journal,
        "--json",
    )
    assert resumed.exit_code == EXIT_OK, resumed.output
    report = json.loads(resumed.stdout)
    assert [s["executed"] for s in report["settled"]] == [True]
    assert all(s["to"] != "master:UMFUTURE" for s in report["sent"])
    assert exchange.ledger.times_executed("universal_transfer", type="MAIN_UMFUTURE") == 1
    assert demo.balance("USDT", "UMFUTURE") == Decimal(150000)


def test_apply_stops_on_an_outcome_it_cannot_settle(
    exchange: SimulatedExchange, demo: Account, tmp_path: Path
) -> None:
    """A sub-account margin transfer lost while the desk's balance moved otherwise: exit 3."""
    exchange.faults.add(Fault.drop(), endpoint="sub_account_margin_transfer", times=1)
    desk = demo.sub_accounts[DESK]
    original = exchange.handle

    async def handle(endpoint: Any, request: Any) -> Any:
        # Something else credits the desk as the transfer arrives: no balance proof left.
        if endpoint.name == "sub_account_margin_transfer":
            desk.deposit("USDT", "1")
        return await original(endpoint, request)

    exchange.handle = handle  # type: ignore[method-assign]
    text = (
        f'asset = "USDT"\nsources = ["{DESK}:spot"]\n'
        f'[[target]]\nsub_account = "{DESK}"\nwallet = "margin"\nexactly = "1500"\n'
    )
    result = invoke(
        exchange,
        "--recv-window",
        "300",
        "--settle-margin",
        "0.05",
        "apply",
        write(tmp_path, text),
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--json",
    )
    assert result.exit_code == EXIT_UNKNOWN, result.output
    report = json.loads(result.stdout)
    assert report["unsettled"] and report["unknown"] == 1
    assert exchange.ledger.times_executed("sub_account_margin_transfer") == 1


def test_transfer_history_and_reconcile(exchange: SimulatedExchange, tmp_path: Path) -> None:
    """transfer --json, history --json, and reconcile of a transfer that never ran."""
    done = invoke(
        exchange,
        "transfer",
        "--type",
        "MAIN_MARGIN",
        "--asset",
        "USDT",
        "--amount",
        "12.5",
        "--json",
    )
    assert done.exit_code == EXIT_OK, done.output
    tran_id = json.loads(done.stdout)["tranId"]
    rows = json.loads(invoke(exchange, "history", "--type", "MAIN_MARGIN", "--json").stdout)
    assert [r["tranId"] for r in rows] == [tran_id]
    exchange.faults.add(Fault.drop(executes=False), endpoint="universal_transfer", times=1)
    lost = invoke(exchange, "transfer", "--type", "MAIN_MARGIN", "--asset", "USDT", "--amount", "3")
    assert lost.exit_code == EXIT_UNKNOWN
    entry = exchange.ledger.entries()[-1]
    assert entry.timestamp is not None
    settled = invoke(
        exchange,
        "--recv-window",
        "5000",
        "--settle-margin",
        "0.05",
        "reconcile",
        "--endpoint",
        "universal_transfer",
        "--timestamp",
        str(entry.timestamp),
        "--param",
        "type=MAIN_MARGIN",
        "--param",
        "asset=USDT",
        "--param",
        "amount=3",
        "--journal",
        str(tmp_path / "reconciled.journal"),
        "--json",
    )
    assert settled.exit_code == EXIT_OK, settled.output
    assert json.loads(settled.stdout)[0]["executed"] is False


def test_limits_lists_every_pool_with_the_futures_hosts(exchange: SimulatedExchange) -> None:
    """limits --json shows each pool, the fapi and dapi ones included, with Binance's usage."""
    result = invoke(exchange, "limits", "--json")
    assert result.exit_code == EXIT_OK, result.output
    pools = {p["pool"]: p for p in json.loads(result.stdout)}
    assert pools["fapi-ip"]["limit"] == pools["dapi-ip"]["limit"] == 2400
    assert pools["fapi-ip"]["used"] == 5  # the probe read the USDⓈ-M balance once
    assert pools["api-ip"]["limit"] == 6000


def test_limits_redis_hook_says_what_is_missing(exchange: SimulatedExchange) -> None:
    """--redis with no Redis there: a clear refusal, nothing sent."""
    from binance_transfers._redis_server import free_port

    result = invoke(exchange, "limits", "--redis", f"redis://127.0.0.1:{free_port()}/0")
    assert result.exit_code == EXIT_REFUSED
    assert "unreachable" in result.output
    assert len(exchange.ledger) == 0


def test_no_credentials_is_a_clear_refusal() -> None:
    """Without keys (and without --sim) the CLI says where it looked, and sends nothing."""
    result = CliRunner().invoke(
        app,
        ["balances"],
        env={"BINANCE_API_KEY": "", "BINANCE_API_SECRET": "", "BINANCE_KEY_FILE": ""},
    )
    assert result.exit_code == EXIT_REFUSED
    assert "BINANCE_API_KEY" in result.output


def test_the_secret_never_shows(tmp_path: Path) -> None:
    """A refused key: the error names the problem, never the secret."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()

    def factory(settings: Settings, **kwargs: Any) -> Client:
        key, secret = settings.credentials()
        return Client(
            key, secret, transport=exchange.transport(), api_url=exchange.api_url, **kwargs
        )

    result = CliRunner().invoke(
        app,
        ["balances"],
        obj=Env(client_factory=factory),
        env={"BINANCE_API_KEY": "A" * 64, "BINANCE_API_SECRET": SECRET_MARK},
    )
    assert result.exit_code == EXIT_REFUSED, result.output
    assert SECRET_MARK not in result.output
    assert SECRET_MARK[:12] not in result.output


def test_key_file(tmp_path: Path, exchange: SimulatedExchange) -> None:
    """--key-file reads api_key and api_secret from TOML."""
    from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET

    path = tmp_path / "key.toml"
    path.write_text(f'api_key = "{DEMO_API_KEY}"\napi_secret = "{DEMO_API_SECRET}"\n')
    settings = Settings(key_file=path, environ={})
    assert settings.credentials() == (DEMO_API_KEY, DEMO_API_SECRET)
    with pytest.raises(Exception, match="no credentials"):
        Settings(environ={}).credentials()
    assert Settings(sim=True, environ={}).credentials() == (DEMO_API_KEY, DEMO_API_SECRET)


async def test_the_demo_prints_a_plan_for_the_state_it_left(tmp_path: Path) -> None:
    """demo_plan reads the demo account and prints the plan `binance-transfers plan` would."""
    from rich.console import Console

    from binance_transfers.cli._show import demo_plan

    exchange = SimulatedExchange()
    demo = exchange.add_demo_account()
    demo.deposit("USDT", "-60000", "UMFUTURE")  # the random walk drained USDⓈ-M futures
    console = Console(record=True, width=200)
    async with exchange.client(demo) as client:
        costed = await demo_plan(client, console)
    text = console.export_text()
    assert "binance-transfers plan" in text and "MAIN_UMFUTURE" in text
    assert "Earliest finish" in text
    into_um = [s for s in costed.plan.steps if s.target.wallet == "UMFUTURE"]
    assert sum(s.amount for s in into_um) == Decimal(110000)  # 40,000 left, 150,000 wanted
    assert moved(exchange) == 0


def test_limits_watch_refreshes_then_ends(exchange: SimulatedExchange) -> None:
    """limits --watch shows the live table for the time asked, then returns."""
    result = invoke(exchange, "limits", "--watch", "1.2")
    assert result.exit_code == EXIT_OK, result.output
    assert "fapi-ip" in result.output and "2400" in result.output
