"""Processes of ours on one IP beside a neighbour seen only through headers: a sweep.

1-4 processes (each its own governor, 10 callers of PM auto-collection: 750
of /papi's 6000 a minute) started together, beside another process spending
at every minute's opening from window 2 on, by one of six patterns (3000 and
750 by turns, 3000 and nothing, 3000 each minute, 4500 and 1500, 4500 every
third minute, 1500 each minute). Seeds 1-3, starts 0.5, 30 and 55 s into a
minute, both link profiles of ``tests/neighbour.py``, 12 windows of calls
(the queue drains after them): 432 runs on virtual time (looptime),
deterministic. Prints the runs that met a 429 or 418, one line per family
(pattern and number of processes): runs with a 429/418, 429s, 418s, the
neighbour's requests that met a full window, and the median and lowest share
of what the neighbour left that ours used in windows 3-11. The README's
numbers for processes beside a neighbour come from it.

Run from the repository root with the dev venv (looptime is a dev tool)::

    .venv/bin/python -m benchmarks.sweep_peers_beside_neighbour            # all 432 runs
    .venv/bin/python -m benchmarks.sweep_peers_beside_neighbour 3 4        # 3 or 4 processes
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Callable

import anyio
import looptime

from tests.neighbour import LIMIT, PROFILES, Neighbour

WINDOWS = 12
PATTERNS: dict[str, Callable[[int], int]] = {
    "3000/750": lambda w: 0 if w < 2 else 750 if w % 2 else 3000,
    "3000/0": lambda w: 0 if w < 2 else 0 if w % 2 else 3000,
    "3000": lambda w: 0 if w < 2 else 3000,
    "4500/1500": lambda w: 0 if w < 2 else 1500 if w % 2 else 4500,
    "4500 every 3rd": lambda w: 4500 if w >= 2 and w % 3 == 2 else 0,
    "1500": lambda w: 0 if w < 2 else 1500,
}


async def _run(processes: int, pattern: str, seed: int, phase: float, profile: str) -> Neighbour:
    side = Neighbour(PATTERNS[pattern], *PROFILES[profile], phase=phase, seed=seed)
    async with anyio.create_task_group() as group:
        group.start_soon(side.run)
        await side.crowd(processes, WINDOWS)
        group.cancel_scope.cancel()
    return side


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processes", nargs="*", type=int, default=[1, 2, 3, 4])
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # "IP banned...": counted below
    totals: Counter[str] = Counter()
    for pattern in PATTERNS:
        for processes in args.processes:
            family: Counter[str] = Counter()
            used: list[float] = []
            for profile in sorted(PROFILES):
                for phase in (0.5, 30.0, 55.0):
                    for seed in (1, 2, 3):
                        loop = looptime.new_event_loop(start=0.0)
                        try:
                            side = loop.run_until_complete(
                                _run(processes, pattern, seed, phase, profile)
                            )
                        finally:
                            loop.close()
                        refused = side.refused()
                        n429 = sum(n for (_, status), n in refused.items() if status == 429)
                        n418 = sum(n for (_, status), n in refused.items() if status == 418)
                        family.update(
                            runs=1, refused=bool(refused), n429=n429, n418=n418, over=side.over
                        )
                        rows = side.rows(WINDOWS)[3:]
                        used.append(
                            sum(ours for _, ours, _ in rows)
                            / sum(LIMIT - theirs for _, _, theirs in rows)
                        )
                        if refused:
                            print(
                                f"  {pattern} x{processes} {profile} phase={phase} seed={seed}: "
                                f"{sorted(refused.items())}",
                                flush=True,
                            )
            used.sort()
            totals.update(family)
            print(
                f"{pattern:>14} x{processes}: {family['refused']} of {family['runs']} runs "
                f"with a 429/418; {family['n429']} 429s, {family['n418']} 418s; the "
                f"neighbour met a full window {family['over']} times; ours used "
                f"{used[len(used) // 2]:.0%} of what it left (lowest {used[0]:.0%})",
                flush=True,
            )
    print(
        f"{totals['runs']} runs: {totals['refused']} with a 429/418; {totals['n429']} 429s, "
        f"{totals['n418']} 418s; the neighbour met a full window {totals['over']} times"
    )


if __name__ == "__main__":
    main()
