"""B7-2 (the review's test, taken as is): the first call imported (and built) on the event
loop, inside its max_wait. Fixed since: ``Client()`` builds the SSL context and imports
the transport library and anyio's backend for the running loop; ``async with client``
does the loop's part for a client built outside any loop.

What it found:

B6-3's fix (084258b, ea7cfd5) imports aiohttp in ``Client()``
(httpcore under trio), and its test looks at top-level module names among
aiohttp, httpcore, h11, yarl and multidict only. The first call still imports
anyio's event-loop backend, its socket, stream and TLS modules, anyio.to_thread
and certifi (and builds the default SSL context from certifi's bundle), all
synchronously on the event loop: at load 8-9 that is 77-174 ms of imports plus
144-319 ms for the SSL context; first call 0.32-0.55 s against 0.008-0.024 s for
the second (loopback simulator, /tmp/b7/asyncio_first.py). And a client built
outside any event loop (at module level, then ``trio.run``) imported aiohttp,
which trio never uses, and imports httpcore and h11 inside its first call
under trio (first call 0.45-0.63 s, second 0.02-0.05 s).

Each case runs in a fresh interpreter against the simulator serving on
127.0.0.1 in a child process (killed at the end), and lists the modules first
imported during the first call.
"""

from __future__ import annotations

import textwrap

import pytest

from .conftest import last_json

_SCRIPT = textwrap.dedent(
    """
    import json, sys, subprocess
    from decimal import Decimal

    server = subprocess.Popen(
        [sys.executable, "-m", "binance_transfers.sim", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = next(w for w in server.stdout.readline().split() if w.startswith("http"))
        from binance_transfers import Client
        from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET

        def build():
            return Client(DEMO_API_KEY, DEMO_API_SECRET, api_url=url, papi_url=url)

        outside = build() if BUILT == "outside" else None

        async def main():
            client = outside if outside is not None else build()
            async with client:
                before = set(sys.modules)
                await client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount=Decimal(1))
                first = sorted(set(sys.modules) - before)
            print(json.dumps(first))

        if BACKEND == "trio":
            import trio

            trio.run(main)
        else:
            import asyncio

            asyncio.run(main())
    finally:
        server.terminate()
        server.wait()
    """
)

#: What the first call must not import on the event loop (prefixes).
HEAVY = (
    "aiohttp",
    "httpcore",
    "h11",
    "yarl",
    "multidict",
    "certifi",
    "anyio._backends",
    "anyio.streams.tls",
    "anyio.to_thread",
)


@pytest.mark.parametrize(
    ("backend", "built"),
    [("asyncio", "inside"), ("trio", "inside"), ("trio", "outside")],
)
def test_the_first_call_imports_nothing_heavy_on_the_event_loop(backend: str, built: str) -> None:
    script = f"BACKEND = {backend!r}\nBUILT = {built!r}\n" + _SCRIPT
    first = last_json(script, timeout=120)
    heavy = [m for m in first if m.startswith(HEAVY)]
    assert heavy == [], f"imported inside the first call ({backend}, client built {built}): {heavy}"
