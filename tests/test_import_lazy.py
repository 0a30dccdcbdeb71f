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


_JOURNAL_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, tempfile, os
    from binance_transfers import Client
    LAZY = ("_journal", "_recovery", "_settling", "_settle_balances", "_claims", "sqlite3")
    def loaded():
        return [m for m in LAZY if "binance_transfers." + m in sys.modules or m in sys.modules]
    seen = {"import": loaded()}
    async def main():
        async with Client("k" * 64, "s" * 64) as client:
            seen["plain client"] = loaded()
        path = os.path.join(tempfile.mkdtemp(), "j.sqlite")
        async with Client("k" * 64, "s" * 64, journal=path) as client:
            seen["journal"] = client.journal.__class__.__name__
    asyncio.run(main())
    import binance_transfers
    seen["Journal"] = binance_transfers.Journal.__module__
    print(json.dumps(seen))
    """
)


def test_a_client_without_a_journal_loads_no_journal_recovery_or_claims_code() -> None:
    """issue 9: the journal, recovery, settlement and claims modules load when first needed."""
    seen = last_json(_JOURNAL_SCRIPT)
    assert seen == {
        "import": [],
        "plain client": [],
        "journal": "Journal",
        "Journal": "binance_transfers",
    }


#: What a client's requests need, imported when a client is built (issue 9):
#: about half of ``from binance_transfers import Client`` when they were not.
_AT_CLIENT = ("httpx", "httpcore", "cattrs", "binance_transfers._transport")

_CLIENT_SCRIPT = textwrap.dedent(
    f"""
    import asyncio, json, sys
    LATER = {_AT_CLIENT!r}
    def loaded():
        return [m for m in LATER if m in sys.modules]
    import binance_transfers
    seen = {{"package": loaded()}}
    from binance_transfers import Client, Governor, TransferType, InsufficientBalanceError
    from binance_transfers import Settlement, Limits
    seen["names"] = loaded()
    async def main():
        async with Client("k" * 64, "s" * 64) as client:
            seen["client"] = loaded()
    asyncio.run(main())
    print(json.dumps(seen))
    """
)


def test_importing_the_client_imports_no_http_library_until_one_is_built() -> None:
    """issue 9: httpx, the transport and cattrs load with the first Client(), not the import."""
    seen = last_json(_CLIENT_SCRIPT)
    assert seen == {
        "package": [],
        "names": [],
        # httpcore: on asyncio, requests go through aiohttp.
        "client": ["httpx", "cattrs", "binance_transfers._transport"],
    }
