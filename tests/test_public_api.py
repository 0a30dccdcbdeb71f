"""The curated public surface."""

from __future__ import annotations

import inspect

import attrs
import pytest

import binance_transfers


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
