"""The fragility benchmark: trimodal XOR data where one modality is unreliable per sample.

Modelled on the Gated Symile synthetic benchmark (Rheude et al., 2026, ``SyntheticXNOR``):
latent bits ``u, v ~ Bernoulli(0.5)^n_bits``; the target modality ``a`` carries ``u XOR v``
(or XNOR), ``b`` carries ``u`` and ``c`` carries ``v``, each through a bit-flip channel
(``p_flip``). Every modality is a ``dim``-dimensional vector: the signal bits in the first
coordinates as ``±signal_scale``, the rest Gaussian distractors of std ``distractor_std``
(their defaults: 128 dims, scale 3, std 1, p_flip 0.1). ``embed_mode="redundant"`` is their
``u_v_uv`` variant (a = [u, v, u⊕v], b = [u, 1, u], c = [1, v, v]) so that per-sample gating has
something to fall back on.

What makes it hard: the target is a pure XOR of the other two, so only the triple is
informative (as in the Symile benchmark), *and* per sample at most one of the unreliable
modalities (default ``b`` and ``c``) is corrupted in one of three ways, with independent rates:

* ``misaligned`` (kind 1): its signal coordinates are taken from another sample (plausible but
  wrong, their ``swap_signal``) -- the multiplicative score is silently corrupted;
* ``weak`` (kind 2): weakly informative, its signal coordinates get Gaussian noise at
  ``weak_snr_db`` (default -10 dB: each bit's sign is right only ~62 % of the time);
* ``missing`` (kind 3): the modality is absent, ``"<name>_mask"`` is False and its values are 0.

Kind 0 is clean. Each example records ``"corruption"`` (the kind) and ``"corrupted_modality"``
(index into the modality list, -1 when clean), so results can be broken down by kind with
:func:`tf_mmcl.evaluation.metrics_by_group`. The corrupted modality is drawn uniformly among
``unreliable``; kinds are exclusive per sample (rates must sum to <= 1).
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.data.pipeline import MultimodalSplits, mask_key
from tf_mmcl.data.synthetic._checks import (
    bits_to_index,
    check_int,
    check_positive,
    check_prob,
    split_rngs,
    split_sizes,
)

__all__ = ["make_fragility", "CORRUPTION_KINDS", "FRAGILITY_MODALITIES"]

CORRUPTION_KINDS = ("clean", "misaligned", "weak", "missing")
FRAGILITY_MODALITIES = ("a", "b", "c")


def _flip(bits, p, rng):
    if p <= 0.0:
        return bits
    return bits ^ (rng.random(bits.shape) < p).astype(np.int64)


def _embed(blocks, dim, scale, std, rng):
    signal = np.concatenate(blocks, axis=1)
    x = rng.normal(size=(signal.shape[0], dim)) * std
    x[:, : signal.shape[1]] = (2.0 * signal - 1.0) * scale
    return x


def make_fragility(
    n_bits: int = 1,
    dim: int = 128,
    p_misaligned: float = 0.1,
    p_weak: float = 0.1,
    p_missing: float = 0.1,
    unreliable=("b", "c"),
    p_flip: float = 0.1,
    signal_scale: float = 3.0,
    distractor_std: float = 1.0,
    weak_snr_db: float = -10.0,
    a_rule: str = "xor",
    embed_mode: str = "xor_only",
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
) -> MultimodalSplits:
    """Generates the fragility benchmark.

    Args:
        n_bits: latent bits K (the target has 2^K classes).
        dim: width of every modality vector (>= the signal width).
        p_misaligned, p_weak, p_missing: per-sample rates of each corruption kind (sum <= 1).
        unreliable: the modalities that may be corrupted (default ``("b", "c")``; ``"a"`` allowed).
        p_flip: bit-flip probability of the b and c channels.
        signal_scale: amplitude of the signal coordinates.
        distractor_std: std of the distractor coordinates.
        weak_snr_db: SNR (dB) of the noise added to the signal coordinates of a weak modality.
        a_rule: ``"xor"`` or ``"xnor"``.
        embed_mode: ``"xor_only"`` (signal width K) or ``"redundant"`` (width 3K).
        n_train, n_val, n_test: split sizes.
        seed: the seed.

    Returns:
        :class:`~tf_mmcl.data.MultimodalSplits`; per example: float32 ``"a", "b", "c"`` (dim,),
        bool ``"a_mask", "b_mask", "c_mask"``, int32 ``"label"`` (a's bits packed, in
        [0, 2^K)), ``"corruption"`` (index into :data:`CORRUPTION_KINDS`) and
        ``"corrupted_modality"`` (-1 or the modality's index).

    Example:
        >>> s = make_fragility(dim=8, p_missing=1.0, p_misaligned=0, p_weak=0, n_train=4,
        ...                    n_val=2, n_test=2)
        >>> x = s.as_numpy("train")
        >>> x["corruption"].tolist(), bool((x["b_mask"] & x["c_mask"]).any())
        ([3, 3, 3, 3], False)
    """
    n_bits = check_int("n_bits", n_bits, 1)
    dim = check_int("dim", dim, 1)
    rates = [check_prob("p_misaligned", p_misaligned), check_prob("p_weak", p_weak), check_prob("p_missing", p_missing)]
    if sum(rates) > 1.0 + 1e-9:
        raise ValueError(
            f"p_misaligned + p_weak + p_missing must be <= 1 (one corruption per sample), got {sum(rates):.4g}."
        )
    if isinstance(unreliable, str):
        unreliable = (unreliable,)
    unreliable = tuple(unreliable)
    if (
        not unreliable
        or any(m not in FRAGILITY_MODALITIES for m in unreliable)
        or len(set(unreliable)) != len(unreliable)
    ):
        raise ValueError(f"unreliable must be distinct names from {FRAGILITY_MODALITIES}, got {unreliable!r}.")
    p_flip = check_prob("p_flip", p_flip)
    signal_scale = check_positive("signal_scale", signal_scale)
    distractor_std = check_positive("distractor_std", distractor_std, allow_zero=True)
    weak_snr_db = float(weak_snr_db)
    if not np.isfinite(weak_snr_db):
        raise ValueError(f"weak_snr_db must be finite, got {weak_snr_db}.")
    if a_rule not in ("xor", "xnor"):
        raise ValueError(f"a_rule must be 'xor' or 'xnor', got {a_rule!r}.")
    if embed_mode not in ("xor_only", "redundant"):
        raise ValueError(f"embed_mode must be 'xor_only' or 'redundant', got {embed_mode!r}.")
    signal_dim = n_bits if embed_mode == "xor_only" else 3 * n_bits
    if dim < signal_dim:
        raise ValueError(f"dim must be >= the signal width {signal_dim} (embed_mode={embed_mode!r}), got {dim}.")
    sizes = split_sizes(n_train, n_val, n_test)
    rngs, _ = split_rngs(seed)
    weak_std = signal_scale / np.sqrt(10.0 ** (weak_snr_db / 10.0))
    kind_probs = np.array([1.0 - sum(rates)] + rates).clip(0.0, 1.0)
    kind_probs = kind_probs / kind_probs.sum()
    names = list(FRAGILITY_MODALITIES)

    splits = {}
    for split, n in sizes.items():
        rng = rngs[split]
        u = rng.integers(0, 2, size=(n, n_bits), dtype=np.int64)
        v = rng.integers(0, 2, size=(n, n_bits), dtype=np.int64)
        y = u ^ v if a_rule == "xor" else 1 - (u ^ v)
        b_bits, c_bits = _flip(u, p_flip, rng), _flip(v, p_flip, rng)
        if embed_mode == "xor_only":
            blocks = {"a": [y], "b": [b_bits], "c": [c_bits]}
        else:
            ones = np.ones_like(u)
            blocks = {"a": [u, v, y], "b": [b_bits, ones, b_bits], "c": [ones, c_bits, c_bits]}
        x = {m: _embed(blocks[m], dim, signal_scale, distractor_std, rng) for m in names}
        masks = {m: np.ones(n, bool) for m in names}

        kind = rng.choice(len(CORRUPTION_KINDS), size=n, p=kind_probs).astype(np.int32)
        which = np.asarray(unreliable)[rng.integers(0, len(unreliable), size=n)]
        corrupted = np.where(kind > 0, np.array([names.index(w) for w in which]), -1).astype(np.int32)
        for idx, m in enumerate(names):
            rows = corrupted == idx
            # Misaligned: the signal coordinates of another sample (j != i).
            mis = np.nonzero(rows & (kind == 1))[0]
            if mis.size and n > 1:
                source = (mis + rng.integers(1, n, size=mis.size)) % n
                x[m][mis, :signal_dim] = x[m][source, :signal_dim]
            # Weak: the signal coordinates drowned in noise at weak_snr_db.
            weak = np.nonzero(rows & (kind == 2))[0]
            if weak.size:
                x[m][weak, :signal_dim] += weak_std * rng.normal(size=(weak.size, signal_dim))
            # Missing: masked out and zeroed.
            miss = rows & (kind == 3)
            x[m][miss] = 0.0
            masks[m] &= ~miss
        ex = {m: x[m].astype(np.float32) for m in names}
        ex.update({mask_key(m): masks[m] for m in names})
        ex["label"] = bits_to_index(y)
        ex["corruption"] = kind
        ex["corrupted_modality"] = corrupted
        splits[split] = ex
    info = {
        "name": "fragility",
        "n_bits": n_bits,
        "dim": dim,
        "p_misaligned": rates[0],
        "p_weak": rates[1],
        "p_missing": rates[2],
        "unreliable": list(unreliable),
        "p_flip": p_flip,
        "signal_scale": signal_scale,
        "distractor_std": distractor_std,
        "weak_snr_db": weak_snr_db,
        "a_rule": a_rule,
        "embed_mode": embed_mode,
        "signal_dim": signal_dim,
        "seed": int(seed),
        "target": "a",
        "queries": ["b", "c"],
        "corruption_kinds": list(CORRUPTION_KINDS),
    }
    return MultimodalSplits(splits, names, info)
