"""Who owns which ``tranId``: claims shared by the processes of one account.

A user universal transfer whose outcome is unknown is settled from Binance's
history by type, asset, amount and time. Identical transfers look alike, so
each history row may settle one request only: the one whose answer carried
its ``tranId`` ("answered"), or the first settlement that claimed it. Within
one client the :class:`~binance_transfers._reconcile.Reconciler` keeps that
to itself; two processes of one account must share it, or each may take the
other's row (one process's confirmed transfer settling the other's refused
one as executed: that money is then never sent).

Two stores, both claiming atomically (the first claim of an id wins, every
later one learns its owner):

* :class:`RedisClaims`, used by a client whose governor's storage is a
  :class:`~binance_transfers.RedisStorage`: ``SET key owner NX EX ttl``,
  one key per account and ``tranId``;
* :class:`SqliteClaims`, ``Client(claims=PATH)``: one SQLite file (WAL)
  shared by the processes of one host, ``INSERT OR IGNORE`` in a transaction.

Answered ids are published in the background, in batches, as answers come
(a settlement of another process searches only once Binance's window plus
``settle_margin`` is over, long after); a claim is awaited.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    import sqlite3

    from ._redis import RedisStorage

__all__ = ["ANSWERED", "Claims", "RedisClaims", "SqliteClaims"]

log = logging.getLogger("binance_transfers.reconcile")

#: The owner of an id that Binance's answer carried (to whichever process).
ANSWERED = "answered"

#: How long a claim is kept (seconds). A settlement searches around its own
#: request's time; one started later than this after its transfer (a recover()
#: after a week's outage) may take a row another process answered or claimed.
DEFAULT_TTL = 30 * 24 * 3600.0


class Claims(Protocol):
    """A store of ``tranId`` owners shared by the processes of one account."""

    async def claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        """Give ``tran_id`` to ``owner`` unless it has one; return its owner now (atomic).

        ``at_ms``: Binance's clock now (epoch ms), from which the claim expires.
        """

    def answered(self, account: str, tran_id: int, at_ms: int) -> None:
        """An answer of ours carried ``tran_id`` (at Binance's ``at_ms``): publish it."""

    async def aclose(self) -> None:
        """Publish what is queued and let go of the store."""


def _conflict(account: str, tran_id: int, owner: str) -> None:
    log.error(
        "account %s: Binance's answer carried tranId %s, which a settlement (%s) had "
        "already claimed: that settlement's 'executed' verdict was wrong (raise "
        "settle_margin if this recurs)",
        account,
        tran_id,
        owner,
    )


class RedisClaims:
    """Claims in the Redis that the governor's :class:`~binance_transfers.RedisStorage` uses."""

    def __init__(self, storage: RedisStorage, *, ttl: float = DEFAULT_TTL) -> None:
        self._redis = storage._client
        self._prefix = storage._key("claims")
        self.ttl = ttl
        self._queued: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<RedisClaims {self._prefix!r}>"

    def _key(self, account: str, tran_id: int) -> str:
        return f"{self._prefix}:{account}:{tran_id}"

    async def claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        from redis.exceptions import RedisError

        key = self._key(account, tran_id)
        ttl = max(1, round(self.ttl))
        try:
            for _ in range(2):  # once more if the owner's key expired in between
                if await self._redis.set(key, owner, nx=True, ex=ttl):
                    return owner
                current = await self._redis.get(key)
                if current is not None:
                    return str(current)
        except RedisError as exc:
            raise ConfigurationError(f"Redis did not answer the claim: {exc!r:.200}") from None
        raise ConfigurationError(f"the claim of tranId {tran_id} could not be read back")

    def answered(self, account: str, tran_id: int, at_ms: int) -> None:
        self._queued.append((account, tran_id))
        if self._timer is None and (self._task is None or self._task.done()):
            self._timer = asyncio.get_running_loop().call_later(_PUBLISH_DELAY, self._start)

    def _start(self) -> None:
        self._timer = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._publish())

    async def _publish(self) -> None:
        from redis.exceptions import RedisError

        ttl = max(1, round(self.ttl))
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for account, tran_id in batch:
                        pipe.set(self._key(account, tran_id), ANSWERED, nx=True, ex=ttl)
                    results = await pipe.execute()
                for (account, tran_id), stored in zip(batch, results, strict=True):
                    if not stored:
                        owner = await self._redis.get(self._key(account, tran_id))
                        if owner is not None and owner != ANSWERED:
                            _conflict(account, tran_id, str(owner))
            except RedisError as exc:
                # Known here all the same; other processes' settlements may take
                # these rows until Redis answers (the next publish retries them).
                log.warning("claims: %d answered tranIds not published: %r", len(batch), exc)
                self._queued[:0] = batch
                return

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await self._task
        if self._queued:  # left by a failed publish: one more try
            await self._publish()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    account TEXT NOT NULL,
    tran_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (account, tran_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_at_ms ON claims (at_ms);
"""

#: Answered ids are published this long after the first of a batch (seconds): one
#: publish for every answer meanwhile, not one (a thread's wakeup, a round trip to
#: Redis) per transfer. Another process's settlement searches only once Binance's
#: window plus settle_margin is over, seconds later.
_PUBLISH_DELAY = 0.05


def _later(fn: Callable[[], object]) -> None:
    """Run ``fn`` in this event loop ``_PUBLISH_DELAY`` from now (trio: in its next tick)."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        loop.call_later(_PUBLISH_DELAY, fn)
    else:
        import trio

        trio.lowlevel.current_trio_token().run_sync_soon(fn)


#: How long a claim waits for another process's write lock (ms).
_BUSY_TIMEOUT_MS = 5000


class SqliteClaims:
    """Claims in an SQLite file shared by every process of the account on this host.

    Claims (rare: settlements) run in a worker thread and are awaited;
    answered ids go to a writer thread of their own, which publishes them
    in batches, and deletes the expired claims every ``_EXPIRE_EVERY`` of them.
    """

    def __init__(self, path: str | os.PathLike[str], *, ttl: float = DEFAULT_TTL) -> None:
        self.path = os.fspath(path)
        self.ttl = ttl
        self._answers: queue.SimpleQueue[list[tuple[str, int, int]] | None] = queue.SimpleQueue()
        self._held: list[tuple[str, int, int]] = []  # answered, not yet handed to the writer
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()  # one connection for claims, used by one thread at a time
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<SqliteClaims {self.path!r}>"

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # As the journal: what the OS was handed survives the process being killed.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.executescript(_SCHEMA)
        return conn

    def _claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR IGNORE INTO claims (account, tran_id, owner, at_ms) "
                    "VALUES (?, ?, ?, ?)",
                    (account, tran_id, owner, at_ms),
                )
                row = conn.execute(
                    "SELECT owner FROM claims WHERE account = ? AND tran_id = ?", (account, tran_id)
                ).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return str(row[0])

    async def claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        try:
            return await anyio.to_thread.run_sync(self._claim, account, tran_id, owner, at_ms)
        except Exception as exc:
            raise ConfigurationError(
                f"the claims file {self.path!r} cannot be used: {exc}"
            ) from exc

    def answered(self, account: str, tran_id: int, at_ms: int) -> None:
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._publish, name="binance-claims", daemon=True
            )
            self._writer.start()
        self._held.append((account, tran_id, at_ms))
        if len(self._held) == 1:
            _later(self._hand_over)

    def _hand_over(self) -> None:
        held, self._held = self._held, []
        if held:
            self._answers.put(held)

    def _publish(self) -> None:
        """The writer thread: answered ids, a batch per transaction, until None."""
        conn: sqlite3.Connection | None = None
        published = 0
        try:
            while True:
                batch = [self._answers.get()]
                while True:
                    try:
                        batch.append(self._answers.get_nowait())
                    except queue.Empty:
                        break
                ids = [item for part in batch if part is not None for item in part]
                if ids:
                    try:
                        conn = conn or self._connect()
                        _publish_answered(conn, ids)
                        published += len(ids)
                        if published >= _EXPIRE_EVERY:
                            published = 0
                            newest = max(at_ms for _, _, at_ms in ids)
                            expired = newest - round(self.ttl * 1000)
                            conn.execute("DELETE FROM claims WHERE at_ms < ?", (expired,))
                    except Exception as exc:
                        log.warning("claims: %d answered tranIds not published: %r", len(ids), exc)
                if None in batch:
                    return
        finally:
            if conn is not None:
                conn.close()

    async def aclose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._hand_over()
            self._answers.put(None)
            await anyio.to_thread.run_sync(writer.join)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


#: Answered ids published between two deletions of expired claims.
_EXPIRE_EVERY = 1000


def _publish_answered(conn: sqlite3.Connection, ids: list[tuple[str, int, int]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        taken: list[tuple[Any, ...]] = []
        for account, tran_id, at_ms in ids:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO claims (account, tran_id, owner, at_ms) VALUES (?, ?, ?, ?)",
                (account, tran_id, ANSWERED, at_ms),
            )
            if cursor.rowcount == 0:
                taken.append((account, tran_id))
        owners = [
            (
                account,
                tran_id,
                conn.execute(
                    "SELECT owner FROM claims WHERE account = ? AND tran_id = ?", (account, tran_id)
                ).fetchone()[0],
            )
            for account, tran_id in taken
        ]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for account, tran_id, owner in owners:
        if owner != ANSWERED:
            _conflict(account, tran_id, owner)
