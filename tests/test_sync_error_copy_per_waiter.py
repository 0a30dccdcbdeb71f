"""The failure of a shared clock sync reaches each waiter as an error of its own.

Were ``Job.result()`` to raise the very exception instance the sync ended with, in
every waiter's task, each ``raise`` would prepend that task's frames to the one shared
``__traceback__``: a waiter's error shows the frames of the other callers' tasks
(3 waiters: 26 frames, a lone caller's error has far fewer), ``__context__`` would
be whatever the last raiser was handling, and anything one caller does to its error
(a note, an attribute, ``with_traceback``) would show up in the others'. Each
waiter gets a copy, chained to the sync's error (its ``__cause__``).
"""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType

import looptime
import pytest

from binance_transfers import (
    AuthenticationError,
    BinanceTransfersError,
    Client,
    ClientClosedError,
    ConnectionFailedError,
    IPBannedError,
    MalformedResponseError,
    ServiceUnavailableError,
    TooManyRequestsError,
)

from .conftest import API_KEY, SECRET, FakeBinance
from .test_clock_sync_shared import SlowClock, transfer


def _depth(tb: TracebackType | None) -> int:
    depth = 0
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    return depth


async def _failures(callers: int) -> list[BaseException]:
    fake = FakeBinance()
    async with Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2, refuse=True)) as client:
        calls = (transfer(client) for _ in range(callers))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, ConnectionFailedError) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, BaseException)]


@looptime.enabled(strict=True)
async def test_each_waiter_of_a_failed_sync_gets_an_error_of_its_own() -> None:
    """Three callers share a sync that cannot connect: three distinct errors, each with
    a traceback as deep as a lone caller's (its own frames only)."""
    (alone,) = await _failures(1)
    errors = await _failures(3)
    assert len({id(e) for e in errors}) == 3
    assert [_depth(e.__traceback__) for e in errors] == [_depth(alone.__traceback__)] * 3


@looptime.enabled(strict=True)
async def test_the_waiters_errors_chain_to_the_sync_s_and_share_nothing_else() -> None:
    """Each copy's ``__cause__`` is the sync's own error (one for all); a note one
    caller adds to its error is not in the others' nor in the original."""
    errors = await _failures(3)
    causes = {id(e.__cause__) for e in errors}
    assert len(causes) == 1
    assert isinstance(errors[0].__cause__, ConnectionFailedError)
    assert all(str(e) == str(errors[0].__cause__) for e in errors)
    errors[0].add_note("seen by the first caller")
    assert not getattr(errors[1], "__notes__", None)
    assert not getattr(errors[0].__cause__, "__notes__", None)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionFailedError("could not connect"),
        ClientClosedError("closed during the clock sync"),
        TooManyRequestsError("limited", retry_at=1.7e9, retry_after=2.0),
        IPBannedError("banned", retry_at=1.7e9, retry_after=60.0),
        MalformedResponseError("no serverTime", status=200, endpoint="server_time", body="{}"),
        ServiceUnavailableError("busy", status=503, endpoint="server_time"),
        AuthenticationError(-2015, "Invalid API-key", status=401, endpoint="server_time"),
    ],
    ids=type,
)
def test_what_a_sync_can_raise_survives_a_copy(error: BinanceTransfersError) -> None:
    """The errors a sync may end with are copied with their type, message and fields
    (``Job.result`` hands each waiter a copy)."""
    error.add_note("a note")
    twin = copy.copy(error)
    assert type(twin) is type(error)
    assert twin.args == error.args
    assert vars(twin) == vars(error)
