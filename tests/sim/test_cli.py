"""``python -m binance_transfers.sim``: startup line, serving, clean Ctrl-C."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import anyio
import httpx

from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET, FaultKind, Report
from binance_transfers.sim.__main__ import _parser, build

from .conftest import hmac_hex


async def test_cli_prints_url_and_credentials_serves_and_stops_on_ctrl_c() -> None:
    """One line with URL, key and secret; the URL serves; SIGINT exits 0 without a traceback."""
    command = [sys.executable, "-m", "binance_transfers.sim", "--port", "0", "--time-scale", "60"]
    with anyio.fail_after(30):
        async with await anyio.open_process(command) as process:
            assert process.stdout is not None and process.stderr is not None
            line = b""
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
            text = line.decode()
            match = re.search(r"(http://127\.0\.0\.1:\d+)", text)
            assert match, text
            assert DEMO_API_KEY in text and DEMO_API_SECRET in text
            async with httpx.AsyncClient() as http:
                response = await http.get(f"{match.group(1)}/api/v3/time")
            assert response.status_code == 200
            assert "serverTime" in response.json()
            process.send_signal(signal.SIGINT)
            rest = b"".join([chunk async for chunk in process.stdout])
            errors = b"".join([chunk async for chunk in process.stderr])
            assert await process.wait() == 0
    assert b"stopped" in rest
    assert b"Traceback" not in errors


def test_cli_options_build_the_exchange() -> None:
    """--time-scale, --skew, --seed and the fault rates shape the exchange it serves."""
    args = _parser().parse_args(
        [
            "--time-scale",
            "60",
            "--skew",
            "1.5",
            "--seed",
            "3",
            "--latency",
            "0.01",
            "--drop-rate",
            "0.1",
        ]
    )
    exchange = build(args)
    assert exchange.limits.window == 1.0
    assert exchange.skew == 1.5
    assert exchange.demo_account is not None
    assert [r.fault.kind for r in exchange.faults.rules] == [FaultKind.LATENCY, FaultKind.DROP]
    assert exchange.faults.rules[1].probability == 0.1


def test_cli_issue_8_faults_and_history_lag() -> None:
    """--history-lag and the reset, late, 503, pending and failed rates reach the exchange."""
    args = _parser().parse_args(
        [
            *("--history-lag", "1.5", "--reset-rate", "0.05", "--late-rate", "0.04"),
            *("--late-by", "9", "--unavailable-rate", "0.03", "--pending-rate", "0.02"),
            *("--failed-rate", "0.01", "--settle-after", "7"),
        ]
    )
    exchange = build(args)
    assert exchange.history_lag == 1.5
    assert [(r.fault.kind, r.probability, r.fault.delay) for r in exchange.faults.rules] == [
        (FaultKind.RESET, 0.05, 0.0),
        (FaultKind.LATE, 0.04, 9.0),
        (FaultKind.UNAVAILABLE, 0.03, 0.0),
        (FaultKind.PENDING, 0.02, 7.0),
        (FaultKind.FAILED, 0.01, 7.0),
    ]
    assert build(_parser().parse_args([])).history_lag == 0.0


async def test_cli_report_counts_pending_transfers_at_exit(tmp_path: Path) -> None:
    """--pending-rate 1 --report: a transfer PENDING at Ctrl-C is in the report; books balance."""
    out = tmp_path / "report.json"
    command = [
        *(sys.executable, "-m", "binance_transfers.sim", "--port", "0"),
        *("--pending-rate", "1", "--settle-after", "3600", "--report", str(out)),
    ]
    with anyio.fail_after(30):
        async with await anyio.open_process(command) as process:
            assert process.stdout is not None and process.stderr is not None
            line = b""
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line.decode())
            assert match, line
            async with httpx.AsyncClient(base_url=match.group(1)) as http:
                server_ms = (await http.get("/api/v3/time")).json()["serverTime"]
                payload = f"type=MAIN_UMFUTURE&asset=USDT&amount=12&timestamp={server_ms}"
                signature = hmac_hex(payload, DEMO_API_SECRET)
                response = await http.post(
                    "/sapi/v1/asset/transfer",
                    content=f"{payload}&signature={signature}",
                    headers={
                        "X-MBX-APIKEY": DEMO_API_KEY,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
            assert response.status_code == 200
            process.send_signal(signal.SIGINT)
            errors = b"".join([chunk async for chunk in process.stderr])
            assert await process.wait() == 0
    assert b"Traceback" not in errors
    seen = Report.loads(out.read_text())
    [execution] = seen.executions
    assert (execution.params["amount"], execution.settlement) == ("12", "CONFIRMED")
    assert seen.conserved
