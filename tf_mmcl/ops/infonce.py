"""Symmetric InfoNCE straight from two embedding matrices, with a hand-written backward pass.

CLIP (and ConFu's pairwise and fused-vs-third terms) spend their time in
``0.5 * (CE(S) + CE(S^T))`` with ``S = scale * a @ b^T``. Autodiff through the two log-sum-exps
re-derives both softmaxes op by op; the closed form is short:

    dL/dS = 0.5 / n * (softmax_rows(S) + softmax_cols(S) - 2 I)      (n = valid rows)
    dL/da = scale * dL/dS @ b,   dL/db = scale * dL/dS^T @ a,   dL/dscale = <dL/dS, a @ b^T>

so the backward is one elementwise pass over ``S`` and two matmuls, and it reuses the forward's
two exponentials (row- and column-shifted) instead of recomputing them: half the exp work of
autodiff and about half the ops a ``tf.function`` or eager step executes (small batches are
dispatch-bound; docs/benchmarks.md). The ``- 2 I`` term and ``dL/dscale`` are applied after the
matmuls, on (N, d) arrays, when N >= d (or N is unknown), and on the (N, N) logits otherwise,
whichever touches fewer elements. The masked variant recomputes the exponentials (absent rows need
the masked logits anyway).
TensorFlow-specific (``tf.custom_gradient``), like the other hand-written kernel in
:mod:`tf_mmcl.ops.symile_logits`.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["symmetric_infonce_from_embeddings", "mean_symmetric_infonce_over_pairs"]

# Logit of an absent candidate (missing modality): finite, so every log-sum-exp stays finite.
# The one definition: tf_mmcl.losses masks with it too.
ABSENT_LOGIT = -1e9


def symmetric_infonce_from_embeddings(queries, candidates, logit_scale, valid=None):
    """``0.5 * (CE(S) + CE(S^T))`` with ``S = logit_scale * queries @ candidates^T``, positives on the diagonal.

    Equal in value and gradient to building ``S`` and applying
    :func:`tf_mmcl.losses.symmetric_infonce` (tests check both, with and without masks), with
    a closed-form backward pass. Computed in float32 whatever the input dtype.

    Args:
        queries: (N, d) embeddings.
        candidates: (N, d) embeddings, row i the positive of query row i.
        logit_scale: scalar multiplier of the similarities.
        valid: optional bool (N,): rows present in both modalities. Absent rows are neither
            queries nor candidates; the mean runs over valid rows (0 when none is valid).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> r = np.eye(4, dtype="float32")
        >>> round(float(symmetric_infonce_from_embeddings(r, r, 100.0)), 4)
        0.0
    """
    from tf_mmcl.ops.checks import check_logit_scale, check_representations

    masks = None if valid is None else [valid, None]
    checked = check_representations([queries, candidates], name="[queries, candidates]", masks=masks)
    a, b = checked[0] if masks is not None else checked
    valid = None if masks is None else checked[1][0]
    return infonce_unchecked(a, b, check_logit_scale(logit_scale), valid)


def infonce_unchecked(queries, candidates, logit_scale, valid=None):
    """:func:`symmetric_infonce_from_embeddings` for inputs the caller has validated already."""
    a = tf.cast(queries, tf.float32)
    b = tf.cast(candidates, tf.float32)
    scale = tf.reshape(tf.cast(logit_scale, tf.float32), ())
    if valid is None:
        return _infonce(a, b, scale)
    return _masked_infonce(a, b, scale, tf.cast(valid, tf.float32))


def mean_symmetric_infonce_over_pairs(queries, candidates, logit_scale):
    """Mean over P pairs of :func:`symmetric_infonce_from_embeddings`, all pairs in one batched pass.

    CLIP over M modalities has M(M-1)/2 such terms. Stacked as (P, N, d) they run as one batched
    matmul and one set of elementwise ops instead of P of each: at small N, where a step is a
    few hundred microseconds and each op's dispatch costs microseconds, that is most of the time.

    Args:
        queries: (P, N, d) embeddings, one slice per pair.
        candidates: (P, N, d) embeddings, row i of slice p the positive of query row i of slice p.
        logit_scale: scalar multiplier of the similarities.

    Returns:
        Scalar float32: the mean over the P pairs of the symmetric InfoNCE.

    Example:
        >>> import numpy as np
        >>> r = np.stack([np.eye(4, dtype="float32")] * 3)
        >>> round(float(mean_symmetric_infonce_over_pairs(r, r, 100.0)), 4)
        0.0
    """
    from tf_mmcl.ops.checks import check_logit_scale, require_float

    a = require_float(queries, "queries")
    b = require_float(candidates, "candidates")
    if a.shape.rank != 3 or b.shape.rank != 3:
        raise ValueError(f"queries and candidates must be (P, N, d), got shapes {a.shape} and {b.shape}.")
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(
            f"queries and candidates must have the same (P, N, d) shape (no broadcasting), got {a.shape} and {b.shape}."
        )
    return pairs_unchecked(a, b, check_logit_scale(logit_scale))


def pairs_unchecked(queries, candidates, logit_scale):
    """:func:`mean_symmetric_infonce_over_pairs` for inputs the caller has validated already."""
    a = tf.cast(queries, tf.float32)
    b = tf.cast(candidates, tf.float32)
    return _infonce(a, b, tf.reshape(tf.cast(logit_scale, tf.float32), ()))


def _shifted_exp(s, axis):
    """``exp(s - max)`` along ``axis`` and its sum (keepdims), the pieces of a log-sum-exp and softmax."""
    shift = tf.stop_gradient(tf.reduce_max(s, axis=axis, keepdims=True))
    e = tf.exp(s - shift)
    return shift, e, tf.reduce_sum(e, axis=axis, keepdims=True)


def _infonce(a, b, scale):
    # Two arrangements of the same math. The backward's "- 2I" term and dL/dscale can be taken
    # either on the (N, N) logits or, after the matmuls, on (N, d) arrays; the cheaper one has
    # fewer elements (measured at M = 3, float32, 2 cores: with N >= d the (N, d) form is 8-22 %
    # faster at N >= 256 in tf.function and XLA; with d > N it is up to 28 % slower in XLA loops).
    # Unknown sizes (a dynamic batch) take the (N, d) form: batches usually outnumber dimensions.
    n, d = a.shape[-2], a.shape[-1]
    if n is not None and d is not None and d > n:
        return _infonce_corrections_on_logits(a, b, scale)
    return _infonce_corrections_on_embeddings(a, b, scale)


def _lse_terms(s):
    """The forward shared by both arrangements: loss pieces and the kept exponentials."""
    shift_r, e_r, sum_r = _shifted_exp(s, -1)
    shift_c, e_c, sum_c = _shifted_exp(s, -2)
    n = tf.cast(tf.shape(s)[-1], tf.float32)
    terms = n if s.shape.rank == 2 else n * tf.cast(tf.shape(s)[0], tf.float32)
    lse_total = tf.reduce_sum(shift_r + tf.math.log(sum_r)) + tf.reduce_sum(shift_c + tf.math.log(sum_c))
    loss = (0.5 * lse_total - tf.reduce_sum(tf.linalg.diag_part(s))) / terms
    return loss, terms, (e_r, sum_r, e_c, sum_c)


@tf.custom_gradient
def _infonce_corrections_on_embeddings(a, b, scale):
    # a, b: (N, d), or (P, N, d) for P independent pairs (the loss is then their mean).
    a_s = scale * a  # the scale folded into the queries: S = a_s @ b^T
    s = tf.matmul(a_s, b, transpose_b=True)
    loss, terms, (e_r, sum_r, e_c, sum_c) = _lse_terms(s)

    def grad(dy):
        c = 0.5 * dy / terms
        # c * (row softmax + column softmax), the 1/sum factors taken on (N, 1) and (1, N) arrays.
        p = e_r * (c / sum_r) + e_c * (c / sum_c)
        # dL/dS = p - 2c I, so dL/dS @ b = p @ b - 2c b (and likewise for b): no (N, N) diagonal pass.
        h = tf.matmul(p, b) - (2.0 * c) * b
        grad_b = tf.matmul(p, a_s, transpose_a=True) - (2.0 * c) * a_s
        # dL/dscale = <dL/dS, a b^T> = sum_i a_i . (dL/dS @ b)_i
        return scale * h, grad_b, tf.reduce_sum(a * h)

    return loss, grad


@tf.custom_gradient
def _infonce_corrections_on_logits(a, b, scale):
    g = tf.matmul(a, b, transpose_b=True)
    s = scale * g
    loss, terms, (e_r, sum_r, e_c, sum_c) = _lse_terms(s)

    def grad(dy):
        p = e_r / sum_r + e_c / sum_c  # row softmax + column softmax
        ds = (0.5 * dy / terms) * tf.linalg.set_diag(p, tf.linalg.diag_part(p) - 2.0)
        return scale * tf.matmul(ds, b), scale * tf.matmul(ds, a, transpose_a=True), tf.reduce_sum(ds * g)

    return loss, grad


@tf.custom_gradient
def _masked_infonce(a, b, scale, w):
    g = tf.matmul(a, b, transpose_b=True)
    pair = (w[:, None] * w[None, :]) > 0.0
    s = tf.where(pair, scale * g, ABSENT_LOGIT)
    lse_rows = tf.reduce_logsumexp(s, axis=1)
    lse_cols = tf.reduce_logsumexp(s, axis=0)
    count = tf.maximum(tf.reduce_sum(w), 1.0)
    positive = tf.linalg.diag_part(s)
    loss = 0.5 * (tf.reduce_sum(w * (lse_rows - positive)) + tf.reduce_sum(w * (lse_cols - positive))) / count

    def grad(dy):
        # Absent rows carry weight 0; a valid row's softmax puts ~0 on absent columns (and a
        # valid column's on absent rows), so dS vanishes wherever S was masked.
        p = w[:, None] * tf.exp(s - lse_rows[:, None]) + w[None, :] * tf.exp(s - lse_cols[None, :])
        ds = (0.5 * dy / count) * tf.linalg.set_diag(p, tf.linalg.diag_part(p) - 2.0 * w)
        ds = tf.where(pair, ds, 0.0)
        return (
            scale * tf.matmul(ds, b),
            scale * tf.matmul(ds, a, transpose_a=True),
            tf.reduce_sum(ds * g),
            tf.zeros_like(w),
        )

    return loss, grad
