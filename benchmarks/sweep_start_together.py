"""Processes started together on one IP, sharing /papi by usage headers: a sweep.

2, 3 or 4 processes (each its own governor, 10 callers of PM auto-collection:
750 of /papi's 6000 a minute), seeds 1-6, 7 start phases, both link profiles of
``tests/neighbour.py``, 8 windows: 252 runs on virtual time (looptime),
deterministic. Prints one line per run and the totals: runs with a 429, 429s,
418s, windows over the limit, /papi used. The README's numbers for starts
together come from it.

Run from the repository root with the dev venv (looptime is a dev tool)::

    .venv/bin/python -m benchmarks.sweep_start_together          # all 252 runs
    .venv/bin/python -m benchmarks.sweep_start_together 4        # 4 processes only
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter

import looptime

from tests.neighbour import LIMIT, PROFILES, Neighbour

PHASES = (0.3, 5.0, 30.0, 55.0, 58.5, 59.3, 59.7)
WINDOWS = 8


async def _run(processes: int, seed: int, phase: float, profile: str) -> Neighbour:
    side = Neighbour(lambda window: 0, *PROFILES[profile], phase=phase, seed=seed)
    await side.crowd(processes, WINDOWS)
    return side


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processes", nargs="*", type=int, default=[2, 3, 4])
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # "answers take 2 s...", "IP banned...": counted below
    totals: Counter[str] = Counter()
    for processes in args.processes:
        for seed in range(1, 7):
            for phase in PHASES:
                for profile in sorted(PROFILES):
                    loop = looptime.new_event_loop(start=0.0)
                    try:
                        side = loop.run_until_complete(_run(processes, seed, phase, profile))
                    finally:
                        loop.close()
                    rows = side.rows(WINDOWS)
                    refused = side.refused()
                    n429 = sum(n for (_, status), n in refused.items() if status == 429)
                    n418 = sum(n for (_, status), n in refused.items() if status == 418)
                    over = [window for window, ours, _ in rows if ours > LIMIT]
                    papi = sum(ours for _, ours, _ in rows)
                    totals.update(
                        runs=1, runs_429=n429 > 0, n429=n429, n418=n418, over=len(over), papi=papi
                    )
                    print(
                        f"{processes} seed={seed} phase={phase} {profile}: 429={n429} "
                        f"418={n418} over={over} papi={papi} {[ours for _, ours, _ in rows]}",
                        flush=True,
                    )
    print(
        f"{totals['runs']} runs: {totals['runs_429']} with a 429; {totals['n429']} 429s, "
        f"{totals['n418']} 418s, {totals['over']} windows over {LIMIT}; "
        f"/papi {totals['papi']} ({totals['papi'] / max(totals['runs'], 1) / WINDOWS / LIMIT:.1%})"
    )


if __name__ == "__main__":
    main()
