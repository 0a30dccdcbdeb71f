"""Type-checked use of the public API: mypy --strict fails here if a signature changes.

Never run, only checked (``make typecheck``); hence no test_ prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import assert_type

import httpx

from binance_transfers import (
    ENDPOINTS,
    Acknowledgement,
    BnbTransferResult,
    BnbTransferSide,
    Client,
    FuturesMarket,
    FutureType,
    Governor,
    GovernorHooks,
    Limits,
    MarginTransferDirection,
    MarginTransferResult,
    OutcomeUnknownError,
    Permit,
    PoolSnapshot,
    RateLimitError,
    ServerTime,
    SubAccountAccountType,
    SubAccountTransferRecord,
    SubAccountTransferResult,
    ThrottledError,
    TransferRecord,
    TransferResult,
    TransferType,
)


async def every_method(client: Client) -> None:
    result: TransferResult = await client.transfer(
        type=TransferType.MAIN_UMFUTURE, asset="USDT", amount=Decimal("1.5"), max_wait=2.0
    )
    tran_id: int = result.tran_id
    await client.transfer(
        type="ISOLATEDMARGIN_MARGIN", asset="BTC", amount="0.1", from_symbol="BTCUSDT"
    )
    await client.transfer_to_futures(asset="USDT", amount=100, market=FuturesMarket.COINM)
    await client.transfer_from_futures(asset="USDT", amount=0.5)
    rows: AsyncIterator[TransferRecord] = client.transfer_history(
        type=TransferType.MAIN_MARGIN, start_time=datetime(2026, 1, 1, tzinfo=UTC), page_size=50
    )
    async for row in rows:
        amount: Decimal = row.amount
        assert_type(row.datetime, datetime)
    ack: Acknowledgement = await client.pm_collect_asset(
        asset="USDT", amount="10", future_type=FutureType.UM
    )
    ack = await client.pm_auto_collect()
    ack = await client.pmpro_auto_collect()
    ack = await client.pmpro_collect_asset(asset="ETH")
    bnb: BnbTransferResult = await client.pm_bnb_transfer(amount="1", side=BnbTransferSide.TO_UM)
    bnb = await client.pmpro_bnb_transfer(amount="1", side=BnbTransferSide.FROM_UM)
    # Enum parameters take their wire values too (what works at run time type-checks)...
    bnb = await client.pm_bnb_transfer(amount="1", side="TO_UM")
    ack = await client.pm_collect_asset(asset="USDT", amount="1", future_type="CM")
    assert_type(
        await client.transfer_to_futures(asset="USDT", amount=1, market="CMFUTURE"),
        TransferResult,
    )
    margin_by_value = await client.sub_account_margin_transfer(
        email="a@example.com", asset="USDT", amount=1, direction=2
    )
    # ...and nothing else (an unused ignore would fail mypy --strict).
    bnb = await client.pm_bnb_transfer(amount="1", side="TO_CM")  # type: ignore[arg-type]
    assert_type(margin_by_value.txn_id, str)
    margin: MarginTransferResult = await client.sub_account_margin_transfer(
        email="a@example.com",
        asset="USDT",
        amount=1,
        direction=MarginTransferDirection.SPOT_TO_MARGIN,
    )
    txn: str = margin.txn_id
    sub: SubAccountTransferResult = await client.sub_account_transfer(
        from_account_type=SubAccountAccountType.SPOT,
        to_account_type="USDT_FUTURE",
        asset="USDT",
        amount=1,
        to_email="a@example.com",
        client_tran_id="id-1",
    )
    history: AsyncIterator[SubAccountTransferRecord] = client.sub_account_transfer_history(
        client_tran_id="id-1"
    )
    async for record in history:
        created: int = record.create_time_stamp
    clock: ServerTime = await client.server_time()
    when: datetime = clock.datetime
    not_before: float = client.estimate("pm_auto_collect")
    print(tran_id, amount, ack, bnb, txn, sub, created, when, not_before)


async def errors_and_governor() -> None:
    class Metrics(GovernorHooks):
        def throttled(self, endpoint: str, wait: float) -> None: ...

    governor = Governor(Limits(time_scale=60), latency=0.2, hooks=Metrics())
    async with Client(
        "key",
        "secret",
        governor=governor,
        transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    ) as client:
        try:
            await client.pm_auto_collect(max_wait=1.0)
        except ThrottledError as exc:
            retry_at: float = exc.retry_at
        except RateLimitError as exc:
            retry_after: float = exc.retry_after
        except OutcomeUnknownError as exc:
            sent: dict[str, str] = exc.params
    permit: Permit = await governor.acquire(ENDPOINTS["server_time"], max_wait=0.5)
    governor.observe(permit, sent=0.0, received=None)
    pools: tuple[PoolSnapshot, ...] = governor.snapshot()
    print(retry_at, retry_after, sent, pools)
