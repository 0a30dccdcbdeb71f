"""The pytest plugin: two lines give a test an exchange and a client; no optional imports."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from binance_transfers import Client, Governor
from binance_transfers.sim import Account, SimulatedExchange

from ..conftest import run_python

PLUGIN = "binance_transfers.sim.pytest_plugin"

USER_CONFTEST = """
import pytest
from binance_transfers import Limits

@pytest.fixture
def binance_sim_limits():
    return Limits(time_scale=60)
"""

USER_TEST = """
from decimal import Decimal
import pytest

@pytest.mark.asyncio
async def test_rebalance(binance_client, binance_sim_account):
    await binance_client.transfer_to_futures(asset="USDT", amount="100")
    assert binance_sim_account.balance("USDT", "UMFUTURE") == Decimal("100100")

def test_limits_come_from_the_override(binance_sim, binance_client):
    assert binance_sim.limits.window == 1.0
    assert binance_client.governor.limits is binance_sim.limits
"""


def test_users_get_an_exchange_and_a_client_in_two_lines(tmp_path: Path) -> None:
    """A user's suite with ``-p binance_transfers.sim.pytest_plugin`` passes, warnings as errors."""
    # A user's own pytest-asyncio setting (it warns when unset, an error under -W error).
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    (tmp_path / "test_user.py").write_text(USER_TEST)
    # Once the package registers the plugin as a pytest11 entry point it loads by itself;
    # naming it again with -p would register the module twice.
    registered = any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))
    enable = [] if registered else ["-p", PLUGIN]
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "pytest", *enable, "-p", "no:cacheprovider", "-W", "error", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


IMPORT_CHECK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"starlette", "uvicorn", "cryptography", "rich"}:
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
import binance_transfers.sim.pytest_plugin
from binance_transfers.sim import SimulatedExchange
exchange = SimulatedExchange()
exchange.add_demo_account()
print("imported without extras")
"""


def test_plugin_and_package_import_nothing_optional() -> None:
    """The plugin and the sim package import, and build an exchange, with Starlette blocked."""
    assert "imported without extras" in run_python(IMPORT_CHECK)


def test_fixtures_wire_the_client_to_the_exchange(
    binance_sim: SimulatedExchange, binance_sim_account: Account, binance_client: Client
) -> None:
    """binance_client: the demo key, the in-process transport, a governor on the sim's limits."""
    assert binance_sim.demo_account is binance_sim_account
    assert binance_sim_account.portfolio_margin and binance_sim_account.pm_pro
    assert isinstance(binance_client.governor, Governor)
    assert binance_client.governor.limits is binance_sim.limits
    assert binance_client.governor.server_clock.clock is binance_sim.clock
    assert "api.sim.invalid" in repr(binance_client)
