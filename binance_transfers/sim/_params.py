"""Reading request parameters the way Binance validates them.

Parameters come from the query string and the form body; on a duplicate the
query's value wins. Missing or empty mandatory parameters answer -1102,
malformed ones -1100 (with Binance's "legal range" pattern), well-formed but
unacceptable ones -1130.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from urllib.parse import parse_qsl

from . import _errors as err

__all__ = ["Params"]

_ASSET = re.compile(r"^[A-Z0-9-_.]{1,20}$")
_AMOUNT = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INT = re.compile(r"^-?[0-9]{1,20}$")
_LONG_RANGE = "^[0-9]{1,20}$"
#: Binance's transfer amounts carry at most 8 decimals.
MAX_DECIMALS = 8


class Params:
    """The merged parameters of one request."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    @classmethod
    def parse(cls, query: bytes, body: bytes) -> Params:
        # The query last: it wins on duplicates.
        pairs = [
            pair
            for raw in (body, query)
            for pair in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        ]
        return cls(dict(pairs))

    def optional(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise err.mandatory(name)
        return value

    def asset(self, name: str = "asset") -> str:
        value = self.required(name)
        if not _ASSET.match(value):
            raise err.illegal(name, _ASSET.pattern)
        return value

    def symbol(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and not _ASSET.match(value):
            raise err.illegal(name, _ASSET.pattern)
        return value

    def amount(self, name: str = "amount") -> Decimal:
        value = self.required(name)
        if not _AMOUNT.match(value):
            raise err.illegal(name, _AMOUNT.pattern)
        number = Decimal(value)
        if number <= 0:
            raise err.invalid(name)
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
            raise err.too_precise()
        return number

    def optional_amount(self, name: str = "amount") -> Decimal | None:
        return None if self.optional(name) is None else self.amount(name)

    def choice(self, name: str, choices: Collection[str]) -> str:
        value = self.required(name)
        if value not in choices:
            raise err.invalid(name)
        return value

    def optional_choice(self, name: str, choices: Collection[str]) -> str | None:
        return None if self.optional(name) is None else self.choice(name, choices)

    def integer(self, name: str, *, low: int | None = None, high: int | None = None) -> int | None:
        value = self.optional(name)
        if value is None:
            return None
        if not _INT.match(value):
            raise err.illegal(name, _LONG_RANGE)
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise err.invalid(name)
        return number

    def page(self, name: str, *, default: int, high: int | None = None) -> int:
        """A page number or size: ``default`` when absent, at least 1."""
        number = self.integer(name, low=1, high=high)
        return default if number is None else number
