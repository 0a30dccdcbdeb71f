"""Timestamps have datetime accessors; sub-account statuses are an enum with a fallback."""

from __future__ import annotations

from datetime import UTC, datetime

from binance_transfers import (
    ServerTime,
    SubAccountTransferPage,
    SubAccountTransferStatus,
    TransferPage,
)
from binance_transfers._models import converter

_MS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z
_WHEN = datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


def _sub_row(status: str) -> dict[str, object]:
    return {
        "tranId": 7,
        "fromEmail": "a@x.invalid",
        "toEmail": "b@x.invalid",
        "asset": "USDT",
        "amount": "1",
        "createTimeStamp": _MS,
        "fromAccountType": "SPOT",
        "toAccountType": "SPOT",
        "status": status,
    }


def test_timestamped_models_give_aware_utc_datetimes() -> None:
    """Every epoch-millisecond field has a ``datetime`` twin, aware and in UTC."""
    row = converter.structure(
        {
            "total": 1,
            "rows": [
                {
                    "asset": "USDT",
                    "amount": "1",
                    "type": "MAIN_UMFUTURE",
                    "status": "CONFIRMED",
                    "tranId": 1,
                    "timestamp": _MS,
                }
            ],
        },
        TransferPage,
    ).rows[0]
    sub = converter.structure(
        {"totalCount": 1, "result": [_sub_row("SUCCESS")]}, SubAccountTransferPage
    ).result[0]
    assert row.datetime == _WHEN
    assert sub.datetime == _WHEN
    assert ServerTime(server_time=_MS).datetime == _WHEN
    assert row.datetime.tzinfo is UTC


def test_sub_account_status_is_an_enum_with_a_string_fallback() -> None:
    """Known statuses come back as members; one Binance adds later, as its string."""
    pages = [
        converter.structure({"totalCount": 1, "result": [_sub_row(s)]}, SubAccountTransferPage)
        for s in ("SUCCESS", "PROCESS", "FAILURE", "REVIEWING")
    ]
    statuses = [page.result[0].status for page in pages]
    assert statuses[:3] == [
        SubAccountTransferStatus.SUCCESS,
        SubAccountTransferStatus.PROCESS,
        SubAccountTransferStatus.FAILURE,
    ]
    assert all(isinstance(s, SubAccountTransferStatus) for s in statuses[:3])
    assert statuses[3] == "REVIEWING"
    assert not isinstance(statuses[3], SubAccountTransferStatus)
    # and back to Binance's JSON as the plain string
    assert converter.unstructure(pages[0].result[0])["status"] == "SUCCESS"
