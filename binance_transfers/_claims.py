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
``settle_margin`` is over, long after); a claim is awaited. Both stores
publish through one :class:`_Outbox`, whose rule is that an answered id is
never dropped while the process lives (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
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


#: An answered id on its way to the store: (account, tranId, Binance's epoch ms).
Answer = tuple[str, int, int]

#: Answered ids are published this long after the first of a batch (seconds): one
#: publish for every answer meanwhile, not one (a thread's wakeup, a round trip to
#: Redis) per transfer. Another process's settlement searches only once Binance's
#: window plus settle_margin is over, seconds later.
_PUBLISH_DELAY = 0.05
#: A failed batch is tried again after _PUBLISH_DELAY, doubled per failure, up to this.
_RETRY_MAX = 2.0
#: How long closing may wait for the store, whatever the caller's cancellation (seconds).
_CLOSE_TIMEOUT = 10.0


def _spawn(fn: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None] | None:
    """Run ``fn()`` as a task of the running event loop (trio: one of its system tasks).

    Neither needs a task group of the caller's: ``answered`` is called from a
    transfer's own task, which must not wait for the publish.
    """
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop.create_task(fn())
    import trio

    trio.lowlevel.spawn_system_task(fn)
    return None


class _Outbox:
    """Answered ids on their way to a claims store: the rule both stores share.

    Ids are handed to ``publish`` in batches by one task at a time: the
    first ``_PUBLISH_DELAY`` after the first answer, then, while answers keep
    coming, each batch with what came during the one before. A batch that fails (the store
    refused it, or the task was cancelled on its way) goes back in front of
    what came meanwhile, in order, and is tried again after a backoff by a
    timer of its own: no other answer has to come first. Publishing is
    idempotent (an id stored as answered stays so, and a conflict is reported
    only once the whole batch went through), so trying a batch twice changes
    nothing. :meth:`aclose` publishes what is left at once, shielded from the
    caller's cancellation and bounded by ``_CLOSE_TIMEOUT``, and names at
    ERROR every id it could not publish: none is dropped silently.
    """

    def __init__(self, publish: Callable[[list[Answer]], Awaitable[None]], name: str) -> None:
        self._publish = publish
        self._name = name
        self._queued: list[Answer] = []
        self._task: asyncio.Task[None] | None = None  # asyncio's, kept from the GC
        self._running = False
        self._idle: anyio.Event | None = None  # set when the running task ends
        self._wakeup: anyio.CancelScope | None = None  # the task's wait, cut short by aclose
        self._scope: anyio.CancelScope | None = None  # the whole task's
        self._in_flight: list[Answer] = []  # the batch being published
        self._closing = False
        self._closed = False

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, answer: Answer) -> None:
        """Queue an answered id; a task publishes it (and the rest of its batch) shortly."""
        self._queued.append(answer)
        if not self._running:
            self._running = True
            self._idle = anyio.Event()
            self._task = _spawn(self._run)

    async def _attempt(self) -> bool:
        """Publish everything queued; on any failure put the batch back in front."""
        batch, self._queued = self._queued, []
        self._in_flight = batch
        try:
            await self._publish(batch)
        except BaseException as exc:
            self._queued[:0] = batch
            if isinstance(exc, Exception):
                log.warning(
                    "claims %s: %d answered tranIds not published, kept to try again: %r",
                    self._name,
                    len(batch),
                    exc,
                )
                return False
            raise
        finally:
            self._in_flight = []
        return True

    async def _run(self) -> None:
        delay = _PUBLISH_DELAY
        try:
            with anyio.CancelScope() as self._scope:
                while self._queued:
                    if delay and not self._closing:
                        with anyio.CancelScope() as self._wakeup:
                            await anyio.sleep(delay)
                        self._wakeup = None
                    if await self._attempt():
                        # What came meanwhile goes out at once, as one batch (as
                        # RedisClaims did before: a 50 ms pause between batches
                        # made B5-3 race, a 429 in PM Pro's shared
                        # auto-collect pool, several times likelier in the demo).
                        delay = 0.0
                    elif self._closed:
                        self._report_lost("after close")  # nobody tries again
                        return
                    elif self._closing:
                        return  # aclose makes the last attempt itself
                    else:
                        delay = min(max(delay, _PUBLISH_DELAY) * 2, _RETRY_MAX)
        except BaseException:
            if self._queued and not self._closing:
                # The event loop is cancelling its tasks (it is shutting down, the
                # client was not closed): say so, as aclose() would.
                self._report_lost("its publishing task was cancelled")
            raise
        finally:
            self._wakeup = self._scope = None
            self._running = False
            self._task = None
            if self._idle is not None:
                self._idle.set()

    async def aclose(self) -> None:
        """Publish what is queued now (one last attempt); log at ERROR what could not be."""
        self._closing = True
        # Shielded: a client closed by a cancelled task (``async with`` unwinding)
        # still publishes; bounded: a store that hangs does not hold the close.
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT):
            if self._running and self._idle is not None:
                if self._wakeup is not None:
                    self._wakeup.cancel()
                await self._idle.wait()
            if self._queued:
                await self._attempt()
        self._closed = True
        left = self._in_flight + self._queued  # a hung batch is not known to be in
        if left:
            if self._scope is not None:
                self._scope.cancel()  # it must not outlive the close
            self._report_lost("closing", left)

    def _report_lost(self, when: str, left: list[Answer] | None = None) -> None:
        ids = [tran_id for _, tran_id, _ in (self._queued if left is None else left)]
        log.error(
            "claims %s: %d answered tranId(s) not published (%s): %s; another "
            "process's settlement may take their history rows as its own",
            self._name,
            len(ids),
            when,
            ", ".join(map(str, ids[:50])) + (" ..." if len(ids) > 50 else ""),
        )


class RedisClaims:
    """Claims in the Redis that the governor's :class:`~binance_transfers.RedisStorage` uses."""

    def __init__(self, storage: RedisStorage, *, ttl: float = DEFAULT_TTL) -> None:
        self._redis = storage._client
        self._prefix = storage._key("claims")
        self.ttl = ttl
        self._outbox = _Outbox(self._publish, self._prefix)

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
        self._outbox.add((account, tran_id, at_ms))

    async def _publish(self, batch: list[Answer]) -> None:
        ttl = max(1, round(self.ttl))
        async with self._redis.pipeline(transaction=False) as pipe:
            for account, tran_id, _ in batch:
                pipe.set(self._key(account, tran_id), ANSWERED, nx=True, ex=ttl)
            results = await pipe.execute()
        taken = [
            (account, tran_id)
            for (account, tran_id, _), stored in zip(batch, results, strict=True)
            if not stored
        ]
        if not taken:
            return
        # Who holds the others (ours, from an earlier try of this batch, or a
        # settlement's): read in one round trip, reported once it all went through.
        async with self._redis.pipeline(transaction=False) as pipe:
            for account, tran_id in taken:
                pipe.get(self._key(account, tran_id))
            holders = await pipe.execute()
        for (account, tran_id), owner in zip(taken, holders, strict=True):
            if owner is not None and owner != ANSWERED:
                _conflict(account, tran_id, str(owner))

    async def aclose(self) -> None:
        await self._outbox.aclose()


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

#: How long a claim waits for another process's write lock (ms).
_BUSY_TIMEOUT_MS = 5000


class SqliteClaims:
    """Claims in an SQLite file shared by every process of the account on this host.

    Claims (rare: settlements) and batches of answered ids run in worker
    threads, one at a time on one connection; the expired claims are deleted
    every ``_EXPIRE_EVERY`` ids published.
    """

    def __init__(self, path: str | os.PathLike[str], *, ttl: float = DEFAULT_TTL) -> None:
        self.path = os.fspath(path)
        self.ttl = ttl
        self._outbox = _Outbox(self._publish, repr(self.path))
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._conn: sqlite3.Connection | None = None
        self._published = 0  # since the last deletion of expired claims

    def __repr__(self) -> str:
        return f"<SqliteClaims {self.path!r}>"

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # As the journal: what the OS was handed survives the process being killed.
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        """The connection (opened at first use; called under ``_lock``)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        with self._lock:
            conn = self._connection()
            with _transaction(conn):
                conn.execute(_INSERT, (account, tran_id, owner, at_ms))
                row = conn.execute(_OWNER, (account, tran_id)).fetchone()
            return str(row[0])

    async def claim(self, account: str, tran_id: int, owner: str, at_ms: int) -> str:
        try:
            return await anyio.to_thread.run_sync(self._claim, account, tran_id, owner, at_ms)
        except Exception as exc:
            raise ConfigurationError(
                f"the claims file {self.path!r} cannot be used: {exc}"
            ) from exc

    def answered(self, account: str, tran_id: int, at_ms: int) -> None:
        self._outbox.add((account, tran_id, at_ms))

    async def _publish(self, batch: list[Answer]) -> None:
        # Not abandoned on cancellation: the batch's fate is known when this returns.
        await anyio.to_thread.run_sync(self._publish_sync, batch)

    def _publish_sync(self, batch: list[Answer]) -> None:
        with self._lock:
            conn = self._connection()
            _publish_answered(conn, batch)
            self._published += len(batch)
            if self._published >= _EXPIRE_EVERY:
                self._published = 0
                newest = max(at_ms for _, _, at_ms in batch)
                expired = newest - round(self.ttl * 1000)
                try:
                    conn.execute("DELETE FROM claims WHERE at_ms < ?", (expired,))
                except Exception as exc:  # the batch is in: tidying can wait
                    log.warning("claims %s: expired claims not deleted: %r", self.path, exc)

    async def aclose(self) -> None:
        await self._outbox.aclose()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


#: Answered ids published between two deletions of expired claims.
_EXPIRE_EVERY = 1000


#: Claim an id, unless it has an owner already; _OWNER then reads whose it is.
_INSERT = "INSERT OR IGNORE INTO claims (account, tran_id, owner, at_ms) VALUES (?, ?, ?, ?)"
_OWNER = "SELECT owner FROM claims WHERE account = ? AND tran_id = ?"


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; rolled back if anything fails, the COMMIT included."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open (a failed COMMIT may have ended it already)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _publish_answered(conn: sqlite3.Connection, ids: list[Answer]) -> None:
    with _transaction(conn):
        taken: list[tuple[Any, ...]] = []
        for account, tran_id, at_ms in ids:
            cursor = conn.execute(_INSERT, (account, tran_id, ANSWERED, at_ms))
            if cursor.rowcount == 0:
                taken.append((account, tran_id))
        owners = [
            (account, tran_id, conn.execute(_OWNER, (account, tran_id)).fetchone()[0])
            for account, tran_id in taken
        ]
    for account, tran_id, owner in owners:
        if owner != ANSWERED:
            _conflict(account, tran_id, owner)
