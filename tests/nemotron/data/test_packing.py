import numpy as np
import pytest

from nemotron.data.packing import ALGORITHMS, lower_bound, pack


def naive_first_fit(lengths, order, capacity):
    packs, remaining = [], []
    for item in order:
        for slot, left in enumerate(remaining):
            if left >= lengths[item]:
                packs[slot].append(item)
                remaining[slot] -= lengths[item]
                break
        else:
            packs.append([item])
            remaining.append(capacity - lengths[item])
    return packs


@pytest.mark.parametrize("seed", range(20))
def test_first_fit_decreasing_equals_the_textbook_algorithm(seed):
    rng = np.random.default_rng(seed)
    capacity = int(rng.integers(2, 200))
    lengths = rng.integers(1, capacity + 1, int(rng.integers(0, 150)))
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    assert pack(lengths, capacity, "first_fit_decreasing") == naive_first_fit(lengths, order, capacity)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_packs_every_sequence_once_within_capacity(algorithm):
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 129, 2000)
    packs = pack(lengths, 128, algorithm, seed=7)
    assert sorted(i for p in packs for i in p) == list(range(2000))
    assert all(lengths[p].sum() <= 128 for p in packs)
    assert lower_bound(lengths, 128) <= len(packs) <= 1.25 * lower_bound(lengths, 128)
    assert pack(lengths, 128, algorithm, seed=7) == packs  # deterministic


def test_best_fit_puts_each_sequence_in_the_fullest_pack_it_fits():
    # After 6 and 5 open packs with 4 and 5 left, a 4 goes where 4 are left (best), not first.
    assert pack([6, 5, 4], 10, "best_fit_decreasing") == [[0, 2], [1]]
    assert pack([6, 5, 4], 10, "first_fit_decreasing") == [[0, 2], [1]]
    assert pack([5, 6, 4], 10, "best_fit_decreasing") == [[1, 2], [0]]


def test_shuffle_depends_on_the_seed():
    lengths = list(range(1, 60))
    assert pack(lengths, 64, "first_fit_shuffle", seed=1) != pack(lengths, 64, "first_fit_shuffle", seed=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        pack([1], 1, "first_fit_decreasing")
    with pytest.raises(ValueError, match="within 1..8"):
        pack([9], 8, "first_fit_decreasing")
    with pytest.raises(ValueError, match="unknown packing algorithm"):
        pack([1], 8, "next_fit")
