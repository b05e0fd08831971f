"""The local miner of the pfp engine, on its own: exact counts, an exact split into groups, and the length cap."""

import itertools

import numpy as np

from dlspark.mining.fpgrowth import mine_group


def brute_force(transactions, min_count, max_length):
    counts = {}
    for t in transactions:
        for size in range(1, min(len(t), max_length) + 1):
            for subset in itertools.combinations(sorted(t), size):
                counts[subset] = counts.get(subset, 0) + 1
    return {s: c for s, c in counts.items() if c >= min_count}


def random_transactions(seed, n=300, items=12):
    rng = np.random.default_rng(seed)
    p = 0.7 / np.sqrt(np.arange(items) + 1)
    rows = [np.flatnonzero(rng.random(items) < p).astype(np.int32) for _ in range(n)]
    return [r for r in rows if len(r)]


def mined(transactions, groups, min_count, max_length):
    found = {}
    for group in range(groups):
        for items, count in mine_group(transactions, group, groups, min_count, max_length):
            key = tuple(sorted(items))
            assert key not in found  # each itemset is found in exactly one group
            found[key] = count
    return found


def test_one_group_finds_every_frequent_itemset_with_its_count():
    transactions = random_transactions(1)
    expected = brute_force(transactions, 6, 12)
    assert len(expected) > 100 and max(map(len, expected)) >= 4
    assert mined(transactions, 1, 6, 12) == expected


def test_groups_split_the_itemsets_exactly():
    transactions = random_transactions(2)
    assert mined(transactions, 3, 10, 12) == mined(transactions, 1, 10, 12)


def test_the_length_cap_keeps_exact_counts():
    transactions = random_transactions(3)
    assert mined(transactions, 2, 10, 2) == brute_force(transactions, 10, 2)


def test_no_transactions_give_no_itemsets():
    assert list(mine_group([], 0, 1, 1, 5)) == []
