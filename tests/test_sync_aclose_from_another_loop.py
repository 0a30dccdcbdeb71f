"""The clock sync's task (``_background.Job``) and the event loop it ran in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import looptime
import pytest

from binance_transfers import Client, ThrottledError

from .conftest import API_KEY, SECRET, FakeBinance
from .test_clock_sync_shared import SlowClock, transfer


def aclose_on_a_new_loop(client: Client) -> None:
    """Close ``client`` from a loop of its own, as a synchronous wrapper would."""
    second = looptime.new_event_loop(start=0, _enabled=True)
    try:
        second.run_until_complete(asyncio.wait_for(client.aclose(), 5))
    finally:
        second.close()


def test_aclose_after_the_loop_of_an_unfinished_sync_was_closed() -> None:
    """A caller gives up on the clock sync (max_wait 0.05 s, the sync takes 0.2 s) and
    its loop is closed with the sync's task still pending (``run_until_complete`` per
    call, as a synchronous wrapper does). ``aclose()`` from a new loop must still
    close the client. Cancelling the dead loop's task would schedule on that loop:
    RuntimeError("Event loop is closed") out of ``aclose()``, and the http client
    (and the journal) left open."""
    fake = FakeBinance()
    client = Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2))
    seen: list[dict[str, Any]] = []
    first = looptime.new_event_loop(start=0, _enabled=True)
    first.set_exception_handler(lambda _, context: seen.append(context))
    with pytest.raises(ThrottledError):
        first.run_until_complete(transfer(client, max_wait=0.05))
    first.close()
    aclose_on_a_new_loop(client)
    assert client.closed
    assert client._http.is_closed  # its connections released
    assert seen == []


def test_aclose_from_another_loop_while_the_sync_s_loop_is_idle() -> None:
    """The same, the first loop left open but no longer running (a synchronous
    wrapper keeping one loop per call, or a test's loop per function). ``aclose()``
    from the second loop must not wait for a task that no running loop will ever
    resume (awaiting the sync's end on an Event bound to the first loop, where its
    waiter waited, raises RuntimeError out of ``aclose()``; were it not bound, it
    would wait forever for a task of the idle loop)."""
    fake = FakeBinance()
    client = Client(API_KEY, SECRET, transport=SlowClock(fake, 0.2))
    first = looptime.new_event_loop(start=0, _enabled=True)
    second = looptime.new_event_loop(start=0, _enabled=True)
    try:
        with pytest.raises(ThrottledError):
            first.run_until_complete(transfer(client, max_wait=0.05))
        second.run_until_complete(asyncio.wait_for(client.aclose(), 5))
        assert client._http.is_closed
    finally:
        second.close()
        first.close()


@looptime.enabled(strict=True)
async def test_a_failure_to_stop_the_sync_still_closes_the_http_client_and_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping the sync is the first step of closing: should it fail, its error
    comes out of ``aclose()`` after the http client and the journal are closed."""

    async def broken() -> None:
        raise RuntimeError("stopping the sync failed")

    client = Client(
        API_KEY, SECRET, transport=SlowClock(FakeBinance(), 0.2), journal=tmp_path / "j"
    )
    monkeypatch.setattr(client._transport, "stop_tasks", broken)
    journal = client.journal
    assert journal is not None
    closed: list[str] = []
    real = journal.aclose

    async def journal_aclose() -> None:
        closed.append("journal")
        await real()

    monkeypatch.setattr(journal, "aclose", journal_aclose)
    with pytest.raises(RuntimeError, match="stopping the sync failed"):
        await client.aclose()
    assert client._http.is_closed
    assert closed == ["journal"]
