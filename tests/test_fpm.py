"""The pfp engine's parts on their own: the local miner (exact counts, an exact split into groups, the length cap)
and the cut of baskets into each group's conditional transactions."""

import itertools

import numpy as np
import pyarrow as pa

from dlspark.mining.fpgrowth import conditional_transactions, mine_group, ranked_baskets


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


def flat(transactions):
    lengths = np.array([len(t) for t in transactions], dtype=np.int32)
    return lengths, np.concatenate(transactions).astype(np.int32) if transactions else np.array([], np.int32)


def mined(transactions, groups, min_count, max_length):
    found = {}
    for group in range(groups):
        for items, count in mine_group(*flat(transactions), group, groups, min_count, max_length):
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
    assert list(mine_group(*flat([]), 0, 1, 1, 5)) == []


def test_each_group_gets_each_basket_cut_after_its_last_item_of_that_group():
    lookup = pa.array(["a", "b", "c", "d", "e"])  # rank order: a is the most frequent
    baskets = pa.array([["e", "x", "a", "c"], ["b"], [], ["y"], ["d", "b", "a", "e", "c"]], pa.list_(pa.string()))
    owners, ranks = ranked_baskets(baskets, lookup)
    assert owners.tolist() == [0, 0, 0, 1, 4, 4, 4, 4, 4] and ranks.tolist() == [0, 2, 4, 1, 0, 1, 2, 3, 4]
    cut = {
        g: (lengths.tolist(), prefixes.tolist()) for g, lengths, prefixes in conditional_transactions(owners, ranks, 2)
    }
    # group 0 holds ranks 0, 2, 4; group 1 ranks 1, 3
    assert cut == {0: ([3, 5], [0, 2, 4, 0, 1, 2, 3, 4]), 1: ([1, 4], [1, 0, 1, 2, 3])}


def test_cutting_then_mining_equals_mining_the_whole_baskets():
    rng = np.random.default_rng(4)
    names = [f"p{i}" for i in range(15)]
    baskets = [sorted(set(rng.choice(names, rng.integers(1, 8)).tolist())) for _ in range(400)]
    counts = {n: sum(n in b for b in baskets) for n in names}
    lookup = sorted((n for n in names if counts[n] >= 20), key=lambda n: (-counts[n], n))
    owners, ranks = ranked_baskets(pa.array(baskets, pa.list_(pa.string())), pa.array(lookup))
    found = {}
    for group, lengths, prefixes in conditional_transactions(owners, ranks, 3):
        for items, count in mine_group(lengths, prefixes, group, 3, 20, 4):
            found[tuple(sorted(lookup[i] for i in items))] = count
    whole = [sorted(n for n in b if n in lookup) for b in baskets]
    assert found == {k: v for k, v in brute_force([t for t in whole if t], 20, 4).items()}
