"""Printing benchmark results as a table of measured values against targets."""

from __future__ import annotations

import attrs


@attrs.frozen
class Row:
    name: str
    measured: str
    target: str
    ok: bool


class Report:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, name: str, measured: str, target: str, ok: bool) -> None:
        self.rows.append(Row(name, measured, target, ok))
        print(f"  {'ok  ' if ok else 'MISS'} {name}: {measured} (target: {target})", flush=True)

    def markdown(self) -> str:
        lines = ["| benchmark | measured | target | |", "|---|---|---|---|"]
        lines += [
            f"| {r.name} | {r.measured} | {r.target} | {'✓' if r.ok else '✗'} |" for r in self.rows
        ]
        return "\n".join(lines)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]
