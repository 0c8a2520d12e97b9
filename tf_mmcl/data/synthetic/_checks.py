"""Parameter checks and seeding shared by the synthetic generators."""

from __future__ import annotations

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def check_int(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_prob(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")
    return v


def check_positive(name, value, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}.") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}.")
    return v


def split_sizes(n_train, n_val, n_test):
    sizes = {
        "train": check_int("n_train", n_train, 1),
        "val": check_int("n_val", n_val, 0),
        "test": check_int("n_test", n_test, 0),
    }
    return sizes


def split_rngs(seed, extra=0):
    """Independent generators for train/val/test (and ``extra`` more), all from one seed."""
    check_int("seed", seed, 0)
    children = np.random.SeedSequence(int(seed)).spawn(len(SPLIT_NAMES) + extra)
    rngs = {name: np.random.default_rng(c) for name, c in zip(SPLIT_NAMES, children)}
    others = [np.random.default_rng(c) for c in children[len(SPLIT_NAMES) :]]
    return rngs, others


def bits_to_index(bits):
    """Little-endian packing of (N, d) 0/1 bits into integer indices in [0, 2^d)."""
    bits = np.asarray(bits).astype(np.int64)
    weights = 2 ** np.arange(bits.shape[-1], dtype=np.int64)
    return (bits * weights).sum(axis=-1).astype(np.int32)


def index_to_bits(index, d):
    """The inverse of :func:`bits_to_index`: (N,) indices -> (N, d) float32 bits."""
    index = np.asarray(index, np.int64)
    return ((index[..., None] >> np.arange(d, dtype=np.int64)) & 1).astype(np.float32)
