"""Optional extras: a missing one is a :class:`ConfigurationError` naming the pip command.

``No module named 'starlette'`` says what broke, not what to do; these say
``pip install 'binance-transfers[sim]'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

from ._exceptions import ConfigurationError

__all__ = ["extra", "require"]


def _missing(extra_name: str, what: str, module: str) -> ConfigurationError:
    return ConfigurationError(
        f"{what} needs the {extra_name} extra ({module} is not installed): "
        f"pip install 'binance-transfers[{extra_name}]'"
    )


@contextlib.contextmanager
def extra(extra_name: str, what: str) -> Iterator[None]:
    """Imports in the block that fail for want of a third-party module raise
    ConfigurationError with the pip command; a module of ours missing is a bug
    and propagates as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if not top or top == __name__.partition(".")[0]:
            raise
        raise _missing(extra_name, what, top) from exc


def require(extra_name: str, what: str, *modules: str) -> None:
    """Raise ConfigurationError with the pip command unless every module is installed.

    For modules another process will import (the demo's exchange): nothing
    is imported here.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise _missing(extra_name, what, module)
