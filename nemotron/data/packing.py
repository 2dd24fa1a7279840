"""Bin packing of sequence lengths into packs of at most ``pack_size`` tokens, O(n log n).

- ``first_fit_decreasing``: longest first, each into the first pack it fits (a max-tree
  over pack slots finds that pack in O(log n)).
- ``best_fit_decreasing``: longest first, each into the fullest pack it fits (a min-tree
  over remaining capacities finds the smallest sufficient one in O(log pack_size)).
- ``first_fit_shuffle``: a seeded shuffle, then first fit (Megatron-Bridge's default).

Ties are broken by input position, so a packing is a pure function of lengths, algorithm and
seed. Every pack lists its sequences in the order they were placed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ALGORITHMS = ("first_fit_decreasing", "best_fit_decreasing", "first_fit_shuffle")


def pack(lengths: Sequence[int] | np.ndarray, pack_size: int, algorithm: str, seed: int = 0) -> list[list[int]]:
    lengths = np.asarray(lengths, dtype=np.int64)
    if pack_size < 2:
        raise ValueError(f"pack_size must be at least 2, got {pack_size}")
    if len(lengths) and (lengths.min() < 1 or lengths.max() > pack_size):
        raise ValueError(f"lengths must be within 1..{pack_size} (truncate or drop longer sequences first)")
    if algorithm == "first_fit_decreasing":
        return _first_fit(lengths, _decreasing(lengths), pack_size)
    if algorithm == "first_fit_shuffle":
        return _first_fit(lengths, np.random.default_rng(seed).permutation(len(lengths)), pack_size)
    if algorithm == "best_fit_decreasing":
        return _best_fit(lengths, _decreasing(lengths), pack_size)
    raise ValueError(f"unknown packing algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")


def lower_bound(lengths: Sequence[int] | np.ndarray, pack_size: int) -> int:
    """No packing can use fewer packs than this."""
    return math.ceil(int(np.sum(lengths)) / pack_size)


def _decreasing(lengths: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(len(lengths)), -lengths))  # longest first, then by position


def _first_fit(lengths: np.ndarray, order: np.ndarray, pack_size: int) -> list[list[int]]:
    """Slots are packs in opening order; an unopened slot has the full capacity, so the
    leftmost slot that fits is an open pack when one fits and the next new pack otherwise."""
    size = 1 << max(1, math.ceil(math.log2(max(len(lengths), 1))))
    tree = [pack_size] * (2 * size)  # max of remaining capacity over each subtree
    packs: list[list[int]] = []
    for item in order.tolist():
        need = int(lengths[item])
        node = 1
        while node < size:
            node = 2 * node if tree[2 * node] >= need else 2 * node + 1
        slot = node - size
        if slot == len(packs):
            packs.append([])
        packs[slot].append(item)
        tree[node] -= need
        node //= 2
        while node:
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
            node //= 2
    return packs


def _best_fit(lengths: np.ndarray, order: np.ndarray, pack_size: int) -> list[list[int]]:
    """Open packs are bucketed by remaining capacity; a min-tree over the capacities that
    have a pack finds the smallest capacity >= the length."""
    size = 1 << math.ceil(math.log2(pack_size + 1))
    inf = pack_size + 1
    tree = [inf] * (2 * size)
    buckets: list[list[int]] = [[] for _ in range(pack_size + 1)]
    packs: list[list[int]] = []
    remaining: list[int] = []

    def set_present(capacity: int, present: bool) -> None:
        node = capacity + size
        tree[node] = capacity if present else inf
        node //= 2
        while node:
            tree[node] = min(tree[2 * node], tree[2 * node + 1])
            node //= 2

    def smallest_at_least(need: int) -> int:
        lo, hi, best = need + size, pack_size + size + 1, inf
        while lo < hi:  # iterative range-min over [need, pack_size]
            if lo & 1:
                best = min(best, tree[lo])
                lo += 1
            if hi & 1:
                hi -= 1
                best = min(best, tree[hi])
            lo //= 2
            hi //= 2
        return best

    for item in order.tolist():
        need = int(lengths[item])
        capacity = smallest_at_least(need)
        if capacity == inf:
            packs.append([])
            remaining.append(pack_size)
            target = len(packs) - 1
        else:
            target = buckets[capacity].pop()
            if not buckets[capacity]:
                set_present(capacity, False)
        packs[target].append(item)
        remaining[target] -= need
        left = remaining[target]
        if not buckets[left]:
            set_present(left, True)
        buckets[left].append(target)
    return packs
