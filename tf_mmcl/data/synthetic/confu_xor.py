"""The ConFu synthetic XOR benchmark (Koutoupis et al., 2025): predict z2 from (z1, z3).

Generative process, per sample: ``z1, z3 ~ Bernoulli(0.5)^d``, a switch
``i ~ Bernoulli(p_hat)``, and ``z2 = z1 XOR z3`` where ``i = 1``, else ``z2 = z1``. The noise
parameter ``p_hat`` sets how much of the dependence is synergistic: at ``p_hat = 1`` the mutual
information of every pair is zero (z2 is uniform given z1 alone or z3 alone) and z2 is a
deterministic function of (z1, z3), so only a 2->1 (fused or multilinear) score can retrieve it;
the poster reports CLIP at chance (~3 % = 2^-5, so d = 5), GRAM/TRIANGLE < 15 %, and ConFu and
Symile rising with ``p_hat``.

The authors' XOR generator is not in their public code; the binary process above is the Symile
process with ConFu's naming (z2 is the target between z1 and z3). *Our addition*, documented
as such: with ``embed_dim`` set, each modality's bits are mapped to ``{-1, +1}`` and embedded
by a fixed random matrix with orthonormal columns (one per modality, drawn once from the seed
and shared by all splits) into ``embed_dim`` dimensions, plus isotropic Gaussian noise of std
``noise_std``: the same XOR structure in continuous, rotated coordinates ("XOR with geometric
structure"), where no coordinate of an input is a bit.

Task: zero-shot retrieval of ``z2`` from ``(z1, z3)`` over ``info["candidates"]`` (all 2^d codes,
embedded noise-free when ``embed_dim`` is set); the right candidate's index is ``"z2_index"``.
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.data.pipeline import MultimodalSplits
from tf_mmcl.data.synthetic._checks import bits_to_index, check_int, check_positive, check_prob, split_rngs, split_sizes
from tf_mmcl.data.synthetic.symile_xor import binary_candidates, xor_bits

__all__ = ["make_confu_xor", "CONFU_MODALITIES"]

CONFU_MODALITIES = ("z1", "z2", "z3")


def _orthonormal(rng, rows, cols):
    q, r = np.linalg.qr(rng.normal(size=(rows, cols)))
    return (q * np.sign(np.diag(r))[None, :]).astype(np.float64)


def make_confu_xor(
    d: int = 5,
    p_hat: float = 1.0,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    embed_dim: int | None = None,
    noise_std: float = 0.0,
    seed: int = 0,
) -> MultimodalSplits:
    """Generates the ConFu XOR benchmark.

    Args:
        d: bits per modality (2^d candidates; 5 matches the poster's ~3 % chance).
        p_hat: probability that z2 is the XOR of z1 and z3 (else a copy of z1).
        n_train, n_val, n_test: split sizes (independent draws).
        embed_dim: if set (>= d), embed each modality's ±1 bits into this many dimensions by a
            fixed random orthonormal map; None keeps the raw 0/1 bits.
        noise_std: std of Gaussian noise added to the embedded inputs (needs ``embed_dim``).
        seed: the seed.

    Returns:
        :class:`~tf_mmcl.data.MultimodalSplits` with float32 ``"z1", "z2", "z3"``,
        ``"z2_index"`` (int32 index of z2's code among the candidates) and ``"switch"`` (int32).
        ``info["candidates"]`` is the (2^d, width) candidate set for z2; ``info["projections"]``
        the embedding matrices when ``embed_dim`` is set.

    Example:
        >>> s = make_confu_xor(d=2, n_train=6, n_val=2, n_test=2, embed_dim=4, seed=1)
        >>> s.as_numpy("train")["z1"].shape, s.info["candidates"].shape
        ((6, 4), (4, 4))
    """
    d = check_int("d", d, 1)
    p_hat = check_prob("p_hat", p_hat)
    noise_std = check_positive("noise_std", noise_std, allow_zero=True)
    if embed_dim is not None:
        embed_dim = check_int("embed_dim", embed_dim, 1)
        if embed_dim < d:
            raise ValueError(f"embed_dim must be >= d (= {d}) so the embedding is invertible, got {embed_dim}.")
    elif noise_std > 0:
        raise ValueError("noise_std > 0 needs embed_dim: noise is added to the embedded inputs, not to bits.")
    sizes = split_sizes(n_train, n_val, n_test)
    rngs, (proj_rng,) = split_rngs(seed, extra=1)
    projections = None
    if embed_dim is not None:
        projections = {m: _orthonormal(proj_rng, embed_dim, d) for m in CONFU_MODALITIES}

    def embed(name, bits, rng=None):
        if projections is None:
            return bits.astype(np.float32)
        x = (2.0 * bits - 1.0) @ projections[name].T
        if rng is not None and noise_std > 0:
            x = x + noise_std * rng.normal(size=x.shape)
        return x.astype(np.float32)

    splits = {}
    for split, n in sizes.items():
        rng = rngs[split]
        (z1, z3, z2), switch = xor_bits(rng, n, d, p_hat, 3)
        ex = {"z1": embed("z1", z1, rng), "z2": embed("z2", z2, rng), "z3": embed("z3", z3, rng)}
        ex["z2_index"] = bits_to_index(z2)
        ex["switch"] = switch.astype(np.int32)
        splits[split] = ex
    info = {
        "name": "confu_xor",
        "d": d,
        "p_hat": p_hat,
        "embed_dim": embed_dim,
        "noise_std": noise_std,
        "seed": int(seed),
        "target": "z2",
        "queries": ["z1", "z3"],
        "target_index_key": "z2_index",
        "candidates": embed("z2", binary_candidates(d)),
        "chance_top1": 2.0**-d,
        "projections": projections,
    }
    return MultimodalSplits(splits, list(CONFU_MODALITIES), info)
