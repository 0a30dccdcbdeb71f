"""A missing extra is a ConfigurationError naming the pip command, not "No module named".

Each test hides the extra's modules as an environment without them would
(``sys.modules[name] = None`` makes ``import name`` fail; monkeypatch puts
everything back).
"""

from __future__ import annotations

import sys

import pytest

from binance_transfers import ConfigurationError
from binance_transfers.sim import SimServer, SimulatedExchange

PIP_SIM = r"pip install 'binance-transfers\[sim\]'"


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` (and every module importing them here) fail to import."""
    for name in list(sys.modules):
        top = name.partition(".")[0]
        if top in modules or name in {"binance_transfers.sim._app", "binance_transfers.demo._view"}:
            monkeypatch.delitem(sys.modules, name)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_the_in_process_client_without_starlette(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "starlette")
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    with pytest.raises(ConfigurationError, match=PIP_SIM) as caught:
        exchange.client()
    assert "starlette" in str(caught.value)
    with pytest.raises(ConfigurationError, match=PIP_SIM):
        exchange.app  # noqa: B018 - the property builds the app


def test_serving_without_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "uvicorn")
    with pytest.raises(ConfigurationError, match=PIP_SIM) as caught:
        SimServer(SimulatedExchange())
    assert "uvicorn" in str(caught.value)


def test_the_sim_command_without_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    from binance_transfers.sim.__main__ import main

    hide(monkeypatch, "uvicorn")
    with pytest.raises(ConfigurationError, match=PIP_SIM):
        main(["--port", "0"])


def test_the_demo_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    from binance_transfers.demo.__main__ import main

    hide(monkeypatch, "rich")
    with pytest.raises(ConfigurationError, match=PIP_SIM) as caught:
        main(["--seconds", "1", "--no-live"])
    assert "rich" in str(caught.value)


def test_the_demo_without_the_exchange_s_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked before the exchange's process starts (it would fail there, unexplained)."""
    from binance_transfers.demo.__main__ import main

    hide(monkeypatch, "uvicorn")
    with pytest.raises(ConfigurationError, match=PIP_SIM):
        main(["--seconds", "1", "--no-live"])


def test_a_missing_module_of_ours_is_not_blamed_on_an_extra() -> None:
    from binance_transfers._extras import extra

    with pytest.raises(ModuleNotFoundError), extra("sim", "this"):
        import binance_transfers._no_such_module  # type: ignore[import-not-found]  # noqa: F401
