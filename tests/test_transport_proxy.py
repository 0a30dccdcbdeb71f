"""The default client and the standard proxy environment variables (B4-9).

httpx's AsyncClient honours HTTP_PROXY/HTTPS_PROXY (trust_env=True), but only when it
builds its own transport; the package's default client (aiohttp on asyncio, behind a
custom transport) went direct. With a proxy in the environment the default client is
now httpx's own, proxies honoured.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from binance_transfers import Client, ConnectionFailedError


@pytest.mark.parametrize("http", ["default", "httpx.AsyncClient()"])
async def test_the_default_client_goes_through_the_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, http: str
) -> None:
    """A deployment whose only way out is the proxy in HTTPS_PROXY/HTTP_PROXY (and whose
    API key is whitelisted for that proxy's egress IP): requests must reach the proxy.
    With httpx.AsyncClient() they do; the default client went direct before the fix."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    kwargs: dict[str, Any] = {}
    if http != "default":
        kwargs["http_client"] = httpx.AsyncClient()
    try:
        async with Client(
            "k" * 64, "s" * 64, api_url="http://binance.invalid", max_wait=1, **kwargs
        ) as client:
            with pytest.raises(ConnectionFailedError):  # the proxy hangs up
                await client.server_time()
    finally:
        server.close()
        if "http_client" in kwargs:  # the client does not close an http_client it was given
            await kwargs["http_client"].aclose()
    assert seen and seen[0].startswith(b"GET http://binance.invalid/api/v3/time"), seen
