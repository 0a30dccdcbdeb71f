"""Amounts and argument checks, before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from binance_transfers import InvalidInputError, format_amount
from binance_transfers._params import (
    RawType,
    amount_param,
    api_key_param,
    asset_param,
    client_id_param,
    email_param,
    max_wait_param,
    recv_window_param,
    symbol_param,
    time_param,
)

positive_decimals = st.decimals(min_value=Decimal("1E-30"), allow_nan=False, allow_infinity=False)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: d > 0))
def test_format_amount_round_trips_exactly(value: Decimal) -> None:
    """Any positive Decimal renders to a string that parses back to the same number."""
    text = format_amount(value)
    assert Decimal(text) == value
    assert "E" not in text and "e" not in text


@given(positive_decimals)
def test_format_amount_is_plain_and_canonical(value: Decimal) -> None:
    """No exponent, no trailing fractional zeros, no sign, digits and at most one dot."""
    text = format_amount(value)
    assert text.replace(".", "", 1).isdigit()
    if "." in text:
        assert not text.endswith("0") and not text.endswith(".")


@given(st.integers(min_value=1, max_value=10**28 - 1))
def test_amount_never_rounds_whatever_the_context_precision(digits: int) -> None:
    """28 significant digits (20 + 8 decimals) go out exactly, under a 6-digit context too."""
    value = Decimal(digits).scaleb(-8)
    with localcontext() as context:
        context.prec = 6
        wire = amount_param(value)
    assert Decimal(wire) == value


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0.00000001", True),
        ("1.500000000000", True),  # trailing zeros are not decimals
        ("0.000000001", False),
        ("1E-9", False),
        ("99999999999999999999", True),
        ("100000000000000000000", False),
        (Decimal("1E+400000000"), False),
    ],
)
def test_amounts_stay_within_what_binance_takes(value: object, ok: bool) -> None:
    """At most 8 decimals (Binance's -1111 beyond) and 20 integer digits, refused before sending."""
    if ok:
        assert Decimal(amount_param(value)) == Decimal(str(value))
    else:
        with pytest.raises(InvalidInputError):
            amount_param(value)


@pytest.mark.parametrize(
    ("given_value", "wire"),
    [
        (Decimal("1E-5"), "0.00001"),
        (Decimal("1E+2"), "100"),
        (Decimal("1.500"), "1.5"),
        (Decimal("0.10000000"), "0.1"),
        (100, "100"),
        ("0.00000001", "0.00000001"),
        (" 12.5 ", "12.5"),
        ("1e-5", "0.00001"),
        (0.1, "0.1"),
        (1e-05, "0.00001"),
        (1234.5678, "1234.5678"),
        (1e16, "10000000000000000"),
    ],
)
def test_amounts_users_naturally_pass(given_value: object, wire: str) -> None:
    """Decimal, int, str and short floats become plain decimal strings."""
    assert amount_param(given_value) == wire


@pytest.mark.parametrize(
    "bad",
    [
        0,
        Decimal(0),
        "0.000",
        -1,
        Decimal("-0.1"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        float("nan"),
        float("inf"),
        True,
        False,
        "",
        "abc",
        "1,5",
        None,
        [1],
        0.1 + 0.2,
    ],
)
def test_bad_amounts_are_refused(bad: object) -> None:
    """Zero, negative, NaN, infinite, boolean, non-numeric and noisy floats are refused."""
    with pytest.raises(InvalidInputError):
        amount_param(bad)


def test_float_noise_error_suggests_the_intended_value() -> None:
    """The error for 0.1 + 0.2 tells the caller what to pass instead."""
    with pytest.raises(InvalidInputError, match=r"'0\.3'"):
        amount_param(0.1 + 0.2)


def test_invalid_input_is_also_a_value_error() -> None:
    """Callers catching ValueError keep working."""
    with pytest.raises(ValueError, match="positive"):
        amount_param(-5)


@pytest.mark.parametrize(
    ("given_value", "code"),
    [("USDT", "USDT"), ("usdt", "USDT"), ("1INCH", "1INCH"), (" btc\n", "BTC")],
)
def test_assets_are_normalised(given_value: str, code: str) -> None:
    """Asset codes are trimmed and upper-cased."""
    assert asset_param(given_value) == code


@pytest.mark.parametrize("bad", ["", " ", "US DT", "USDT!", "X" * 21, 5, None])
def test_bad_assets_are_refused(bad: object) -> None:
    """Empty, spaced, punctuated, over-long and non-string assets are refused."""
    with pytest.raises(InvalidInputError, match="asset"):
        asset_param(bad)


@pytest.mark.parametrize("bad", ["B", "BNB-USDT", "", None])
def test_bad_symbols_are_refused(bad: object) -> None:
    """Symbols are 2-32 letters and digits."""
    with pytest.raises(InvalidInputError, match="from_symbol"):
        symbol_param(bad, "from_symbol")


@pytest.mark.parametrize(
    "good", ["desk@example.com", "a.b+c_virtual@sub.example.co.uk", "x_virtual@abcdefgh.com"]
)
def test_emails_pass(good: str) -> None:
    """Ordinary and virtual sub-account addresses are accepted unchanged."""
    assert email_param(good) == good


@pytest.mark.parametrize(
    "bad", ["", "desk", "desk@", "@example.com", "de sk@example.com", "a@b", "a@@b.com", None, 1]
)
def test_bad_emails_are_refused(bad: object) -> None:
    """Malformed addresses are refused."""
    with pytest.raises(InvalidInputError, match="e-mail"):
        email_param(bad)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (1, True),
        (5000, True),
        (60000, True),
        (60001, False),
        (0, False),
        (-1, False),
        (True, False),
        (5000.0, False),
        ("5000", False),
    ],
)
def test_recv_window_bounds(value: object, ok: bool) -> None:
    """recvWindow is an int of milliseconds in 1..60000 (Binance's -1131 above)."""
    if ok:
        assert recv_window_param(value) == value
    else:
        with pytest.raises(InvalidInputError, match="recv_window"):
            recv_window_param(value)


@pytest.mark.parametrize("bad", ["", "x" * 33, "with space", "semi;colon", 12, None])
def test_bad_client_ids_are_refused(bad: object) -> None:
    """clientTranId: 1-32 letters, digits, '_' or '-'."""
    with pytest.raises(InvalidInputError, match="client_tran_id"):
        client_id_param(bad)


def test_times_accept_aware_datetimes_and_epoch_ms() -> None:
    """Aware datetimes become epoch ms; naive ones and negatives are refused."""
    assert time_param(datetime(2026, 1, 1, tzinfo=UTC), "t") == "1767225600000"
    assert time_param(1767225600000, "t") == "1767225600000"
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        time_param(datetime(2026, 1, 1), "t")  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InvalidInputError):
        time_param(-1, "t")


@pytest.mark.parametrize("seconds", [1_700_000_000, 0, 99_999_999_999])
def test_epoch_seconds_are_not_taken_for_milliseconds(seconds: int) -> None:
    """1_700_000_000 is 2023 in seconds but 1970-01-20 in ms: refused, with a hint."""
    with pytest.raises(InvalidInputError, match="seconds"):
        time_param(seconds, "start_time")


def test_epoch_microseconds_are_refused() -> None:
    """Past year 5138 in ms is microseconds (or nanoseconds): refused."""
    with pytest.raises(InvalidInputError, match="not milliseconds"):
        time_param(1_700_000_000_000_000, "end_time")


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, tzinfo=UTC),
        datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC),
        100_000_000_000,  # 1973 in ms
        1_483_228_799_999,
    ],
)
def test_times_before_2017_are_refused(value: object) -> None:
    """Binance keeps nothing older than 2017 (and refuses negative ms after spending weight)."""
    with pytest.raises(InvalidInputError, match="before 2017"):
        time_param(value, "start_time")


def test_times_from_2017_on_are_accepted() -> None:
    """The first millisecond of 2017 is the earliest time sent, as a datetime or as ms."""
    assert time_param(1_483_228_800_000, "t") == "1483228800000"
    assert time_param(datetime(2017, 1, 1, tzinfo=UTC), "t") == "1483228800000"


@pytest.mark.parametrize("value", [10**400, -(10**400), 10**309], ids=["1e400", "-1e400", "1e309"])
def test_a_huge_int_wait_is_a_typed_error_not_an_overflow(value: int) -> None:
    """max_wait/settle_margin past any float: InvalidInputError, not OverflowError."""
    with pytest.raises(InvalidInputError, match="max_wait must be finite") as caught:
        max_wait_param(value)
    assert len(str(caught.value)) < 200  # the 400 digits are not quoted
    with pytest.raises(InvalidInputError, match="settle_margin"):
        max_wait_param(value, "settle_margin")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (None, True),
        (0, True),
        (0.0, True),
        (2.5, True),
        (3600, True),
        (-1, False),
        (-0.001, False),
        (float("nan"), False),
        (float("inf"), False),
        (True, False),
        ("5", False),
        (Decimal(1), False),
    ],
)
def test_max_wait_is_none_or_finite_non_negative_seconds(value: object, ok: bool) -> None:
    """max_wait: None waits as long as needed; otherwise finite seconds >= 0."""
    if ok:
        assert max_wait_param(value) == (None if value is None else float(value))  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidInputError, match="max_wait"):
            max_wait_param(value)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("A" * 64 + "\n", "newline"),
        ("A" * 32 + " " + "A" * 31, "space"),
        ("A" * 63 + "\u00e9", "non-ASCII"),
        ("A" * 63 + "\x00", "control"),
        ("", "empty"),
    ],
)
def test_api_key_errors_say_what_is_wrong_but_not_the_key(key: str, says: str) -> None:
    """The message names the offending character class, never the key itself."""
    with pytest.raises(InvalidInputError, match=says) as caught:
        api_key_param(key)
    assert "AAAA" not in str(caught.value)


def test_api_key_of_binance_format_passes() -> None:
    """64 letters and digits (and any other printable ASCII) pass."""
    api_key_param("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A")
    api_key_param("k-ey_with.punctuation~")


def test_raw_type_is_a_checked_str() -> None:
    """RawType keeps Binance's name format; it compares equal to the plain name."""
    assert RawType("MAIN_NEWWALLET") == "MAIN_NEWWALLET"
    assert repr(RawType("MAIN_X_Y")) == "RawType('MAIN_X_Y')"
    for bad in ("main_x", "", "A B", "X"):
        with pytest.raises(InvalidInputError):
            RawType(bad)


@given(st.from_regex(r"\A[0-9]{0,22}(\.[0-9]{0,10})?\Z"))
def test_an_amount_string_gets_the_same_answer_on_the_fast_path(text: str) -> None:
    """A string already in wire form is returned as it is (the fast path): exactly what the
    full checks return for it, or refused exactly when they refuse it."""

    def answer(value: str) -> str:
        try:
            return amount_param(value)
        except InvalidInputError:
            return "refused"

    # A leading space is never wire form: it takes the full checks.
    assert answer(text) == answer(" " + text)
