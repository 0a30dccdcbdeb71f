"""The API secret (and the full API key) never leaks: reprs, logs, errors, tracebacks."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

import httpx
import pytest

from binance_transfers import BinanceTransfersError, Client, TransferType

from .conftest import API_KEY, SECRET, FakeBinance, error

LEAKS = (SECRET, API_KEY)


def _assert_clean(text: str) -> None:
    for secret in LEAKS:
        assert secret not in text


async def test_nothing_leaks_through_reprs_logs_and_errors(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    """Drive every error path with DEBUG logging on, then search everything printed."""
    caplog.set_level(logging.DEBUG)

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake.script(
        "POST",
        "/sapi/v1/asset/transfer",
        error(400, -1022, "Signature for this request is not valid."),
        httpx.Response(503, text="<html>busy</html>"),
        error(400, -3041, "Balance is not enough"),
        drop,
    )
    errors: list[BaseException] = []
    async with Client(API_KEY, SECRET, transport=httpx.MockTransport(fake)) as client:
        _assert_clean(repr(client))
        _assert_clean(repr(client.governor))
        _assert_clean(repr(client._transport._signer))
        for _ in range(4):
            try:
                await client.transfer(type=TransferType.MAIN_MARGIN, asset="USDT", amount=1)
            except BinanceTransfersError as exc:
                errors.append(exc)
    assert len(errors) == 4
    for caught in errors:
        _assert_clean(str(caught))
        _assert_clean(repr(caught))
        _assert_clean("".join(traceback.format_exception(caught)))
        with_locals = traceback.TracebackException.from_exception(caught, capture_locals=True)
        _assert_clean("".join(with_locals.format()))
    _assert_clean(caplog.text)
    assert caplog.records  # the paths above did log something


def test_a_bad_pem_error_does_not_echo_the_key() -> None:
    """A key that fails to load is not quoted back in the error."""
    bad = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(BinanceTransfersError) as info:
        Client(API_KEY, bad)
    assert "TOPSECRETMATERIAL" not in str(info.value)
    assert "TOPSECRETMATERIAL" not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize(
    "bad", [{"max_in_flight": 0}, {"recv_window": 70_000}, {"http_client": 1, "transport": 2}]
)
def test_a_failed_construction_keeps_credentials_out_of_traceback_locals(
    bad: dict[str, object],
) -> None:
    """Even a traceback that prints every frame's locals shows neither key nor secret."""
    with pytest.raises(BinanceTransfersError) as info:
        Client(API_KEY, SECRET, **bad)  # type: ignore[arg-type]
    with_locals = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    _assert_clean("".join(with_locals.format()))


def test_a_bad_pem_error_leaves_no_chained_traceback_with_the_key() -> None:
    """The ConfigurationError for a bad key carries no context whose frames hold it."""
    bad = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    with pytest.raises(BinanceTransfersError) as info:
        Client(API_KEY, bad)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    with_locals = traceback.TracebackException.from_exception(info.value, capture_locals=True)
    ours = [f for f in with_locals.stack if "binance_transfers" in f.filename]
    assert ours  # the frames of the package itself (the test's own locals hold the PEM)
    for frame in ours:
        assert "TOPSECRETMATERIAL" not in repr(frame.locals)


def _reachable_secrets(exc: BaseException) -> list[str]:
    """What an error tracker capturing locals (Sentry's default) could show of a secret.

    Walks every exception reachable from ``exc`` (cause, context, exception-group
    members), and for each every frame of its traceback: each local's repr, and
    the exception's own fields and notes.
    """
    found: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        shown = [str(current), repr(current.args), repr(getattr(current, "__notes__", ""))]
        shown += [repr(value) for value in vars(current).values()]
        if any(secret in text for text in shown for secret in LEAKS):
            found.append(f"{type(current).__name__}: message, fields or notes")
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name, value in frame.f_locals.items():
                try:
                    text = repr(value)
                except Exception:  # noqa: S112 - a half-built object cannot say
                    continue
                if any(secret in text for secret in LEAKS):
                    found.append(f"{type(current).__name__}: {frame.f_code.co_name}.{name}")
            tb = tb.tb_next
        todo += [current.__cause__, current.__context__]
        todo += list(getattr(current, "exceptions", ()))
    return found


async def _serve(behaviour: str, writers: list[asyncio.StreamWriter]) -> tuple[asyncio.Server, str]:
    """A loopback server that reads a request, then misbehaves as told."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # refused before writing: nothing came
            writer.close()
            return
        if behaviour == "502":
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 4\r\n\r\nbusy")
        elif behaviour == "half":
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"tranId":')
        if behaviour != "silent":  # silent: closed by the test, after the client gave up
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def _synced(client: Client) -> None:
    """Sync Binance's clock by hand: the servers here answer no time requests."""
    clock = client.governor.server_clock
    now = clock.clock.monotonic()
    clock.update(sent=now, received=now, server_ms=int(time.time() * 1000))


@pytest.mark.parametrize(
    ("behaviour", "headers"),
    [
        ("refused header", {"X-Request-Id": "abc\ndef"}),  # h11 refuses before writing
        ("dropped", {}),  # the server closes without answering
        ("half", {}),  # an answer cut off mid-body
        ("silent", {}),  # a read timeout
        ("502", {}),
        ("nobody listening", {}),
    ],
)
@pytest.mark.parametrize("call", ["transfer", "history"])
async def test_nothing_reachable_from_a_raised_error_holds_a_secret(
    behaviour: str, headers: dict[str, str], call: str
) -> None:
    """Sentry captures every frame's locals along the whole cause chain. h11's and
    httpcore's frames held the request's headers (the key): every failure raised
    while sending or reading must reach the caller without them (issue 8, F-E)."""
    writers: list[asyncio.StreamWriter] = []
    server, url = await _serve(behaviour, writers)
    if behaviour == "nobody listening":
        server.close()
        await server.wait_closed()
    http = httpx.AsyncClient(headers=headers, timeout=0.3)
    client = Client(API_KEY, SECRET, http_client=http, api_url=url, max_wait=1.0)
    client._transport.connect_retries = 0
    client._transport.read_retries = 0
    _synced(client)
    caught: BaseException | None = None
    try:
        if call == "transfer":
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        else:
            [row async for row in client.transfer_history(type=TransferType.MAIN_UMFUTURE)]
    except Exception as exc:
        caught = exc
    finally:
        await http.aclose()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert isinstance(caught, BinanceTransfersError), repr(caught)
    if behaviour != "502":  # a chain to walk
        assert caught.__cause__ is not None or caught.__context__ is not None
    assert _reachable_secrets(caught) == []
