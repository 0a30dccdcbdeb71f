"""Every public exception survives pickle and deepcopy with all its fields (issue 8, F-Q).

Jobs run transfers in worker processes (ProcessPoolExecutor, Celery, RQ) and get
exceptions back pickled; error trackers deep-copy them. An OutcomeUnknownError is
the only record of a transfer that may have moved money, so losing it (or one of
its fields) on the way loses the means to settle it.
"""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import pytest

import binance_transfers
from binance_transfers import (
    BinanceAPIError,
    BinanceTransfersError,
    MalformedResponseError,
    NotExecutedError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    SettleBy,
    Settlement,
)

from .conftest import API_KEY, SECRET


def _unknown() -> OutcomeUnknownError:
    error = OutcomeUnknownError(
        "no complete answer: ReadTimeout",
        endpoint="universal_transfer",
        params={"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "1", "timestamp": "17"},
        timestamp=1_767_225_600_000,
        status=502,
        recv_window=5000,
        request_id="0f1e2d3c",
    )
    error.journal_id = 12
    error.journal_path = "transfers.sqlite"
    error.add_note("settling it failed: ConnectionFailedError")
    return error


def _not_executed() -> NotExecutedError:
    unknown = _unknown()
    settlement = Settlement(
        endpoint="universal_transfer",
        params=unknown.params,
        executed=False,
        by=SettleBy.HISTORY,
        reason="no unclaimed matching row",
        journal_id=12,
    )
    return NotExecutedError("settled, not executed", settlement=settlement, unknown=unknown)


#: How to build each exception class with fields of its own (and its subclasses).
ARGUMENTS: dict[type[BaseException], tuple[tuple[Any, ...], dict[str, Any]]] = {
    BinanceAPIError: ((-3041, "Balance is not enough"), {"status": 400, "endpoint": "e"}),
    RateLimitError: (("429",), {"retry_at": 1.0, "retry_after": 2.5}),
    ServiceUnavailableError: (("5xx",), {"status": 503, "endpoint": "e"}),
    MalformedResponseError: (("not JSON",), {"status": 403, "endpoint": "e", "body": "<html>"}),
}


def _public_exceptions() -> list[type[BaseException]]:
    return [
        value
        for name in binance_transfers.__all__
        if inspect.isclass(value := getattr(binance_transfers, name))
        and issubclass(value, BaseException)
    ]


def _example(cls: type[BaseException]) -> BaseException:
    if cls is OutcomeUnknownError:
        return _unknown()
    if cls is NotExecutedError:
        return _not_executed()
    base = next((base for base in cls.__mro__ if base in ARGUMENTS), None)
    if base is None:
        return cls("something went wrong")
    args, kwargs = ARGUMENTS[base]
    return cls(*args, **kwargs)


def _fields(error: BaseException) -> dict[str, Any]:
    fields = dict(vars(error))
    for key in ("unknown", "settlement"):
        if key in fields and isinstance(fields[key], BaseException):
            fields[key] = (type(fields[key]), _fields(fields[key]))
    return fields


def test_every_public_exception_is_covered() -> None:
    """A new exception with keyword-only fields is caught here, not in production."""
    classes = _public_exceptions()
    assert BinanceTransfersError in classes and len(classes) > 15
    for cls in classes:
        assert issubclass(cls, BinanceTransfersError)


@pytest.mark.parametrize("cls", _public_exceptions(), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("trip", ["pickle", "deepcopy", "copy"])
def test_every_public_exception_round_trips_with_all_its_fields(
    cls: type[BaseException], trip: str
) -> None:
    error = _example(cls)
    if trip == "pickle":
        again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    elif trip == "deepcopy":
        again = copy.deepcopy(error)
    else:
        again = copy.copy(error)
    assert type(again) is cls
    assert again is not error
    assert str(again) == str(error)
    assert again.args == error.args
    assert _fields(again) == _fields(error)


def test_an_unknown_keeps_what_settling_needs_and_its_identity() -> None:
    error = _unknown()
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (again.params, again.timestamp, again.recv_window, again.status) == (
        error.params,
        error.timestamp,
        error.recv_window,
        error.status,
    )
    assert (again.journal_id, again.journal_path) == (12, "transfers.sqlite")
    assert again.request_id == copy.deepcopy(error).request_id == "0f1e2d3c"
    assert again.__notes__ == error.__notes__


def test_a_copy_carries_no_chain() -> None:
    """The cause chain (frames of httpx and h11, which saw the key) does not travel."""
    error = _unknown()
    try:
        raise error from RuntimeError(API_KEY)
    except OutcomeUnknownError as raised:
        blob = pickle.dumps(raised)
    assert API_KEY.encode() not in blob and SECRET.encode() not in blob
    assert pickle.loads(blob).__cause__ is None  # noqa: S301 - our own bytes
