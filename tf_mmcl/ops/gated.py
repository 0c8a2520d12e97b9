"""Gated Symile's per-candidate math (Rheude et al., 2026), free of any layer state.

:class:`tf_mmcl.layers.ContrastiveGate` owns the trainable pieces (query / key projections, the
NULL head, the neutral directions, temperature and strength) and calls these functions; the
Gated Symile loss reaches them through the layer's public methods.

For a target modality t with K = M - 1 other modalities, a gate weight ``w_k`` in [0, 1] pulls the
embedding ``E_k`` toward a unit neutral direction ``n_k`` and the gate strength ``alpha`` blends:

    G_k = a_k E_k + b_k n_k,   a_k = 1 - alpha + alpha w_k,   b_k = alpha (1 - w_k)

then ``G_k / ||G_k||`` when renormalising. Scoring a candidate c of the target against row b's
other modalities gates the tuple (c, row b), so the weights ``w_k(b, c)`` differ per candidate;
the score ``<c, prod_k G_k(b, c)>`` expands into the 2^K products of the fixed (B, D) row factors
``E_k`` or ``n_k``, each a (B, D) x (D, C) matrix product, times (B, C) coefficients. Nothing of
shape (B, C, D) is formed: cost O(2^K B C D + K B C d_k), memory O(2^K B C).

Every function computes in float32 (inputs are cast).
"""

from __future__ import annotations

import itertools

from keras import ops

__all__ = [
    "GATE_TYPES",
    "MASKED_LOGIT",
    "candidate_attention_logits",
    "gate_weights",
    "gated_candidate_scores",
    "interpolate",
]

GATE_TYPES = ("softmax", "sigmoid")

#: Logit given to masked-out (missing) modalities before the softmax: finite, so that a row with
#: every slot masked yields a uniform softmax (then zeroed by the mask) instead of NaN.
MASKED_LOGIT = -1e9


def _f32(x):
    x = ops.convert_to_tensor(x)
    return x if x.dtype == "float32" else ops.cast(x, "float32")


def _check_gate_type(gate_type):
    if gate_type not in GATE_TYPES:
        raise ValueError(f"Unknown gate_type {gate_type!r}; expected one of {GATE_TYPES}.")


def gate_weights(logits, null_logits=None, presence=None, gate_type="softmax"):
    """Gate weights of the other modalities from their logits (already divided by the temperature).

    ``"softmax"``: a softmax over the K logits plus the NULL logit whose NULL part is dropped (the
    kept weights sum to ``1 - p_null``); ``"sigmoid"``: independent sigmoids times
    ``1 - sigmoid(null)``. A modality whose presence is 0 gets weight exactly 0 (and is left out of
    the softmax).

    Args:
        logits: (..., K) float logits, one per other modality.
        null_logits: NULL logits broadcastable to ``logits[..., 0]``, or None (no NULL option).
        presence: 0/1 floats broadcastable to ``logits`` (1 = present), or None (all present).
        gate_type: ``"softmax"`` or ``"sigmoid"``.

    Returns:
        ``(weights (..., K), p_null (...))`` float32; ``p_null`` is 0 without a NULL option.

    Example:
        >>> import numpy as np
        >>> w, p = gate_weights(np.zeros((2, 2), "float32"), null_logits=np.zeros((2,), "float32"))
        >>> np.asarray(w, 'float64').round(3).tolist(), np.asarray(p, 'float64').round(3).tolist()
        ([[0.333, 0.333], [0.333, 0.333]], [0.333, 0.333])
    """
    _check_gate_type(gate_type)
    logits = _f32(logits)
    if len(logits.shape) < 1:
        raise ValueError(f"logits must have a last axis of K modalities, got shape {tuple(logits.shape)}.")
    zeros = ops.zeros_like(logits[..., 0])
    present = None if presence is None else _f32(presence) + ops.zeros_like(logits)
    if gate_type == "softmax":
        masked = logits if present is None else ops.where(present > 0.5, logits, MASKED_LOGIT)
        if null_logits is not None:
            masked = ops.concatenate([masked, (_f32(null_logits) + zeros)[..., None]], axis=-1)
        probs = ops.softmax(masked, axis=-1)
        k = int(logits.shape[-1])
        weights = probs[..., :k]
        p_null = probs[..., k] if null_logits is not None else zeros
    else:
        weights = ops.sigmoid(logits)
        if null_logits is not None:
            p_null = ops.sigmoid(_f32(null_logits) + zeros)
            weights = weights * (1.0 - p_null)[..., None]
        else:
            p_null = zeros
    if present is not None:
        weights = weights * present
    return weights, p_null


def _normalize(x, epsilon):
    sq = ops.sum(x * x, axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(sq, epsilon**2))


def interpolate(embeddings, weights, strength, neutral=None, renormalize=True, epsilon=1e-6):
    """Gated embeddings of one modality: ``(1 - alpha) E + alpha (w E + (1 - w) n)``.

    Args:
        embeddings: (N, D) embeddings ``E``.
        weights: (N,) gate weights ``w``.
        strength: scalar gate strength ``alpha`` in [0, 1].
        neutral: (D,) unit neutral direction ``n``, or None (then ``G = (1 - alpha + alpha w) E``,
            not renormalised).
        renormalize: L2-normalise the result (only with a neutral direction).
        epsilon: floor of the norm.

    Returns:
        (N, D) float32 gated embeddings.

    Example:
        >>> import numpy as np
        >>> e = np.array([[1.0, 0.0]], "float32")
        >>> g = interpolate(e, np.zeros((1,), "float32"), 1.0, neutral=np.array([0.0, 1.0], "float32"))
        >>> np.asarray(g).tolist()
        [[0.0, 1.0]]
    """
    e, w = _f32(embeddings), _f32(weights)[:, None]
    alpha = _f32(strength)
    if neutral is None:
        return (1.0 - alpha + alpha * w) * e
    g = (1.0 - alpha + alpha * w) * e + alpha * (1.0 - w) * _f32(neutral)[None, :]
    return _normalize(g, epsilon) if renormalize else g


def _pair_scores(rows, candidates, candidate_indices):
    """(B, T, P) row features against the candidates' (P-wide) features -> (B, T, C or K).

    ``candidates`` is (C, P) shared by all rows, (B, K, P) per row, or a (C, P) pool with
    ``candidate_indices`` (B, K): then the (B, T, C) matrix product is formed once and row b keeps
    its K columns (a gather), which is cheaper than gathering (B, K, P) candidate features.
    """
    b, t, p = ops.shape(rows)[0], rows.shape[1], rows.shape[2]
    if len(candidates.shape) == 3:
        return ops.einsum("btp,bkp->btk", rows, candidates)
    flat = ops.reshape(rows, (-1, p))
    scores = ops.reshape(ops.matmul(flat, ops.transpose(candidates)), (b, t, -1))
    if candidate_indices is None:
        return scores
    index = ops.broadcast_to(candidate_indices[:, None, :], (b, t, ops.shape(candidate_indices)[1]))
    return ops.take_along_axis(scores, index, axis=2)


def candidate_attention_logits(row_keys, candidate_queries, temperature, candidate_indices=None):
    """Attention logits ``<k_m(row b), q_t(candidate c)> / T`` of every (row, candidate) pair.

    Args:
        row_keys: (B, K, d_k) L2-normalised key projections of the row's K other modalities.
        candidate_queries: (C, d_k) normalised query projections of the candidates (shared by
            all rows, or the pool indexed by ``candidate_indices``), or (B, Kc, d_k) per row.
        temperature: scalar temperature ``T > 0``.
        candidate_indices: optional (B, Kc) int indices into the C pool candidates.

    Returns:
        (B, C, K) (or (B, Kc, K)) float32 logits.

    Example:
        >>> import numpy as np
        >>> keys = np.eye(2, dtype="float32")[None]  # one row, keys e1 and e2
        >>> queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], "float32")
        >>> np.asarray(candidate_attention_logits(keys, queries, 0.5), 'float64').round(2).tolist()
        [[[2.0, 0.0], [0.0, 2.0], [1.2, 1.6]]]
    """
    keys, queries = _f32(row_keys), _f32(candidate_queries)
    if len(keys.shape) != 3:
        raise ValueError(f"row_keys must be (B, K, d_k), got shape {tuple(keys.shape)}.")
    logits = _pair_scores(keys, queries, candidate_indices)  # (B, K, C)
    return ops.transpose(logits, (0, 2, 1)) / _f32(temperature)


def gated_candidate_scores(
    rows, weights, candidates, strength, neutral=None, renormalize=True, epsilon=1e-6, candidate_indices=None
):
    """Per-candidate gated multilinear scores ``<c, prod_k G_k(b, c)>`` (raw: no logit scale).

    Args:
        rows: (B, K, D) embeddings of each query row's K other modalities (missing ones already
            replaced by their fill vector).
        weights: (B, C, K) (or (B, Kc, K)) gate weights of modality k for row b and candidate c.
        candidates: (C, D) candidates shared by all rows (or the pool indexed by
            ``candidate_indices``), or (B, Kc, D) per-row candidates.
        strength: scalar gate strength ``alpha``.
        neutral: (K, D) unit neutral directions of the K other modalities, or None (no neutral:
            ``G_k = a_k E_k``, not renormalised).
        renormalize: divide each ``G_k`` by its norm (only with neutral directions).
        epsilon: floor of every norm.
        candidate_indices: optional (B, Kc) int indices into the C pool candidates: row b is
            scored against ``candidates[candidate_indices[b]]``.

    Returns:
        (B, C) (or (B, Kc)) float32 scores.

    Example:
        >>> import numpy as np
        >>> rows = np.ones((1, 2, 2), "float32") / np.sqrt(2.0)
        >>> w = np.ones((1, 3, 2), "float32")  # fully trusted: plain MIP
        >>> c = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32")
        >>> s = gated_candidate_scores(rows, w, c, 0.5, neutral=np.eye(2, dtype="float32"))
        >>> np.asarray(s, 'float64').round(3).tolist()
        [[0.5, 0.5, 1.0]]
    """
    rows, w, cands = _f32(rows), _f32(weights), _f32(candidates)
    if len(rows.shape) != 3:
        raise ValueError(f"rows must be (B, K, D), got shape {tuple(rows.shape)}.")
    if len(w.shape) != 3:
        raise ValueError(f"weights must be (B, C, K), got shape {tuple(w.shape)}.")
    k = int(rows.shape[1])
    alpha = _f32(strength)
    a = 1.0 - alpha + alpha * w  # (B, C, K): coefficient of E_k
    if neutral is None:
        prod = rows[:, 0]
        for i in range(1, k):
            prod = prod * rows[:, i]
        coef = a[..., 0]
        for i in range(1, k):
            coef = coef * a[..., i]
        return coef * _pair_scores(prod[:, None, :], cands, candidate_indices)[:, 0]
    ns = _f32(neutral)
    b = alpha * (1.0 - w)  # (B, C, K): coefficient of n_k
    choices = list(itertools.product((True, False), repeat=k))
    vecs = []
    for choice in choices:
        vec = None
        for i, use_e in enumerate(choice):
            v = rows[:, i] if use_e else ns[i][None, :]
            vec = v if vec is None else vec * v
        vecs.append(vec + ops.zeros_like(rows[:, 0]))
    # One matrix product for the 2^K row factors: (B, 2^K, D) x candidates -> (B, 2^K, C).
    terms = _pair_scores(ops.stack(vecs, axis=1), cands, candidate_indices)
    scores = 0.0
    for j, choice in enumerate(choices):
        coef = None
        for i, use_e in enumerate(choice):
            c = a[..., i] if use_e else b[..., i]
            coef = c if coef is None else coef * c
        scores = scores + coef * terms[:, j]
    if renormalize:
        inv = 1.0
        for i in range(k):
            e2 = ops.sum(rows[:, i] * rows[:, i], axis=-1)[:, None]
            en = ops.sum(rows[:, i] * ns[i][None, :], axis=-1)[:, None]
            n2 = ops.sum(ns[i] * ns[i])
            ai, bi = a[..., i], b[..., i]
            sq = ai * ai * e2 + 2.0 * ai * bi * en + bi * bi * n2
            inv = inv * ops.rsqrt(ops.maximum(sq, epsilon**2))
        scores = scores * inv
    return scores
