"""The misalignment latent-variable model of "Negate or Embrace" (Cai et al., 2025).

Latents per sample (as the authors' numerical simulation): semantic ``s ~ N(0, margin_std^2 I)``
in R^``semantics_n`` (or ``N(0, Sigma_s)`` with a Wishart-drawn ``Sigma_s`` when
``causal_dependence``), and modality-specific ``m_x, m_t ~ N(0, margin_std^2 I)`` in
R^``modality_n``, independent.

* The "image" ``x = g_x([s, m_x])`` sees every semantic variable.
* The "text" ``t = g_t([s~_sel, m_t])`` sees a misaligned copy:
  - **selection bias**: only the semantic indices in ``selected`` enter the text;
  - **perturbation bias**: for indices in ``perturbed`` (a subset of ``selected``), the text's
    value is ``s_i + c_i * e_i`` with ``c_i ~ Bernoulli(change_prob)`` and
    ``e_i ~ N(0, cond_std^2)`` (or a Wishart-correlated draw) -- each index changes with
    probability ``change_prob`` independently, so only a subset changes at a time.
* ``g_x``, ``g_t``: fixed random invertible MLPs (square layers, ``mixing_layers`` of them with
  leaky-ReLU(0.2) between; each weight matrix has uniform(-1, 1) entries with unit-norm columns and
  a condition number below the ``cond_quantile`` quantile of ``cond_pool`` random draws -- the
  construction of the authors' ``construct_invertible_mlp``). The maps are drawn once from the
  seed and shared by all splits.

What makes it hard, and what is measured: by their theorem, contrastive learning between x and
t recovers exactly the *invariant* block ``s_inv`` = selected and not perturbed semantics; the
unselected and perturbed semantics and the modality-specific latents are discarded. The true
latents are returned with every example so the identifiability R² of each block can be
measured (:func:`tf_mmcl.evaluation.identifiability_report`).

Example keys: ``"x"`` (semantics_n + modality_n), ``"t"`` (len(selected) + modality_n), the
latents ``"s"`` (semantics_n), ``"s_tilde"`` (the text's selected, perturbed semantics),
``"m_x"``, ``"m_t"``; all float32. ``info`` holds the index sets (``selected``, ``perturbed``,
``invariant``) and ``info["mixing"]`` the weight matrices of g_x and g_t.
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.data.pipeline import MultimodalSplits
from tf_mmcl.data.synthetic._checks import check_int, check_positive, check_prob, split_rngs, split_sizes

__all__ = ["make_misalignment", "latent_blocks", "invertible_mlp", "apply_mlp", "MISALIGNMENT_MODALITIES"]

MISALIGNMENT_MODALITIES = ("x", "t")
_LEAK = 0.2


def _unit_columns(a):
    return a / np.sqrt(np.sum(a * a, axis=-2, keepdims=True))


def invertible_mlp(rng, n, layers=3, cond_pool=25000, cond_quantile=0.001):
    """Weight matrices of a random invertible MLP on R^n (apply with :func:`apply_mlp`).

    Each layer's matrix has uniform(-1, 1) entries, unit-norm columns, and a condition number no
    larger than the ``cond_quantile`` quantile of ``cond_pool`` random matrices of that kind.
    """
    n = check_int("n", n, 1)
    layers = check_int("mixing_layers", layers, 1)
    cond_pool = check_int("cond_pool", cond_pool, 1)
    if not 0.0 <= cond_quantile < 1.0:
        raise ValueError(f"cond_quantile must be in [0, 1), got {cond_quantile}.")
    pool = np.linalg.cond(_unit_columns(rng.uniform(-1, 1, size=(cond_pool, n, n))))
    threshold = np.sort(pool)[int(cond_pool * cond_quantile)]
    weights = []
    while len(weights) < layers:
        cands = _unit_columns(rng.uniform(-1, 1, size=(max(1000, cond_pool), n, n)))
        ok = np.nonzero(np.linalg.cond(cands) <= threshold)[0]
        weights.extend(cands[i] for i in ok[: layers - len(weights)])
    return weights


def apply_mlp(weights, z):
    """``W_L(... leaky_relu(W_1 z))``: rows of ``z`` through the mixing MLP (float64)."""
    h = np.asarray(z, np.float64)
    for k, w in enumerate(weights):
        h = h @ w.T
        if k < len(weights) - 1:
            h = np.where(h > 0, h, _LEAK * h)
    return h


def _wishart(rng, n):
    g = rng.normal(size=(n, n))
    return g.T @ g


def _index_set(name, values, n):
    values = sorted({int(v) for v in values})
    bad = [v for v in values if not 0 <= v < n]
    if bad:
        raise ValueError(f"{name} holds indices outside [0, {n}): {bad}.")
    return values


def make_misalignment(
    semantics_n: int = 10,
    modality_n: int = 5,
    selected=None,
    perturbed=(),
    change_prob: float = 0.75,
    cond_std: float = 1.0,
    margin_std: float = 1.0,
    causal_dependence: bool = False,
    mixing_layers: int = 3,
    cond_pool: int = 25000,
    cond_quantile: float = 0.001,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
) -> MultimodalSplits:
    """Generates the misalignment benchmark (image ``x``, text ``t``, true latents).

    Args:
        semantics_n: number of semantic latents (10 in the paper).
        modality_n: modality-specific latents per modality (5 in the paper; 0 allowed).
        selected: semantic indices the text sees (selection bias); default all. The paper's
            sweep uses prefixes ``range(k)``.
        perturbed: semantic indices perturbed in the text (perturbation bias); only those also
            selected matter. Default none.
        change_prob: probability that a perturbed index changes in a sample (0.75 in the paper).
        cond_std: std of the perturbation.
        margin_std: std of the latents.
        causal_dependence: draw correlated semantics (and perturbations) from Wishart covariances.
        mixing_layers: layers of each invertible mixing MLP.
        cond_pool, cond_quantile: the conditioning threshold of the mixing matrices.
        n_train, n_val, n_test: split sizes.
        seed: the seed (also fixes the mixing maps).

    Returns:
        :class:`~tf_mmcl.data.MultimodalSplits` with modalities ``["x", "t"]`` and the latents;
        see the module docstring. ``info["invariant"]`` is the block the theory says is kept.

    Example:
        >>> s = make_misalignment(selected=range(6), perturbed=[4, 5], n_train=8, n_val=4,
        ...                       n_test=4, cond_pool=500)
        >>> s.info["invariant"], s.as_numpy("train")["t"].shape
        ([0, 1, 2, 3], (8, 11))
    """
    semantics_n = check_int("semantics_n", semantics_n, 1)
    modality_n = check_int("modality_n", modality_n, 0)
    selected = list(range(semantics_n)) if selected is None else _index_set("selected", selected, semantics_n)
    if not selected:
        raise ValueError("selected must name at least one semantic index (the text must share something).")
    perturbed_all = _index_set("perturbed", perturbed, semantics_n)
    perturbed_sel = [i for i in perturbed_all if i in selected]
    invariant = [i for i in selected if i not in perturbed_sel]
    if not invariant:
        raise ValueError("every selected semantic index is perturbed: no invariant block is left to learn.")
    change_prob = check_prob("change_prob", change_prob)
    cond_std = check_positive("cond_std", cond_std, allow_zero=True)
    margin_std = check_positive("margin_std", margin_std)
    sizes = split_sizes(n_train, n_val, n_test)
    rngs, (mix_rng,) = split_rngs(seed, extra=1)

    dim_x = semantics_n + modality_n
    dim_t = len(selected) + modality_n
    g_x = invertible_mlp(mix_rng, dim_x, mixing_layers, cond_pool, cond_quantile)
    g_t = invertible_mlp(mix_rng, dim_t, mixing_layers, cond_pool, cond_quantile)
    chol_s = chol_a = None
    if causal_dependence:
        chol_s = np.linalg.cholesky(_wishart(mix_rng, semantics_n))
        chol_a = np.linalg.cholesky(_wishart(mix_rng, semantics_n))
    pmask = np.zeros(semantics_n, bool)
    pmask[perturbed_sel] = True

    splits = {}
    for split, n in sizes.items():
        rng = rngs[split]
        s = rng.normal(size=(n, semantics_n))
        s = s @ chol_s.T if chol_s is not None else s * margin_std
        m_x = rng.normal(size=(n, modality_n)) * margin_std
        m_t = rng.normal(size=(n, modality_n)) * margin_std
        change = rng.random((n, semantics_n)) < change_prob
        e = rng.normal(size=(n, semantics_n))
        e = e @ chol_a.T if chol_a is not None else e * cond_std
        s_text = s + (change & pmask[None, :]) * e
        s_tilde = s_text[:, selected]
        x = apply_mlp(g_x, np.concatenate([s, m_x], axis=1))
        t = apply_mlp(g_t, np.concatenate([s_tilde, m_t], axis=1))
        splits[split] = {
            "x": x.astype(np.float32),
            "t": t.astype(np.float32),
            "s": s.astype(np.float32),
            "s_tilde": s_tilde.astype(np.float32),
            "m_x": m_x.astype(np.float32),
            "m_t": m_t.astype(np.float32),
        }
    info = {
        "name": "misalignment",
        "semantics_n": semantics_n,
        "modality_n": modality_n,
        "selected": selected,
        "perturbed": perturbed_sel,
        "invariant": invariant,
        "change_prob": change_prob,
        "cond_std": cond_std,
        "margin_std": margin_std,
        "causal_dependence": bool(causal_dependence),
        "mixing_layers": mixing_layers,
        "seed": int(seed),
        "mixing": {"x": g_x, "t": g_t},
        "latent_keys": ["s", "s_tilde", "m_x", "m_t"],
    }
    return MultimodalSplits(splits, list(MISALIGNMENT_MODALITIES), info)


def latent_blocks(arrays, info) -> dict:
    """The latent blocks to score by identifiability, from one split's arrays and ``info``.

    Returns ``{"s_0": ..., ..., "s_inv": ..., "tilde_s_<i>": ... (perturbed), "m_x": ..., "m_t": ...}``,
    each (N, k), the blocks of the authors' evaluation.

    Example:
        >>> s = make_misalignment(semantics_n=3, modality_n=1, perturbed=[2], n_train=4,
        ...                       n_val=1, n_test=1, cond_pool=100)
        >>> sorted(latent_blocks(s.as_numpy("test"), s.info))
        ['m_t', 'm_x', 's_0', 's_1', 's_2', 's_inv', 'tilde_s_2']
    """
    s = np.asarray(arrays["s"])
    blocks = {f"s_{i}": s[:, i : i + 1] for i in range(s.shape[1])}
    blocks["s_inv"] = s[:, info["invariant"]]
    sel = list(info["selected"])
    for i in info["perturbed"]:
        blocks[f"tilde_s_{i}"] = np.asarray(arrays["s_tilde"])[:, sel.index(i) : sel.index(i) + 1]
    if np.asarray(arrays["m_x"]).shape[1]:
        blocks["m_x"] = np.asarray(arrays["m_x"])
        blocks["m_t"] = np.asarray(arrays["m_t"])
    return blocks
