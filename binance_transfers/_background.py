"""Work that outlives the call that started it, in a task the client owns."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import sys
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

__all__ = ["Job"]

_T = TypeVar("_T")


class Job(Generic[_T]):
    """``work()`` run once in a task of its own, awaited by any number of callers.

    Each caller waits (:meth:`wait`) up to its own deadline; its leaving (that
    deadline, or its cancellation) never cancels the work for the others. The
    outcome, a value or any exception, goes to every waiter (:meth:`result`);
    :meth:`stop` cancels the work (its waiters then get ``stopped``) and
    returns once the task has ended; a task of a loop that is closed, or is
    not the one running, it drops without touching that loop.

    The task belongs to no caller. Under asyncio it is a task of the loop,
    held here (the loop keeps only a weak reference). Under trio no nursery
    of the user's is at hand, so it is a system task (cancelled at the latest
    when the run's main task ends). Nothing may escape it: an exception
    leaving a trio system task crashes the whole run (``TrioInternalError``),
    and one left in an asyncio task nobody awaits is logged as never
    retrieved; so every failure is kept for the waiters, and only a
    cancellation that is not ours (the run or the loop ending) propagates. It
    starts in an empty context: the context variables of the call that
    happened to start it (its call state) are not the work's.
    """

    __slots__ = ("_done", "_dropped", "_outcome", "_scope", "_task", "started")

    def __init__(
        self,
        work: Callable[[], Awaitable[_T]],
        *,
        started: float,
        stopped: BaseException,
        name: str,
    ) -> None:
        self.started = started
        """When it started, on the monotonic clock of whoever passed it."""
        self._done = anyio.Event()
        self._scope = anyio.CancelScope()
        self._outcome: tuple[_T] | BaseException = stopped
        self._dropped = False  # stop() gave up a task of a closed (or other) loop
        self._task: asyncio.Task[None] | None = None
        loop = asyncio._get_running_loop()
        if loop is not None:
            self._task = loop.create_task(self._run(work), name=name, context=contextvars.Context())
        else:
            trio = sys.modules["trio"]  # the running async library: asyncio's or trio's
            trio.lowlevel.spawn_system_task(
                self._run, work, name=name, context=contextvars.Context()
            )

    async def _run(self, work: Callable[[], Awaitable[_T]]) -> None:
        try:
            with self._scope:
                self._outcome = (await work(),)
        except anyio.get_cancelled_exc_class():
            raise  # not our scope's: the run (or the loop) is ending; waiters get ``stopped``
        except BaseException as exc:
            self._outcome = exc
            if self._task is not None and not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: asyncio stops the loop with them
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        """Whether the work has ended (its outcome is in), or was dropped by :meth:`stop`."""
        return self._dropped or self._done.is_set()

    async def wait(self) -> None:
        """Wait until the work has ended; cancelling the waiter cancels only the wait."""
        await self._done.wait()

    def result(self) -> _T:
        """The work's value, or its exception raised (``stopped`` if it was stopped).

        Each waiter gets a copy of the exception, chained to it (its
        ``__cause__``): raising the one instance in every waiter's task would
        pile all their frames onto its one traceback, and what one caller sets
        on its error (a note, a field) would show in the others'.
        """
        outcome = self._outcome
        if not isinstance(outcome, BaseException):
            return outcome[0]
        if not isinstance(outcome, Exception):
            raise outcome  # KeyboardInterrupt, SystemExit: as they are
        try:
            error = copy.copy(outcome)  # ours survive it (BinanceTransfersError.__reduce__)
        except Exception:
            raise outcome from outcome.__cause__  # a foreign one that cannot be rebuilt
        notes = getattr(outcome, "__notes__", None)
        if isinstance(notes, list):
            error.__notes__ = list(notes)  # the copy shares the state's list otherwise
        raise error from outcome

    async def stop(self) -> None:
        """Cancel the work and return once its task has ended.

        Its task may be of a loop that was closed (a synchronous wrapper's
        ``run_until_complete`` per call) or is not running now (closing from
        another loop): cancelling it would schedule on that loop (RuntimeError
        once closed), and its end would never come. Such a task is dropped,
        its loop left untouched (should that loop run again, the task ends
        there on its own; new waiters get ``stopped`` at once).
        """
        if self.done:
            return
        task = self._task
        if task is not None and task.get_loop() is not asyncio._get_running_loop():
            self._dropped = True
            return
        self._scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._done.wait()
