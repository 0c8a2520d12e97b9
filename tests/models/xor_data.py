"""The XOR-like trimodal data of the model tests: c = a XOR b over bits (as +-1 vectors)."""

import itertools

import numpy as np

BITS = 3


def make_xor(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, (n, BITS))
    b = rng.integers(0, 2, (n, BITS))
    c = a ^ b
    data = {k: (2.0 * v - 1.0).astype("float32") for k, v in {"a": a, "b": b, "c": c}.items()}
    return data, (c * (2 ** np.arange(BITS)[::-1])).sum(axis=1)


def all_candidates():
    """Every possible value of c, in the index order used by ``make_xor``'s targets."""
    return (2.0 * np.array(list(itertools.product([0, 1], repeat=BITS))) - 1.0).astype("float32")
