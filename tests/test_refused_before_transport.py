"""A request the user's own httpx client refuses before its transport gets it (B4-7).

httpx runs auth and request event hooks in ``AsyncClient.send`` before the
transport is handed the request: when one of them raises, not one byte has
left. The call must say so (nothing sent, typed), give its permit back and
close its journal row ``refused``, never report an unknown outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import httpx
import pytest

from binance_transfers import (
    Client,
    ConfigurationError,
    OutcomeUnknownError,
    TransferType,
)
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET, Fault, SimulatedExchange, serve


class PolicyError(Exception):
    """The user's own rule: no transfers now."""


@contextlib.asynccontextmanager
async def served(
    exchange: SimulatedExchange, http: httpx.AsyncClient, journal: Path | None = None
) -> AsyncIterator[Client]:
    """A client through ``http`` to ``exchange``, served on loopback; closes both
    (the client does not close an http_client it was given)."""
    async with serve(exchange) as server:
        client = Client(
            DEMO_API_KEY,
            DEMO_API_SECRET,
            api_url=server.url,
            papi_url=server.url,
            http_client=http,
            journal=journal,
        )
        async with http, client:
            yield client


def demo() -> SimulatedExchange:
    """A simulated exchange with its demo account."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    return exchange


async def _refused_by(http: httpx.AsyncClient, journal: Path | None) -> BaseException:
    exchange = demo()
    async with served(exchange, http, journal) as client:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - which one is the question
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert exchange.ledger.entries("universal_transfer") == []
    return caught.value


async def test_breaker4_a_request_hook_refusal_is_not_an_unknown_outcome(tmp_path: Path) -> None:
    """The review's test (B4-7), plus what the call must say instead and the journal row."""

    async def policy(request: httpx.Request) -> None:
        if request.method == "POST":
            raise PolicyError("no transfers now")

    http = httpx.AsyncClient(event_hooks={"request": [policy]})
    error = await _refused_by(http, tmp_path / "j.sqlite")
    assert not isinstance(error, OutcomeUnknownError), repr(error)
    assert isinstance(error, ConfigurationError), repr(error)
    assert "nothing was sent" in str(error)
    assert isinstance(error.__cause__, PolicyError)
    rows = await _journal_rows(tmp_path / "j.sqlite")
    assert [state for state, _ in rows] == ["refused"]


async def test_a_hook_added_after_the_first_call_is_also_known_to_run_before_the_transport(
    tmp_path: Path,
) -> None:
    """The hand-over is learned after every request hook, even one added later."""
    refusing = False

    async def policy(request: httpx.Request) -> None:
        if refusing and request.method == "POST":
            raise PolicyError("no transfers now")

    exchange = demo()
    http = httpx.AsyncClient()
    async with served(exchange, http) as client:
        http.event_hooks["request"].append(lambda request: _noop(request))
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        http.event_hooks = {"request": [policy]}  # replaces every list
        refusing = True
        with pytest.raises(ConfigurationError) as caught:
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert isinstance(caught.value.__cause__, PolicyError)
    assert len(exchange.ledger.entries("universal_transfer")) == 1


async def test_a_failure_after_the_hand_over_is_still_an_unknown_outcome() -> None:
    """The control: a transport that fails once it has the request may have sent it."""

    class Broken(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                raise PolicyError("failed inside the transport")
            return await inner.handle_async_request(request)

    inner = httpx.AsyncHTTPTransport()

    async def hook(request: httpx.Request) -> None:
        return None

    http = httpx.AsyncClient(transport=Broken(), event_hooks={"request": [hook]})
    exchange = demo()
    async with served(exchange, http) as client, inner:
        with pytest.raises(OutcomeUnknownError):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")


async def _noop(request: httpx.Request) -> None:
    return None


async def _journal_rows(path: Path) -> list[tuple[str, str | None]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return [tuple(row) for row in conn.execute("SELECT state, note FROM intents ORDER BY id")]


# B5-1 (a regression of the first B4-7 fix): the hand-over was learned through
# the request our hook is given, and an auth that yields a *copy* of the request hid it:
# a transfer that left, executed and lost its answer was reported "nothing was sent".


class CopyingAuth(httpx.Auth):
    """An auth that re-builds the request it signs (as many signing auths do)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield httpx.Request(
            request.method,
            request.url,
            headers={**request.headers, "X-Proxy-Signature": "abc"},
            content=request.content,
        )


async def _transfer_dropped_after_execution(
    http: httpx.AsyncClient, journal: Path
) -> tuple[BaseException, int]:
    exchange = demo()
    # Binance executes the transfer, then the connection drops before the answer.
    exchange.faults.add(Fault.drop(executes=True), endpoint="universal_transfer", times=1)
    async with served(exchange, http, journal) as client:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - which one is the question
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    return caught.value, len(exchange.ledger.entries("universal_transfer"))


async def test_breaker5_a_copying_auth_with_a_dropped_answer_is_not_reported_never_sent(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j.sqlite"
    error, executed = await _transfer_dropped_after_execution(
        httpx.AsyncClient(auth=CopyingAuth()), journal
    )
    assert executed == 1  # the transfer DID happen on the exchange
    assert not isinstance(error, ConfigurationError), f"executed, yet reported: {error!r}"
    assert isinstance(error, OutcomeUnknownError), repr(error)
    assert [state for state, _ in await _journal_rows(journal)] == ["unknown"]


async def test_breaker5_control_the_same_drop_without_auth_is_an_unknown_outcome(
    tmp_path: Path,
) -> None:
    """The control: the same client with no auth reports the drop as unknown."""
    journal = tmp_path / "j.sqlite"
    error, executed = await _transfer_dropped_after_execution(
        httpx.AsyncClient(event_hooks={"request": [_noop]}), journal
    )
    assert executed == 1
    assert isinstance(error, OutcomeUnknownError), repr(error)
    assert [state for state, _ in await _journal_rows(journal)] == ["unknown"]


async def test_breaker5_a_response_hook_that_raises_after_execution_is_never_nothing_sent(
    tmp_path: Path,
) -> None:
    """The request hooks ran (handed over), the transfer executed, then the user's
    response hook raises: the outcome may not be called "nothing was sent"."""

    async def audit(response: httpx.Response) -> None:
        if response.request.method == "POST":
            raise PolicyError("audit log unavailable")

    exchange = demo()
    journal = tmp_path / "j.sqlite"
    http = httpx.AsyncClient(event_hooks={"response": [audit]})
    async with served(exchange, http, journal) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    assert len(exchange.ledger.executed("universal_transfer")) == 1
    assert [state for state, _ in await _journal_rows(journal)] == ["unknown"]


async def test_a_copying_auth_that_refuses_is_still_nothing_sent(tmp_path: Path) -> None:
    """The other side of B5-1: a request hook refusing the auth's copy sent nothing."""

    async def policy(request: httpx.Request) -> None:
        if request.method == "POST":
            raise PolicyError("no transfers now")

    http = httpx.AsyncClient(auth=CopyingAuth(), event_hooks={"request": [policy]})
    error = await _refused_by(http, tmp_path / "j.sqlite")
    assert isinstance(error, ConfigurationError), repr(error)
    assert isinstance(error.__cause__, PolicyError)
