"""Answered tranIds reach the shared claims store: never dropped, whatever fails on the way.

An answered id that never reaches the store lets another process's settlement
take that history row as its own (its unexecuted transfer settled "executed":
that money is then never sent, or its executed one "not executed": resent).
So a batch the store refuses, or that is cancelled on its way, is kept and
tried again; closing publishes what is left even in a cancelled scope, and
names at ERROR what it could not.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import looptime
import pytest

from binance_transfers import RedisStorage
from binance_transfers._claims import ANSWERED, Claims, RedisClaims, SqliteClaims, _Outbox

ACCOUNT = "acct"
AT_MS = 1_767_225_600_000


def owners(path: Path) -> dict[int, str]:
    """The claims file's owners, read by a connection of the test's own."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT tran_id, owner FROM claims WHERE account = ?", (ACCOUNT,)))
    finally:
        conn.close()


class FailingOnce(SqliteClaims):
    """A claims file whose first connection fails as a disk error would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failed = threading.Event()

    def _connect(self) -> sqlite3.Connection:
        if not self.failed.is_set():
            self.failed.set()
            raise sqlite3.OperationalError("disk I/O error")
        return super()._connect()


async def failed_once(path: Path, tran_id: int) -> FailingOnce:
    """A :class:`FailingOnce` whose first publish, of ``tran_id``, has failed."""
    claims = FailingOnce(path)
    claims.answered(ACCOUNT, tran_id, AT_MS)
    assert await anyio.to_thread.run_sync(claims.failed.wait, 10)
    return claims


async def close_in_a_cancelled_scope(claims: Claims) -> None:
    """Close as a client closed by a cancelled task (``async with`` unwinding) does."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await claims.aclose()


async def test_an_sqlite_batch_that_failed_once_is_published_not_dropped(tmp_path: Path) -> None:
    """The first publish hits a disk error: the id is still published (before or at close)."""
    path = tmp_path / "claims.sqlite"
    claims = await failed_once(path, 11)
    await claims.aclose()
    assert owners(path) == {11: ANSWERED}


async def test_a_batch_failed_on_its_first_connection_does_not_hold_up_later_ones(
    tmp_path: Path,
) -> None:
    """Ids answered after a failed batch go out with it, in one piece."""
    path = tmp_path / "claims.sqlite"
    claims = await failed_once(path, 11)
    claims.answered(ACCOUNT, 12, AT_MS)
    await claims.aclose()
    assert owners(path) == {11: ANSWERED, 12: ANSWERED}


async def test_an_sqlite_close_in_a_cancelled_scope_still_publishes(tmp_path: Path) -> None:
    """A client closed by a cancelled task (``async with`` unwinding) loses no answered id."""
    path = tmp_path / "claims.sqlite"
    claims = SqliteClaims(path)
    claims.answered(ACCOUNT, 21, AT_MS)
    await close_in_a_cancelled_scope(claims)
    assert owners(path) == {21: ANSWERED}


async def test_an_sqlite_answer_for_a_claimed_row_keeps_the_claim_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A settlement claimed tranId 51, then an answer carried it: the claim stays, one ERROR
    names both; a first claim wins over a second (both read back the first owner)."""
    path = tmp_path / "claims.sqlite"
    claims = SqliteClaims(path)
    assert await claims.claim(ACCOUNT, 51, "journal:other:7", AT_MS) == "journal:other:7"
    assert await claims.claim(ACCOUNT, 51, "journal:mine:1", AT_MS) == "journal:other:7"
    claims.answered(ACCOUNT, 51, AT_MS)
    claims.answered(ACCOUNT, 52, AT_MS)
    with caplog.at_level(logging.ERROR, logger="binance_transfers.reconcile"):
        await claims.aclose()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "tranId 51" in errors[0] and "journal:other:7" in errors[0]
    assert owners(path) == {51: "journal:other:7", 52: ANSWERED}


def test_sqlite_claims_publish_under_trio(tmp_path: Path) -> None:
    """The same rule under trio (no event loop timers: a system task of trio's)."""
    import trio

    path = tmp_path / "claims.sqlite"

    async def main() -> None:
        claims = await failed_once(path, 31)
        claims.answered(ACCOUNT, 32, AT_MS)
        await claims.aclose()

    trio.run(main)
    assert owners(path) == {31: ANSWERED, 32: ANSWERED}


def test_an_event_loop_ending_before_close_names_the_ids_it_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``asyncio.run`` ends without ``aclose()`` (it cancels the publishing task): the ids
    not published are logged at ERROR, not dropped silently."""
    import asyncio

    async def main() -> None:
        claims = SqliteClaims(tmp_path / "claims.sqlite")
        claims.answered(ACCOUNT, 61, AT_MS)

    with caplog.at_level(logging.ERROR, logger="binance_transfers.reconcile"):
        asyncio.run(main())
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "61" in record.getMessage() and "cancelled" in record.getMessage()


# -- Redis ---------------------------------------------------------------------


class _FlakyPipeline:
    def __init__(self, pipe: Any, fail: bool) -> None:
        self._pipe = pipe
        self._fail = fail

    async def __aenter__(self) -> _FlakyPipeline:
        await self._pipe.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pipe.__aexit__(*exc)

    def set(self, *args: Any, **kwargs: Any) -> None:
        self._pipe.set(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> None:
        self._pipe.get(*args, **kwargs)

    async def execute(self) -> list[Any]:
        if self._fail:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("connection reset by peer")
        return await self._pipe.execute()  # type: ignore[no-any-return]


class _FlakyRedis:
    """The storage's Redis client, whose first pipeline fails as a dropped connection would."""

    def __init__(self, client: Any, fail: int = 1) -> None:
        self._client = client
        self._fail = fail
        self.pipelines = 0

    def pipeline(self, **kwargs: Any) -> _FlakyPipeline:
        self.pipelines += 1
        return _FlakyPipeline(self._client.pipeline(**kwargs), fail=self.pipelines == self._fail)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def flaky_claims(storage: RedisStorage, fail: int = 1) -> tuple[RedisClaims, _FlakyRedis]:
    flaky = _FlakyRedis(storage._client, fail)
    stand_in: Any = SimpleNamespace(_client=flaky, _key=storage._key)
    return RedisClaims(stand_in), flaky


async def test_a_redis_batch_that_failed_once_is_published_at_close(
    redis_storage: RedisStorage,
) -> None:
    """Redis drops the first publish: the id is still published."""
    claims, flaky = flaky_claims(redis_storage)
    claims.answered(ACCOUNT, 41, AT_MS)
    await claims.aclose()
    assert flaky.pipelines >= 2
    assert await redis_storage._client.get(claims._key(ACCOUNT, 41)) == ANSWERED


async def test_a_redis_batch_tried_twice_reports_a_real_conflict_once_and_no_false_one(
    redis_storage: RedisStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """The ids went in but reading the holders failed: the retry finds its own ids (no
    conflict) and the settlement's claim (one ERROR, not two)."""
    claims, flaky = flaky_claims(redis_storage, fail=2)  # the second pipeline: the holders' read
    assert await claims.claim(ACCOUNT, 51, "journal:other:7", AT_MS) == "journal:other:7"
    claims.answered(ACCOUNT, 51, AT_MS)
    claims.answered(ACCOUNT, 52, AT_MS)
    with caplog.at_level(logging.WARNING, logger="binance_transfers.reconcile"):
        await claims.aclose()
    assert flaky.pipelines == 4  # SET, GET (fails); SET, GET
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "tranId 51" in errors[0] and "journal:other:7" in errors[0]
    assert await redis_storage._client.get(claims._key(ACCOUNT, 52)) == ANSWERED


async def test_a_redis_close_in_a_cancelled_scope_still_publishes(
    redis_storage: RedisStorage,
) -> None:
    """Closing from a cancelled task: the queued id is published all the same."""
    claims = RedisClaims(redis_storage)
    claims.answered(ACCOUNT, 42, AT_MS)
    await close_in_a_cancelled_scope(claims)
    assert await redis_storage._client.get(claims._key(ACCOUNT, 42)) == ANSWERED


# -- the rule both stores share (a store of the test's own, on looptime's clock) --


class Store:
    """Records each batch; fails the batches it is told to; may hang on one."""

    def __init__(self, fail: int = 0, *, hang: bool = False, slow: float = 0.0) -> None:
        self.fail = fail
        self.tried: list[list[int]] = []
        self.stored: list[int] = []
        self.hang = hang
        self.slow = slow

    async def __call__(self, batch: list[tuple[str, int, int]]) -> None:
        self.tried.append([tran_id for _, tran_id, _ in batch])
        if self.hang:
            await anyio.sleep_forever()
        await anyio.sleep(self.slow)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the store did not answer")
        self.stored.extend(tran_id for _, tran_id, _ in batch)


def answer(outbox: _Outbox, *ids: int) -> None:
    """The account's ``ids`` answered, in this order."""
    for tran_id in ids:
        outbox.add((ACCOUNT, tran_id, AT_MS))


def outbox_to(store: Store, *ids: int) -> _Outbox:
    """An outbox publishing to ``store``, ``ids`` answered at once."""
    outbox = _Outbox(store, "test")
    answer(outbox, *ids)
    return outbox


@looptime.enabled(strict=True)
async def test_a_failed_batch_is_retried_by_a_timer_without_another_answer() -> None:
    """Nothing else answered, nobody closing: the batch goes out again on its own, after a
    backoff (another process's settlement may search within seconds)."""
    store = Store(fail=2)
    outbox = outbox_to(store, 1)
    await anyio.sleep(5)
    assert store.tried == [[1], [1], [1]]
    assert store.stored == [1]
    await outbox.aclose()


@looptime.enabled(strict=True)
async def test_ids_answered_during_a_failed_publish_go_out_after_it_in_order() -> None:
    """A failed batch goes back in front of what came meanwhile: one batch, in answer order."""
    store = Store(fail=1)
    outbox = outbox_to(store, 1, 2)
    await anyio.sleep(0.06)  # the first batch was tried (and failed)
    answer(outbox, 3)
    await anyio.sleep(5)
    assert store.tried == [[1, 2], [1, 2, 3]]
    assert store.stored == [1, 2, 3]
    await outbox.aclose()


@looptime.enabled(strict=True)
async def test_close_publishes_at_once_what_waits_for_a_retry() -> None:
    """A batch waiting out its backoff is published by close, without waiting for it."""
    store = Store(fail=1)
    outbox = outbox_to(store, 1)
    await anyio.sleep(0.06)
    loop_time = anyio.current_time()
    await outbox.aclose()
    assert anyio.current_time() - loop_time < 0.01
    assert store.stored == [1]


@looptime.enabled(strict=True)
async def test_a_store_that_hangs_at_close_is_given_up_on_and_the_ids_are_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Close is bounded; what it could not publish is logged at ERROR, id by id."""
    store = Store(hang=True)
    outbox = outbox_to(store, 7, 8)
    with caplog.at_level(logging.ERROR, logger="binance_transfers.reconcile"):
        await outbox.aclose()
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "2 answered tranId" in record.getMessage()
    assert "7" in record.getMessage() and "8" in record.getMessage()


@looptime.enabled(strict=True)
async def test_a_publish_cancelled_on_its_way_keeps_its_batch() -> None:
    """The publishing task cancelled mid-batch (its event loop shutting it down): the batch
    is kept, and the next publish sends it."""
    store = Store(hang=True)
    outbox = outbox_to(store, 5)
    await anyio.sleep(0.06)
    assert store.tried == [[5]]
    assert outbox._task is not None
    outbox._task.cancel()
    store.hang = False
    answer(outbox, 6)
    await outbox.aclose()
    assert store.stored == [5, 6]


@looptime.enabled(strict=True)
async def test_an_id_answered_after_close_that_cannot_be_published_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After close nobody tries again: a failure then is logged at ERROR, not kept silently."""
    store = Store(fail=1)
    outbox = outbox_to(store)
    await outbox.aclose()
    with caplog.at_level(logging.ERROR, logger="binance_transfers.reconcile"):
        answer(outbox, 9)
        await anyio.sleep(1)
    assert store.tried == [[9]]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "after close" in record.getMessage() and "9" in record.getMessage()


@looptime.enabled(strict=True)
async def test_close_while_a_batch_is_in_flight_waits_for_it_and_sends_the_rest() -> None:
    """Closing mid-publish: the batch on its way finishes, what came meanwhile follows."""
    store = Store(slow=1.0)
    outbox = outbox_to(store, 1)
    await anyio.sleep(0.5)  # on its way
    answer(outbox, 2)
    await outbox.aclose()
    assert store.tried == [[1], [2]]
    assert store.stored == [1, 2]


@looptime.enabled(strict=True)
async def test_answers_arriving_during_a_publish_go_out_right_after_it() -> None:
    """Only the first batch waits: what came during a publish follows at once, in one batch."""
    store = Store(slow=0.2)
    outbox = outbox_to(store, 1)
    await anyio.sleep(0.1)  # t=0.1: the first batch is on its way (0.05-0.25)
    answer(outbox, 2, 3)
    await anyio.sleep(0.17)  # t=0.27: the second went out at 0.25, without another pause
    assert store.tried == [[1], [2, 3]]
    await anyio.sleep(0.3)
    assert store.stored == [1, 2, 3]
    await outbox.aclose()
