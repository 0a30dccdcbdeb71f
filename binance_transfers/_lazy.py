"""A module imported on its first attribute access, for annotations.

``typing.get_type_hints`` evaluates a function's string annotations against
its module's dict, never through a module ``__getattr__``: a name bound only
under ``TYPE_CHECKING`` raises NameError there. Where importing the module
for real would cost every program (httpx: about half of
``from binance_transfers import Client``; an optional extra), the name is
bound to this stand-in instead, and the annotation written as an attribute
of it (``httpx.Timeout``): resolving the hints imports the module then.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Imports ``name`` at the first attribute asked of it, and answers from it."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"
