"""`from binance_transfers import X` loads the module holding X (and its imports), no more."""

from __future__ import annotations

import textwrap

from .conftest import last_json

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from binance_transfers import Client
    after_client = "binance_transfers._redis" in sys.modules
    import binance_transfers
    redis_storage = binance_transfers.RedisStorage
    print(json.dumps({
        "after_client": after_client,
        "after_redis": "binance_transfers._redis" in sys.modules,
        "client_module": Client.__module__,
        "redis_module": redis_storage.__module__,
        "same": redis_storage is sys.modules["binance_transfers._redis"].RedisStorage,
    }))
    """
)


def test_importing_the_client_leaves_the_redis_storage_unloaded_until_it_is_used() -> None:
    seen = last_json(_SCRIPT)
    assert seen == {
        "after_client": False,
        "after_redis": True,
        "client_module": "binance_transfers",
        "redis_module": "binance_transfers",
        "same": True,
    }
