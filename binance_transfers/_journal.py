"""The intent journal: every mutating call, on disk before its first byte leaves.

A local SQLite file (stdlib ``sqlite3``, WAL mode) written from a worker
thread, never from the event loop. Each mutating call is one row:

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
operating system holds what was written). Commits are not fsynced
(``synchronous=NORMAL`` in WAL mode): a power failure or kernel crash may
lose the last rows written before it. One process at a time per file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import attrs

__all__ = ["Intent", "Journal"]

_T = TypeVar("_T")

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
CREATE INDEX IF NOT EXISTS intents_state ON intents (state);
"""

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

    Opened lazily, on its first write; :meth:`aclose` closes it. All SQLite
    work runs in a worker thread, one statement batch at a time.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.session = uuid.uuid4().hex
        """This process's run: ``recover()`` settles the rows other runs left."""
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Journal {self.path!r}>"

    # -- async API (worker thread) ----------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        # Cancelling the caller must not abandon a write half-way through the
        # bookkeeping: the thread finishes it anyway (anyio does not cancel threads).
        return await anyio.to_thread.run_sync(self._locked, fn, *args)

    def _locked(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            return fn(self._connection(), *args)

    async def open(
        self,
        endpoint: str,
        params: Sequence[tuple[str, str]],
        recv_window: int,
        created_ms: int,
    ) -> int:
        """Write (and commit) the intent; return its id."""
        return await self._run(
            _insert, self.session, endpoint, json.dumps(list(params)), recv_window, created_ms
        )

    async def outcome(
        self,
        intent: int,
        state: str,
        *,
        timestamp: int | None = None,
        tran_id: int | None = None,
        note: str | None = None,
        only_if_open: bool = False,
    ) -> None:
        """Record what became of the intent."""
        await self._run(_update, intent, state, timestamp, tran_id, note, only_if_open)

    async def left_over(self) -> list[Intent]:
        """Rows other runs left ``open`` or ``unknown``, oldest first."""
        return await self._run(_left_over, self.session)

    async def claimed(self) -> set[int]:
        """Every ``tranId`` the journal knows the owner of (answered or settled executed)."""
        return await self._run(_claimed)

    async def rows(self) -> list[Intent]:
        """Every row, oldest first (for reports and tests)."""
        return await self._run(_all)

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._run(_close)
            self._conn = None

    # -- worker thread -----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit is a write() to the log, no fsync. Survives
            # the process being killed; a power failure may lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn


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


def _update(
    conn: sqlite3.Connection,
    intent: int,
    state: str,
    timestamp: int | None,
    tran_id: int | None,
    note: str | None,
    only_if_open: bool,
) -> None:
    conn.execute(
        "UPDATE intents SET state = ?, timestamp = COALESCE(?, timestamp), "
        "tran_id = COALESCE(?, tran_id), note = COALESCE(?, note) "
        "WHERE id = ? AND (state = 'open' OR NOT ?)",
        (state, timestamp, tran_id, note, intent, only_if_open),
    )


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


def _left_over(conn: sqlite3.Connection, session: str) -> list[Intent]:
    cursor = conn.execute(
        f"SELECT {_COLUMNS} FROM intents WHERE state IN ('open', 'unknown') "  # noqa: S608
        "AND session != ? ORDER BY id",
        (session,),
    )
    return [_row(values) for values in cursor.fetchall()]


def _claimed(conn: sqlite3.Connection) -> set[int]:
    cursor = conn.execute(
        "SELECT tran_id FROM intents WHERE tran_id IS NOT NULL AND state IN ('done', 'executed', "
        "'not_executed')"
    )
    return {values[0] for values in cursor.fetchall()}


def _all(conn: sqlite3.Connection) -> list[Intent]:
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM intents ORDER BY id")  # noqa: S608
    return [_row(values) for values in cursor.fetchall()]


def _close(conn: sqlite3.Connection) -> None:
    conn.close()
