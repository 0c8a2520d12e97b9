"""The Symile binary XOR benchmark (Saporta et al., 2024, Section 5.1).

Generative process (the reference ``BinaryXORDataset(d_v, n, p_hat)``), per sample:
``a, b ~ Bernoulli(0.5)^d_v``, a switch ``i ~ Bernoulli(p_hat)``, and
``c = a XOR b`` where ``i = 1``, else ``c = a`` (one switch for all ``d_v`` bits).

What makes it hard: ``p_hat`` moves the dependence from purely pairwise (``p_hat = 0``: c copies
a) to purely higher-order (``p_hat = 1``: ``c = a XOR b``, so every *pair* of modalities is
independent -- each is uniform given the other -- while the triple determines each modality
from the other two). A pairwise objective (CLIP) can only exploit the copied part and falls
to chance (``2^-d_v``) at ``p_hat = 1``; Symile's multilinear inner product can use the triple.

Task: zero-shot retrieval of ``a`` from ``(b, c)`` over the candidate set of all ``2^d_v``
binary vectors (:func:`binary_candidates`); the right candidate's index is ``"a_index"``.

``num_modalities > 3`` generalises it (the reference's ``binary_xor_8`` uses eight one-bit
modalities): the first M - 1 modalities are independent bits and the last is the XOR of all of
them where ``i = 1``, else a copy of the first; every M - 1 subset is then independent at
``p_hat = 1``.

Train, val and test are independent draws (from one seed).
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.data.pipeline import MultimodalSplits
from tf_mmcl.data.synthetic._checks import (
    bits_to_index,
    check_int,
    check_prob,
    index_to_bits,
    split_rngs,
    split_sizes,
)

__all__ = [
    "make_symile_xor",
    "binary_candidates",
    "xor_modality_names",
    "bits_to_index",
    "index_to_bits",
    "bayes_top1",
    "per_bit_posterior_top1",
]

_MAX_CANDIDATE_BITS = 20


def xor_modality_names(num_modalities: int = 3):
    """``["a", "b", "c", ...]``: the modality names of the XOR benchmark."""
    num_modalities = check_int("num_modalities", num_modalities, 3)
    if num_modalities > 26:
        raise ValueError(f"num_modalities must be <= 26, got {num_modalities}.")
    return [chr(ord("a") + k) for k in range(num_modalities)]


def binary_candidates(d_v: int) -> np.ndarray:
    """All ``2^d_v`` binary vectors, row ``k`` = the little-endian bits of ``k``: (2^d_v, d_v) float32.

    Row ``k`` is the candidate whose index :func:`bits_to_index` returns ``k``, so an example's
    ``"a_index"`` is the position of its ``a`` in this set.

    Example:
        >>> binary_candidates(2).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    d_v = check_int("d_v", d_v, 1)
    if d_v > _MAX_CANDIDATE_BITS:
        raise ValueError(
            f"binary_candidates: d_v = {d_v} gives 2^{d_v} candidates; at most {_MAX_CANDIDATE_BITS} bits."
        )
    return index_to_bits(np.arange(2**d_v), d_v)


def xor_bits(rng, n, d_v, p_hat, num_modalities):
    """Draws the bits: list of M (n, d_v) int arrays and the (n,) switch."""
    free = [rng.integers(0, 2, size=(n, d_v), dtype=np.int64) for _ in range(num_modalities - 1)]
    switch = (rng.random(n) < p_hat).astype(np.int64)
    parity = np.bitwise_xor.reduce(np.stack(free), axis=0)
    last = np.where(switch[:, None] == 1, parity, free[0])
    return free + [last], switch


def bayes_top1(d_v: int, p_hat: float) -> float:
    """Best achievable top-1 of retrieving ``a`` from ``(b, c)`` over all 2^d_v candidates (M = 3).

    The two hypotheses ``a = b XOR c`` (switch on) and ``a = c`` (off) coincide only when b = 0.
    """
    q = 2.0**-d_v
    return q + (1.0 - q) * max(p_hat, 1.0 - p_hat)


def per_bit_posterior_top1(d_v: int, p_hat: float) -> float:
    """Top-1 of the argmax of the *product of per-bit posteriors* p(a_j | b_j, c_j) (M = 3).

    This is the best a score that is affine in the candidate ``a`` can be calibrated to: with a
    linear candidate encoder, ``exp(score)`` factorises over a's bits, and the cross-entropy
    optimum within that family is the product of the true per-bit posteriors. Bit j is certain
    (a_j = c_j) where b_j = 0; where b_j = 1 it is c_j with probability 1 - p_hat and not c_j
    with probability p_hat. Away from p_hat = 0.5 the per-bit argmaxes agree on one rule and the
    accuracy equals :func:`bayes_top1`; at exactly 0.5 every bit with b_j = 1 is a tie, and with
    ties broken at random the accuracy is E[2^-popcount(b)] = (3/4)^d_v.

    Example:
        >>> round(per_bit_posterior_top1(5, 0.5), 4), round(bayes_top1(5, 0.5), 4)
        (0.2373, 0.5156)
    """
    if p_hat == 0.5:
        return 0.75**d_v
    return bayes_top1(d_v, p_hat)


def make_symile_xor(
    d_v: int = 5,
    p_hat: float = 1.0,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    num_modalities: int = 3,
    seed: int = 0,
) -> MultimodalSplits:
    """Generates the Symile binary XOR benchmark.

    Args:
        d_v: bits per modality (the paper uses 5; candidate set size 2^d_v).
        p_hat: probability of the XOR switch; 1.0 = purely higher-order.
        n_train, n_val, n_test: split sizes (independent draws).
        num_modalities: M >= 3 (modalities ``"a", "b", ...``).
        seed: the seed; the same seed gives the same splits.

    Returns:
        :class:`~tf_mmcl.data.MultimodalSplits` whose examples hold, per modality, a float32
        (d_v,) bit vector, plus ``"a_index"`` (int32: index of ``a`` in
        :func:`binary_candidates`) and ``"switch"`` (int32: the XOR switch i). ``info`` holds the
        parameters, ``"candidates"`` (the 2^d_v candidate set), ``"target": "a"``,
        ``"queries"`` (the other modalities) and ``"bayes_top1"`` (M = 3).

    Example:
        >>> s = make_symile_xor(d_v=3, n_train=8, n_val=4, n_test=4, seed=0)
        >>> x = s.as_numpy("train")
        >>> bool((x["c"] == (x["a"] != x["b"])).all())  # p_hat = 1: c = a XOR b
        True
    """
    d_v = check_int("d_v", d_v, 1)
    p_hat = check_prob("p_hat", p_hat)
    names = xor_modality_names(num_modalities)
    sizes = split_sizes(n_train, n_val, n_test)
    rngs, _ = split_rngs(seed)
    splits = {}
    for split, n in sizes.items():
        bits, switch = xor_bits(rngs[split], n, d_v, p_hat, len(names))
        ex = {name: b.astype(np.float32) for name, b in zip(names, bits)}
        ex["a_index"] = bits_to_index(bits[0])
        ex["switch"] = switch.astype(np.int32)
        splits[split] = ex
    info = {
        "name": "symile_xor",
        "d_v": d_v,
        "p_hat": p_hat,
        "num_modalities": len(names),
        "seed": int(seed),
        "target": "a",
        "queries": names[1:],
        "target_index_key": "a_index",
        "candidates": binary_candidates(d_v) if d_v <= _MAX_CANDIDATE_BITS else None,
        "chance_top1": 2.0**-d_v,
    }
    if len(names) == 3:
        info["bayes_top1"] = bayes_top1(d_v, p_hat)
    return MultimodalSplits(splits, names, info)
