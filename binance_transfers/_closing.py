"""Closing that runs to its end, whatever cancels the closer."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import anyio

__all__ = ["to_the_end"]


async def to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Await ``work`` to its end, whatever cancels the caller meanwhile; then let it cancel.

    For closing: what is queued for the disk (the journal's outcomes, the
    claims' answered ids) is written even when ``async with`` unwinds in a
    cancelled task. An anyio shield stops a cancel scope's cancellation (and
    trio's), not asyncio's plain ``task.cancel()`` (``asyncio.timeout``,
    ``asyncio.TaskGroup``, ``wait_for``): there ``work`` runs in a task of
    its own, waited for through any number of cancellations, each of which
    is raised once it is done.
    """
    loop = asyncio._get_running_loop()
    if loop is None:
        with anyio.CancelScope(shield=True):
            await work
        return
    task = loop.create_task(work)
    cancelled = False
    with anyio.CancelScope(shield=True):  # against anyio's repeated cancellation
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                cancelled = True
    task.result()  # its own failure first: the caller must see it
    if cancelled:
        raise asyncio.CancelledError
