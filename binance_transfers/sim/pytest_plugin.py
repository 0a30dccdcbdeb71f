"""pytest fixtures: a simulated Binance and a client wired to it.

Enable with ``-p binance_transfers.sim.pytest_plugin`` (or the package's
``pytest11`` entry point), then::

    async def test_rebalance(binance_client, binance_sim_account):
        await binance_client.transfer_to_futures(asset="USDT", amount="100")
        assert binance_sim_account.balance("USDT", "UMFUTURE") == Decimal("100100")

Fixtures (all function-scoped and synchronous, so they work under any async
plugin and mode):

* ``binance_sim``: a :class:`~binance_transfers.sim.SimulatedExchange`, in-process,
  with the demo account (Portfolio Margin and PM Pro, funded, two sub-accounts);
* ``binance_sim_account``: that demo :class:`~binance_transfers.sim.Account`;
* ``binance_client``: a :class:`~binance_transfers.Client` for it, through the
  in-process transport, with a ``Governor`` on the same limits and clock;
* ``binance_sim_limits``: the :class:`~binance_transfers.Limits` used; override
  it in a ``conftest.py`` (e.g. ``Limits(time_scale=60)``).

Nothing optional is imported until a fixture runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from binance_transfers import Client, Limits
    from binance_transfers.sim import Account, SimulatedExchange

__all__ = ["binance_client", "binance_sim", "binance_sim_account", "binance_sim_limits"]


@pytest.fixture
def binance_sim_limits() -> Limits:
    """Limits of the simulated exchange and of the client's governor."""
    from binance_transfers import Limits

    return Limits()


@pytest.fixture
def binance_sim(binance_sim_limits: Limits) -> SimulatedExchange:
    """A simulated Binance with the demo account, served in-process."""
    import importlib.util

    from binance_transfers import ConfigurationError
    from binance_transfers.sim import SimulatedExchange

    # The exchange is a Starlette app, in-process too: say which extra, not "No module".
    if importlib.util.find_spec("starlette") is None:
        raise ConfigurationError(
            "the binance_sim fixtures need the sim extra: pip install 'binance-transfers[sim]'"
        )

    exchange = SimulatedExchange(limits=binance_sim_limits)
    exchange.add_demo_account()
    return exchange


@pytest.fixture
def binance_sim_account(binance_sim: SimulatedExchange) -> Account:
    """The demo account of ``binance_sim``."""
    account = binance_sim.demo_account
    if account is None:  # pragma: no cover - binance_sim always adds it
        raise LookupError("binance_sim has no demo account")
    return account


@pytest.fixture
def binance_client(binance_sim: SimulatedExchange, binance_sim_account: Account) -> Client:
    """A client of the demo account, wired to ``binance_sim`` (no sockets to close)."""
    return binance_sim.client(binance_sim_account)
