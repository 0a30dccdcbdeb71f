"""Authentication as Binance does it: key header, timestamp window, signature over wire bytes."""

from __future__ import annotations

import base64
from decimal import Decimal
from urllib.parse import quote, urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from binance_transfers import LoopClock
from binance_transfers.sim import Account, SimulatedExchange

from .conftest import DOC_KEY, DOC_SECRET, Wire, body, error_code, fake_time, hmac_hex

TRANSFER = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "1")]

#: Binance's documented HMAC example (spot rest-api.md, "SIGNED Endpoint examples").
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_helper_reproduces_binance_documented_signature() -> None:
    """Our hand-signing helper is Binance's algorithm: it reproduces the documented example."""
    assert hmac_hex(DOC_PAYLOAD) == DOC_SIGNATURE


async def _at_doc_time() -> tuple[SimulatedExchange, Account, httpx.AsyncClient]:
    exchange = SimulatedExchange(clock=LoopClock(epoch=1499827319.559 + 0.5))
    account = exchange.add_account(
        api_key=DOC_KEY, api_secret=DOC_SECRET, balances={"MAIN": {"USDT": "10"}}
    )
    http = httpx.AsyncClient(transport=exchange.transport(), base_url="http://api.sim.invalid")
    return exchange, account, http


async def test_documented_example_signature_is_accepted_on_a_transfer_endpoint() -> None:
    """The docs' exact payload and signature pass authentication; only its parameters fail."""
    _, _, http = await _at_doc_time()
    async with http:
        response = await http.post(
            "/sapi/v1/asset/transfer",
            content=f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}",
            headers={"X-MBX-APIKEY": DOC_KEY},
        )
    # Not -1022: the signature was good; "type=LIMIT" is no transfer type.
    assert response.status_code == 400
    assert body(response) == {"code": -1130, "msg": "Data sent for parameter 'type' is not valid."}


async def test_documented_example_with_one_changed_character_is_refused() -> None:
    """A signature that differs from the documented one by one hex digit is -1022."""
    _, _, http = await _at_doc_time()
    async with http:
        response = await http.post(
            "/sapi/v1/asset/transfer",
            content=f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE[:-1]}0",
            headers={"X-MBX-APIKEY": DOC_KEY},
        )
    assert response.status_code == 400
    assert body(response) == {"code": -1022, "msg": "Signature for this request is not valid."}


async def test_transfer_signed_the_documented_way_moves_money() -> None:
    """A transfer signed like the docs' example (key, secret, recvWindow, timestamp) executes."""
    _, account, http = await _at_doc_time()
    payload = "type=MAIN_UMFUTURE&asset=USDT&amount=2.5&recvWindow=5000&timestamp=1499827319559"
    async with http:
        response = await http.post(
            "/sapi/v1/asset/transfer",
            content=f"{payload}&signature={hmac_hex(payload)}",
            headers={"X-MBX-APIKEY": DOC_KEY, "Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200, response.text
    assert set(body(response)) == {"tranId"}
    assert account.balance("USDT", "UMFUTURE") == Decimal("2.5")
    assert account.balance("USDT") == Decimal("7.5")


async def test_query_and_body_are_concatenated_without_separator(
    wire: Wire, master: Account
) -> None:
    """Signature over query string + body with no '&' between, as Binance's mixed example."""
    query = "type=MAIN_UMFUTURE&asset=USDT"
    form = f"amount=3&recvWindow=5000&timestamp={wire.exchange.server_ms()}"
    response = await wire.http.post(
        f"/sapi/v1/asset/transfer?{query}",
        content=f"{form}&signature={hmac_hex(query + form)}",
        headers={"X-MBX-APIKEY": DOC_KEY},
    )
    assert response.status_code == 200, response.text
    assert master.balance("USDT", "UMFUTURE") == Decimal("503")


async def test_signature_with_separator_between_query_and_body_is_refused(wire: Wire) -> None:
    """Joining query and body with '&' before signing is not Binance's payload: -1022."""
    query = "type=MAIN_UMFUTURE&asset=USDT"
    form = f"amount=3&timestamp={wire.exchange.server_ms()}"
    response = await wire.http.post(
        f"/sapi/v1/asset/transfer?{query}",
        content=f"{form}&signature={hmac_hex(query + '&' + form)}",
        headers={"X-MBX-APIKEY": DOC_KEY},
    )
    assert error_code(response) == -1022


async def test_post_parameters_in_the_query_string_are_accepted(
    wire: Wire, master: Account
) -> None:
    """A POST with parameters and signature all in the query (binance-connector's way) works."""
    response = await wire.call("universal_transfer", TRANSFER, in_query=True)
    assert response.status_code == 200, response.text
    assert master.balance("USDT", "UMFUTURE") == Decimal("501")


async def test_signature_covers_the_encoded_bytes_not_the_decoded_values(
    wire: Wire, master: Account
) -> None:
    """An '@' sent as %40 must be signed as %40: signing the decoded text is -1022."""
    params = [
        ("toEmail", "desk-1@example.com"),
        ("fromAccountType", "SPOT"),
        ("toAccountType", "SPOT"),
        ("asset", "USDT"),
        ("amount", "1"),
    ]
    stamp = wire.exchange.server_ms()
    encoded = urlencode([*params, ("timestamp", str(stamp))])
    assert "%40" in encoded
    decoded = encoded.replace("%40", "@")
    wrong = await wire.http.post(
        "/sapi/v1/sub-account/universalTransfer",
        content=f"{encoded}&signature={hmac_hex(decoded)}",
        headers={"X-MBX-APIKEY": DOC_KEY},
    )
    assert error_code(wrong) == -1022
    right = await wire.http.post(
        "/sapi/v1/sub-account/universalTransfer",
        content=f"{encoded}&signature={hmac_hex(encoded)}",
        headers={"X-MBX-APIKEY": DOC_KEY},
    )
    assert right.status_code == 200, right.text
    assert master.sub_accounts["desk-1@example.com"].balance("USDT") == Decimal("201")


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (None, 401, -2014),
        ("not-a-key", 401, -2014),
        ("x" * 64, 401, -2015),
    ],
    ids=["missing", "malformed", "unknown"],
)
async def test_api_key_errors(wire: Wire, key: str | None, status: int, code: int) -> None:
    """Missing or malformed key header: -2014; a well-formed unknown key: -2015; both HTTP 401."""
    response = await wire.call("universal_transfer", TRANSFER, key=key)
    assert (response.status_code, error_code(response)) == (status, code)


async def test_wrong_secret_is_bad_signature(wire: Wire, master: Account) -> None:
    """A request signed with another secret is -1022 (HTTP 400) and moves nothing."""
    response = await wire.call("universal_transfer", TRANSFER, secret="y" * 64)
    assert (response.status_code, error_code(response)) == (400, -1022)
    assert master.balance("USDT", "UMFUTURE") == Decimal("500")


async def test_missing_signature_and_timestamp_are_mandatory_parameters(wire: Wire) -> None:
    """No signature or no timestamp on a signed endpoint: -1102 naming the parameter."""
    stamp = wire.exchange.server_ms()
    no_signature = await wire.http.post(
        "/sapi/v1/asset/transfer",
        content=urlencode([*TRANSFER, ("timestamp", str(stamp))]),
        headers={"X-MBX-APIKEY": DOC_KEY},
    )
    assert body(no_signature)["code"] == -1102
    assert "'signature'" in body(no_signature)["msg"]
    encoded = urlencode(TRANSFER)
    no_timestamp = await wire.http.post(
        "/sapi/v1/asset/transfer",
        content=f"{encoded}&signature={hmac_hex(encoded)}",
        headers={"X-MBX-APIKEY": DOC_KEY},
    )
    assert body(no_timestamp) == {
        "code": -1102,
        "msg": "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
    }


@fake_time
async def test_timestamp_window_boundaries(wire: Wire) -> None:
    """Accepted: timestamp < server+1000 and server-timestamp <= recvWindow; else -1021."""
    now = wire.exchange.server_ms()
    ahead = await wire.call("transfer_history", [("type", "MAIN_UMFUTURE")], timestamp=now + 1000)
    assert body(ahead) == {
        "code": -1021,
        "msg": "Timestamp for this request was 1000ms ahead of the server's time.",
    }
    almost = await wire.call("transfer_history", [("type", "MAIN_UMFUTURE")], timestamp=now + 999)
    assert almost.status_code == 200
    edge = await wire.call(
        "transfer_history", [("type", "MAIN_UMFUTURE")], timestamp=now - 5000, recv_window=5000
    )
    assert edge.status_code == 200
    late = await wire.call(
        "transfer_history", [("type", "MAIN_UMFUTURE")], timestamp=now - 5001, recv_window=5000
    )
    assert late.status_code == 400
    assert body(late) == {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }


@fake_time
async def test_default_recv_window_is_5000(wire: Wire) -> None:
    """Without recvWindow a request 5001 ms old is refused, 5000 ms old accepted."""
    now = wire.exchange.server_ms()
    params = [("type", "MAIN_UMFUTURE")]
    assert (await wire.call("transfer_history", params, timestamp=now - 5000)).status_code == 200
    assert error_code(await wire.call("transfer_history", params, timestamp=now - 5001)) == -1021


async def test_recv_window_over_60000_is_refused(wire: Wire) -> None:
    """recvWindow=60001 is -1131; 60000 is fine."""
    params = [("type", "MAIN_UMFUTURE")]
    over = await wire.call("transfer_history", params, recv_window=60001)
    assert body(over) == {"code": -1131, "msg": "recvWindow must be less than 60000"}
    assert (await wire.call("transfer_history", params, recv_window=60000)).status_code == 200


@fake_time
async def test_skew_moves_the_server_clock(wire: Wire) -> None:
    """With the server 3 s ahead, a timestamp from the unskewed clock is outside recvWindow."""
    before = wire.exchange.server_ms()
    wire.exchange.skew = 3.0
    assert wire.exchange.server_ms() - before == 3000
    stale = await wire.call(
        "transfer_history", [("type", "MAIN_UMFUTURE")], timestamp=before, recv_window=2000
    )
    assert error_code(stale) == -1021
    served = await wire.call("server_time")
    assert body(served)["serverTime"] == before + 3000


async def test_server_time_needs_no_key(wire: Wire) -> None:
    """GET /api/v3/time is public: no key, no signature, answers the server clock."""
    before = wire.exchange.server_ms()
    response = await wire.call("server_time", key=None)
    after = wire.exchange.server_ms()  # the real clock runs on between the two readings
    assert response.status_code == 200
    assert set(body(response)) == {"serverTime"}
    assert before <= body(response)["serverTime"] <= after


async def test_rsa_key_signature(exchange: SimulatedExchange) -> None:
    """RSA keys: PKCS#1 v1.5 SHA-256, base64 then percent-encoded; a bad one is -1022."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = exchange.add_account(
        api_secret=private.public_key(), balances={"MAIN": {"USDT": "5"}}
    )
    key = account.api_key.key
    assert account.api_key.kind == "RSA"

    def sign(payload: str) -> str:
        raw = private.sign(payload.encode(), padding.PKCS1v15(), SHA256())
        return quote(base64.b64encode(raw).decode(), safe="")

    async with httpx.AsyncClient(
        transport=exchange.transport(), base_url="http://api.sim.invalid"
    ) as http:
        wire = Wire(exchange, http)
        payload = urlencode([*TRANSFER, ("timestamp", str(exchange.server_ms()))])
        good = await wire.send(
            "POST",
            "/sapi/v1/asset/transfer",
            TRANSFER,
            key=key,
            signature=sign(payload),
            timestamp=int(payload.rsplit("=", 1)[1]),
        )
        assert good.status_code == 200, good.text
        bad = await wire.send(
            "POST",
            "/sapi/v1/asset/transfer",
            TRANSFER,
            key=key,
            signature=sign(payload + "x"),
        )
        assert error_code(bad) == -1022
    assert account.balance("USDT", "UMFUTURE") == Decimal(1)


async def test_ed25519_key_signature(exchange: SimulatedExchange) -> None:
    """Ed25519 keys: base64 signature, percent-encoded; accepted, and refused when tampered."""
    private = ed25519.Ed25519PrivateKey.generate()
    account = exchange.add_account(api_secret=private, balances={"MAIN": {"USDT": "5"}})
    assert account.api_key.kind == "Ed25519"
    key = account.api_key.key
    stamp = exchange.server_ms()
    payload = urlencode([*TRANSFER, ("timestamp", str(stamp))])
    signature = base64.b64encode(private.sign(payload.encode())).decode()
    async with httpx.AsyncClient(
        transport=exchange.transport(), base_url="http://api.sim.invalid"
    ) as http:
        wire = Wire(exchange, http)
        good = await wire.send(
            "POST",
            "/sapi/v1/asset/transfer",
            TRANSFER,
            key=key,
            timestamp=stamp,
            signature=quote(signature, safe=""),
        )
        assert good.status_code == 200, good.text
        tampered = await wire.send(
            "POST",
            "/sapi/v1/asset/transfer",
            [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "2")],
            key=key,
            timestamp=stamp,
            signature=quote(signature, safe=""),
        )
        assert error_code(tampered) == -1022
    assert account.balance("USDT", "UMFUTURE") == Decimal(1)


def test_api_key_repr_hides_the_secret(exchange: SimulatedExchange) -> None:
    """Neither the HMAC secret nor the full key appears in an ApiKey's or Account's repr."""
    account = exchange.add_account(api_key=DOC_KEY, api_secret=DOC_SECRET)
    for text in (repr(account.api_key), repr(account), repr(exchange)):
        assert DOC_SECRET not in text
        assert DOC_KEY not in text
