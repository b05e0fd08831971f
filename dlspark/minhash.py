"""Similar product names found on the driver: the same MinHash LSH as Spark ML's, for names few enough to collect.

Spark's `HashingTF` + `MinHashLSH` find the candidate pairs of dedup's product resolution in about eight Spark jobs,
seconds of fixed cost however few the names. Here the same numbers are computed on the driver (the hashes in
numpy): each shingle's feature index is Spark's (MurmurHash3 x86 32-bit of its UTF-8 bytes, seed 42,
modulo the feature count), and the hash functions are Spark's (coefficients drawn by `java.util.Random(seed)`), so
every MinHash value, every band and so every candidate is the one Spark finds (a test holds the two to each other).
The one difference: Spark keys a band by a 64-bit hash of its values, here by the values themselves, so a hash
collision there (an extra candidate, which the exact checks then judge) cannot happen here.
"""

from __future__ import annotations

import re
import struct
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from itertools import combinations

import numpy as np

HASH_PRIME = 2038074743  # Spark's MinHashLSH.HASH_PRIME
FEATURES = 1 << 20  # the HashingTF width dedup uses
MURMUR_SEED = 42  # Spark's HashingTF seed
SIZES = re.compile(r"(\d+(?:\.\d+)?[a-z]*)", re.ASCII)  # Java's \d is ASCII only
_MASK32, _MASK48 = 0xFFFFFFFF, (1 << 48) - 1


def murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32-bit, as a signed int (Spark's Murmur3_x86_32.hashUnsafeBytes2)."""

    def mix(k: int) -> int:
        k = (k * 0xCC9E2D51) & _MASK32
        k = ((k << 15) | (k >> 17)) & _MASK32
        return (k * 0x1B873593) & _MASK32

    h = seed & _MASK32
    whole = len(data) // 4 * 4
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        h ^= mix(k)
        h = ((h << 13) | (h >> 19)) & _MASK32
        h = (h * 5 + 0xE6546B64) & _MASK32
    if whole < len(data):
        h ^= mix(int.from_bytes(data[whole:], "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


@cache
def feature_index(term: str) -> int:
    """The column Spark's HashingTF gives `term` (a non-negative modulus of its hash)."""
    return murmur3_32(term.encode("utf-8"), MURMUR_SEED) % FEATURES


def coefficients(seed: int, count: int) -> np.ndarray:
    """Spark's MinHashLSH hash functions for `seed`: (a, b) pairs, each `(1 + rand.nextInt(p - 1), rand.nextInt(p
    - 1))` from one `java.util.Random(seed)` (its 48-bit linear congruential generator)."""
    state = (seed ^ 0x5DEECE66D) & _MASK48

    def next_int(bound: int) -> int:  # java.util.Random.nextInt(bound), bound not a power of two
        nonlocal state
        while True:
            state = (state * 0x5DEECE66D + 0xB) & _MASK48
            bits = state >> 17
            value = bits % bound
            if bits - value + bound - 1 < 1 << 31:  # Java's overflow test: retry the top, uneven slice
                return value

    return np.array([(1 + next_int(HASH_PRIME - 1), next_int(HASH_PRIME - 1)) for _ in range(count)], np.int64)


def shingles(name: str, size: int) -> list[str]:
    """The distinct character `size`-grams of ^name$$, in order (dedup.shingles in Python; code points)."""
    padded = "^" + name + "$" * (size - 1)
    return list(dict.fromkeys(padded[i : i + size] for i in range(len(padded) - size + 1)))


def minhashes(indexes: list[np.ndarray], coefs: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """(names, hash functions): each name's smallest ((1 + index) * a + b) mod p over its feature indexes."""
    out = np.empty((len(indexes), len(coefs)), np.int64)
    a, b = coefs[:, 0], coefs[:, 1]
    for start in range(0, len(indexes), chunk):
        part = indexes[start : start + chunk]
        flat = np.concatenate(part) if part else np.empty(0, np.int64)
        values = ((flat[:, None] + 1) * a + b) % HASH_PRIME
        starts = np.cumsum([0] + [len(p) for p in part[:-1]])
        out[start : start + len(part)] = np.minimum.reduceat(values, starts, axis=0)
    return out


def _unshared(words_a: list[str], words_b: list[str]) -> list[str]:
    """Spark's array_except: the distinct words of a that b lacks, in order."""
    other = set(words_b)
    return list(dict.fromkeys(w for w in words_a if w not in other))


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, replace one code point) from a to b."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similar_pairs(
    names: Iterable[tuple[str, str, str]],
    *,
    shingle_size: int,
    bands: int,
    rows_per_band: int,
    seed: int,
    min_similarity: float,
    max_word_edits: int,
    same_sizes: bool,
) -> list[tuple[str, str, float]]:
    """(key_a, key_b, similarity), key_a < key_b, of the (key, block, name) rows that LSH proposes and the exact
    checks confirm: what dedup.similar_names finds with Spark."""
    rows = sorted(set(names))
    grams = [shingles(name, shingle_size) for _, _, name in rows]
    indexes = [np.unique(np.fromiter((feature_index(g) for g in gs), np.int64, len(gs))) for gs in grams]
    hashes = minhashes(indexes, coefficients(seed, bands * rows_per_band)).tolist()
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, (_, block, _) in enumerate(rows):
        values = hashes[i]
        for band in range(bands):
            buckets[(block, band, *values[band * rows_per_band : (band + 1) * rows_per_band])].append(i)
    candidates = {pair for members in buckets.values() if len(members) > 1 for pair in combinations(members, 2)}
    sets = [set(gs) for gs in grams]
    pairs = []
    for i, j in sorted(candidates):  # rows are sorted by key, so i < j means key_a < key_b
        shared = len(sets[i] & sets[j])
        similarity = shared / (len(sets[i]) + len(sets[j]) - shared)
        if similarity < min_similarity:
            continue
        (key_a, _, name_a), (key_b, _, name_b) = rows[i], rows[j]
        words_a, words_b = name_a.split(" "), name_b.split(" ")
        only_a, only_b = _unshared(words_a, words_b), _unshared(words_b, words_a)
        if (
            len(only_a) == len(only_b)
            and levenshtein(" ".join(only_a), " ".join(only_b)) <= max_word_edits
            and (not same_sizes or sorted(SIZES.findall(name_a)) == sorted(SIZES.findall(name_b)))
        ):
            pairs.append((key_a, key_b, similarity))
    return pairs
