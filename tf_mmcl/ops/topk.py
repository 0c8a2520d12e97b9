"""Exact top-k over a candidate matrix in candidate blocks, without the (queries x candidates) matrix.

Pure TensorFlow ops (``MatMul``, ``TopKV2``, ``Max``, gathers and a ``While`` loop), so the
search can live inside a SavedModel that a stock TF Serving loads.

* :func:`block_top_k`: the exact top-k of one (B, Cb) score block, pruned by group maxima: the
  block is cut into groups of ``group_size`` columns, only the ``k`` groups with the largest
  maxima can hold the top-k (any element of another group is beaten by ``k`` group maxima),
  so ``top_k`` runs over ``Cb / group_size`` maxima and ``k * group_size`` survivors instead of
  ``Cb`` scores. The vectorised ``max`` is far cheaper than ``top_k`` per element, which is
  what lets the search run near the matmul rate.
* :func:`merge_top_k`: merges two (values, ids) top-k lists row by row.
* :func:`blocked_top_k`: ``top_k(queries @ candidates^T)`` streamed over candidate blocks,
  with float32 or bfloat16 candidate storage (bfloat16 blocks are widened to float32 before
  the matmul: bfloat16 operands, float32 accumulation; CPU kernels have no bf16 x bf16 -> f32
  matmul), memory bounded by ``B x block_size``.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["block_top_k", "blocked_top_k", "merge_top_k", "streaming_top_k", "DEFAULT_BLOCK_SIZE", "DEFAULT_GROUP_SIZE"]

DEFAULT_BLOCK_SIZE = 32768
DEFAULT_GROUP_SIZE = 64


def _check_k(k, name="k"):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{name} must be an int >= 1, got {k!r}.")


def merge_top_k(values_a, ids_a, values_b, ids_b, k):
    """Row-wise top-k of two (values, ids) lists; ties keep list ``a`` first.

    Args:
        values_a, ids_a: (B, ka) scores and their ids.
        values_b, ids_b: (B, kb) scores and their ids (same id dtype).
        k: how many to keep (<= ka + kb).

    Returns:
        (values (B, k), ids (B, k)), values descending.

    Example:
        >>> import tensorflow as tf
        >>> v, i = merge_top_k(tf.constant([[3., 1.]]), tf.constant([[7, 8]]),
        ...                    tf.constant([[2.]]), tf.constant([[9]]), 2)
        >>> v.numpy().tolist(), i.numpy().tolist()
        ([[3.0, 2.0]], [[7, 9]])
    """
    values = tf.concat([values_a, values_b], axis=1)
    ids = tf.concat([ids_a, ids_b], axis=1)
    top, pos = tf.math.top_k(values, k=k, sorted=True)
    return top, tf.gather(ids, pos, batch_dims=1)


def block_top_k(scores, k, group_size=DEFAULT_GROUP_SIZE):
    """Exact top-k of a (B, N) score block via group-max pruning.

    Args:
        scores: (B, N) float32 scores; N static.
        k: int, <= N.
        group_size: columns per group (N need not be a multiple: the tail is padded with -inf).

    Returns:
        (values (B, k) float32 descending, indices (B, k) int32 column positions).

    Example:
        >>> import tensorflow as tf
        >>> v, i = block_top_k(tf.constant([[0., 5., 1., 4., 3.]]), 2, group_size=2)
        >>> v.numpy().tolist(), i.numpy().tolist()
        ([[5.0, 4.0]], [[1, 3]])
    """
    _check_k(k)
    n = scores.shape[-1]
    if n is None:
        raise ValueError("block_top_k needs a static number of columns.")
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} columns of the score block.")
    g = int(group_size)
    groups = -(-n // g)
    if g <= 1 or groups <= 2 * k:
        return tf.math.top_k(scores, k=k, sorted=True)
    pad = groups * g - n
    if pad:
        scores = tf.pad(scores, [[0, 0], [0, pad]], constant_values=float("-inf"))
    grouped = tf.reshape(scores, [-1, groups, g])
    _, best_groups = tf.math.top_k(tf.reduce_max(grouped, axis=2), k=k, sorted=False)
    survivors = tf.reshape(tf.gather(grouped, best_groups, batch_dims=1), [-1, k * g])
    values, pos = tf.math.top_k(survivors, k=k, sorted=True)
    group_of = tf.gather(best_groups, pos // g, batch_dims=1)
    return values, group_of * g + pos % g


def blocked_top_k(queries, candidates, k, block_size=DEFAULT_BLOCK_SIZE, group_size=DEFAULT_GROUP_SIZE):
    """Exact ``top_k(queries @ candidates^T)`` streamed over candidate blocks.

    Never forms the (B, C) score matrix: each block of ``block_size`` candidates is scored
    (float32 accumulation), reduced to its top-k by :func:`block_top_k` and merged into the
    running top-k. Works eagerly and inside ``tf.function`` / a SavedModel (a ``tf.while_loop``
    over the full blocks plus one tail block).

    Args:
        queries: (B, d) float32 query vectors.
        candidates: (C, d) float32 or bfloat16 tensor / variable; C and d static.
        k: int, 1 <= k <= C.
        block_size: candidates per block (memory ~ B x block_size floats).
        group_size: see :func:`block_top_k`.

    Returns:
        (scores (B, k) float32 descending, positions (B, k) int32 row indices into candidates).

    Example:
        >>> import numpy as np
        >>> c = np.eye(4, dtype="float32"); q = np.array([[0., 2., 0., 1.]], "float32")
        >>> s, i = blocked_top_k(q, c, 2, block_size=3)
        >>> s.numpy().tolist(), i.numpy().tolist()
        ([[2.0, 1.0]], [[1, 3]])
    """
    _check_k(k)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}.")
    q = tf.convert_to_tensor(queries)
    if q.dtype != tf.float32:
        q = tf.cast(q, tf.float32)
    cands = candidates if isinstance(candidates, tf.Variable) else tf.convert_to_tensor(candidates)
    if cands.dtype not in (tf.float32, tf.bfloat16):
        raise ValueError(f"candidates must be float32 or bfloat16, got {cands.dtype.name}.")
    if len(q.shape) != 2 or len(cands.shape) != 2:
        raise ValueError(
            f"queries must be (B, d) and candidates (C, d); got {tuple(q.shape)} and {tuple(cands.shape)}."
        )
    c, d = cands.shape
    if c is None or d is None:
        raise ValueError("blocked_top_k needs candidates with a static shape (C, d).")
    if q.shape[-1] is not None and int(q.shape[-1]) != int(d):
        raise ValueError(f"queries have width {int(q.shape[-1])}, candidates {int(d)}.")

    def scored(start, size):
        rows = cands[start : start + size] if isinstance(start, int) else tf.slice(cands, [start, 0], [size, d])
        if rows.dtype != tf.float32:
            rows = tf.cast(rows, tf.float32)
        return tf.matmul(q, rows, transpose_b=True)

    return streaming_top_k(scored, int(c), k, block_size=block_size, group_size=group_size)


def streaming_top_k(score_block, num_candidates, k, block_size=DEFAULT_BLOCK_SIZE, group_size=DEFAULT_GROUP_SIZE):
    """Exact top-k of a score matrix produced one candidate block at a time.

    ``score_block(start, size)`` returns the (B, size) float32 scores of candidates
    ``[start, start + size)``; ``start`` is a Python int for the first and the tail block and a
    scalar int32 tensor inside the ``tf.while_loop`` over the full blocks; ``size`` is always a
    Python int. Any similarity works (the objectives that do not reduce to a dot product use
    the model's own score here), memory stays ~ B x block_size.

    Args:
        score_block: callable (start, size) -> (B, size) float32.
        num_candidates: C, a Python int.
        k: int, 1 <= k <= C.
        block_size: candidates per block.
        group_size: see :func:`block_top_k`.

    Returns:
        (scores (B, k) float32 descending, positions (B, k) int32).

    Example:
        >>> import tensorflow as tf
        >>> s = tf.constant([[0., 3., 1., 2.]])
        >>> v, i = streaming_top_k(lambda start, size: s[:, start:start + size], 4, 2, block_size=2)
        >>> i.numpy().tolist()
        [[1, 3]]
    """
    _check_k(k)
    c = int(num_candidates)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}.")
    if k > c:
        raise ValueError(f"k={k} exceeds the number of candidates ({c}); pass k <= {c}.")
    block = max(min(int(block_size), c), k)
    full_blocks = c // block
    tail = c - full_blocks * block

    def block_result(start, size):
        vals, idx = block_top_k(score_block(start, size), min(k, size), group_size)
        return vals, idx + start

    values, ids = block_result(0, block)
    if full_blocks > 1:

        def body(i, vals, idx):
            bv, bi = block_result(i * block, block)
            nv, ni = merge_top_k(vals, idx, bv, bi, k)
            return i + 1, nv, ni

        _, values, ids = tf.while_loop(
            lambda i, *_: i < full_blocks,
            body,
            (tf.constant(1), values, ids),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, k]), tf.TensorShape([None, k])),
            parallel_iterations=1,
        )
    if tail:
        bv, bi = block_result(full_blocks * block, tail)
        values, ids = merge_top_k(values, ids, bv, bi, k)
    return values, ids
