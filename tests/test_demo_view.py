"""The demo's live view and summary, rendered as a user sees them.

At 80 and 120 columns and into a file, every line fits 80 columns, nothing is
truncated ("…"), and nothing is wrapped by the terminal: the lines printed are
the same whatever the width. Landed weight is shown against the limit, in-flight
weight apart (the governor's reservation, 9300 of a 6000 pool near a boundary,
read like a breach).
"""

from __future__ import annotations

import functools
import io
from decimal import Decimal

import pytest
from rich.console import Console

from binance_transfers import PoolKind, PoolSnapshot
from binance_transfers._reconcile import SettleBy, Settlement
from binance_transfers.demo import Options, Outcome
from binance_transfers.demo._job import Tally
from binance_transfers.demo._run import pool_label
from binance_transfers.demo._view import frame, summary
from binance_transfers.sim import CapUsage, PoolUsage, Report

OPTIONS = Options(concurrency=300, seconds=25, time_scale=60, fault_rate=0.005)


def snapshots() -> tuple[PoolSnapshot, ...]:
    common = functools.partial(PoolSnapshot, resets_at=1_767_225_660.0, frozen_until=None)
    return (
        common(
            key="papi-ip",
            kind=PoolKind.IP,
            limit=6000,
            used=9300,
            landed=5970,
            in_flight=3300,
            waiters=212,
        ),
        common(
            key="sapi-uid key-1 POST /sapi/v1/sub-account/margin/transfer",
            kind=PoolKind.UID,
            endpoint="sub_account_margin_transfer",
            account="key-1",
            limit=180000,
            used=181000,
            landed=179640,
            in_flight=1360,
            waiters=0,
        ),
        common(
            key="cap0 key-1 pmpro_auto_collect",
            kind=PoolKind.CAP,
            endpoint="pmpro_auto_collect",
            account="key-1",
            limit=500,
            used=500,
            landed=497,
            in_flight=3,
            waiters=40,
        ),
        common(key="fapi-ip", kind=PoolKind.IP, limit=2400, used=0, waiters=0),
        common(
            key="sapi-ip GET /sapi/v1/asset/transfer",
            kind=PoolKind.IP,
            limit=12000,
            used=0,
            waiters=0,
        ),
    )


def tally() -> Tally:
    t = Tally()
    t.done.update(
        {
            "between wallets": 1641,
            "spot <-> futures": 1359,
            "transfer history": 245,
            "sub-account margin": 470,
        }
    )
    t.refused.update(
        {
            "between wallets: -5013": 132,
            "spot <-> futures: -5013": 397,
            "sub-account margin: -9999": 1,
        }
    )
    t.deferred = 2502
    t.unknown = 2
    return t


def outcome() -> Outcome:
    pools = (
        PoolUsage(pool="papi-ip", limit=6000, windows={1: 6000, 2: 5970, 3: 10}),
        PoolUsage(
            pool="sapi-uid key-1 POST /sapi/v1/sub-account/margin/transfer",
            limit=180000,
            windows={1: 173700},
        ),
    )
    caps = (CapUsage(endpoint="pmpro_auto_collect", calls=500, period=60.0, peak=204),)
    seen = Report(
        pools=pools,
        caps=caps,
        statuses={200: 4000},
        executed={"universal_transfer": 3000},
        totals={"USDT": Decimal(1)},
        started_with={"USDT": Decimal(1)},
    )
    long_params = {
        "type": "MAIN_UMFUTURE",
        "asset": "USDT",
        "amount": "12.34",
        "timestamp": "1767225600000",
        "recvWindow": "2000",
    }
    settlements = (
        Settlement(
            endpoint="universal_transfer",
            params=long_params,
            executed=True,
            by=SettleBy.HISTORY,
            reason="found in the transfer history",
            tran_id=1,
        ),
        Settlement(
            endpoint="universal_transfer",
            params=long_params,
            executed=False,
            by=SettleBy.HISTORY,
            reason="absent from the history past the window",
        ),
    )
    return Outcome(
        options=OPTIONS,
        url="http://127.0.0.1:40000",
        elapsed=25.4,
        tally=tally(),
        seen=seen,
        settlements=settlements,
    )


def render(width: int, draw: str) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    if draw == "summary":
        summary(console, outcome())
    else:
        console.print(frame(snapshots(), tally(), 12.0, "http://127.0.0.1:40000", OPTIONS))
    return [line.rstrip() for line in console.export_text().splitlines()]


@pytest.mark.parametrize("draw", ["view", "summary"])
@pytest.mark.parametrize("width", [80, 120])
def test_fits_80_columns_without_truncation(width: int, draw: str) -> None:
    lines = render(width, draw)
    assert lines
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide
    assert not [line for line in lines if "…" in line]


@pytest.mark.parametrize("draw", ["view", "summary"])
def test_the_same_lines_at_any_width(draw: str) -> None:
    """No line is wrapped by the terminal: 80, 120 and a file read alike."""
    assert render(80, draw) == render(120, draw) == render(400, draw)


def test_the_view_shows_landed_weight_against_the_limit_and_in_flight_apart() -> None:
    text = "\n".join(render(80, "view"))
    assert "9300" not in text  # the reservation, never shown against the limit
    assert "5970 / 6000" in text
    assert "3300" in text  # in flight, in its own column
    assert "179640 / 180000" in text
    assert "497 / 500" in text
    assert "pmpro_auto_collect: 500 calls per rolling hour, here 60 s" in text
    # Pools nothing used yet are left out: the busy ones stay in view.
    assert "/fapi" not in text and "transfer_history" not in text


def test_pools_of_every_host_have_a_name() -> None:
    assert [pool_label(k) for k in ("api-ip", "fapi-ip", "dapi-ip", "papi-ip")] == [
        "/api",
        "/fapi",
        "/dapi",
        "/papi (all Portfolio Margin)",
    ]
    assert pool_label("sapi-ip GET /sapi/v1/asset/transfer") == "transfer_history (IP)"


def test_the_summary_explains_caps_codes_and_the_total() -> None:
    text = "\n".join(render(80, "summary"))
    assert "pmpro_auto_collect: 500 calls per rolling hour, here 60 s" in text
    assert "spot <-> futures: -5013 insufficient balance x397" in text
    assert "sub-account margin: -9999 x1" in text  # an unknown code is shown as is
    # 3715 done, of which 245 history reads: the transfers are 3470.
    assert "3715" in text
    assert "245 reads of the transfer history" in text and "3470\n  transfers" in text
    assert "6000 (100%)" in text and "173700 (96%)" in text
    assert "429s received: 0   418s received: 0" in text
    assert "settled from Binance's history: 2 (1 executed, 1 not), unsettled: 0" in text
