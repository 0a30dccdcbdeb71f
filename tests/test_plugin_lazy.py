"""The pytest plugin costs a run that does not use its fixtures nothing.

It is loaded (entry point ``pytest11``) into every pytest run of a project
that installs binance_transfers: importing it must not import the client,
httpx, anyio or cattrs. ``import binance_transfers`` is as cheap, and every
public name still imports (and is named by its public path).
"""

from __future__ import annotations

import pytest

import binance_transfers
import binance_transfers.sim

from .conftest import run_python

pytest_plugins = ["pytester"]

HEAVY = ("httpx", "anyio", "cattrs", "binance_transfers._client", "binance_transfers.sim._exchange")


def imported_after(statement: str) -> list[str]:
    """The heavy modules in sys.modules after ``statement``, in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return run_python(code).split()


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    assert imported_after("import binance_transfers.sim.pytest_plugin") == []


def test_importing_the_package_imports_nothing_heavy() -> None:
    assert imported_after("import binance_transfers") == []


def test_the_first_public_name_used_loads_the_api() -> None:
    """The API, not httpx: that loads when a Client is built (issue 9)."""
    loaded = set(imported_after("from binance_transfers import Limits"))
    assert "binance_transfers._client" in loaded
    assert "httpx" not in loaded


@pytest.mark.parametrize("package", [binance_transfers, binance_transfers.sim])
def test_every_public_name_imports_by_its_public_path(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    if package is binance_transfers.sim:  # binance_transfers' lists: tests/test_public_api.py
        sources = package._SOURCES
        assert sorted(names) == sorted(n for names in sources.values() for n in names)
    for name in names:
        obj = getattr(package, name)
        if isinstance(obj, type):  # named by a public path (ours, or the package's)
            assert obj.__module__ in {package.__name__, "binance_transfers"}, name  # type: ignore[attr-defined]
    assert set(names) <= set(dir(package))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        binance_transfers.Clinet  # type: ignore[attr-defined]  # noqa: B018


def test_a_run_without_the_fixtures_does_not_load_them(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole pytest run in a subprocess, plugin enabled, fixtures unused.

    Only this plugin: the others installed here (anyio's, respx...) import httpx
    and anyio themselves."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        f"""
        import sys

        def test_nothing_heavy():
            heavy = {HEAVY!r}
            assert [m for m in heavy if m in sys.modules] == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "binance_transfers.sim.pytest_plugin")
    result.assert_outcomes(passed=1)
