"""Symmetric InfoNCE straight from two embedding matrices, with a hand-written backward pass.

CLIP (and ConFu's pairwise and fused-vs-third terms) spend their time in
``0.5 * (CE(S) + CE(S^T))`` with ``S = scale * a @ b^T``. Autodiff through the two log-sum-exps
re-derives both softmaxes op by op; the closed form is short:

    dL/dS = 0.5 / n * (softmax_rows(S) + softmax_cols(S) - 2 I)      (n = valid rows)
    dL/da = scale * dL/dS @ b,   dL/db = scale * dL/dS^T @ a,   dL/dscale = <dL/dS, a @ b^T>

so the backward is one elementwise pass over ``S`` and two matmuls. That halves the ops a
``tf.function`` or eager step executes (the cost of small batches, where CLIP is
dispatch-bound; docs/benchmarks.md); under XLA both forms fuse to about the same kernels.
TensorFlow-specific (``tf.custom_gradient``), like the other hand-written kernel in
:mod:`tf_mmcl.ops.symile_logits`.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["symmetric_infonce_from_embeddings"]

# Logit of an absent candidate (missing modality): finite, so every log-sum-exp stays finite.
_ABSENT_LOGIT = -1e9


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
    a = tf.cast(queries, tf.float32)
    b = tf.cast(candidates, tf.float32)
    scale = tf.reshape(tf.cast(logit_scale, tf.float32), ())
    if valid is None:
        return _infonce(a, b, scale)
    return _masked_infonce(a, b, scale, tf.cast(valid, tf.float32))


def _softmax_sum(s, lse_rows, lse_cols):
    return tf.exp(s - lse_rows[:, None]) + tf.exp(s - lse_cols[None, :])


@tf.custom_gradient
def _infonce(a, b, scale):
    g = tf.matmul(a, b, transpose_b=True)
    s = scale * g
    lse_rows = tf.reduce_logsumexp(s, axis=1)
    lse_cols = tf.reduce_logsumexp(s, axis=0)
    n = tf.cast(tf.shape(s)[0], tf.float32)
    loss = (0.5 * (tf.reduce_sum(lse_rows) + tf.reduce_sum(lse_cols)) - tf.reduce_sum(tf.linalg.diag_part(s))) / n

    def grad(dy):
        p = _softmax_sum(s, lse_rows, lse_cols)
        ds = (0.5 * dy / n) * tf.linalg.set_diag(p, tf.linalg.diag_part(p) - 2.0)
        return scale * tf.matmul(ds, b), scale * tf.matmul(ds, a, transpose_a=True), tf.reduce_sum(ds * g)

    return loss, grad


@tf.custom_gradient
def _masked_infonce(a, b, scale, w):
    g = tf.matmul(a, b, transpose_b=True)
    pair = (w[:, None] * w[None, :]) > 0.0
    s = tf.where(pair, scale * g, _ABSENT_LOGIT)
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
        return (scale * tf.matmul(ds, b), scale * tf.matmul(ds, a, transpose_a=True), tf.reduce_sum(ds * g),
                tf.zeros_like(w))

    return loss, grad
