"""Symile logits: the O(N) shuffled-negative matrix and the streamed O(N^(M-1)) log-sum-exp.

The reference ``Symile(negative_sampling="n_squared")`` materialises every candidate product
(an (N^(M-1), d) tensor: 64 MiB at N = 256, d = 256, M = 3) and an (N, N^(M-1)) logit matrix.
Cross-entropy with the positive in the candidate set only needs, per anchor row i,

    loss_i = logsumexp_c(s * MIP(x_i, cand_c)) - s * MIP(x_i, y_i, z_i, ...)

so ``streamed_logsumexp`` walks the candidate set in blocks with a running log-sum-exp, and its
custom gradient walks it again, recomputing each block's softmax from the saved log-sum-exp.
Same set of logits, same loss and gradients (up to float32 summation order), bounded memory.

This module is TensorFlow-specific (``tf.custom_gradient``, ``tf.while_loop``): the streaming
and its hand-written backward pass have no ``keras.ops`` equivalent.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["shuffled_negative_logits", "streamed_logsumexp", "default_block_size"]

# Elements (float32) the per-block tensors may hold: 2^22 = 16 MiB each.
_BLOCK_BUDGET = 1 << 22


def shuffled_negative_logits(anchor, others, permutations):
    """The reference "n" logits for one anchor: (N, N), positives on the diagonal.

    Args:
        anchor: (N, d) float32.
        others: list of (N, d) float32, the non-anchor modalities in index order.
        permutations: (len(others), N) int tensor; row k permutes the rows of ``others[k]``
            (``shuffled[i] = others[k][perm[k, i]]``).

    Returns:
        (N, N) unscaled logits: off-diagonal ``anchor_i . prod_k shuffled_k[j]``, diagonal the
        positive MIP(anchor_i, others_i...).
    """
    prod = tf.ones_like(anchor)
    for k, r in enumerate(others):
        prod = prod * tf.gather(r, permutations[k], axis=0)
    logits = tf.matmul(anchor, prod, transpose_b=True)
    positive = anchor
    for r in others:
        positive = positive * r
    positive = tf.reduce_sum(positive, axis=1)
    return tf.linalg.set_diag(logits, positive)


def default_block_size(n, d, num_prefixes):
    """Prefixes per block so that each (N, b, max(N, d)) block tensor stays within budget."""
    b = max(1, _BLOCK_BUDGET // max(1, n * max(n, d)))
    return int(min(b, num_prefixes))


def streamed_logsumexp(anchor, others, block_size=None):
    """``logsumexp`` over all N^(M-1) candidate tuples of ``MIP(anchor_i, cand)``, streamed.

    The candidates are every tuple ``(others[0][j_0], ..., others[-1][j_last])``. The last
    non-anchor modality is the matmul dimension; the others form N^(M-2) "prefixes" (their
    elementwise product), walked ``block_size`` at a time. Scale the anchor beforehand to get
    scaled logits (``MIP`` is linear in each argument).

    Peak memory: about ``3 * N * b * max(N, d)`` float32 values for a block of ``b`` prefixes
    (forward: the (N*b, d) anchor-prefix product and the (N, b*N) block logits; backward adds
    one (N*b, d) product), plus the inputs and their gradients: O(N^2 b + N b d + M N d), against
    the reference's (N^(M-1), d) product plus (N, N^(M-1)) logits. The default ``b`` keeps each
    block tensor under 16 MiB.

    Args:
        anchor: (N, d) float32 (already multiplied by the logit scale).
        others: list of M-1 >= 1 (N, d) float32 tensors.
        block_size: prefixes per block (``None``: from the 16 MiB budget).

    Returns:
        (N,) float32 log-sum-exp per anchor row; differentiable w.r.t. every input.
    """
    others = list(others)
    if not others:
        raise ValueError("streamed_logsumexp needs at least one non-anchor modality.")
    n_static = anchor.shape[0]
    d_static = anchor.shape[1]
    num_prefix_mods = len(others) - 1
    if block_size is not None and int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    return _build(num_prefix_mods, block_size, n_static, d_static)(anchor, *others)


def _build(num_prefix_mods, block_size, n_static, d_static):
    @tf.custom_gradient
    def lse_fn(anchor, *others):
        last = others[-1]
        prefix_mods = others[:-1]
        n = tf.shape(anchor)[0]
        d = tf.shape(anchor)[1]
        num_prefixes = n ** num_prefix_mods  # 1 when M = 2
        if block_size is not None:
            b = int(block_size)
        elif n_static is not None:
            b = default_block_size(n_static, d_static or n_static, n_static ** num_prefix_mods)
        else:
            b = None
        if b is None:  # dynamic batch: size the block at run time
            b_t = tf.maximum(1, _BLOCK_BUDGET // tf.maximum(1, n * tf.maximum(n, d)))
            b_t = tf.minimum(b_t, num_prefixes)
        else:
            b_t = tf.minimum(tf.constant(b), num_prefixes)
        num_blocks = (num_prefixes + b_t - 1) // b_t

        def prefix_block(start):
            """Rows of each prefix modality for prefixes [start, start + b) and their product."""
            q = start + tf.range(b_t)
            valid = q < num_prefixes
            q = tf.minimum(q, num_prefixes - 1)
            idx, rows = [], []
            for k, r in enumerate(prefix_mods):
                stride = n ** (num_prefix_mods - 1 - k)
                ik = (q // stride) % n
                idx.append(ik)
                rows.append(tf.gather(r, ik, axis=0))
            prod = tf.ones([b_t, d], anchor.dtype)
            for rr in rows:
                prod = prod * rr
            return prod, valid, idx, rows

        def block_logits(prod, valid):
            xp = tf.reshape(anchor[:, None, :] * prod[None, :, :], [n * b_t, d])
            logits = tf.reshape(tf.matmul(xp, last, transpose_b=True), [n, b_t, n])
            # Padding prefixes of a ragged last block get -inf so they carry no mass.
            logits = tf.where(valid[None, :, None], logits, tf.constant(-math.inf, anchor.dtype))
            return xp, logits

        def fwd_body(i, run_max, run_sum):
            prod, valid, _, _ = prefix_block(i * b_t)
            _, logits = block_logits(prod, valid)
            blk_max = tf.reduce_max(logits, axis=[1, 2])
            new_max = tf.maximum(run_max, blk_max)
            run_sum = run_sum * tf.exp(run_max - new_max) + tf.reduce_sum(
                tf.exp(logits - new_max[:, None, None]), axis=[1, 2])
            return i + 1, new_max, run_sum

        init_max = tf.fill([n], tf.constant(-math.inf, anchor.dtype))
        _, run_max, run_sum = tf.while_loop(
            lambda i, *_: i < num_blocks, fwd_body,
            (tf.constant(0), init_max, tf.zeros([n], anchor.dtype)))
        lse = run_max + tf.math.log(run_sum)

        def grad_fn(upstream):
            def bwd_body(i, g_anchor, g_last, *g_prefix):
                prod, valid, idx, rows = prefix_block(i * b_t)
                xp, logits = block_logits(prod, valid)
                weights = upstream[:, None, None] * tf.exp(logits - lse[:, None, None])  # (n, b, n)
                w2 = tf.reshape(weights, [n * b_t, n])
                h = tf.reshape(tf.matmul(w2, last), [n, b_t, d])  # sum_l G[i,p,l] last_l
                g_anchor = g_anchor + tf.reduce_sum(h * prod[None, :, :], axis=1)
                g_last = g_last + tf.matmul(w2, xp, transpose_a=True)
                if num_prefix_mods:
                    g_prod = tf.reduce_sum(h * anchor[:, None, :], axis=0)  # (b, d)
                    g_prefix = list(g_prefix)
                    for k in range(num_prefix_mods):
                        partial = g_prod
                        for k2, rr in enumerate(rows):
                            if k2 != k:
                                partial = partial * rr
                        partial = partial * tf.cast(valid, partial.dtype)[:, None]
                        g_prefix[k] = g_prefix[k] + tf.math.unsorted_segment_sum(partial, idx[k], n)
                return (i + 1, g_anchor, g_last, *g_prefix)

            init = (tf.constant(0), tf.zeros_like(anchor), tf.zeros_like(last),
                    *[tf.zeros_like(r) for r in prefix_mods])
            out = tf.while_loop(lambda i, *_: i < num_blocks, bwd_body, init)
            g_anchor, g_last, g_prefix = out[1], out[2], list(out[3:])
            return (g_anchor, *g_prefix, g_last)

        return lse, grad_fn

    return lse_fn
