"""Checking and encoding of request parameters.

Every check here runs before the governor is asked for a permit, so a bad
argument costs neither a byte on the wire nor a unit of rate-limit weight.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

from ._exceptions import InvalidInputError

__all__ = ["Amount", "RawType", "amount_param", "asset_param", "email_param", "format_amount"]

#: What an amount may be given as. See :func:`amount_param` for ``float``.
Amount = Decimal | int | str | float

# A float carries ~15.95 significant decimal digits; one whose shortest repr
# needs more than this is most likely arithmetic noise (0.1 + 0.2).
_FLOAT_DIGITS = 15
# Binance keeps at most 8 decimals for any asset (more is -1111, after the
# weight is spent); no balance needs more than 20 integer digits.
MAX_DECIMALS = 8
MAX_INTEGER_DIGITS = 20

# A positive amount already in its wire form: no sign, no exponent, no
# leading or trailing zero, at most 20 integer digits and 8 decimals.
_CANONICAL = re.compile(r"[1-9][0-9]{0,19}(?:\.[0-9]{0,7}[1-9])?|0\.[0-9]{0,7}[1-9]").fullmatch
_ASSET = re.compile(r"[A-Z0-9]{1,20}")
_SYMBOL = re.compile(r"[A-Z0-9]{2,32}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_\-]{1,32}")
_TYPE_NAME = re.compile(r"[A-Z][A-Z_]{2,63}")
MAX_RECV_WINDOW = 60_000
# Binance's keys are 64 letters and digits; anything an HTTP header can carry
# (printable ASCII, no whitespace) is let through, in case the format changes.
_API_KEY = re.compile(r"[\x21-\x7e]+")
# Epoch milliseconds below 1973-03-03 are most likely seconds (1_700_000_000 is
# 2023 in seconds, 1970-01-20 in ms); above 10**14 (year 5138), microseconds.
_MIN_EPOCH_MS = 10**11
_MAX_EPOCH_MS = 10**14
# Binance opened in July 2017: no record of it is older, and Binance refuses a
# negative time (-1130) after the weight is spent, so earlier times are refused here.
_BINANCE_EPOCH_MS = 1_483_228_800_000  # 2017-01-01T00:00:00Z


def format_amount(value: Decimal) -> str:
    """Render a finite Decimal as Binance wants it: plain digits, no exponent.

    Trailing fractional zeros are dropped (``1.500`` -> ``1.5``); nothing is
    ever rounded, whatever the decimal context's precision.

    >>> format_amount(Decimal("1E-5")), format_amount(Decimal("1E+2"))
    ('0.00001', '100')
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def amount_param(value: object, name: str = "amount") -> str:
    """Check a positive amount and return its wire form.

    ``Decimal``, ``int`` and decimal strings are taken exactly. A ``float`` is
    taken only when its shortest representation has at most 15 significant
    digits, which is when that representation is unambiguously what the
    caller meant: ``0.1`` is sent as ``0.1``, but ``0.1 + 0.2``
    (``0.30000000000000004``) is refused rather than sent as binary noise.
    """
    if type(value) is str and _CANONICAL(value):
        return value  # already the wire form: what the checks below would return
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number, not a bool")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = _from_float(value, name)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInputError(f"{name} is not a decimal number: {value!r}") from None
    else:
        raise InvalidInputError(
            f"{name} must be a Decimal, int, str or float, not {type(value).__name__}"
        )
    if not number.is_finite():
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if number <= 0:
        raise InvalidInputError(f"{name} must be positive, got {value!r}")
    parts = number.as_tuple()
    digits, exponent = parts.digits, int(parts.exponent)
    while exponent < 0 and digits and digits[-1] == 0:  # 1.500 has 1 decimal, not 3
        digits, exponent = digits[:-1], exponent + 1
    if -exponent > MAX_DECIMALS:
        raise InvalidInputError(
            f"{name} has {-exponent} decimals; Binance takes at most {MAX_DECIMALS}: {value!r}"
        )
    if len(digits) + exponent > MAX_INTEGER_DIGITS:
        raise InvalidInputError(f"{name} is too large: {value!r}")
    return format_amount(number)


def _from_float(value: float, name: str) -> Decimal:
    number = Decimal(repr(value))
    if number.is_finite() and len(number.normalize().as_tuple().digits) > _FLOAT_DIGITS:
        raise InvalidInputError(
            f"{name}={value!r} is a float with more than {_FLOAT_DIGITS} significant digits, "
            f"probably binary rounding noise; pass a Decimal or a string such as "
            f"'{format(Decimal(value), '.8f').rstrip('0').rstrip('.')}'"
        )
    return number


def asset_param(value: object, name: str = "asset") -> str:
    """An asset code such as ``USDT``; lower case is accepted and upper-cased."""
    return _code(value, name, _ASSET, "an asset code like 'USDT'")


def symbol_param(value: object, name: str) -> str:
    """An isolated-margin symbol such as ``BNBUSDT``."""
    return _code(value, name, _SYMBOL, "a symbol like 'BNBUSDT'")


def _code(value: object, name: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, not {type(value).__name__}")
    code = value.strip().upper()
    if not pattern.fullmatch(code):
        raise InvalidInputError(f"{name} must be {what}, got {value!r}")
    return code


def email_param(value: object, name: str = "email") -> str:
    """A sub-account e-mail address."""
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value):
        raise InvalidInputError(f"{name} must be an e-mail address, got {value!r}")
    return value


def client_id_param(value: object, name: str = "client_tran_id") -> str:
    """A caller-chosen transfer id: 1-32 letters, digits, '_' or '-'.

    Binance documents only "must be unique" for the sub-account transfer; its
    broker transfers cap the same field at 32 characters, the safe choice here.
    """
    if not isinstance(value, str) or not _CLIENT_ID.fullmatch(value):
        raise InvalidInputError(
            f"{name} must be 1-32 characters of letters, digits, '_' or '-', got {value!r}"
        )
    return value


def type_name_param(value: object, name: str) -> str:
    """An enum value Binance may have added after this release (upper snake case)."""
    if not isinstance(value, str) or not _TYPE_NAME.fullmatch(value):
        raise InvalidInputError(f"{name} must be an UPPER_SNAKE_CASE name, got {value!r}")
    return value


class RawType(str):
    """A transfer or account type this release does not know, sent as given.

    Type names are checked against the known ones (:class:`TransferType`,
    :class:`SubAccountAccountType`), so that a misspelling such as
    ``"MAIN_UMFUTURES"`` is refused before it costs weight. When Binance adds
    a type, wrap its name to send it anyway::

        await client.transfer(type=RawType("MAIN_NEWWALLET"), asset="USDT", amount=1)

    The name must still look like one of Binance's: ``UPPER_SNAKE_CASE``.
    """

    __slots__ = ()

    def __new__(cls, name: str) -> RawType:
        return super().__new__(cls, type_name_param(name, "RawType"))

    def __repr__(self) -> str:
        return f"RawType({str(self)!r})"


def api_key_param(value: object) -> None:
    """Refuse a key no HTTP header can carry, without ever quoting it.

    A trailing newline (read from a file), a space, a non-ASCII or a control
    character would otherwise fail only at send time, inside h11, where the
    key ends up in the exception and in httpcore's log.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"api_key must be a str, not {type(value).__name__}")
    if not _API_KEY.fullmatch(value):
        bad = next((c for c in value if not ("!" <= c <= "~")), None)
        where = "is empty" if bad is None else f"contains {_describe(bad)}"
        raise InvalidInputError(
            f"api_key {where}: an API key is printable ASCII without whitespace "
            "(strip a trailing newline read from a file)"
        )


def _describe(char: str) -> str:
    if char.isspace():
        return (
            "whitespace ("
            + {"\n": "newline", "\r": "carriage return", "\t": "tab"}.get(char, "space")
            + ")"
        )
    return "a non-ASCII character" if ord(char) > 0x7E else "a control character"


def max_wait_param(value: object, name: str = "max_wait") -> float | None:
    """None (wait as long as needed) or a finite number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name} must be None or seconds as a number, got {value!r}")
    try:
        seconds = float(value)  # an int past 1.8e308 overflows: no finite float holds it
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(
            f"{name} must be finite and >= 0 (None waits as long as needed), got {_short(value)}"
        )
    return seconds


def _short(value: object) -> str:
    """A value for a message: a 400-digit int is not quoted in full."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def recv_window_param(value: object) -> int:
    """``recvWindow`` in whole milliseconds, 1..60000 (Binance refuses more: -1131)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"recv_window must be an int of milliseconds, got {value!r}")
    if not 0 < value <= MAX_RECV_WINDOW:
        raise InvalidInputError(f"recv_window must be in 1..{MAX_RECV_WINDOW} ms, got {value}")
    return value


def time_param(value: object, name: str) -> str:
    """A point in time as epoch milliseconds: an aware ``datetime`` or an ``int``.

    Times before 2017 (Binance keeps nothing older) are refused, and so are
    ints that look like seconds or microseconds.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInputError(f"{name} must be timezone-aware, got naive {value!r}")
        ms = int(value.timestamp() * 1000)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an aware datetime or epoch ms, got {value!r}")
    elif not _MIN_EPOCH_MS <= value < _MAX_EPOCH_MS:
        unit = "seconds" if 0 <= value < _MIN_EPOCH_MS else "not milliseconds"
        raise InvalidInputError(
            f"{name}={_short(value)} does not look like epoch milliseconds ({unit}?); "
            f"pass milliseconds (e.g. {1_700_000_000_000}) or an aware datetime"
        )
    else:
        ms = value
    if ms < _BINANCE_EPOCH_MS:
        raise InvalidInputError(
            f"{name} is before 2017 ({_short(value)}): Binance keeps no record that old"
        )
    if ms >= _MAX_EPOCH_MS:
        raise InvalidInputError(f"{name} is too far in the future: {_short(value)}")
    return str(ms)


def positive_int_param(value: object, name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise InvalidInputError(f"{name} must be an int in 1..{maximum}, got {value!r}")
    return value
