"""Every ```python block of README.md runs, against the simulated exchange.

The convention, for whoever edits the README:

* Each block runs on its own, in README order, as a module body in which
  top-level ``await``/``async with`` is allowed, in a temporary directory,
  against a fresh :class:`~binance_transfers.sim.SimulatedExchange` holding
  the demo account. A block that raises fails its test.
* A block may use these names without defining them (the credentials a user
  would have, and an open client): ``api_key``/``api_secret`` (also ``key``/
  ``secret``), the demo account's, and ``client``, a client of that account.
* ``binance_transfers.Client`` is, for these blocks only, a subclass that
  sends to the simulated exchange (its in-process transport): a block written
  for Binance (``Client(api_key, api_secret)``) runs as written.
* A block right after an HTML comment ``<!-- readme-test: continue -->``
  runs in the namespace the previous block (pytest blocks aside) left: names
  it defined, the same exchange. ``<!-- readme-test: pytest -->`` marks a test file, run by
  pytester with only the package's pytest plugin, whose tests must all pass.
* A chain that uses the name ``redis_url`` gets the URL of a throwaway
  ``redis-server`` on loopback (``make redis`` installs it), so the Redis
  example runs as written too.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import binance_transfers
from binance_transfers import Client
from binance_transfers.sim import DEMO_API_KEY, DEMO_API_SECRET, SimulatedExchange

README = Path(__file__).resolve().parent.parent / "README.md"
_FENCE = re.compile(
    r"(?:<!--\s*readme-test:\s*(?P<mode>[\w-]+)\s*-->\s*\n)?^```python\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)

pytest_plugins = ["pytester"]


@attrs.frozen
class Block:
    """One python block of the README: where it starts, its mode, its code."""

    line: int
    mode: str
    code: str


def blocks(text: str) -> list[Block]:
    """The README's python blocks, with the mode of the comment before each."""
    return [
        Block(
            line=text.count("\n", 0, match.start("code")) + 1,
            mode=match.group("mode") or "run",
            code=match.group("code"),
        )
        for match in _FENCE.finditer(text)
    ]


# Consecutive "continue" blocks form one chain, run in one namespace.
def _chains(found: list[Block]) -> Iterator[list[Block]]:
    chain: list[Block] = []
    for block in found:
        if block.mode == "continue" and chain:
            chain.append(block)
            continue
        if chain:
            yield chain
        chain = [block]
    if chain:
        yield chain


_ALL = blocks(README.read_text(encoding="utf-8"))
_RUN = list(_chains([block for block in _ALL if block.mode != "pytest"]))
_PYTEST = [block for block in _ALL if block.mode == "pytest"]


def test_the_readme_has_blocks_of_every_kind() -> None:
    """The extraction finds the README's blocks (a broken fence regex would pass vacuously)."""
    assert len(_ALL) >= 8
    assert _PYTEST
    assert all(block.mode in ("run", "continue", "pytest") for block in _ALL)


def test_blocks_are_found_with_their_modes() -> None:
    """A comment before a fence sets its mode; other blocks run on their own."""
    text = "x\n```python\na = 1\n```\n<!-- readme-test: continue -->\n```python\nb = a\n```\n"
    found = blocks(text)
    assert [(b.line, b.mode, b.code) for b in found] == [
        (3, "run", "a = 1\n"),
        (7, "continue", "b = a\n"),
    ]
    assert [len(chain) for chain in _chains(found)] == [2]


@pytest.fixture
async def namespace(
    exchange: SimulatedExchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, Any]]:
    """What a block may use undefined, with Client bound to a fresh simulated exchange."""

    class SimBoundClient(Client):
        """Client, sending to the simulated exchange whatever its URLs."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if "http_client" not in kwargs:
                kwargs.setdefault("transport", exchange.transport())
            super().__init__(*args, **kwargs)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(binance_transfers, "Client", SimBoundClient)
    async with exchange.client() as client:
        yield {
            "__name__": "__readme__",
            "api_key": DEMO_API_KEY,
            "api_secret": DEMO_API_SECRET,
            "key": DEMO_API_KEY,
            "secret": DEMO_API_SECRET,
            "client": client,
        }


async def _run(block: Block, namespace: dict[str, Any]) -> None:
    # Line numbers in a traceback are the README's.
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # noqa: S307 - the README's own examples
    if inspect.iscoroutine(result):
        await result


@pytest.mark.parametrize("chain", _RUN, ids=[f"README.md:{chain[0].line}" for chain in _RUN])
async def test_readme_block_runs(
    chain: list[Block], namespace: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """The block (and those continuing it) runs against the simulated exchange."""
    if any("redis_url" in block.code for block in chain):
        namespace["redis_url"] = request.getfixturevalue("redis_server").url
    for block in chain:
        await _run(block, namespace)


@pytest.mark.parametrize("block", _PYTEST, ids=[f"README.md:{b.line}" for b in _PYTEST])
def test_readme_pytest_example_passes(block: Block, pytester: pytest.Pytester) -> None:
    """The pytest example passes as written, with the package's plugin and nothing else."""
    pytester.makepyfile(test_example=block.code)
    result = pytester.runpytest_subprocess(
        "-p", "binance_transfers.sim.pytest_plugin", "-p", "no:cacheprovider"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert set(outcomes) <= {"passed"}, result.stdout.str()


def test_plugin_fixtures_name_the_missing_extra(pytester: pytest.Pytester) -> None:
    """Without Starlette the fixtures raise ConfigurationError with the pip command."""
    pytester.makeconftest("import sys\nsys.modules['starlette'] = None\n")
    pytester.makepyfile(
        test_missing="def test_it(binance_client):\n    pass\n",
    )
    result = pytester.runpytest_subprocess(
        "-p", "binance_transfers.sim.pytest_plugin", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "ConfigurationError: the binance_sim fixtures need the sim extra" in output
    assert "pip install 'binance-transfers[sim]'" in output
