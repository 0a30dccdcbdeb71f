"""The intent journal: every mutating call, on disk before its first byte leaves.

A local SQLite file (stdlib ``sqlite3``, WAL mode) written by one
dedicated thread, never from the event loop. Each mutating call is one row:

1. ``open``: written, and committed, *before* the request is handed to the
   transport, with its parameters, ``recvWindow`` and Binance's clock at that
   moment (the request's ``timestamp`` can only be later);
2. then its outcome: ``done`` (with the answer's id), ``refused`` (Binance
   said no, or nothing was sent) or ``unknown`` (with the ``timestamp`` sent);
3. after :meth:`Client.reconcile` or :meth:`Client.recover`: ``executed``,
   ``not_executed`` or ``unsettled``.

A row still ``open`` or ``unknown`` after a crash is what ``recover()`` settles.

Durability: each write is one SQLite transaction, so a process killed at any
instruction leaves the file consistent, with every committed row in it (the
operating system holds what was written). By default commits are never
fsynced (``synchronous=OFF``): a power failure or kernel crash may lose the
last rows or even corrupt the file. ``Journal(path, durable=True)`` fsyncs
every commit (``synchronous=FULL``) and survives those too, at the price of
one fsync per transfer. One process at a time per file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from ._closing import to_the_end
from ._exceptions import ConfigurationError

if TYPE_CHECKING:  # import9 (issue 9): sqlite3 is imported when a journal opens its file
    import sqlite3

__all__ = ["Intent", "Journal", "PendingIntent", "to_the_end"]

_T = TypeVar("_T")

log = logging.getLogger("binance_transfers.journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    params TEXT NOT NULL,
    recv_window INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    timestamp INTEGER,
    tran_id INTEGER,
    note TEXT
);
DROP INDEX IF EXISTS intents_state;
"""
# No index on ``state``: every intent and outcome would write its pages too, on
# the path before the first byte; only recover() filters by state, once.

#: States a row can be in.
OPEN, DONE, REFUSED, UNKNOWN = "open", "done", "refused", "unknown"
EXECUTED, NOT_EXECUTED, UNSETTLED = "executed", "not_executed", "unsettled"


def _as_dict(params: Mapping[str, str]) -> dict[str, str]:
    return dict(params)


@attrs.frozen(kw_only=True)
class Intent:
    """One row of the journal."""

    id: int
    session: str
    endpoint: str
    params: Mapping[str, str] = attrs.field(converter=_as_dict, eq=False)
    """What the call asked for (without ``recvWindow``, ``timestamp`` or signature)."""
    recv_window: int
    created_ms: int
    """Binance's clock (our estimate) when the intent was written."""
    state: str
    timestamp: int | None
    """The ``timestamp`` sent, once an attempt's outcome is known."""
    tran_id: int | None
    note: str | None


class Journal:
    """An SQLite intent journal at ``path`` (created if missing).

    One dedicated writer thread owns the connection; the event loop only
    queues work for it. Writes queued while a transaction is being
    committed go together into the next one (group commit), so fifty
    coroutines pay for about one commit, not fifty. An intent is waited
    for until committed: in the event loop when other writes are queued,
    else by blocking the loop's thread for at most a millisecond (a lone
    commit is quicker than the loop's own wakeup). Outcomes are queued
    without waiting (a crash before they are committed leaves the row
    open, which :meth:`Client.recover` settles). :meth:`aclose` flushes the
    queue and stops the thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.path = os.fspath(path)
        self.durable = durable
        """fsync every commit (survives a power failure; costs one fsync per write)."""
        self.session = uuid.uuid4().hex
        """This process's run: ``recover()`` settles the rows other runs left."""
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        # Jobs not yet handed to the writer: handed over together, once per
        # loop iteration (or at once, for a wait that blocks). Waking the
        # writer per job costs more than the job: the woken thread takes the
        # event loop's CPU or its GIL while the loop still has work to do.
        self._batch: list[_Job] = []
        self._handing = False  # a hand-over is scheduled in the event loop
        self._thread: threading.Thread | None = None
        # Outcomes wait here, in the event loop's thread, and ride along with
        # the next committed write: waking the writer thread for each one
        # would cost more than the write itself.
        self._pending: list[tuple[Any, ...]] = []
        # Intents queued (counted by the event loop's thread) and committed
        # (counted by the writer thread): each counter has one writer.
        self._submitted = 0
        self._committed = 0
        # Blocking waits left before trying one again, after one timed out.
        self._slow = 0

    def __repr__(self) -> str:
        return f"<Journal {self.path!r}>"

    # -- the event loop's side ---------------------------------------------------

    def _block_for(self, intent: _Job) -> None:
        """Wait for a lone intent's commit by blocking this thread, for a millisecond at most.

        With nothing else queued for the writer (no group commit to gather)
        and nothing else ready in the loop, the loop would only sit in
        select() until the commit. Blocking with the GIL released costs one
        thread switch each way; awaiting adds a self-pipe write, a loop
        iteration and the loop's own wakeup: 50-60 us a transfer (measured
        against awaiting, one at a time over loopback, load average 3).
        A slow disk holds the loop for ``_BLOCK_SECONDS`` at most; then this
        intent, and the next ``_SLOW_SKIPS``, are awaited in the loop.
        """
        if self._submitted - self._committed > 1:
            return  # others are queued: they are committed together, awaited
        if not _loop_idle():
            return  # other coroutines may queue theirs: one commit for all, awaited
        self._hand_over()  # nothing to wait for: the writer starts now
        if self.durable:
            return  # an fsync takes milliseconds: never worth blocking for
        if self._slow:
            self._slow -= 1
            return
        if not intent.finished.acquire(timeout=_BLOCK_SECONDS):
            self._slow = _SLOW_SKIPS

    def _hand_over(self) -> None:
        """Give the writer thread every job queued so far (in order)."""
        self._handing = False
        if self._batch:
            batch, self._batch = self._batch, []
            self._queue.put(batch)

    def _hand_over_soon(self) -> None:
        """Hand the queued jobs over in the next loop iteration, with whatever joins them."""
        if self._batch and not self._handing:
            self._handing = True
            _call_soon(self._hand_over)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=_writer,
                args=(self.path, self.durable, self._queue),
                name="binance-journal",
                daemon=True,
            )
            self._thread.start()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(connection, *args)`` in the writer thread and await its commit."""
        job = self._submit(fn, *args)
        self._hand_over()
        return await job.committed()  # type: ignore[no-any-return]

    def _submit(self, fn: Callable[..., Any], *args: Any, intent: bool = False) -> _Job:
        """Queue a job (handed over by _hand_over, or when an intent is waited for)."""
        self._start()
        job = _Job(fn, args, self._take_pending(), self if intent else None)
        self._batch.append(job)
        return job

    def _take_pending(self) -> list[tuple[Any, ...]]:
        pending, self._pending = self._pending, []
        return pending

    async def open(
        self,
        endpoint: str,
        params: Sequence[tuple[str, str]],
        recv_window: int,
        created_ms: int,
    ) -> int:
        """Write the intent and wait until it is committed; return its id."""
        row_id: int = await self.begin(endpoint, params, recv_window, created_ms).committed()
        return row_id

    def begin(
        self,
        endpoint: str,
        params: Sequence[tuple[str, str]],
        recv_window: int,
        created_ms: int,
    ) -> PendingIntent:
        """Queue the intent; ``await pending.committed()`` before the first byte leaves.

        The writer thread gets it when it is waited for (or with the next
        write). Its commit cannot overlap the caller's own work (the writer
        needs the GIL the event loop holds), so await it at once.
        """
        args = (self.session, endpoint, json.dumps(list(params)), recv_window, created_ms)
        self._submitted += 1
        return self._submit(_insert, *args, intent=True)

    def outcome(
        self,
        intent: int | PendingIntent,
        state: str,
        *,
        timestamp: int | None = None,
        tran_id: int | None = None,
        note: str | None = None,
        only_if_open: bool = False,
    ) -> None:
        """Note what became of the intent; committed with the next write or :meth:`flush`.

        A crash before that leaves the row open, which ``recover()`` settles
        from Binance's history like any other. ``intent`` may be a
        :class:`PendingIntent` not yet committed (a caller cancelled while
        waiting for it): its row, if it gets one, is updated.
        """
        self._pending.append((intent, state, timestamp, tran_id, note, only_if_open))
        if len(self._pending) >= _MAX_PENDING:
            self._submit(_nothing)
            self._hand_over_soon()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self._run(_nothing)

    async def left_over(self, also: Collection[int] = ()) -> list[Intent]:
        """Rows other runs left ``open`` or ``unknown``, oldest first.

        ``also`` adds this run's rows with those ids, if still open or unknown
        (calls whose caller is gone: nobody else will settle them).
        """
        return await self._run(_left_over, self.session, sorted(also))

    async def claimed(self) -> set[int]:
        """Every ``tranId`` the journal knows the owner of (answered or settled executed)."""
        return await self._run(_claimed)

    async def sent_since(self, since_ms: Mapping[str, int]) -> dict[str, list[int]]:
        """Per endpoint, when each of its rows (any run) was sent, from ``since_ms`` on.

        A row's time is its ``timestamp`` (Binance epoch ms), else when its
        intent was written. Only the journal's recent end is read.
        """
        return await self._run(_sent_since, dict(since_ms))

    async def row(self, intent: int) -> Intent | None:
        """The row ``intent``, if there is one."""
        return await self._run(_one, intent)

    async def rows(self) -> list[Intent]:
        """Every row, oldest first (for reports and tests)."""
        return await self._run(_all)

    async def aclose(self) -> None:
        """Commit what is queued, close the file and stop the writer thread."""
        thread = self._thread
        if thread is None:
            return
        try:
            await self.flush()
        except ConfigurationError:
            # Already raised to the calls it hit; closing must still stop the thread.
            log.warning("journal %s: the last writes failed", self.path, exc_info=True)
        self._hand_over()
        self._queue.put(None)
        await anyio.to_thread.run_sync(thread.join)
        self._thread = None


#: Outcomes held back at most, before they are sent to the writer on their own.
_MAX_PENDING = 64


class _Job:
    """One piece of work for the writer thread (a :class:`PendingIntent` for inserts)."""

    __slots__ = ("args", "finished", "fn", "is_done", "journal", "result", "updates", "wake")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        updates: list[tuple[Any, ...]],
        journal: Journal | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.updates = updates
        self.journal = journal  # an intent's: see Journal._block_for
        self.result: Any = None
        self.is_done = False
        self.wake: _Wake | None = None  # set by a waiter in the event loop
        self.finished = threading.Lock()  # released by the writer thread once committed
        self.finished.acquire()

    async def committed(self) -> Any:
        """Wait until the job's transaction is committed; its result (or its error)."""
        if not self.is_done:
            if self.journal is not None:
                self.journal._block_for(self)
            if not self.is_done:
                if self.journal is not None:
                    self.journal._hand_over_soon()
                event = anyio.Event()
                self.wake = (_submitter(), event)
                # The writer sets is_done, then reads wake: if is_done is still
                # false after ours is set, the writer will see ours and call it.
                if not self.is_done:
                    # Shielded: once queued, the write happens; the caller waits for
                    # it so that nothing it does next can overtake it.
                    with anyio.CancelScope(shield=True):
                        await event.wait()
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    @property
    def failure(self) -> BaseException | None:
        """Why the write failed, once it has."""
        return self.result if isinstance(self.result, BaseException) else None

    @property
    def id(self) -> int | None:
        """The row's id once committed, else None."""
        return self.result if self.is_done and isinstance(self.result, int) else None


#: An intent queued for the writer thread: ``await pending.committed()`` -> row id.
PendingIntent = _Job

#: How long the event loop's thread may block on one intent's commit (seconds):
#: a commit takes ~50-100 us (a write() into the page cache, no fsync).
_BLOCK_SECONDS = 0.001
#: After a blocking wait ran out, this many intents are awaited in the loop instead.
_SLOW_SKIPS = 20


#: How the writer thread sets an event in its event loop: (loop.call_soon_threadsafe
#: or trio's run_sync_soon, the event).
_Wake = tuple[Callable[..., object], anyio.Event]


def _submitter() -> Callable[..., object]:
    """A thread-safe way to run a function in the running event loop."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop.call_soon_threadsafe
    import trio

    return trio.lowlevel.current_trio_token().run_sync_soon


def _call_soon(fn: Callable[[], object]) -> None:
    """Run ``fn`` in the running event loop's next iteration (called from its thread)."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        loop.call_soon(fn)
    else:
        _submitter()(fn)


def _loop_idle() -> bool:
    """Whether no other callback or task of this event loop is ready to run now."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        # asyncio's run queue (a private attribute, there since 3.4); a loop
        # without one (uvloop) is taken as busy: its intents are awaited.
        ready = getattr(loop, "_ready", None)
        return ready is not None and not ready
    import trio

    return trio.lowlevel.current_statistics().tasks_runnable == 0


def _set_all(events: list[anyio.Event]) -> None:
    for event in events:
        event.set()


def _writer(path: str, durable: bool, jobs: queue.SimpleQueue[list[_Job] | None]) -> None:
    """The writer thread: drain the queue, one transaction per batch.

    Every failure (the file cannot be opened, disk full, I/O error) reaches
    every caller whose write it hit, as :class:`ConfigurationError`; the
    thread never dies with callers still waiting.
    """
    conn: sqlite3.Connection | None = None
    lock: int | None = None
    # Outcomes from batches whose transaction failed: written first in the next
    # one. An outcome is a fact about money that moved (or did not); losing it
    # to a transient failure (a lock held past busy_timeout) would leave the
    # row to be misread, and only the job that asked for the commit is told.
    carried: list[tuple[Any, ...]] = []
    try:
        while True:
            batch = [jobs.get()]
            while True:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            work = [job for part in batch if part is not None for job in part]
            try:
                if conn is None:
                    if lock is None:
                        lock = _lock(path)
                    conn = _connect(path, durable)
                conn.execute("BEGIN IMMEDIATE")
                if carried:
                    _update_all(conn, carried)
                for job in work:
                    if job.updates:
                        _update_all(conn, job.updates)
                    job.result = job.fn(conn, *job.args)
                conn.execute("COMMIT")
                carried = []
            except Exception as exc:
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
                failure = ConfigurationError(f"the journal {path!r} cannot be written: {exc}")
                failure.__cause__ = exc
                for job in work:
                    job.result = failure
                    carried.extend(job.updates)  # in the order they came
            # One wakeup per event loop for the whole batch, not one per waiter.
            wakes: dict[Callable[..., object], list[anyio.Event]] = {}
            for job in work:
                job.is_done = True
                if job.journal is not None:
                    job.journal._committed += 1
                wake = job.wake
                if wake is not None:
                    wakes.setdefault(wake[0], []).append(wake[1])
                job.finished.release()
            for submit, events in wakes.items():
                submit(_set_all, events)
            if None in batch:
                return
    finally:
        if carried:
            # Their rows stay open (or as last written): recover() settles them.
            log.error(
                "journal %s: %d outcome(s) could not be written; their rows are left "
                "for recover() to settle",
                path,
                len(carried),
            )
        if conn is not None:
            conn.close()
        if lock is not None:
            os.close(lock)  # the lock goes with it (and with the process, if killed)


def _lock(path: str) -> int | None:
    """Hold ``path + ".lock"`` exclusively: one writer (process, Journal) per file.

    Two writers would each take the other's open rows for their own crash
    and settle them, and two runs of a job would each act on the same state.
    The operating system drops the lock when the process dies, killed or not.
    Without ``fcntl`` (Windows) nothing is enforced.
    """
    try:
        import fcntl  # POSIX only
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigurationError(
            f"the journal {path!r} is in use by another writer (another process, or "
            "another Journal/Client of this one): one at a time per file"
        ) from None
    return fd


#: How long a write waits for another connection's lock (an operator's shell, a backup).
_BUSY_TIMEOUT_MS = 5000


def _connect(path: str, durable: bool) -> sqlite3.Connection:
    import sqlite3  # import9 (issue 9): not at import time

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    # OFF: a commit is a write() to the log, never an fsync (even NORMAL's
    # checkpoint fsyncs cost a loopback call's worth of time now and then).
    # What the OS was handed survives the process being killed at any instruction.
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.executescript(_SCHEMA)
    return conn


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _insert(
    conn: sqlite3.Connection,
    session: str,
    endpoint: str,
    params: str,
    recv_window: int,
    created_ms: int,
) -> int:
    cursor = conn.execute(
        "INSERT INTO intents (session, endpoint, params, recv_window, created_ms, state) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (session, endpoint, params, recv_window, created_ms, OPEN),
    )
    return int(cursor.lastrowid or 0)


_UPDATE = (
    "UPDATE intents SET state = ?, timestamp = COALESCE(?, timestamp), "
    "tran_id = COALESCE(?, tran_id), note = COALESCE(?, note) "
    "WHERE id = ? AND (state = 'open' OR NOT ?)"
)


def _update_all(conn: sqlite3.Connection, updates: list[tuple[Any, ...]]) -> None:
    """Every queued outcome in one statement execution (in the order they came)."""
    rows = []
    for intent, state, timestamp, tran_id, note, only_if_open in updates:
        if isinstance(intent, _Job):
            # Queued before its insert was committed: queued after it too, so
            # its insert ran first (its row id, or its failure: no row).
            intent = intent.result
            if not isinstance(intent, int):
                continue
        rows.append((state, timestamp, tran_id, note, intent, only_if_open))
    conn.executemany(_UPDATE, rows)


def _row(values: tuple[Any, ...]) -> Intent:
    (row_id, session, endpoint, params, recv_window, created_ms, state, ts, tran_id, note) = values
    return Intent(
        id=row_id,
        session=session,
        endpoint=endpoint,
        params=dict(json.loads(params)),
        recv_window=recv_window,
        created_ms=created_ms,
        state=state,
        timestamp=ts,
        tran_id=tran_id,
        note=note,
    )


_COLUMNS = "id, session, endpoint, params, recv_window, created_ms, state, timestamp, tran_id, note"


def _left_over(conn: sqlite3.Connection, session: str, also: list[int]) -> list[Intent]:
    cursor = conn.execute(
        f"SELECT {_COLUMNS} FROM intents WHERE state IN ('open', 'unknown') "  # noqa: S608
        "AND (session != ? OR id IN (SELECT value FROM json_each(?))) ORDER BY id",
        (session, json.dumps(also)),
    )
    return [_row(values) for values in cursor.fetchall()]


def _claimed(conn: sqlite3.Connection) -> set[int]:
    cursor = conn.execute(
        "SELECT tran_id FROM intents WHERE tran_id IS NOT NULL AND state IN ('done', 'executed', "
        "'not_executed')"
    )
    return {values[0] for values in cursor.fetchall()}


#: How far an earlier run's clock estimate may lag ours (rows are read newest first
#: and the scan stops this much before the oldest time asked for).
_CLOCK_SLACK_MS = 60_000


def _sent_since(conn: sqlite3.Connection, since_ms: dict[str, int]) -> dict[str, list[int]]:
    sent: dict[str, list[int]] = {}
    if not since_ms:
        return sent
    stop = min(since_ms.values()) - _CLOCK_SLACK_MS
    cursor = conn.execute(
        "SELECT endpoint, COALESCE(timestamp, created_ms), created_ms FROM intents ORDER BY id DESC"
    )
    for endpoint, at, created in cursor:
        if created < stop:
            break  # rows are written in time order: the rest is older still
        if endpoint in since_ms and at >= since_ms[endpoint]:
            sent.setdefault(endpoint, []).append(at)
    return sent


def _one(conn: sqlite3.Connection, intent: int) -> Intent | None:
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM intents WHERE id = ?", (intent,))  # noqa: S608
    values = cursor.fetchone()
    return None if values is None else _row(values)


def _all(conn: sqlite3.Connection) -> list[Intent]:
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM intents ORDER BY id")  # noqa: S608
    return [_row(values) for values in cursor.fetchall()]
