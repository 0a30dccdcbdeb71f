"""RedisStorage: connecting to Redis, the Storage protocol, closing.

See the package's docs for the design; the halves are mixins: ``_leasing``
(window leases, Redis lost and probed) and ``_freezes`` (429s and bans shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from .._lazy import LazyModule
from .._limits import PoolSpec
from .._storage import CallCounter, StorageLink, WindowCounter
from ._caps import SharedCallCounter
from ._freezes import Freezes
from ._scripts import CAP, LEASE
from ._windows import LeasedWindowCounter

if TYPE_CHECKING:
    import redis.asyncio as aioredis
else:
    # The redis extra, imported by storage_from_url() or by resolving the
    # type hints (typing.get_type_hints), not with this module.
    aioredis = LazyModule("redis.asyncio")

__all__ = ["RedisStorage", "storage_from_url"]

log = logging.getLogger("binance_transfers.redis")


class RedisStorage(Freezes):
    """Counts shared by every process through one Redis: see the module's docs.

    Create it with :meth:`connect` inside the event loop, pass it to every
    governor of the process, and close it at the end (it gives back what it
    leased and did not use)::

        async with await RedisStorage.connect("redis://10.0.0.5:6379/0", egress="nat-a") as s:
            governor = Governor(storage=s)
            ...

    ``egress`` names the IP the process leaves through: processes with the
    same label share the IP pools. ``processes`` is how many processes are
    expected: leases are sized ``limit / (4 max(processes, live processes))``
    from the first one. With Redis lost, a process admits only within the
    leases it holds until Redis answers. asyncio only.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        egress: str = "default",
        prefix: str = "binance_transfers",
        processes: int = 1,
        where: str = "redis",
        socket_timeout: float = 0.5,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self._client = client
        self.socket_timeout = socket_timeout
        self.egress = egress
        self.prefix = prefix
        self.processes = processes
        self._where = where  # host:port only: a URL may carry a password
        self.id = secrets.token_hex(6)
        self._boot = ""
        self._tag = "{" + prefix + "}"  # one hash slot: a Lua script may touch every key
        self._script = client.register_script(LEASE)
        self._cap_script = client.register_script(CAP)
        self._caps: dict[str, list[SharedCallCounter]] = {}
        self._cap_down = False  # a cap's last call to Redis failed (logged once)
        self._pending: dict[tuple[LeasedWindowCounter, int], int] = {}
        self._counters: dict[str, list[LeasedWindowCounter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.seen = 1  # the most live processes Redis reported
        self.lost: int | None = None  # the window Redis was lost in, while it is
        self.round_trips = 0
        # Freezes (429) and bans (418) shared with the other processes: the
        # latest end known per Redis key (published by us or by others).
        self._ban_key = self._key(f"ip:{egress}:ban")
        self._channel = self._key("freeze")
        self._freezes: dict[str, float] = {}
        self._applying = False
        self._listener: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._probe: asyncio.TimerHandle | None = None  # Redis lost: the next try
        self._suspect = False  # Redis failed us (a call, or the listener): probe it
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        egress: str = "default",
        prefix: str = "binance_transfers",
        processes: int = 1,
        socket_timeout: float = 0.5,
        fresh: bool = False,
    ) -> RedisStorage:
        """Connect to Redis at ``url``; :class:`ConfigurationError` if it does not answer.

        ``socket_timeout`` bounds each round trip: a slower answer counts as Redis lost.

        ``fresh=True`` vouches that this Redis knows of everything spent of the
        budget (``prefix``) that still counts: say it only for a Redis you have
        just started for the processes about to use it. Otherwise, a Redis met
        with no counts at all may be one restarted empty (or flushed): new
        leases stop for a window or two, and rolling caps grant nothing for a
        whole period and a liveness span (an hour and 3 minutes for the
        auto-collections' cap), since the calls of processes that exited before
        are not known. With
        ``fresh=True`` on a Redis restarted empty under a budget in use, a
        limit may be exceeded. It changes nothing on a Redis already in use.
        """
        from redis.exceptions import RedisError

        client, where = _client(url, socket_timeout)
        storage = cls(
            client,
            egress=egress,
            prefix=prefix,
            processes=processes,
            where=where,
            socket_timeout=socket_timeout,
        )
        try:
            if fresh:  # boot tokens without the stops of a restart (see _scripts)
                token = secrets.token_hex(8)
                # Only a Redis that holds no budget yet (no boot token): on one
                # in use, ``fresh`` changes nothing.
                if await client.hsetnx(storage._key("boot"), "token", token):
                    await client.hsetnx(storage._key("capfresh"), "*", token)
            # Read, never create: only the lease script may create the boot token,
            # because creating it means the stop of a restart (see _scripts.LEASE).
            storage._boot = str(await client.hget(storage._key("boot"), "token") or "")
        except RedisError as error:
            await client.aclose()
            raise ConfigurationError(f"{where} is unreachable: {type(error).__name__}") from None
        with contextlib.suppress(RedisError):  # a managed Redis may refuse CONFIG: no warning
            aof = (await client.config_get("appendonly")).get("appendonly")
            save = (await client.config_get("save")).get("save")
            if aof == "no" and not save:
                # B4-5: restarted empty, Redis forgets the rolling caps'
                # calls of processes that are gone (exited or killed): the next
                # process may be granted a cap already used in its period.
                log.warning(
                    "%s keeps nothing on disk (appendonly no, no save): if it restarts, "
                    "rolling caps forget the calls of processes that are gone; "
                    "enable appendonly for shared caps",
                    where,
                )
        with contextlib.suppress(RedisError):
            limit = (await client.config_get("maxmemory")).get("maxmemory")
            policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
            if limit not in (None, "0") and policy != "noeviction":
                # B5-2: an evicted lease hash is forgotten weight
                # (windows carry a TTL: volatile-* policies evict them too),
                # and nothing tells it from unused. An evicted cap set takes
                # its token with it: the cap stops for a period (see _scripts.CAP).
                log.warning(
                    "%s may evict keys (maxmemory-policy %s): a shared budget evicted "
                    "is spent again; use maxmemory-policy noeviction",
                    where,
                    policy,
                )
        storage._listen()
        return storage

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        egress: str = "default",
        prefix: str = "binance_transfers",
        processes: int = 1,
        socket_timeout: float = 0.5,
    ) -> RedisStorage:
        """A storage that connects on first use, for callers without an event loop
        yet (a command line): Redis unreachable then counts as Redis lost, not as
        a :class:`ConfigurationError`. Prefer :meth:`connect`."""
        client, where = _client(url, socket_timeout)
        return cls(
            client,
            egress=egress,
            prefix=prefix,
            processes=processes,
            where=where,
            socket_timeout=socket_timeout,
        )

    # -- the Storage protocol --------------------------------------------------

    def window_counter(self, spec: PoolSpec, link: StorageLink) -> WindowCounter:
        scope = f"ip:{self.egress}" if spec.per_ip else "account"
        counter = LeasedWindowCounter(self, spec, link, self._key(f"{scope}:{spec.key}"))
        self._counters.setdefault(spec.key, []).append(counter)
        return counter

    def call_counter(self, spec: PoolSpec, link: StorageLink) -> CallCounter:
        """A rolling cap shared by every process of the account: see :class:`SharedCallCounter`."""
        counter = SharedCallCounter(self, spec, link, self._key(f"cap:{spec.key}"))
        self._caps.setdefault(spec.key, []).append(counter)
        return counter

    def discard(self, key: str) -> None:
        self._counters.pop(key, None)
        for counter in self._caps.pop(key, []):
            free = counter.close()
            if free and self._listener is not None:  # give back what it held
                self._spawn(self._cap_release(counter, free))

    async def _cap_call(
        self,
        counter: SharedCallCounter,
        want: int,
        first: int,
        updates: dict[str, float],
        release: set[str] | dict[str, float],
    ) -> list[Any]:
        """One run of the cap script for ``counter`` (see _scripts.CAP)."""
        now = counter._link.server_now()
        keys = [self._key("capfresh"), f"{counter.redis_key}:live", counter.redis_key]
        args: list[Any] = [
            self.id,
            counter._boot,
            secrets.token_hex(8),
            int(now * 1000),
            max(int(counter.span * 1000), 1),
            max(int(counter.period * 1000), 1),
            want,
            counter.limit,
            first,
            len(updates),
        ]
        for member, until in updates.items():
            args += [member, "inf" if until == math.inf else math.ceil(until * 1000)]
        args += list(release)
        self.round_trips += 1
        return list(await self._cap_script(keys=keys, args=args))

    async def _cap_release(self, counter: SharedCallCounter, free: dict[str, float]) -> None:
        from redis.exceptions import RedisError

        with contextlib.suppress(RedisError):  # else they are bounded as a dead process's
            await self._cap_call(counter, 0, 0, {}, free)

    def _cap_lost(self, counter: SharedCallCounter, error: Exception) -> None:
        if not self._cap_down:
            self._cap_down = True
            log.warning(
                "%s lost (%s): rolling cap %r admits nothing new until it answers",
                self._where,
                type(error).__name__,
                counter.key,
            )

    def _cap_back(self) -> None:
        if self._cap_down:
            self._cap_down = False
            log.warning("%s is back: rolling caps lease from it again", self._where)

    # -- read API (for the `limits` command) -------------------------------------

    async def usage(self, spec: PoolSpec, window: int) -> dict[str, int]:
        """What Redis holds for ``spec``'s pool in ``window``: ``{"total": n, id: lease}``."""
        scope = f"ip:{self.egress}" if spec.per_ip else "account"
        raw = await self._client.hgetall(self._key(f"{scope}:{spec.key}:{window}"))
        return {("total" if k == "t" else str(k)): int(v) for k, v in raw.items()}

    # -- lifetime --------------------------------------------------------------

    async def aclose(self) -> None:
        """Give back what was leased and not used, and close the connection."""
        self._closed = True  # no more probes (one on its way would schedule the next)
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if self._task is not None:
            self._task.cancel()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        from redis.exceptions import RedisError

        for caps in self._caps.values():
            for cap in caps:
                free = cap.close()
                if free and cap._boot:
                    await self._cap_release(cap, free)

        back: dict[tuple[LeasedWindowCounter, int], int] = {}
        for counters in self._counters.values():
            for counter in counters:
                for window, grant in counter._grant.items():
                    unused = grant - max(counter._own.get(window, 0), counter._debt.get(window, 0))
                    if unused > 0:
                        back[(counter, window)] = unused
        if back and self.lost is None:
            with contextlib.suppress(RedisError):  # else they expire with their windows
                await self._give_back(back)
        await self._client.aclose()

    async def __aenter__(self) -> RedisStorage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"RedisStorage({self._where}, egress={self.egress!r}, id={self.id})"


def _client(url: str, socket_timeout: float) -> tuple[aioredis.Redis, str]:
    """redis-py's asyncio client for ``url`` (no I/O yet), and where it points
    without the password a URL may carry."""
    try:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:  # pragma: no cover - the extra is not installed
        raise ConfigurationError(
            "RedisStorage needs redis-py: pip install 'binance-transfers[redis]'"
        ) from None
    client = aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        # One retry at once: a connection broken by a restart of Redis fails
        # once and reconnects. Beyond that, Redis is lost (see _on_lost).
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
    )
    kwargs = client.connection_pool.connection_kwargs
    where = f"redis at {kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
    return client, where


def storage_from_url(url: str) -> RedisStorage:
    """The command line's hook (``binance-transfers limits --redis URL``): checked
    at once (a blocking PING, no event loop yet), :class:`ConfigurationError`
    if Redis does not answer."""
    import redis
    from redis.exceptions import RedisError

    storage = RedisStorage.from_url(url)
    with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5) as probe:
        try:
            probe.ping()
        except RedisError as error:
            raise ConfigurationError(
                f"{storage._where} is unreachable: {type(error).__name__}"
            ) from None
    return storage
