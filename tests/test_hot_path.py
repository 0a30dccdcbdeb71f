"""The per-call shortcuts (issue 9) answer exactly what the long way answers."""

from __future__ import annotations

import time

import httpx
import pytest

from binance_transfers import InvalidInputError, RawType, TransferType
from binance_transfers._client import _transfer_params
from binance_transfers._http import send_profile


@pytest.mark.parametrize("member", list(TransferType))
def test_a_transfer_type_gets_the_params_the_checks_give(member: TransferType) -> None:
    """By member or by name, the table answers as the checks do (a RawType of the
    same name always takes the long way)."""
    if member.needs_from_symbol or member.needs_to_symbol:
        for kind in (member, member.value, RawType(member.value)):
            with pytest.raises(InvalidInputError, match="is required"):
                _transfer_params(kind, None, None)
        return
    long_way = _transfer_params(RawType(member.value), None, None)
    assert long_way == [("type", member.value)]
    assert _transfer_params(member, None, None) == long_way
    assert _transfer_params(member.value, None, None) == long_way
    with pytest.raises(InvalidInputError, match="meaningless"):
        _transfer_params(member, "BTCUSDT", None)


@pytest.mark.parametrize("kind", ["main_umfuture", "MAIN_UMFUTURES", ["MAIN_UMFUTURE"], None, 3])
def test_anything_else_is_refused_as_before(kind: object) -> None:
    with pytest.raises(InvalidInputError):
        _transfer_params(kind, None, None)  # type: ignore[arg-type]


async def _in_flight_wakes_its_waiters() -> list[str]:
    import anyio

    from binance_transfers._reconcile import InFlight

    seen: list[str] = []
    call = InFlight()

    async def waiter(name: str) -> None:
        await call.wait()
        seen.append(name)

    with anyio.fail_after(10):  # a waiter never woken fails, not hangs
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "first")
            tg.start_soon(waiter, "second")
            await anyio.wait_all_tasks_blocked()
            assert seen == [] and not call.is_set()
            call.set()
    await call.wait()  # already set: returns at once
    seen.append("after")
    return seen


def test_in_flight_wakes_every_waiter_on_asyncio_and_trio() -> None:
    """The lazily made event: waiters before ``set()`` wake, a wait after it returns."""
    import asyncio

    import trio

    for seen in (
        asyncio.run(_in_flight_wakes_its_waiters()),
        trio.run(_in_flight_wakes_its_waiters),
    ):
        assert sorted(seen[:2]) == ["first", "second"] and seen[2:] == ["after"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"tranId":1,"amount":"0.1"}',
        b'{"tranId": 1, "x": 0.30000000000000004}',
        b'  {"tranId":1}\r\n',  # whitespace before and after
        b'{"tranId":1}\n',
        b"[1, 2.5]",
        b'{"a":1} {"b":2}',  # two values: not one answer
        b'{"a":1',
        b"NaN",
        b"",
        b"<html>busy</html>",
        '{"tranId":1}'.encode("utf-16"),  # another encoding JSON allows (a BOM)
        '{"msg":"é"}'.encode("utf-32-le"),
    ],
)
def test_an_answer_reads_as_the_json_decoder_reads_it(content: bytes) -> None:
    """_json's one-step read (no whitespace around the value) gives what the full
    decode gives, and refuses what it refuses (floats as Decimal, NaN refused)."""
    import json
    from decimal import Decimal

    from binance_transfers._transport import _NOT_JSON, _json

    def reject(name: str) -> None:
        raise ValueError(name)

    try:
        text = content.decode(json.detect_encoding(content))
        expected = json.loads(text, parse_float=Decimal, parse_constant=reject)
    except ValueError:
        expected = _NOT_JSON
    got = _json(content)
    assert got == expected and type(got) is type(expected)


def test_an_endpoint_is_mutating_as_its_method_and_reads_say_changes_included() -> None:
    """``mutating`` is worked out when the endpoint is made; an evolved one works it out again."""
    import attrs

    from binance_transfers import ENDPOINTS

    for endpoint in ENDPOINTS.values():
        assert endpoint.mutating == (endpoint.method == "POST" and not endpoint.reads)
    transfer = ENDPOINTS["universal_transfer"]
    assert transfer.mutating
    assert not attrs.evolve(transfer, reads=True).mutating
    assert not attrs.evolve(transfer, method="GET").mutating
    assert ENDPOINTS.evolve("universal_transfer", uid_weight=300)["universal_transfer"].mutating
    with pytest.raises(TypeError):
        attrs.evolve(transfer, mutating=False)  # type: ignore[call-arg]  # derived, never given


def _answering(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/api/v3/time":
        return httpx.Response(200, json={"serverTime": int(time.time() * 1000)})
    return httpx.Response(200, json={"tranId": 1})


@pytest.mark.parametrize("owned", [True, False], ids=["its own http client", "the user's"])
async def test_only_a_users_http_client_is_asked_per_call_what_send_adds(
    owned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's own http client is never handed out, so what ``send`` adds is worked
    out once per endpoint; a user's may gain hooks or auth between two calls (B5-4:
    tests/test_transport_added_later.py), so it is asked on every call."""
    from binance_transfers import Client, _transport

    asked: list[object] = []

    def counting(http: httpx.AsyncClient) -> tuple[bool, ...]:
        asked.append(http)
        return send_profile(http)

    monkeypatch.setattr(_transport, "send_profile", counting)
    mock = httpx.MockTransport(_answering)
    if owned:
        client = Client("key", "secret", transport=mock)
    else:
        client = Client("key", "secret", http_client=httpx.AsyncClient(transport=mock))
    async with client:
        for _ in range(4):
            await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
    templates = 2  # the clock's endpoint and the transfer's, worked out once each
    # The user's client: asked again by each transfer after the first.
    assert len(asked) == templates + (0 if owned else 3)


async def test_a_transfer_asks_asyncio_for_the_running_loop_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On CPython 3.11 each ``asyncio._get_running_loop()`` (and ``get_running_loop()``)
    is a ``getpid()`` system call: read once per transfer, then handed down (it was 4)."""
    import asyncio

    from binance_transfers import Client

    asked: list[str] = []
    real, real_get = asyncio._get_running_loop, asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop | None:
        asked.append("_get_running_loop")
        return real()

    def counting_get() -> asyncio.AbstractEventLoop:
        asked.append("get_running_loop")
        return real_get()

    async with Client("key", "secret", transport=httpx.MockTransport(_answering)) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        monkeypatch.setattr(asyncio, "_get_running_loop", counting)
        monkeypatch.setattr(asyncio, "get_running_loop", counting_get)
        result = await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        monkeypatch.undo()
    assert result.tran_id == 1
    assert asked == ["_get_running_loop"]


async def test_a_transfer_normalises_no_header_and_reads_the_answers_without_httpx_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over a transport the package does not own, a request's headers are httpx's,
    normalised once per endpoint and body size, and the answer's headers are read
    without httpx working out their encoding (about 8k CPU instructions a lookup,
    two a call): the same headers on the wire, the same usage read (issue 9)."""
    from binance_transfers import Client

    sent: list[list[tuple[bytes, bytes]]] = []

    def answering(request: httpx.Request) -> httpx.Response:
        sent.append(list(request.headers.raw))
        if request.url.path == "/api/v3/time":
            return _answering(request)
        # Prepared as a transport would: httpx sets none of its headers.
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"12"),
            (b"X-SAPI-USED-UID-WEIGHT-1M", b"%d" % (900 * len(sent))),
        ]
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(b'{"tranId":1}'))

    async with Client("key", "secret", transport=httpx.MockTransport(answering)) as client:
        await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
        normalised: list[object] = []
        encodings: list[str] = []
        real_key = httpx._models._normalize_header_key
        real_getitem = httpx.Headers.__getitem__

        def counting_key(*args: object) -> object:
            normalised.append(args[0])
            return real_key(*args)  # type: ignore[arg-type]

        def counting_getitem(headers: httpx.Headers, key: str) -> str:
            encodings.append(key)
            return real_getitem(headers, key)

        monkeypatch.setattr(httpx._models, "_normalize_header_key", counting_key)
        monkeypatch.setattr(httpx.Headers, "__getitem__", counting_getitem)
        result = await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="2")
        monkeypatch.undo()
    assert result.tran_id == 1
    # The handler's answer normalises its own headers (httpx.Response), nothing else does.
    assert normalised == [b"Content-Type", b"Content-Length", b"X-SAPI-USED-UID-WEIGHT-1M"]
    assert encodings == []  # httpx's lookup: the encoding worked out, a list built
    assert sent[-1] == sent[-2]  # the same headers, the same body size
    assert dict(sent[-1])[b"X-MBX-APIKEY"] == b"key"
    used = [pool.used for pool in client.governor.snapshot() if pool.kind.value == "uid"]
    assert used == [900 * len(sent)]  # the last answer's usage header, read by the governor


@pytest.mark.parametrize(
    "raw",
    [
        [(b"X-Used", b"7")],
        [(b"x-used", b"7"), (b"X-USED", b"8"), (b"Other", b"1")],
        [(b"X-Used", "é".encode())],
        [(b"X-Used", "é".encode("latin-1"))],
        [(b"Other", "é".encode()), (b"X-Used", b"9")],
        [],
    ],
)
def test_answer_headers_read_as_httpx_reads_them(raw: list[tuple[bytes, bytes]]) -> None:
    from binance_transfers._transport import _lookup

    headers = httpx.Headers(raw)
    lookup = _lookup(headers)
    for name in ("x-used", "X-Used", "other", "absent", "é"):
        assert _outcome(lookup.get, name) == _outcome(headers.get, name)
        assert _outcome(lookup.__contains__, name) == _outcome(headers.__contains__, name)
    assert dict(lookup) == dict(headers)
    assert len(lookup) == len(headers)


@pytest.mark.parametrize("key", [None, 1, b"x-used", ("x-used",)])
def test_answer_headers_hold_no_key_that_is_not_a_str(key: object) -> None:
    """``in`` answers False for a key no header name can be (it raised
    AttributeError: ``key.lower()``), as a Mapping's ``in`` answers."""
    from binance_transfers._transport import _lookup

    lookup = _lookup(httpx.Headers([(b"X-Used", b"7")]))
    assert (key in lookup) is False
    assert "x-used" in lookup


def _outcome(method: object, *args: object) -> object:
    try:
        return method(*args)  # type: ignore[operator]
    except Exception as exc:  # compared, not swallowed
        return type(exc)
