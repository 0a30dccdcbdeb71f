"""A client never closed, its clock sync still under way when the event loop ends.

The sync runs in a task of its own (B9-10): under asyncio, ``asyncio.run``
cancels it at its end; under trio, the run cancels it as a system task when
the main task returns. Neither may leave a trace: no "Task was destroyed but
it is pending", no "exception was never retrieved", no TrioInternalError.
"""

from __future__ import annotations

import textwrap

from .conftest import run_python

_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    sys.stderr = sys.stdout  # whatever asyncio or trio would log shows in the output
    import anyio, httpx, trio
    from binance_transfers import Client, ThrottledError

    class Hanging(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            await anyio.sleep(3600)  # the clock's answer never comes
            raise AssertionError("unreachable")

    async def main():
        client = Client("k" * 64, "s" * 64, transport=Hanging())
        try:
            await client.transfer(type="MAIN_UMFUTURE", asset="USDT", amount="1", max_wait=0.01)
        except ThrottledError:
            print("refused")

    asyncio.run(main())
    trio.run(main)
    gc.collect()
    print("ended")
    """
)


def test_a_sync_under_way_when_the_loop_ends_leaves_no_trace() -> None:
    """asyncio.run() and trio.run() end cleanly, with nothing logged on stderr."""
    out = run_python(_SCRIPT)
    assert out.split() == ["refused", "refused", "ended"]
