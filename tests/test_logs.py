"""One INFO record per transfer on ``binance_transfers.transfers``; no secret in any log."""

from __future__ import annotations

import logging

import httpx
import looptime
import pytest

from binance_transfers import (
    BnbTransferSide,
    Client,
    Governor,
    InsufficientBalanceError,
    OutcomeUnknownError,
    TransferType,
)
from binance_transfers import _logs as logs_module
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET, Fault, SimulatedExchange

fake_time = looptime.enabled(strict=True)


@pytest.fixture
def transfers_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="binance_transfers.transfers")
    return caplog


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "binance_transfers.transfers"]


async def test_a_transfer_logs_one_structured_record(
    exchange: SimulatedExchange, transfers_log: pytest.LogCaptureFixture
) -> None:
    """Endpoint, parameters, tran_id, weight, outcome, duration: on the record and in the text."""
    async with exchange.client() as client:
        done = await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="12.5")
    [record] = _records(transfers_log)
    assert record.levelno == logging.INFO
    assert record.__dict__["endpoint"] == "universal_transfer"
    assert record.__dict__["params"] == {"type": "MAIN_UMFUTURE", "asset": "USDT", "amount": "12.5"}
    assert record.__dict__["tran_id"] == done.tran_id
    assert record.__dict__["outcome"] == "done"
    assert record.__dict__["uid_weight"] == 900
    assert record.__dict__["permit_wait"] == 0.0
    assert record.__dict__["duration"] >= 0.0
    assert record.__dict__["error"] is None
    message = record.getMessage()
    assert message.startswith(f"universal_transfer done tran_id={done.tran_id}")
    assert "UID 900" in message


async def test_refused_and_unknown_transfers_are_logged_with_their_outcome(
    exchange: SimulatedExchange, transfers_log: pytest.LogCaptureFixture
) -> None:
    """A refusal carries Binance's code; a lost answer says unknown."""
    exchange.faults.add(Fault.drop(), endpoint="universal_transfer", times=1)
    async with exchange.client() as client:
        with pytest.raises(OutcomeUnknownError):
            await client.transfer_to_futures(asset="USDT", amount="1")
        with pytest.raises(InsufficientBalanceError):
            await client.transfer_to_futures(asset="USDT", amount="99999999")
    unknown, refused = _records(transfers_log)
    assert (unknown.__dict__["outcome"], refused.__dict__["outcome"]) == ("unknown", "refused")
    assert "code=-5013" in refused.getMessage()
    assert refused.__dict__["error"].startswith("InsufficientBalanceError")
    assert unknown.__dict__["tran_id"] is None


@fake_time
async def test_the_permit_wait_is_measured(
    exchange: SimulatedExchange, transfers_log: pytest.LogCaptureFixture
) -> None:
    """A call queued behind a rolling cap (2 per 10 min) logs the time it waited."""
    async with exchange.client() as client:
        for _ in range(3):
            await client.pmpro_bnb_transfer(amount="0.1", side=BnbTransferSide.TO_UM)
    waits = [r.__dict__["permit_wait"] for r in _records(transfers_log)]
    # The second waits for the end of the /sapi IP pool's cold start (1500 of 12000:
    # heavy), which warms at an answer written two trip bounds (2 x 0.5 s) after its start.
    assert waits[0] == 0.0 and waits[1] <= 1.0
    assert 590 < waits[2] < 700
    assert _records(transfers_log)[2].__dict__["duration"] >= waits[2]


async def test_nothing_is_built_when_info_is_off(
    exchange: SimulatedExchange,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the logger at WARNING the logging wrapper is never entered."""
    caplog.set_level(logging.WARNING, logger="binance_transfers.transfers")

    def boom(*args: object) -> None:
        raise AssertionError("logged_transfer ran with INFO off")

    monkeypatch.setattr("binance_transfers._client.logged_transfer", boom)
    async with exchange.client() as client:
        await client.transfer_to_futures(asset="USDT", amount="1")
    assert _records(caplog) == []


@pytest.mark.parametrize("through_send", [False, True], ids=["direct", "event-hooks"])
async def test_no_secret_and_no_signature_in_any_log_record(
    exchange: SimulatedExchange, caplog: pytest.LogCaptureFixture, through_send: bool
) -> None:
    """No key and no signature in any record. A client that goes through
    ``AsyncClient.send`` (here: one with an event hook) gets httpx's INFO line
    for a signed GET, with its signature redacted."""
    caplog.set_level(logging.DEBUG)
    client = exchange.client()
    if through_send:

        async def hook(request: httpx.Request) -> None:
            pass

        http = httpx.AsyncClient(transport=exchange.transport(), event_hooks={"request": [hook]})
        client = Client(
            DEMO_API_KEY,
            DEMO_API_SECRET,
            http_client=http,
            governor=Governor(exchange.limits, clock=exchange.clock),
            endpoints=exchange.endpoints,
            api_url=exchange.api_url,
        )
    async with client:
        await client.transfer_to_futures(asset="USDT", amount="1")
        rows = [row async for row in client.transfer_history(type=TransferType.MAIN_UMFUTURE)]
    assert rows
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    if through_send:
        assert any("signature=<redacted>" in line for line in httpx_lines), httpx_lines
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert DEMO_API_SECRET not in text
    assert DEMO_API_KEY not in text
    assert "signature=" not in text.replace("signature=<redacted>", "")


def test_outcome_names() -> None:
    """Every way a call ends has its word; anything unforeseen is 'error'."""
    assert logs_module.outcome_of(None) == "done"
    assert logs_module.outcome_of(KeyboardInterrupt()) == "cancelled"
    assert logs_module.outcome_of(RuntimeError("x")) == "error"
