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


def _axis(axis, rank, what):
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise ValueError(f"{what} must be an axis of a rank-{rank} tensor (in [{-rank}, {rank - 1}]), got {axis!r}.")
    return axis % rank


def gate_weights(logits, null_logits=None, presence=None, gate_type="softmax", axis=-1):
    """Gate weights of the other modalities from their logits (already divided by the temperature).

    ``"softmax"``: a softmax over the K logits plus the NULL logit whose NULL part is dropped (the
    kept weights sum to ``1 - p_null``); ``"sigmoid"``: independent sigmoids times
    ``1 - sigmoid(null)``. A modality whose presence is 0 gets weight exactly 0 (and is left out of
    the softmax).

    Args:
        logits: float logits with the K modalities along ``axis``, e.g. (..., K).
        null_logits: NULL logits broadcastable to ``logits`` without ``axis``, or None (no NULL
            option).
        presence: 0/1 floats broadcastable to ``logits`` (1 = present), or None (all present).
        gate_type: ``"softmax"`` or ``"sigmoid"``.
        axis: the modality axis of ``logits`` (default the last one).

    Returns:
        ``(weights (shape of logits), p_null (logits' shape without axis))`` float32; ``p_null``
        is 0 without a NULL option.

    Example:
        >>> import numpy as np
        >>> w, p = gate_weights(np.zeros((2, 2), "float32"), null_logits=np.zeros((2,), "float32"))
        >>> np.asarray(w, 'float64').round(3).tolist(), np.asarray(p, 'float64').round(3).tolist()
        ([[0.333, 0.333], [0.333, 0.333]], [0.333, 0.333])
    """
    _check_gate_type(gate_type)
    logits = _f32(logits)
    if len(logits.shape) < 1:
        raise ValueError(f"logits must have an axis of K modalities, got shape {tuple(logits.shape)}.")
    axis = _axis(axis, len(logits.shape), "axis")
    present = None if presence is None else _f32(presence) + ops.zeros_like(logits)
    zeros = ops.zeros_like(ops.take(logits, 0, axis=axis))  # the shape of p_null (no gradient)
    null = None
    if null_logits is not None:
        null = _f32(null_logits)
        if len(null.shape) > len(logits.shape) - 1:
            raise ValueError(
                f"null_logits must broadcast to the logits without their modality axis "
                f"{tuple(zeros.shape)}, got shape {tuple(null.shape)}."
            )
        while len(null.shape) < len(logits.shape) - 1:
            null = null[None]
        null = ops.expand_dims(null, axis)  # broadcasts against the logits
    if gate_type == "softmax":
        masked = logits if present is None else ops.where(present > 0.5, logits, MASKED_LOGIT)
        # The softmax over the K logits and NULL without forming their concatenation: the shift
        # (the maximum) leaves the value unchanged, so it carries no gradient.
        top = ops.max(masked, axis=axis, keepdims=True)
        if null is not None:
            top = ops.maximum(top, null)
        top = ops.stop_gradient(top)
        exp = ops.exp(masked - top)
        denom = ops.sum(exp, axis=axis, keepdims=True)
        if null is not None:
            exp_null = ops.exp(null - top)
            denom = denom + exp_null
        inv = 1.0 / denom
        weights = exp * inv
        p_null = zeros + ops.squeeze(exp_null * inv, axis) if null is not None else zeros
    else:
        weights = ops.sigmoid(logits)
        if null is not None:
            p_null = ops.sigmoid(null)
            weights = weights * (1.0 - p_null)
            p_null = zeros + ops.squeeze(p_null, axis)
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
    """(B, T, P) row features against the candidates' (P-wide) features -> (B, T, C or Kc).

    ``candidates`` is (C, P) shared by all rows, (B, Kc, P) per row, or a (C, P) pool with
    ``candidate_indices`` (B, Kc): then the (B, T, C) matrix product is formed once and row b keeps
    its Kc columns (a gather), which is cheaper than gathering (B, Kc, P) candidate features.
    """
    b, t, p = ops.shape(rows)[0], rows.shape[1], rows.shape[2]
    if len(candidates.shape) == 3:
        return ops.einsum("btp,bkp->btk", rows, candidates)
    flat = ops.reshape(rows, (-1, p))
    scores = ops.reshape(ops.einsum("np,cp->nc", flat, candidates), (b, t, -1))  # no transposed copy
    if candidate_indices is None:
        return scores
    index = ops.broadcast_to(candidate_indices[:, None, :], (b, t, ops.shape(candidate_indices)[1]))
    return ops.take_along_axis(scores, index, axis=2)


def _vector_scores(vector, candidates, candidate_indices):
    """One (D,) vector against the candidates -> (1, C), (B, Kc) per row, or (B, Kc) from the pool."""
    if len(candidates.shape) == 3:
        return ops.sum(candidates * vector, axis=-1)
    scores = ops.sum(candidates * vector[None, :], axis=-1)  # (C,)
    if candidate_indices is None:
        return scores[None, :]
    return ops.take(scores, candidate_indices, axis=0)


def _modality_axis(modality_axis):
    if modality_axis not in (1, 2, -1):
        raise ValueError(
            f"modality_axis must be 1 ((B, K, C) layout) or -1 / 2 ((B, C, K) layout), got {modality_axis!r}."
        )
    return 1 if modality_axis == 1 else 2


def candidate_attention_logits(row_keys, candidate_queries, temperature, candidate_indices=None, modality_axis=-1):
    """Attention logits ``<k_m(row b), q_t(candidate c)> / T`` of every (row, candidate) pair.

    Args:
        row_keys: (B, K, d_k) L2-normalised key projections of the row's K other modalities.
        candidate_queries: (C, d_k) normalised query projections of the candidates (shared by
            all rows, or the pool indexed by ``candidate_indices``), or (B, Kc, d_k) per row.
        temperature: scalar temperature ``T > 0``.
        candidate_indices: optional (B, Kc) int indices into the C pool candidates.
        modality_axis: where the K modalities go in the result: -1 (default) gives (B, C, K),
            1 gives (B, K, C), the layout the matrix product produces (no transpose).

    Returns:
        (B, C, K) (or (B, Kc, K)) float32 logits; (B, K, C) with ``modality_axis=1``.

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
    axis = _modality_axis(modality_axis)
    # 1/T scales the (C, d_k) queries: fewer elements than the (B, K, C) logits.
    logits = _pair_scores(keys, queries * (1.0 / _f32(temperature)), candidate_indices)  # (B, K, C)
    return logits if axis == 1 else ops.transpose(logits, (0, 2, 1))


def gated_candidate_scores(
    rows,
    weights,
    candidates,
    strength,
    neutral=None,
    renormalize=True,
    epsilon=1e-6,
    candidate_indices=None,
    modality_axis=-1,
):
    """Per-candidate gated multilinear scores ``<c, prod_k G_k(b, c)>`` (raw: no logit scale).

    Args:
        rows: (B, K, D) embeddings of each query row's K other modalities (missing ones already
            replaced by their fill vector).
        weights: (B, C, K) (or (B, Kc, K)) gate weights of modality k for row b and candidate c;
            (B, K, C) with ``modality_axis=1``.
        candidates: (C, D) candidates shared by all rows (or the pool indexed by
            ``candidate_indices``), or (B, Kc, D) per-row candidates.
        strength: scalar gate strength ``alpha``.
        neutral: (K, D) unit neutral directions of the K other modalities, or None (no neutral:
            ``G_k = a_k E_k``, not renormalised).
        renormalize: divide each ``G_k`` by its norm (only with neutral directions).
        epsilon: floor of every norm.
        candidate_indices: optional (B, Kc) int indices into the C pool candidates: row b is
            scored against ``candidates[candidate_indices[b]]``.
        modality_axis: the modality axis of ``weights``: -1 / 2 (default, (B, C, K)) or 1
            ((B, K, C), as :func:`candidate_attention_logits` gives with ``modality_axis=1``).

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
        raise ValueError(f"weights must be (B, C, K) (or (B, K, C) with modality_axis=1), got shape {tuple(w.shape)}.")
    axis = _modality_axis(modality_axis)
    k = int(rows.shape[1])
    if w.shape[axis] is not None and int(w.shape[axis]) != k:
        raise ValueError(
            f"weights have {int(w.shape[axis])} modalities along modality_axis={modality_axis}, rows have {k}."
        )
    alpha = _f32(strength)
    # Per modality (B, C) tensors (an unstack: its gradient is one stack, not K strided-slice
    # gradients of the whole weight tensor).
    es = ops.unstack(rows, num=k, axis=1)  # K x (B, D)
    bs = [alpha * (1.0 - wk) for wk in ops.unstack(w, num=k, axis=axis)]  # coefficient of n_k
    a_s = [1.0 - bk for bk in bs]  # coefficient of E_k: 1 - alpha + alpha w_k
    if neutral is None:
        prod = es[0]
        for e in es[1:]:
            prod = prod * e
        coef = a_s[0]
        for a in a_s[1:]:
            coef = coef * a
        return coef * ops.squeeze(_pair_scores(prod[:, None, :], cands, candidate_indices), 1)
    ns = ops.unstack(_f32(neutral), num=k, axis=0)  # K x (D,)
    # The 2^K products of the row factors E_k or n_k: all but the all-neutral one depend on the
    # row and go through one matrix product, (B, J, D) x candidates -> (B, J, C).
    choices = list(itertools.product((True, False), repeat=k))
    row_choices = [choice for choice in choices if any(choice)]
    vecs = []
    for choice in row_choices:
        vec = None
        for i, use_e in enumerate(choice):
            v = es[i] if use_e else ns[i][None, :]
            vec = v if vec is None else vec * v
        vecs.append(vec)
    terms = _pair_scores(ops.stack(vecs, axis=1), cands, candidate_indices)
    term = dict(zip(row_choices, ops.unstack(terms, num=len(row_choices), axis=1)))
    all_neutral = ns[0]
    for n in ns[1:]:
        all_neutral = all_neutral * n
    term[(False,) * k] = _vector_scores(all_neutral, cands, candidate_indices)
    # Sum over the choices of prod_k (a_k or b_k) * term, one modality at a time.
    for i in range(k):
        term = {
            rest: a_s[i] * term[(True,) + rest] + bs[i] * term[(False,) + rest]
            for rest in itertools.product((True, False), repeat=k - i - 1)
        }
    scores = term[()]
    if renormalize:
        # ||a E + b n||^2 = a (a |E|^2 + 2 b <E, n>) + b^2 |n|^2, with (B, 1) row statistics.
        for e, n, a, b in zip(es, ns, a_s, bs):
            e2 = ops.sum(e * e, axis=-1, keepdims=True)
            en = ops.sum(e * n[None, :], axis=-1, keepdims=True)
            sq = a * (a * e2 + 2.0 * b * en) + b * b * ops.sum(n * n)
            scores = scores * ops.rsqrt(ops.maximum(sq, epsilon**2))
    return scores
