"""What a user's http_client gains after the first call (B5-4).

The transport works out once per endpoint whether ``AsyncClient.send`` adds
anything (hooks, auth, cookies, params, redirects) and, if not, hands requests
straight to httpx's transport. A request hook, an auth or a cookie added to the
client after that first call must still run: a kill switch added later must
stop the transfer it refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx
import pytest

from binance_transfers import Client, ConfigurationError, TransferType
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET

from .test_refused_before_transport import demo, served


class PolicyError(Exception):
    """The user's kill switch: no transfers now."""


async def _kill_switch(request: httpx.Request) -> None:
    if request.method == "POST":
        raise PolicyError("no transfers now")


class _RefusingAuth(httpx.Auth):
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.method == "POST":
            raise PolicyError("no transfers now")
        yield request


def _add_hook(http: httpx.AsyncClient) -> None:
    http.event_hooks["request"].append(_kill_switch)


def _set_hooks(http: httpx.AsyncClient) -> None:
    http.event_hooks = {"request": [_kill_switch]}


def _set_auth(http: httpx.AsyncClient) -> None:
    http.auth = _RefusingAuth()


@pytest.mark.parametrize(
    "change", [_add_hook, _set_hooks, _set_auth], ids=["hook appended", "hooks set", "auth set"]
)
async def test_a_refusal_added_after_the_first_transfer_runs(
    change: Callable[[httpx.AsyncClient], None],
) -> None:
    exchange = demo()
    http = httpx.AsyncClient()
    async with served(exchange, http) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        change(http)
        with pytest.raises(ConfigurationError):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert len(exchange.ledger.executed("universal_transfer")) == 1


async def test_a_cookie_set_after_the_first_call_is_sent() -> None:
    """Cookies (and default params) take httpx's own request building: set later, they count."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        if request.url.path == "/api/v3/time":
            return httpx.Response(200, json={"serverTime": 1_700_000_000_000})
        return httpx.Response(200, json={"tranId": len(seen)})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, Client(DEMO_API_KEY, DEMO_API_SECRET, http_client=http) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        http.cookies.set("session", "abc")
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert seen[-1] == "session=abc" and None in seen[:-1]
