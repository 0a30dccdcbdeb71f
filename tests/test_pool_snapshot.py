"""PoolSnapshot says what each pool is; a fresh governor lists its table's pools."""

from __future__ import annotations

from binance_transfers import ENDPOINTS, Governor, PoolKind
from binance_transfers.sim import SimulatedExchange


async def test_a_fresh_governor_lists_the_ip_pools_of_the_endpoint_table() -> None:
    """Before any call: every IP pool of ENDPOINTS, idle, with its endpoint where it has one."""
    pools = {pool.key: pool for pool in Governor().snapshot()}
    assert pools["papi-ip"].endpoint is None  # every Portfolio Margin endpoint shares it
    assert pools["papi-ip"].limit == 6000
    assert (pools["papi-ip"].used, pools["papi-ip"].waiters) == (0, 0)
    assert pools["papi-ip"].frozen_until is None
    collect = pools["sapi-ip POST /sapi/v1/portfolio/auto-collection"]
    assert (collect.kind, collect.endpoint, collect.account) == (
        PoolKind.IP,
        "pmpro_auto_collect",
        None,
    )
    ip_weighted = {e.name for e in ENDPOINTS.values() if e.ip_weight and e.prefix == "sapi"}
    named = {pool.endpoint for pool in pools.values() if pool.key.startswith("sapi-ip")}
    assert named == ip_weighted
    assert all(pool.kind is PoolKind.IP for pool in pools.values())


async def test_account_pools_carry_their_endpoint_and_account() -> None:
    """UID pools and rolling caps appear once an account calls, labelled with it."""
    exchange = SimulatedExchange()
    exchange.add_demo_account()
    async with exchange.client() as client:
        await client.transfer_to_futures(asset="USDT", amount="1")
        await client.pm_auto_collect()
        pools = client.governor.snapshot()
    uid = [p for p in pools if p.kind is PoolKind.UID]
    assert [(p.endpoint, p.account, p.used) for p in uid] == [
        ("universal_transfer", client.account, 900)
    ]
    cap = [p for p in pools if p.kind is PoolKind.CAP and p.endpoint == "pm_auto_collect"]
    assert [(p.account, p.used, p.limit) for p in cap] == [(client.account, 1, 500)]
    papi = [p for p in pools if p.key == "papi-ip"]
    assert [(p.endpoint, p.account, p.used) for p in papi] == [(None, None, 750)]
    assert len({p.key for p in pools}) == len(pools)  # each pool once
