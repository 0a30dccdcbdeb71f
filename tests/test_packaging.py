"""The wheel as ``pip install`` gives it: no extras, nothing the hot path imports missing.

The wheel is built from this checkout and installed into a fresh venv without
any extra; a script there imports the package and sends transfers (over
``httpx.MockTransport``, then over real loopback sockets through the default
HTTP client and through httpcore). Every ``ImportError`` raised meanwhile is
recorded, even those a library catches: httpcore catches its failing ``import
sniffio`` and tries again on every request (encode/httpcore#1103), which
costs CPU but no error a user would see.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Modules of the optional extras (crypto, sim) and of the transports picked at
# the first request (aiohttp on asyncio, httpcore on trio), and sqlite3, which
# only a Journal needs: `import binance_transfers` must load none of them.
OPTIONAL = (
    "sqlite3",
    "cryptography",
    "starlette",
    "uvicorn",
    "rich",
    "trio",
    "aiohttp",
    "yarl",
    "httpx_aiohttp",
    "httpcore",
    "h11",
)

CHECK = textwrap.dedent(
    """
    import asyncio, builtins, json, sys, time

    failed = []
    real_import = builtins.__import__

    def recording_import(name, *args, **kwargs):
        try:
            return real_import(name, *args, **kwargs)
        except ImportError:
            failed.append(name)
            raise

    builtins.__import__ = recording_import
    import binance_transfers
    from binance_transfers import Client, TransferType
    at_import = [m for m in OPTIONAL if m in sys.modules]
    failed[:] = []

    import httpx

    KEY = "k" * 64

    def mock(request):
        if request.url.path == "/api/v3/time":
            return httpx.Response(200, json={"serverTime": int(time.time() * 1000)})
        return httpx.Response(200, json={"tranId": 7})

    ANSWER = b'HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s'

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if head.startswith(b"GET /api/v3/time"):
                    body = json.dumps({"serverTime": int(time.time() * 1000)}).encode()
                else:
                    body = b'{"tranId": 7}'
                writer.write(ANSWER % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    steady = []

    async def transfers(client):
        async with client:
            ids = []
            for n in range(5):
                if n == 2:
                    # The first calls may probe optional modules once (h2,
                    # socksio, brotli...); from here on, nothing is imported.
                    mark = len(failed)
                result = await client.transfer(
                    type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
                ids.append(result.tran_id)
            steady.extend(failed[mark:])
            return ids

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = "http://127.0.0.1:%d" % server.sockets[0].getsockname()[1]
        results = {}
        async with server:
            results["mock"] = await transfers(
                Client(KEY, "s" * 64, transport=httpx.MockTransport(mock)))
            results["default"] = await transfers(
                Client(KEY, "s" * 64, api_url=url, papi_url=url))
            results["httpcore"] = await transfers(
                Client(KEY, "s" * 64, api_url=url, papi_url=url,
                       transport=httpx.AsyncHTTPTransport()))
            try:
                from binance_transfers._http import default_http_client
            except ImportError:
                pass  # a version without the aiohttp transport
            else:
                http = default_http_client(timeout=5.0, max_in_flight=4)
                async with http:
                    results["aiohttp"] = await transfers(
                        Client(KEY, "s" * 64, api_url=url, papi_url=url, http_client=http))
                    results["aiohttp_chosen"] = type(http._transport.inner).__name__
        return results

    results = asyncio.run(main())
    print(json.dumps({
        "at_import": at_import,
        "steady_failures": steady,
        "results": results,
    }))
    """
)


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreters and paths
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the built wheel and its declared dependencies, nothing else."""
    work = tmp_path_factory.mktemp("packaging")
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", ROOT)
    (wheel,) = (work / "dist").glob("binance_transfers-*.whl")
    # No pip inside: this venv's pip installs into it (faster, and no extras sneak in).
    _run(sys.executable, "-m", "venv", "--without-pip", work / "venv")
    python = work / "venv" / "bin" / "python"
    _run(*pip, "--python", python, "install", "--quiet", wheel)
    return python


def test_the_wheel_without_extras_imports_and_calls_without_import_errors(
    fresh_venv: Path,
) -> None:
    script = f"OPTIONAL = {OPTIONAL!r}\n{CHECK}"
    # Run away from the checkout, so that the installed wheel is what is imported.
    out = _run(fresh_venv, "-c", script, cwd=fresh_venv.parent.parent)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert report["at_import"] == []
    # Imports failing once (the standard library's and other libraries' probes
    # for optional modules) are fine; failing on every call is not.
    assert report["steady_failures"] == []
    results = report["results"]
    assert results["mock"] == results["default"] == results["httpcore"] == [7] * 5
    assert results["aiohttp"] == [7] * 5
    assert results["aiohttp_chosen"] == "WriteAwareAiohttpTransport"


def test_the_fresh_venv_holds_no_extra(fresh_venv: Path) -> None:
    frozen = _run(
        fresh_venv,
        "-c",
        "import importlib.metadata as m; print([d.name for d in m.distributions()])",
    )
    installed = {name.lower().replace("_", "-") for name in json.loads(frozen.replace("'", '"'))}
    for extra in ("cryptography", "starlette", "uvicorn", "rich", "trio", "pytest"):
        assert extra not in installed
    assert "binance-transfers" in installed
