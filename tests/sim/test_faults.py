"""Fault injection: latency, lost connections, late answers, 5xx, 503, WAF pages, bad bodies."""

from __future__ import annotations

from decimal import Decimal

import anyio
import httpx
import pytest

from binance_transfers.sim import Account, Fault, FaultKind, SimulatedExchange

from .conftest import Wire, body, fake_time

TRANSFER = [("type", "MAIN_UMFUTURE"), ("asset", "USDT"), ("amount", "1")]


@fake_time
async def test_latency_delays_arrival(wire: Wire) -> None:
    """A 0.25 s latency: the answer and the ledger's arrival time are 0.25 s after sending."""
    wire.exchange.faults.add(Fault.latency(0.25))
    sent = wire.exchange.server_time()
    started = anyio.current_time()
    await wire.call("server_time")
    assert anyio.current_time() - started == pytest.approx(0.25)
    assert wire.exchange.ledger[-1].arrived - sent == pytest.approx(0.25)
    assert wire.exchange.ledger[-1].latency == pytest.approx(0.25)


@fake_time
async def test_jitter_is_reproducible_with_a_seed() -> None:
    """The same seed gives the same jittered latencies; another seed gives others."""

    async def latencies(seed: int) -> list[float]:
        exchange = SimulatedExchange(seed=seed)
        exchange.faults.add(Fault.latency(0.1, jitter=0.05))
        async with httpx.AsyncClient(
            transport=exchange.transport(), base_url="http://api.sim.invalid"
        ) as http:
            out = []
            for _ in range(5):
                start = anyio.current_time()
                await http.get("/api/v3/time")
                out.append(anyio.current_time() - start)
        return out

    first, again, other = await latencies(7), await latencies(7), await latencies(8)
    assert first == pytest.approx(again)
    assert first != pytest.approx(other)
    assert all(0.1 <= x <= 0.15 + 1e-9 for x in first)


async def test_server_error_executes_and_answers_unknown(wire: Wire, master: Account) -> None:
    """Fault.server_error(): HTTP 500 'execution status unknown' although the transfer happened."""
    wire.exchange.faults.add(Fault.server_error(), endpoint="universal_transfer", times=1)
    response = await wire.call("universal_transfer", TRANSFER)
    assert response.status_code == 500
    assert body(response)["code"] == -1006
    assert "Execution status unknown" in body(response)["msg"]
    assert master.balance("USDT", "UMFUTURE") == Decimal(501)
    assert wire.exchange.ledger[-1].executed


async def test_server_error_that_did_not_execute(wire: Wire, master: Account) -> None:
    """Fault.server_error(executes=False, status=503): same unknown answer, nothing moved."""
    wire.exchange.faults.add(Fault.server_error(status=503, executes=False))
    response = await wire.call("universal_transfer", TRANSFER)
    assert response.status_code == 503
    assert "Unknown error" in body(response)["msg"]
    assert master.balance("USDT", "UMFUTURE") == Decimal(500)
    assert not wire.exchange.ledger[-1].executed


async def test_dropped_connection_raises_remote_protocol_error_after_executing(
    wire: Wire, master: Account
) -> None:
    """In-process, a drop is httpx.RemoteProtocolError; the transfer was executed all the same."""
    wire.exchange.faults.add(Fault.drop(), endpoint="universal_transfer")
    with pytest.raises(httpx.RemoteProtocolError):
        await wire.call("universal_transfer", TRANSFER)
    entry = wire.exchange.ledger[-1]
    assert (entry.status, entry.executed, entry.fault) == (None, True, "drop")
    assert master.balance("USDT", "UMFUTURE") == Decimal(501)


async def test_drop_before_executing(wire: Wire, master: Account) -> None:
    """Fault.drop(executes=False): the same error for the client, but nothing happened."""
    wire.exchange.faults.add(Fault.drop(executes=False))
    with pytest.raises(httpx.RemoteProtocolError):
        await wire.call("universal_transfer", TRANSFER)
    assert master.balance("USDT", "UMFUTURE") == Decimal(500)
    assert not wire.exchange.ledger[-1].executed


@fake_time
async def test_late_answer_past_the_read_timeout_is_read_timeout(
    wire: Wire, master: Account
) -> None:
    """Executed, answered 10 s late: the client gives up at its 2 s read timeout (ReadTimeout)."""
    wire.exchange.faults.add(Fault.late(10.0), times=1)
    start = anyio.current_time()
    with pytest.raises(httpx.ReadTimeout):
        await wire.call("universal_transfer", TRANSFER, read_timeout=2.0)
    assert anyio.current_time() - start == pytest.approx(2.0)
    assert master.balance("USDT", "UMFUTURE") == Decimal(501)
    entry = wire.exchange.ledger[-1]
    assert (entry.executed, entry.fault, entry.late_by) == (True, "late", 10.0)


@fake_time
async def test_late_answer_within_the_read_timeout_arrives(wire: Wire) -> None:
    """An answer 1 s late with a 2 s read timeout is just slow."""
    wire.exchange.faults.add(Fault.late(1.0))
    start = anyio.current_time()
    response = await wire.call("universal_transfer", TRANSFER, read_timeout=2.0)
    assert response.status_code == 200
    assert anyio.current_time() - start == pytest.approx(1.0)


@fake_time
async def test_request_slower_than_the_timeout_times_out_before_it_arrives(
    wire: Wire, master: Account
) -> None:
    """A request still travelling at the read timeout: ReadTimeout, nothing executed *yet*.

    It arrives and executes later all the same (test_cancellation.py), as over TCP.
    """
    wire.exchange.faults.add(Fault.latency(5.0))
    with pytest.raises(httpx.ReadTimeout):
        await wire.call("universal_transfer", TRANSFER, read_timeout=1.0)
    assert len(wire.exchange.ledger) == 0
    assert master.balance("USDT", "UMFUTURE") == Decimal(500)


async def test_service_unavailable_did_nothing_but_spent_weight(
    wire: Wire, master: Account
) -> None:
    """503 'Service Unavailable.': nothing executed, the weight was counted."""
    wire.exchange.faults.add(Fault.unavailable())
    response = await wire.call("universal_transfer", TRANSFER)
    assert response.status_code == 503
    assert body(response)["msg"] == "Service Unavailable."
    assert response.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "900"
    assert master.balance("USDT", "UMFUTURE") == Decimal(500)


async def test_waf_answers_an_html_403_before_the_api(wire: Wire, master: Account) -> None:
    """A WAF block: 403 text/html, no usage headers, no weight, nothing executed."""
    wire.exchange.faults.add(Fault.waf())
    response = await wire.call("universal_transfer", TRANSFER)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<!DOCTYPE HTML")
    assert not any(h.startswith("x-sapi") for h in response.headers)
    entry = wire.exchange.ledger[-1]
    assert (entry.charges, entry.executed) == ((), False)
    assert master.balance("USDT", "UMFUTURE") == Decimal(500)


async def test_malformed_body_after_executing(wire: Wire, master: Account) -> None:
    """Fault.malformed(): HTTP 200 with half a JSON document; the transfer happened."""
    wire.exchange.faults.add(Fault.malformed())
    response = await wire.call("universal_transfer", TRANSFER)
    assert response.status_code == 200
    assert response.content.startswith(b'{"tranId":')
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        response.json()
    assert master.balance("USDT", "UMFUTURE") == Decimal(501)


async def test_rules_match_endpoint_and_count_down(wire: Wire) -> None:
    """A rule for one endpoint leaves others alone and is spent after ``times`` hits."""
    rule = wire.exchange.faults.add(Fault.unavailable(), endpoint="transfer_history", times=2)
    assert (await wire.call("server_time")).status_code == 200
    history = [("type", "MAIN_UMFUTURE")]
    statuses = [(await wire.call("transfer_history", history)).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert rule.times == 0
    assert [e.fault for e in wire.exchange.ledger] == [None, "unavailable", "unavailable", None]


async def test_probabilistic_faults_replay_with_the_same_seed() -> None:
    """probability=0.3 with a seed hits the same requests on every run."""

    async def hits(seed: int) -> list[bool]:
        exchange = SimulatedExchange(seed=seed)
        exchange.faults.add(Fault.unavailable(), probability=0.3)
        async with httpx.AsyncClient(
            transport=exchange.transport(), base_url="http://api.sim.invalid"
        ) as http:
            return [(await http.get("/api/v3/time")).status_code == 503 for _ in range(40)]

    first, again = await hits(42), await hits(42)
    assert first == again
    assert 4 <= sum(first) <= 20


async def test_first_matching_fault_wins_and_latencies_add_up() -> None:
    """Two answer faults: the first added applies; latencies all apply."""
    exchange = SimulatedExchange()
    exchange.faults.add(Fault.latency(0.01))
    exchange.faults.add(Fault.waf())
    exchange.faults.add(Fault.unavailable())
    exchange.faults.add(Fault.latency(0.02))
    decision = exchange.faults.decide("server_time")
    assert decision.latency == pytest.approx(0.03)
    assert decision.fault is not None and decision.fault.kind is FaultKind.WAF


def test_fault_arguments_are_checked() -> None:
    """A 'server error' must be 5xx and a probability within 0..1."""
    with pytest.raises(ValueError, match="5xx"):
        Fault.server_error(status=404)
    with pytest.raises(ValueError, match="probability"):
        SimulatedExchange().faults.add(Fault.drop(), probability=1.5)


@pytest.mark.parametrize(("code", "text"), [(-1003, "Too many requests"), (-1006, "unknown")])
async def test_server_error_with_any_code_in_its_body(
    wire: Wire, master: Account, code: int, text: str
) -> None:
    """A 503 whose body carries -1003 or -1006: executed all the same, the ledger says so."""
    fault = Fault.server_error(status=503, code=code)
    wire.exchange.faults.add(fault, endpoint="universal_transfer", times=1)
    response = await wire.call("universal_transfer", TRANSFER)
    assert response.status_code == 503
    assert body(response)["code"] == code
    assert text in body(response)["msg"]
    entry = wire.exchange.ledger[-1]
    assert (entry.status, entry.code, entry.executed, entry.fault) == (
        503,
        code,
        True,
        "server_error",
    )
    assert master.balance("USDT", "UMFUTURE") == Decimal(501)


async def test_server_error_with_a_message_of_ones_own(wire: Wire) -> None:
    """code and msg go into the body as given; without executing nothing moves."""
    wire.exchange.faults.add(Fault.server_error(status=502, code=-1001, msg="x", executes=False))
    response = await wire.call("universal_transfer", TRANSFER)
    assert (response.status_code, body(response)) == (502, {"code": -1001, "msg": "x"})
    assert not wire.exchange.ledger[-1].executed


async def test_reset_mid_body_in_process(wire: Wire, master: Account) -> None:
    """Fault.reset(): status and headers arrive, reading the body raises RemoteProtocolError."""
    wire.exchange.faults.add(Fault.reset(), endpoint="universal_transfer", times=1)
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        await wire.call("universal_transfer", TRANSFER)
    entry = wire.exchange.ledger[-1]
    assert (entry.status, entry.executed, entry.fault) == (200, True, "reset")
    assert master.balance("USDT", "UMFUTURE") == Decimal(501)
    # Streamed, the caller sees the status line before the body breaks off.
    wire.exchange.faults.add(Fault.reset(), endpoint="server_time", times=1)
    async with wire.http.stream("GET", "/api/v3/time") as response:
        assert response.status_code == 200
        expected = int(response.headers["content-length"])
        received = bytearray()

        async def read() -> None:
            async for chunk in response.aiter_raw():
                received.extend(chunk)

        with pytest.raises(httpx.RemoteProtocolError):
            await read()
    assert 0 < len(received) < expected
    assert received.startswith(b'{"serverTime":')
