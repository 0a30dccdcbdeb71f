"""The curated surface of ``binance_transfers.sim``."""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

import attrs
import httpx
import pytest

import binance_transfers
import binance_transfers.sim as sim
from binance_transfers import ENDPOINTS
from binance_transfers.sim._handlers import HANDLERS


def _namespace() -> dict[str, Any]:
    """Every name the package's modules see, to resolve their string annotations."""
    names: dict[str, Any] = {"httpx": httpx}
    for name, module in list(sys.modules.items()):
        if name.startswith("binance_transfers.") and module is not None:
            names.update(vars(module))
    return names


def _ruff_order(name: str) -> tuple[int, str]:
    # RUF022's "isort-style" order, as the package's own __all__: CONSTANTS, Classes, functions.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_every_name_exists() -> None:
    """``__all__`` is sorted (constants first) and names only real attributes."""
    assert sim.__all__ == sorted(sim.__all__, key=_ruff_order)
    for name in sim.__all__:
        assert hasattr(sim, name), name


def test_public_classes_are_rehomed() -> None:
    """Exported classes and functions report a public module (the sim's, or the client's models)."""
    for name in sim.__all__:
        obj = getattr(sim, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ in ("binance_transfers.sim", "binance_transfers"), name


def test_every_sim_type_in_a_public_signature_is_exported() -> None:
    """A sim class that a public method takes or returns is importable from the package."""
    namespace = _namespace()
    exported = {getattr(sim, n) for n in sim.__all__}
    missing = set()
    for name in sim.__all__:
        cls = getattr(sim, name)
        if not inspect.isclass(cls):
            continue
        for attr, member in vars(cls).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            func = member.fget if isinstance(member, property) else member
            if not callable(func):
                continue
            hints = typing.get_type_hints(func, globalns=namespace)
            for hint in hints.values():
                for arg in _flatten(hint):
                    module = getattr(arg, "__module__", "")
                    if module.startswith("binance_transfers.sim") and arg not in exported:
                        missing.add(f"{name}.{attr}: {arg.__name__}")
    assert not missing, sorted(missing)


def _flatten(hint: Any) -> list[Any]:
    args = typing.get_args(hint)
    if not args:
        return [hint]
    return [hint, *(a for arg in args for a in _flatten(arg))]


def test_every_endpoint_of_the_table_has_a_handler() -> None:
    """The simulator serves exactly the endpoints of the client's table."""
    assert set(HANDLERS) == set(ENDPOINTS)


def test_an_endpoint_without_a_handler_is_refused_at_construction() -> None:
    """A table with an endpoint the sim cannot serve fails loudly when the exchange is built."""
    extra = attrs.evolve(ENDPOINTS["server_time"], name="server_time_v4", path="/api/v4/time")
    table = binance_transfers.EndpointTable({**ENDPOINTS, "server_time_v4": extra})
    with pytest.raises(ValueError, match="server_time_v4"):
        sim.SimulatedExchange(endpoints=table)
