"""The curated public surface."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import attrs
import pytest

import binance_transfers
from benchmarks.bench_import import OPTIONAL

from .conftest import run_python


def test_all_is_sorted_complete_and_importable() -> None:
    """__all__ is sorted, names only real objects, and lists every public class."""
    names = binance_transfers.__all__
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in names:
        assert hasattr(binance_transfers, name), name
    public = {
        name
        for name, obj in vars(binance_transfers).items()
        if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
    }
    assert public <= set(names)


def test_public_classes_live_at_the_top_level() -> None:
    """Tracebacks name binance_transfers.OutcomeUnknownError, not a private module."""
    assert binance_transfers.OutcomeUnknownError.__module__ == "binance_transfers"
    assert binance_transfers.Client.__module__ == "binance_transfers"
    assert repr(binance_transfers.TransferType.MAIN_MARGIN).startswith("<TransferType.")


def test_exceptions_form_one_tree() -> None:
    """Every exception derives from BinanceTransfersError and is documented in the tree."""
    doc = binance_transfers._exceptions.__doc__ or ""
    for name in binance_transfers.__all__:
        obj = getattr(binance_transfers, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, binance_transfers.BinanceTransfersError)
            assert name in doc, f"{name} missing from the tree in _exceptions.py"


def test_the_package_ships_type_information() -> None:
    """py.typed is present so users' type checkers read our annotations."""
    from importlib.resources import files

    assert files("binance_transfers").joinpath("py.typed").is_file()


def test_money_safety_names_are_public() -> None:
    """What issue 8 added is importable from the top level, frozen where it is a result."""
    for name in ("Settlement", "SettleBy", "Journal", "RawType", "NotExecutedError"):
        assert name in binance_transfers.__all__, name
        assert getattr(binance_transfers, name).__module__ == "binance_transfers"
    settled = binance_transfers.Settlement(
        endpoint="universal_transfer",
        params={"asset": "USDT"},
        executed=False,
        by=binance_transfers.SettleBy.HISTORY,
        reason="absent",
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settled.executed = True  # type: ignore[misc]
    assert not issubclass(binance_transfers.NotExecutedError, binance_transfers.OutcomeUnknownError)


def test_the_names_type_checkers_see_are_the_names_that_load() -> None:
    """The package's TYPE_CHECKING imports name each public object where it loads from.

    __all__ is the run-time list; the imports are what mypy reads. ruff fails an
    import left out of __all__; this fails a name of __all__ left out of the
    imports, a module the loader does not search, and a name the loader finds
    in another module than the one the type checker was told.
    """
    source = Path(binance_transfers.__file__ or "").read_text(encoding="utf-8")
    (block,) = (
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    typed = {
        alias.asname or alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
    }
    assert sorted(typed) == sorted(binance_transfers.__all__)
    assert sorted(set(typed.values())) == sorted(binance_transfers._MODULES)
    for name, module in typed.items():
        where = importlib.import_module(f"binance_transfers.{module}")
        assert getattr(binance_transfers, name) is getattr(where, name), (name, module)


@pytest.mark.parametrize(
    "statement",
    [
        "import binance_transfers",
        "from binance_transfers import Client, TransferType",
        # Any public name loads the whole public API (Journal, RedisStorage...).
        "import binance_transfers; binance_transfers.Journal; binance_transfers.RedisStorage",
    ],
)
def test_importing_the_package_loads_no_optional_module(statement: str) -> None:
    """None of bench_import's OPTIONAL modules (the extras, the transports picked at the
    first request, sqlite3...) is loaded: all are installed here, so one would be seen."""
    # httpx loads its command-line tool (click, rich) whenever they are
    # installed, as the cli extra has them here; a plain install has not.
    code = (
        "import sys\nsys.modules['httpx._main'] = None\n"
        f"{statement}\nprint(' '.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    assert run_python(code).split() == []
