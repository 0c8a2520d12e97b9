"""Similarity math shared by the objectives, evaluation and serving.

Every function takes float tensors and computes in float32. Inputs are expected to be
L2-normalised by the model; nothing here normalises.

* ``mip``/``mip_scores``: the multilinear inner product (Symile).
* ``gram_volume_matrix``: the Gram-determinant volume (GRAM).
* ``triangle_area_matrix``: the triangle area / squared-area surrogate (TRIANGLE).
* ``dot_scores``: the plain (cosine for unit vectors) similarity matrix (CLIP, ConFu).
"""

from __future__ import annotations

import itertools

import tensorflow as tf
from keras import ops

from tf_mmcl.ops.checks import PendingChecks, require_float

__all__ = [
    "dot_scores",
    "mip",
    "mip_scores",
    "gram_volume_matrix",
    "triangle_area_matrix",
]


def _f32(x, name="input"):
    return require_float(x, name, hint="float embeddings")


def _matrix(x, name):
    x = _f32(x, name)
    if len(x.shape) != 2:
        raise ValueError(f"{name} must be a (rows, d) matrix, got shape {tuple(x.shape)}.")
    return x


def _eps(eps):
    import math

    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0 (a negative eps makes the square root NaN), got {eps!r}.")
    return float(eps)


def _same_width(tensors, names, fn):
    widths = {n: t.shape[-1] for t, n in zip(tensors, names)}
    known = {int(w) for w in widths.values() if w is not None}
    if len(known) > 1:
        raise ValueError(
            f"{fn}: embedding widths differ: "
            + ", ".join(f"{n} has d={w}" for n, w in widths.items())
            + "; every input must live in the same d-dimensional space."
        )


def _same_rows(tensors, names, fn):
    """Row counts must match exactly (no broadcasting of a 1-row input); run-time checked in graphs."""
    rows = [t.shape[0] for t in tensors]
    known = {int(r) for r in rows if r is not None}
    if len(known) > 1:
        raise ValueError(
            f"{fn}: row counts differ: "
            + ", ".join(f"{n} has {r}" for n, r in zip(names, rows))
            + "; rows are aligned tuples, so pass the same number of rows for each."
        )
    if None in rows and len(tensors) > 1 and not tf.executing_eagerly():
        pending = PendingChecks()
        n0 = tf.shape(tensors[0])[0]
        for t, n in zip(tensors[1:], names[1:]):
            pending.require(
                tf.equal(tf.shape(t)[0], n0),
                f"{fn}: {n} has a different number of rows than {names[0]}; rows are aligned "
                "tuples, pass the same number for each.",
            )
        return pending.attach(tensors)
    return list(tensors)


def dot_scores(queries, candidates):
    """Pairwise dot products ``queries @ candidates.T``, (B, d) x (C, d) -> (B, C), in float32.

    Example:
        >>> import numpy as np
        >>> dot_scores(np.eye(2, dtype="float32"), np.eye(2, dtype="float32")).numpy()
        array([[1., 0.],
               [0., 1.]], dtype=float32)
    """
    q, c = _matrix(queries, "queries"), _matrix(candidates, "candidates")
    _same_width([q, c], ["queries", "candidates"], "dot_scores")
    return ops.matmul(q, ops.transpose(c))


def mip(representations):
    """Row-wise multilinear inner product of aligned rows.

    ``MIP(r_1, ..., r_M)[i] = sum_k prod_m r_m[i, k]``; for two modalities it is the row-wise
    dot product.

    Args:
        representations: list of M tensors, each (N, d).

    Returns:
        (N,) float32 tensor.

    Example:
        >>> import numpy as np
        >>> a = np.array([[1., 2.], [3., 4.]], "float32")
        >>> mip([a, a, np.ones_like(a)]).numpy()
        array([ 5., 25.], dtype=float32)
    """
    if isinstance(representations, dict):
        representations = list(representations.values())
    if not isinstance(representations, (list, tuple)):
        raise TypeError(f"mip takes a list of (N, d) tensors, got {type(representations).__name__}.")
    if not representations:
        raise ValueError("mip needs at least one representation.")
    names = [f"representations[{i}]" for i in range(len(representations))]
    reps = [_matrix(r, n) for r, n in zip(representations, names)]
    _same_width(reps, names, "mip")
    reps = _same_rows(reps, names, "mip")
    prod = reps[0]
    for r in reps[1:]:
        prod = prod * r
    return ops.sum(prod, axis=-1)


def mip_scores(queries, candidates):
    """Scores every candidate against each query tuple by MIP: ``(prod_m q_m) @ candidates.T``.

    This is the scoring for 1->1 (one query modality: the dot product), 2->1 and (M-1)->1
    retrieval and zero-shot classification, as the reference ``MIPSimilarity``.

    Args:
        queries: list of (B, d) tensors (one per query modality; (d,) is read as B = 1).
        candidates: (C, d) tensor of the candidate modality.

    Returns:
        (B, C) float32 scores.

    Example:
        >>> import numpy as np
        >>> q1 = np.array([[1., 1.]], "float32"); q2 = np.array([[1., -1.]], "float32")
        >>> mip_scores([q1, q2], np.eye(2, dtype="float32")).numpy()
        array([[ 1., -1.]], dtype=float32)
    """
    if isinstance(queries, dict):
        queries = list(queries.values())
    if not isinstance(queries, (list, tuple)):
        queries = [queries]
    if not queries:
        raise ValueError("mip_scores needs at least one query modality.")
    qs = []
    for i, q in enumerate(queries):
        q = _f32(q, f"queries[{i}]")
        if len(q.shape) == 1:
            q = ops.expand_dims(q, 0)
        if len(q.shape) != 2:
            raise ValueError(f"mip_scores: each query must be (B, d) or (d,), got shape {tuple(q.shape)}.")
        qs.append(q)
    cands = _f32(candidates, "candidates")
    if len(cands.shape) != 2:
        raise ValueError(f"mip_scores: candidates must be (C, d), got shape {tuple(cands.shape)}.")
    names = [f"queries[{i}]" for i in range(len(qs))]
    _same_width(qs + [cands], names + ["candidates"], "mip_scores")
    qs = _same_rows(qs, names, "mip_scores")  # a 1-row query is not broadcast over the others
    prod = qs[0]
    for q in qs[1:]:
        prod = prod * q
    return dot_scores(prod, cands)


def _det(g):
    """Determinant over the last two axes of a small (k x k) matrix batch.

    For k <= 4 by Laplace expansion: a polynomial, so its gradient stays finite at singular
    Gram matrices (exactly aligned tuples), where the inverse-based gradient of a generic
    determinant is NaN. Larger k falls back to ``ops.det``.
    """
    k = g.shape[-1]
    if k == 1:
        return g[..., 0, 0]
    if k == 2:
        return g[..., 0, 0] * g[..., 1, 1] - g[..., 0, 1] * g[..., 1, 0]
    if k <= 4:
        total = 0.0
        for perm in itertools.permutations(range(k)):
            sign = 1.0
            for i in range(k):
                for j in range(i + 1, k):
                    if perm[i] > perm[j]:
                        sign = -sign
            term = g[..., 0, perm[0]]
            for row in range(1, k):
                term = term * g[..., row, perm[row]]
            total = total + sign * term
        return total
    return ops.det(g)


def gram_volume_matrix(anchor, others, eps=1e-8):
    """Gram volume between each anchor row and each aligned tuple of the other modalities.

    ``Vol[i, j] = sqrt(max(det G_ij, eps))`` with ``G_ij`` the Gram matrix of the vectors
    ``(anchor_i, others[0]_j, ..., others[-1]_j)``. Built from batched dot products: the largest
    tensor is (B1, B2, k, k) with k = 1 + len(others), never (B1, B2, d). Smaller is more
    aligned. The determinant is taken in float32; the ``eps`` clamp keeps the sqrt's gradient
    finite at det = 0 (the GRAM reference's convention).

    Args:
        anchor: (B1, d).
        others: list of (B2, d) tensors; row j across them is one candidate tuple.
        eps: clamp for the determinant.

    Returns:
        (B1, B2) float32 volumes.

    Example:
        >>> import numpy as np
        >>> e = np.eye(3, dtype="float32")
        >>> float(gram_volume_matrix(e[:1], [e[1:2], e[2:3]])[0, 0])
        1.0
    """
    if not isinstance(others, (list, tuple)) or not others:
        raise ValueError("gram_volume_matrix needs a non-empty list of other modalities' (B2, d) tensors.")
    eps = _eps(eps)
    a = _matrix(anchor, "anchor")
    names = [f"others[{i}]" for i in range(len(others))]
    xs = [_matrix(x, n) for x, n in zip(others, names)]
    _same_width([a] + xs, ["anchor"] + names, "gram_volume_matrix")
    xs = _same_rows(xs, names, "gram_volume_matrix")
    b1 = ops.shape(a)[0]
    b2 = ops.shape(xs[0])[0]
    aa = ops.sum(a * a, axis=-1)[:, None] * ops.ones((1, b2), "float32")
    a_x = [ops.matmul(a, ops.transpose(x)) for x in xs]
    ones_col = ops.ones((b1, 1), "float32")
    x_x = [[ones_col * ops.sum(xi * xj, axis=-1)[None, :] for xj in xs] for xi in xs]
    rows = [ops.stack([aa] + a_x, axis=-1)]
    for i in range(len(xs)):
        rows.append(ops.stack([a_x[i]] + x_x[i], axis=-1))
    gram = ops.stack(rows, axis=-2)
    return ops.sqrt(ops.maximum(_det(gram), eps))


def triangle_area_matrix(anchor, mod_b, mod_c, squared=True, eps=1e-8):
    """Area of the triangle (anchor_i, b_j, c_j) for all i, j, without a (B, B, d) tensor.

    With u = a_i - b_j and v = a_i - c_j, ``det = |u|^2 |v|^2 - (u.v)^2`` (clamped at 0) from the
    identities ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`` and ``(a - b).(a - c) = |a|^2 - a.b - a.c + b.c``.
    ``squared=True`` (the reference default) returns the surrogate ``0.5 * det``; otherwise
    ``0.5 * sqrt(det + eps)``. Smaller is more aligned.

    Args:
        anchor: (B1, d); mod_b, mod_c: (B2, d), aligned by row.
        squared: use the squared-area surrogate (default, as the reference).
        eps: added under the sqrt when ``squared=False``.

    Returns:
        (B1, B2) float32 areas.

    Example:
        >>> import numpy as np
        >>> e = np.eye(3, dtype="float32")
        >>> float(triangle_area_matrix(e[:1], e[1:2], e[2:3], squared=False)[0, 0])  # doctest: +ELLIPSIS
        0.866...
    """
    eps = _eps(eps)
    a, b, c = _matrix(anchor, "anchor"), _matrix(mod_b, "mod_b"), _matrix(mod_c, "mod_c")
    _same_width([a, b, c], ["anchor", "mod_b", "mod_c"], "triangle_area_matrix")
    b, c = _same_rows([b, c], ["mod_b", "mod_c"], "triangle_area_matrix")
    a2 = ops.sum(a * a, axis=1)[:, None]
    b2 = ops.sum(b * b, axis=1)[None, :]
    c2 = ops.sum(c * c, axis=1)[None, :]
    ab = dot_scores(a, b)
    ac = dot_scores(a, c)
    bc = ops.sum(b * c, axis=1)[None, :]
    u_norm = a2 + b2 - 2.0 * ab
    v_norm = a2 + c2 - 2.0 * ac
    uv = a2 - ab - ac + bc
    det = ops.maximum(u_norm * v_norm - uv * uv, 0.0)
    if squared:
        return 0.5 * det
    return 0.5 * ops.sqrt(det + eps)
