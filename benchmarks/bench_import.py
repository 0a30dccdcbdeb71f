"""Import time: what ``from binance_transfers import Client`` costs, against its floor.

The package is measured as ``pip install`` gives it: the wheel built from this
checkout, installed without extras into a fresh venv (pip compiles the
bytecode at install; no click or rich, so httpx does not load its
command-line tool). Every sample is a fresh interpreter of that venv. The
cases run round-robin, ``rounds`` times, so that a change in the machine's
load falls on all of them alike, and the median of each is kept:

- ``python -c pass``: the interpreter's own start, for scale;
- ``import httpx``: the floor, since our API is httpx's;
- ``import binance_transfers``: the bare package (its public names load on
  first use, PEP 562);
- ``from binance_transfers import Client``: what a program writes, and what
  the target of issue 9 (at most 150 ms, no optional extra) is held to;
- the same after ``import asyncio`` (untimed): what it adds to an asyncio
  program, which has imported asyncio (about 11 ms) before it imports us;
- the same, then ``Client(...)`` and the first transfer over
  ``httpx.MockTransport`` (no sockets): a lazy import only moves cost, and this
  shows whether it moved into the first call. The second transfer is timed
  too, as the steady state to compare the first one with. The total adds
  the import of httpx (and of the names used) for the mock transport, timed
  apart: the package imports httpx when a Client is built, not before, so
  the client's own import would otherwise look cheaper than it is.

The same cases run on a copy of this checkout's sources without bytecode
(``source``): what an editable install gives where ``PYTHONDONTWRITEBYTECODE``
is set, as in this repository's dev environment, where every import compiles
the package again. ``--baseline DIR`` adds another tree (for example ``git
archive main binance_transfers | tar -x -C /tmp/base``), compiled and not, in
the same rounds: before and after, measured in one run.

Times are the child's own CPU (``time.process_time``) around each step: on a
busy machine, wall time measures the load. Whole-process CPU (interpreter
start included) is read from ``getrusage(RUSAGE_CHILDREN)``.

Run: ``python -m benchmarks.bench_import [--rounds N] [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from ._report import Report

# Modules `from binance_transfers import Client` must not load: the optional
# extras, the transports picked at the first request, and the standard
# library's modules only a feature needs (sqlite3: the journal).
OPTIONAL = (
    "aiohttp",
    "click",
    "cryptography",
    "h11",
    "httpcore",
    "httpx_aiohttp",
    "prometheus_client",
    "pygments",
    "redis",
    "rich",
    "sqlite3",
    "starlette",
    "trio",
    "typer",
    "uvicorn",
    "yarl",
)

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import sys, time
    TREE, CASE, OPTIONAL = sys.argv[1], sys.argv[2], sys.argv[3:]
    if TREE:
        sys.path.insert(0, TREE)
    if CASE == "in_asyncio":
        import asyncio  # an asyncio program has it before it imports us
    out = {}
    t = time.process_time()
    if CASE == "pass":
        pass
    elif CASE == "httpx":
        import httpx
    elif CASE == "bare":
        import binance_transfers
    else:
        from binance_transfers import Client
    out["import"] = time.process_time() - t
    out["modules"] = len(sys.modules)
    out["optional"] = [m for m in OPTIONAL if m in sys.modules]
    if CASE == "first":
        # Timed, and counted in the total: httpx is not imported with the
        # package (it is with Client()); importing it here for the mock
        # transport is a cost the calls would otherwise have paid.
        t = time.process_time()
        import asyncio
        import httpx
        from binance_transfers import Governor, Limits, TransferType
        out["setup"] = time.process_time() - t

        def handler(request):
            if request.url.path == "/api/v3/time":
                return httpx.Response(200, json={"serverTime": int(time.time() * 1000)})
            return httpx.Response(200, content=b'{"tranId": 1}')

        async def main():
            huge = 10**12
            t = time.process_time()
            client = Client(
                "k" * 64, "s" * 64, transport=httpx.MockTransport(handler),
                governor=Governor(Limits(api_ip=huge, papi_ip=huge, sapi_ip=huge, sapi_uid=huge)),
            )
            async with client:
                await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
                out["first"] = time.process_time() - t
                t = time.process_time()
                await client.transfer(type=TransferType.MAIN_UMFUTURE, asset="USDT", amount="1")
                out["second"] = time.process_time() - t

        t = time.process_time()
        asyncio.run(main())
        out["run"] = time.process_time() - t
        out["optional_after_call"] = [m for m in OPTIONAL if m in sys.modules]
    if CASE not in ("pass", "httpx"):
        out["file"] = sys.modules["binance_transfers"].__file__
    import json
    print(json.dumps(out))
    """
)

CASES = ("bare", "client", "in_asyncio", "first")
LABELS = {
    "pass": "python -c pass",
    "httpx": "import httpx",
    "bare": "import binance_transfers",
    "client": "from binance_transfers import Client",
    "in_asyncio": "the same, asyncio imported before",
    "first": "the same + Client() + first transfer",
}


def fresh_venv(work: Path) -> Path:
    """This checkout's wheel in a new venv with its declared dependencies only."""

    def run(*args: str | Path) -> None:
        subprocess.run([str(a) for a in args], check=True, capture_output=True)

    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", ROOT)
    (wheel,) = (work / "dist").glob("binance_transfers-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", work / "venv")
    python = work / "venv" / "bin" / "python"
    run(*pip, "--python", python, "install", "--quiet", wheel)
    return python


def _copy(tree: Path, into: Path, *, compiled: bool) -> str:
    """A copy of ``tree/binance_transfers`` (bytecode compiled or none), for sys.path."""
    shutil.copytree(
        tree / "binance_transfers",
        into / "binance_transfers",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    if compiled:
        compileall.compile_dir(into / "binance_transfers", quiet=1)
    return str(into)


def _sample(python: Path, tree: str, case: str) -> tuple[float, dict[str, Any]]:
    """One fresh interpreter: its own measurements, and its whole CPU (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [python, "-c", CHILD, tree, case, *OPTIONAL],
        # Away from the checkout: `python -c` puts the working directory first on sys.path.
        cwd=python.parent,
        capture_output=True,
        text=True,
        # Nothing is written: a source tree stays without bytecode.
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{case} in {tree or 'the wheel'} failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(done.stdout.strip().splitlines()[-1])


def measure(rounds: int = 11, *, baseline: Path | None = None) -> dict[str, dict[str, Any]]:
    """Median of ``rounds`` fresh interpreters per (tree, case), run round-robin."""
    with tempfile.TemporaryDirectory(prefix="bench_import-") as tmp:
        work = Path(tmp)
        python = fresh_venv(work)
        trees = {"wheel": "", "source": _copy(ROOT, work / "source", compiled=False)}
        if baseline is not None:
            trees["baseline"] = _copy(baseline, work / "baseline", compiled=True)
            trees["baseline source"] = _copy(baseline, work / "bsource", compiled=False)
        jobs = [("floor", "", "pass"), ("floor", "", "httpx")]
        jobs += [(name, path, case) for name, path in trees.items() for case in CASES]
        samples: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for _ in range(rounds):
            for name, path, case in jobs:
                samples.setdefault(f"{name}:{case}", []).append(_sample(python, path, case))
    result: dict[str, dict[str, Any]] = {}
    for key, runs in samples.items():
        last = runs[-1][1]
        row: dict[str, Any] = {
            "process_ms": 1000 * statistics.median(cpu for cpu, _ in runs),
            "modules": last["modules"],
            "optional": last["optional"],
            "file": last.get("file", ""),
            # Round by round, in ms: what the comparisons pair up.
            "rounds": {"import": [1000 * out["import"] for _, out in runs]},
        }
        if key.endswith(":first"):
            for step in ("setup", "first", "second", "run"):
                row["rounds"][step] = [1000 * out.get(step, 0.0) for _, out in runs]
            row["rounds"]["total"] = [
                a + b + c
                for a, b, c in zip(*map(row["rounds"].get, ("import", "setup", "run")), strict=True)
            ]
            row["optional_after_call"] = last["optional_after_call"]
        for step, values in row["rounds"].items():
            row[f"{step}_ms"] = statistics.median(values)
        result[key] = row
    return result


def _over_httpx(result: dict[str, dict[str, Any]], tree: str) -> float:
    """Median over rounds of import Client / import httpx, each from the same round."""
    ours, floor = result[f"{tree}:client"]["rounds"], result["floor:httpx"]["rounds"]
    return float(
        statistics.median(x / y for x, y in zip(ours["import"], floor["import"], strict=True))
    )


def _print(result: dict[str, dict[str, Any]], rounds: int) -> None:
    print(f"\nmedian of {rounds} fresh interpreters per line, CPU ms:\n")
    print("| tree | case | import | whole process | modules | optional loaded |")
    print("|---|---|---|---|---|---|")
    for key, row in result.items():
        tree, case = key.split(":")
        print(
            f"| {tree} | {LABELS[case]} | {row['import_ms']:.1f} | {row['process_ms']:.1f} | "
            f"{row['modules']} | {', '.join(row['optional']) or '-'} |"
        )
    print()
    for key, row in result.items():
        if key.endswith(":first"):
            print(
                f"{key.split(':')[0]}: Client() + first transfer {row['first_ms']:.1f} ms "
                f"(second transfer {row['second_ms']:.2f} ms); import, the mock's setup "
                f"(httpx) and asyncio.run with both {row['total_ms']:.1f} ms; optional modules "
                "loaded by the "
                f"calls: {', '.join(row['optional_after_call']) or '-'}"
            )
    for tree in ("wheel", "source", "baseline", "baseline source"):
        if f"{tree}:client" in result:
            ours = result[f"{tree}:client"]["import_ms"]
            print(
                f"{tree}: import Client / import httpx {_over_httpx(result, tree):.2f}x paired "
                f"(+{ours - result['floor:httpx']['import_ms']:.1f} ms)"
            )
    # Paired: the ratio of the two samples of each round, then the median of
    # those. Load that changes between rounds falls on both sides of a ratio.
    for mine, theirs in (("wheel", "baseline"), ("source", "baseline source")):
        if f"{theirs}:client" not in result:
            continue
        for case, step, what in (
            ("client", "import", "import Client"),
            ("first", "first", "Client() + first transfer"),
            ("first", "total", "import, Client() and both transfers"),
        ):
            o = result[f"{mine}:{case}"]["rounds"][step]
            b = result[f"{theirs}:{case}"]["rounds"][step]
            paired = statistics.median(x / y for x, y in zip(o, b, strict=True))
            print(
                f"{mine} / {theirs}, {what}: {paired:.3f}x paired "
                f"(medians {statistics.median(b):.1f} -> {statistics.median(o):.1f} ms)"
            )
    sys.stdout.flush()


async def run(report: Report, *, rounds: int = 9) -> None:
    """Measure and add issue 9's import target to ``report``."""
    result = await asyncio.to_thread(measure, rounds)
    _print(result, rounds)
    client = result["wheel:client"]
    floor = result["floor:httpx"]["import_ms"]
    loaded = client["optional"]
    report.add(
        "from binance_transfers import Client (as pip install gives it)",
        f"{client['import_ms']:.0f} ms CPU ({_over_httpx(result, 'wheel'):.2f}x import httpx, "
        f"{floor:.0f} ms); optional modules imported: {', '.join(loaded) or 'none'}",
        "<= 150 ms, none",
        client["import_ms"] <= 150 and not loaded,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--baseline", type=Path, help="another source tree to compare with")
    args = parser.parse_args()
    result = measure(args.rounds, baseline=args.baseline)
    for key, row in result.items():
        if key.endswith(":client"):
            print(f"{key.split(':')[0]}: {row['file']}")
    _print(result, args.rounds)


if __name__ == "__main__":
    main()
