"""Ours in flight by write time: what was written at or before a moment."""

from __future__ import annotations

from bisect import bisect_right

__all__ = ["Writes"]


class Writes:
    """Weight in flight by write time: what was written at or before a moment, in
    O(log n) (a Fenwick tree over the writes in their order; times never decrease).

    A report counts ours written before its own request (``settle``): summing
    them over ``flying`` cost O(in flight) per answer, O(n^2) per window with
    hundreds of coroutines."""

    __slots__ = ("index", "times", "tree", "weights")

    def __init__(self) -> None:
        self.index: dict[int, int] = {}  # key -> position (0-based) in `times`
        self.times: list[float] = []
        self.weights: list[int] = []  # by position; 0 once answered
        self.tree: list[int] = [0]  # 1-based Fenwick tree over `weights`

    def __repr__(self) -> str:  # weights only: times are monotonic, not comparable
        return f"Writes({sorted(self.weights[i] for i in self.index.values())})"

    def add(self, key: int, t: float, weight: int) -> None:
        if not self.index:
            # Nothing in flight (every sequential call): one write, no tree to walk.
            self.index[key] = 0
            self.times, self.weights, self.tree = [t], [weight], [0, weight]
            return
        if len(self.times) > 4 * len(self.index) + 64:
            self._compact()
        self._append(key, t, weight)

    def remove(self, key: int) -> None:
        index = self.index
        i = index.pop(key)
        if not index:
            return  # nothing left in flight: ``add`` starts afresh, ``upto`` says 0
        weight, self.weights[i] = self.weights[i], 0
        n, tree = len(self.tree), self.tree
        i += 1
        while i < n:
            tree[i] -= weight
            i += i & -i

    def upto(self, t: float) -> int:
        """The weight in flight written at or before ``t``."""
        if not self.index:
            return 0
        i, total, tree = bisect_right(self.times, t), 0, self.tree
        while i:
            total += tree[i]
            i -= i & -i
        return total

    def _compact(self) -> None:
        """Keep only what is in flight (in write order)."""
        keep = sorted(self.index.items(), key=lambda item: item[1])
        times, weights = self.times, self.weights
        self.index, self.times, self.weights, self.tree = {}, [], [], [0]
        for key, i in keep:
            self._append(key, times[i], weights[i])

    def _append(self, key: int, t: float, weight: int) -> None:
        i = len(self.times)
        self.index[key] = i
        self.times.append(t)
        self.weights.append(weight)
        # The new node covers positions (n - lowbit(n), n]: its weight and the
        # nodes below it.
        n, node, child, tree = i + 1, weight, i, self.tree
        while child > n - (n & -n):
            node += tree[child]
            child -= child & -child
        tree.append(node)
