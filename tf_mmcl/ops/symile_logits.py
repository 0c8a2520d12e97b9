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

__all__ = [
    "shuffled_negative_logits",
    "shuffled_negative_logsumexp",
    "streamed_logsumexp",
    "default_block_size",
    "joint_streamed_logsumexps",
    "joint_block_size",
]

# Elements (float32) the per-block tensors may hold: 2^20 = 4 MiB each (measured faster than
# 16 MiB blocks on a 2-core CPU: the block stays in cache between the matmul and the reductions).
_BLOCK_BUDGET = 1 << 20


def _static_inputs(anchor, others, fn, permutations=None):
    """Trace-time checks of a kernel's inputs (free at run time): float (N, d) matrices of one
    shape, and an int (len(others), N) permutation array."""
    from tf_mmcl.ops.checks import require_float

    if not isinstance(others, (list, tuple)) or not others:
        raise ValueError(f"{fn}: others must be a non-empty list of (N, d) tensors, got {type(others).__name__}.")
    tensors = [require_float(anchor, f"{fn}: anchor")] + [
        require_float(r, f"{fn}: others[{k}]") for k, r in enumerate(others)
    ]
    names = ["anchor"] + [f"others[{k}]" for k in range(len(others))]
    for t, n in zip(tensors, names):
        if len(t.shape) != 2:
            raise ValueError(f"{fn}: {n} must be (N, d), got shape {tuple(t.shape)}.")
    if not all(t.shape.is_compatible_with(tensors[0].shape) for t in tensors):
        raise ValueError(
            f"{fn}: inputs must all have the same (N, d) shape, got "
            + ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors))
            + "."
        )
    if permutations is None:
        return tensors, None
    perms = tf.convert_to_tensor(permutations)
    if not perms.dtype.is_integer:
        raise ValueError(f"{fn}: permutations must be an integer array (len(others), N), got dtype {perms.dtype.name}.")
    expected = tf.TensorShape([len(others), tensors[0].shape[0]])
    if not perms.shape.is_compatible_with(expected):
        raise ValueError(
            f"{fn}: permutations must have shape (len(others), N) = {tuple(expected)}, got {tuple(perms.shape)}."
        )
    return tensors, perms


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
    (anchor, *others), permutations = _static_inputs(anchor, others, "shuffled_negative_logits", permutations)
    logits = tf.matmul(anchor, _shuffled_product(anchor, others, permutations), transpose_b=True)
    return tf.linalg.set_diag(logits, _aligned_mip(anchor, others))


def _shuffled_product(anchor, others, permutations):
    """Row j: the product over k of ``others[k][permutations[k, j]]`` (the "n" candidates)."""
    prod = tf.ones_like(anchor)
    for k, r in enumerate(others):
        prod = prod * tf.gather(r, permutations[k], axis=0)
    return prod


def _aligned_mip(anchor, others):
    """Row i: ``MIP(anchor_i, others_i...)``, the positives."""
    positive = anchor
    for r in others:
        positive = positive * r
    return tf.reduce_sum(positive, axis=1)


def shuffled_negative_logsumexp(anchor, others, permutations, logit_scale, positive=None):
    """Row log-sum-exps of ``logit_scale * shuffled_negative_logits(...)``, with a closed-form backward.

    The Symile "n" loss of one anchor is ``lse_i - logit_scale * positive_i``. Autodiff through
    ``reduce_logsumexp`` re-derives the softmax op by op (a second exponential, the scale's and
    the diagonal's gradients as further (N, N) passes); here the backward is one (N, N) pass
    (``softmax * upstream``) and two matmuls, with the diagonal's and the scale's terms taken on
    (N, d) arrays. The gathers and products that build the candidates stay in autodiff.

    Args:
        anchor: (N, d) float32.
        others: list of (N, d) float32, the non-anchor modalities in index order.
        permutations: (len(others), N) int tensor, as in :func:`shuffled_negative_logits`.
        logit_scale: scalar multiplier of the logits.
        positive: optional (N,) positive MIPs ``MIP(anchor_i, others_i...)`` (the loss needs them
            for every anchor: pass them once); computed here when omitted.

    Returns:
        (N,) float32: ``logsumexp_j(logit_scale * shuffled_negative_logits(anchor, others, permutations)[i, j])``.

    Example:
        >>> import numpy as np
        >>> x = np.eye(3, dtype="float32")
        >>> lse = shuffled_negative_logsumexp(x, [x, x], np.array([[1, 2, 0], [1, 2, 0]]), 1.0)
        >>> # Each row: the positive and one shuffled candidate score 1, the third 0: log(2e + 1).
        >>> [round(float(v), 4) for v in lse]
        [1.862, 1.862, 1.862]
    """
    (anchor, *others), permutations = _static_inputs(anchor, others, "shuffled_negative_logsumexp", permutations)
    from tf_mmcl.ops.checks import check_logit_scale

    return shuffled_lse_unchecked(anchor, others, permutations, check_logit_scale(logit_scale), positive)


def shuffled_lse_unchecked(anchor, others, permutations, logit_scale, positive=None):
    """:func:`shuffled_negative_logsumexp` for inputs the caller has validated (the Symile loss)."""
    anchor = tf.convert_to_tensor(anchor, tf.float32)
    if positive is None:
        positive = _aligned_mip(anchor, others)
    return _shuffled_lse(
        anchor,
        _shuffled_product(anchor, others, permutations),
        tf.convert_to_tensor(positive, tf.float32),
        tf.reshape(tf.cast(logit_scale, tf.float32), ()),
    )


@tf.custom_gradient
def _shuffled_lse(anchor, prod, positive, scale):
    # L = scale * (anchor @ prod^T) off the diagonal, scale * positive on it.
    anchor_s = scale * anchor
    logits = tf.linalg.set_diag(tf.matmul(anchor_s, prod, transpose_b=True), scale * positive)
    shift = tf.stop_gradient(tf.reduce_max(logits, axis=1, keepdims=True))
    e = tf.exp(logits - shift)
    total = tf.reduce_sum(e, axis=1, keepdims=True)
    lse = tf.squeeze(shift + tf.math.log(total), axis=1)

    def grad(dy):
        p = e * (dy[:, None] / total)  # dL/dlogits: upstream-weighted row softmax
        p_diag = tf.linalg.diag_part(p)[:, None]
        # Off-diagonal entries hold the matmul: subtract the diagonal's share on (N, d) arrays.
        h = tf.matmul(p, prod) - p_diag * prod  # sum_{j != i} p_ij prod_j
        g_prod = tf.matmul(p, anchor_s, transpose_a=True) - p_diag * anchor_s
        g_scale = tf.reduce_sum(anchor * h) + tf.reduce_sum(p_diag[:, 0] * positive)
        return scale * h, g_prod, scale * p_diag[:, 0], g_scale

    return lse, grad


def default_block_size(n, d, num_prefixes):
    """Prefixes per block so that each (N, b, max(N, d)) block tensor stays within budget.

    Among the sizes within budget, the largest that divides ``num_prefixes`` when it is at least
    half the largest allowed (then no block is ragged and no padding mask is needed).
    """
    b = int(min(max(1, _BLOCK_BUDGET // max(1, n * max(n, d))), num_prefixes))
    for c in range(b, (b + 1) // 2 - 1, -1):
        if c >= 1 and num_prefixes % c == 0:
            return c
    return b


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
    block tensor under 4 MiB.

    Args:
        anchor: (N, d) float32 (already multiplied by the logit scale).
        others: list of M-1 >= 1 (N, d) float32 tensors.
        block_size: prefixes per block (``None``: from the 4 MiB budget).

    Returns:
        (N,) float32 log-sum-exp per anchor row; differentiable w.r.t. every input.
    """
    if isinstance(others, (list, tuple)) and not others:
        raise ValueError("streamed_logsumexp needs at least one non-anchor modality.")
    (anchor, *others), _ = _static_inputs(anchor, others, "streamed_logsumexp")
    n_static = anchor.shape[0]
    d_static = anchor.shape[1]
    num_prefix_mods = len(others) - 1
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}.")
    return _build(num_prefix_mods, block_size, n_static, d_static)(anchor, *others)


def _build(num_prefix_mods, block_size, n_static, d_static):
    @tf.custom_gradient
    def lse_fn(anchor, *others):
        last = others[-1]
        prefix_mods = others[:-1]
        n = tf.shape(anchor)[0]
        d = tf.shape(anchor)[1]
        num_prefixes = n**num_prefix_mods  # 1 when M = 2
        if block_size is not None:
            b = int(block_size)
        elif n_static is not None:
            b = default_block_size(n_static, d_static or n_static, n_static**num_prefix_mods)
        else:
            b = None
        if b is None:  # dynamic batch: size the block at run time
            b_t = tf.maximum(1, _BLOCK_BUDGET // tf.maximum(1, n * tf.maximum(n, d)))
            b_t = tf.minimum(b_t, num_prefixes)
        else:
            b_t = tf.minimum(tf.constant(b), num_prefixes)
        num_blocks = (num_prefixes + b_t - 1) // b_t
        # No padding mask when every block is full (static batch, b divides the prefix count).
        ragged = not (
            b is not None
            and n_static is not None
            and (n_static**num_prefix_mods) % min(b, n_static**num_prefix_mods) == 0
        )

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
            if ragged:  # padding prefixes of a ragged last block get -inf so they carry no mass
                logits = tf.where(valid[None, :, None], logits, tf.constant(-math.inf, anchor.dtype))
            return xp, logits

        def fwd_body(i, run_max, run_sum):
            prod, valid, _, _ = prefix_block(i * b_t)
            _, logits = block_logits(prod, valid)
            blk_max = tf.reduce_max(logits, axis=[1, 2])
            new_max = tf.maximum(run_max, blk_max)
            run_sum = run_sum * tf.exp(run_max - new_max) + tf.reduce_sum(
                tf.exp(logits - new_max[:, None, None]), axis=[1, 2]
            )
            return i + 1, new_max, run_sum

        init_max = tf.fill([n], tf.constant(-math.inf, anchor.dtype))
        _, run_max, run_sum = tf.while_loop(
            lambda i, *_: i < num_blocks, fwd_body, (tf.constant(0), init_max, tf.zeros([n], anchor.dtype))
        )
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
                        if ragged:
                            partial = partial * tf.cast(valid, partial.dtype)[:, None]
                        g_prefix[k] = g_prefix[k] + tf.math.unsorted_segment_sum(partial, idx[k], n)
                return (i + 1, g_anchor, g_last, *g_prefix)

            init = (
                tf.constant(0),
                tf.zeros_like(anchor),
                tf.zeros_like(last),
                *[tf.zeros_like(r) for r in prefix_mods],
            )
            out = tf.while_loop(lambda i, *_: i < num_blocks, bwd_body, init)
            g_anchor, g_last, g_prefix = out[1], out[2], list(out[3:])
            return (g_anchor, *g_prefix, g_last)

        return lse, grad_fn

    return lse_fn


# Elements the joint kernel's (b, N, N) block logits may hold: 2^20 = 4 MiB in float32.
_JOINT_BLOCK_BUDGET = 1 << 20


def joint_block_size(n, num_prefixes, budget=None):
    """Prefix tuples per block of :func:`joint_streamed_logsumexps` for a static batch of ``n``.

    The largest divisor of ``num_prefixes`` whose (b, n, n) block logits fit ``budget`` elements
    (so that no block is ragged and no padding mask is needed); at least 1.
    """
    budget = _JOINT_BLOCK_BUDGET if budget is None else int(budget)
    b_max = max(1, min(num_prefixes, budget // max(1, n * n)))
    for b in range(b_max, 0, -1):
        if num_prefixes % b == 0:
            return b
    return 1


def joint_streamed_logsumexps(representations, logit_scale=1.0, block_size=None, compute_dtype=None):
    """Every anchor's "n_squared" log-sum-exp from one shared, streamed pass over the logits.

    The Symile "n_squared" logits of every anchor are entries of one tensor
    ``T[i_0, ..., i_{M-1}] = s * MIP(r_0[i_0], ..., r_{M-1}[i_{M-1}])``: anchor ``a``'s
    log-sum-exp for row ``i`` reduces ``T`` over every axis but ``a`` at index ``i``. So instead
    of M passes (one per anchor, :func:`streamed_logsumexp`, 2 N^M d FLOPs each) this computes
    ``T`` once, in blocks of ``b`` prefix tuples (the modalities before the last two), and
    updates M running log-sum-exps from each block: the forward costs 2 N^M d FLOPs instead of
    2 M N^M d, the backward (which recomputes each block) 6 N^M d instead of 4 M N^M d. The
    values are the same log-sum-exps (up to float32 summation order); the gradient is exact
    (softmax weights recomputed from the saved log-sum-exps, no approximation).

    Per block of logits ``L[p, j, k]`` (prefix tuple p, rows j of ``r_{M-2}``, rows k of
    ``r_{M-1}``): one row max over k and one ``exp`` give the row sums, from which the
    ``r_{M-2}`` and prefix log-sum-exps follow exactly on (b, N) arrays; one column max and one
    ``exp`` give the ``r_{M-1}`` sums. The backward builds the logits' gradient with two
    ``exp`` per element (the row-wise terms share one shift, ``min`` of their log-sum-exps).

    Peak memory: about ``3 * b * N * max(N, d)`` values per block (the (b N, d) product, the
    (b, N, N) block logits and, in the backward, their gradient and the (b N, d) matmul result)
    plus O(M N d) for the inputs and their gradients. The default ``b`` keeps the block logits
    within 2^20 elements (4 MiB in float32); at N = 256, d = 256, M = 3 that is b = 16 and a
    few tens of MiB in all, against the reference's (N^2, d) product, (N, N^2) logits and their
    gradients per anchor (over 1 GiB measured, see ``docs/benchmarks.md``).

    Args:
        representations: list of M >= 2 (N, d) float32 tensors (rows need not be normalised).
        logit_scale: scalar multiplier of the MIP (differentiable).
        block_size: prefix tuples per block (``None``: from the 4 MiB budget; a block size that
            does not divide N^(M-2) is allowed, the last block is then masked).
        compute_dtype: ``None`` or ``"float32"`` (exact), or ``"bfloat16"``: the matmul operands
            are rounded to bfloat16, the products accumulate and all logits, exponentials and
            sums stay float32 (about 3 significant digits in the logits; for speed on CPUs
            with native bfloat16 matmuls).

    Returns:
        List of M (N,) float32 tensors: entry ``a`` is ``logsumexp`` over all candidate tuples
        of anchor ``a``'s rows (positives included), i.e. the same as
        ``streamed_logsumexp(s * r_a, [r_j for j != a])``.
    """
    reps = [tf.convert_to_tensor(r, tf.float32) for r in representations]
    if len(reps) < 2:
        raise ValueError("joint_streamed_logsumexps needs at least two modalities.")
    if block_size is not None and int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}.")
    if compute_dtype not in (None, "float32", "bfloat16"):
        raise ValueError(f"compute_dtype must be None, 'float32' or 'bfloat16', got {compute_dtype!r}.")
    scale = tf.cast(tf.convert_to_tensor(logit_scale), tf.float32)
    last = reps[-1] * scale  # gradient to the scale flows through this product
    fn = _build_joint(len(reps) - 2, block_size, reps[0].shape[0], compute_dtype == "bfloat16")
    return list(fn(*reps[:-1], last))


def _in_xla_context():
    """Whether ops are being traced into an XLA cluster (``tf.function(jit_compile=True)``)."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))
    except Exception:  # pragma: no cover - private API moved
        return False


def _build_joint(num_prefix_mods, block_size, n_static, use_bf16):
    neg_inf = tf.constant(-math.inf, tf.float32)

    def mm(a, b, **kw):
        if not use_bf16:
            return tf.matmul(a, b, **kw)
        a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
        if _in_xla_context():  # bfloat16 operands, float32 accumulation and result
            return tf.matmul(a16, b16, output_type=tf.float32, **kw)
        # TF's CPU kernel has no bf16 x bf16 -> f32 matmul: the result is rounded to bfloat16.
        return tf.cast(tf.matmul(a16, b16, **kw), tf.float32)

    @tf.custom_gradient
    def joint_fn(*args):
        prefix_mods = args[:num_prefix_mods]
        ymod = args[num_prefix_mods]
        zmod = args[num_prefix_mods + 1]
        n = tf.shape(ymod)[0]
        d = tf.shape(ymod)[1]
        num_prefixes = n**num_prefix_mods  # 1 when M = 2
        if block_size is not None:
            b_static = int(block_size)
        elif n_static is not None:
            b_static = joint_block_size(n_static, n_static**num_prefix_mods)
        else:
            b_static = None
        if b_static is None:
            b = tf.maximum(1, tf.minimum(num_prefixes, _JOINT_BLOCK_BUDGET // tf.maximum(1, n * n)))
        else:
            b = tf.minimum(tf.constant(b_static), num_prefixes)
        # Ragged last block only when the block size is not known to divide the prefix count.
        ragged = not (n_static is not None and b_static is not None and (n_static**num_prefix_mods) % b_static == 0)
        num_blocks = (num_prefixes + b - 1) // b

        def prefix_block(start):
            """Prefix tuples [start, start + b): their product (b, d), index per mod, validity."""
            q = start + tf.range(b)
            valid = None
            if ragged:
                valid = tf.cast(q < num_prefixes, tf.float32)
                # Padding duplicates the last prefix, which is in the last block too: maxima are
                # unchanged and every sum weights the duplicates by 0.
                q = tf.minimum(q, num_prefixes - 1)
            idx, rows = [], []
            prod = None
            for k, r in enumerate(prefix_mods):
                stride = n ** (num_prefix_mods - 1 - k)
                ik = (q // stride) % n
                idx.append(ik)
                rr = tf.gather(r, ik, axis=0)
                rows.append(rr)
                prod = rr if prod is None else prod * rr
            if prod is None:  # M = 2: a single empty prefix
                prod = tf.ones([b, d], tf.float32)
            return prod, valid, idx, rows

        def block_logits(prod):
            a = tf.reshape(prod[:, None, :] * ymod[None, :, :], [b * n, d])
            return a, tf.reshape(mm(a, zmod, transpose_b=True), [b, n, n])

        def weighted(x, valid):
            return x if valid is None else x * tf.reshape(valid, [-1] + [1] * (len(x.shape) - 1))

        def merge(run_max, run_sum, blk_max, blk_sum):
            """Running log-sum-exp update; ``blk_sum`` is relative to ``blk_max``."""
            new_max = tf.maximum(run_max, blk_max)
            safe = tf.where(tf.math.is_finite(new_max), new_max, tf.zeros_like(new_max))
            return new_max, run_sum * tf.exp(run_max - safe) + blk_sum * tf.exp(blk_max - safe)

        def fwd_body(i, *state):
            state = list(state)
            prod, valid, idx, _ = prefix_block(i * b)
            _, logits = block_logits(prod)
            row_max = tf.reduce_max(logits, axis=2)  # (b, n): over k
            row_sum = tf.reduce_sum(tf.exp(logits - row_max[:, :, None]), axis=2)  # each >= 1
            row_sum = weighted(row_sum, valid)
            col_max = tf.reduce_max(logits, axis=[0, 1])  # (n,): over (p, j)
            col_sum = tf.reduce_sum(weighted(tf.reduce_sum(tf.exp(logits - col_max), axis=1), valid), axis=0)
            # r_{M-2}: reduce the row statistics over p.
            y_max = tf.reduce_max(row_max, axis=0)
            y_sum = tf.reduce_sum(row_sum * tf.exp(row_max - y_max), axis=0)
            out = []
            # prefix modalities: per prefix tuple over j, then into each modality's rows.
            if num_prefix_mods:
                p_max = tf.reduce_max(row_max, axis=1)
                p_sum = tf.reduce_sum(row_sum * tf.exp(row_max - p_max[:, None]), axis=1)
                for k in range(num_prefix_mods):
                    run_max, run_sum = state[2 * k], state[2 * k + 1]
                    seg_max = tf.math.unsorted_segment_max(p_max, idx[k], n)
                    new_max = tf.maximum(run_max, seg_max)
                    add = tf.math.unsorted_segment_sum(p_sum * tf.exp(p_max - tf.gather(new_max, idx[k])), idx[k], n)
                    safe = tf.where(tf.math.is_finite(new_max), new_max, tf.zeros_like(new_max))
                    out += [new_max, run_sum * tf.exp(run_max - safe) + add]
            out += list(merge(state[-4], state[-3], y_max, y_sum))
            out += list(merge(state[-2], state[-1], col_max, col_sum))
            return (i + 1, *out)

        m_total = num_prefix_mods + 2
        init = []
        for _ in range(m_total):
            init += [tf.fill([n], neg_inf), tf.zeros([n], tf.float32)]
        out = tf.while_loop(lambda i, *_: i < num_blocks, fwd_body, (tf.constant(0), *init))
        lses = [out[1 + 2 * k] + tf.math.log(out[2 + 2 * k]) for k in range(m_total)]

        def grad_fn(*upstream):
            ups = [tf.zeros([n], tf.float32) if u is None else tf.cast(u, tf.float32) for u in upstream]
            lse_p, lse_y, lse_z = lses[:num_prefix_mods], lses[-2], lses[-1]
            g_y_up, g_z_up = ups[-2], ups[-1]

            def bwd_body(i, g_y, g_z, *g_prefix):
                prod, valid, idx, rows = prefix_block(i * b)
                a, logits = block_logits(prod)
                if num_prefix_mods:
                    lp = [tf.gather(lse_p[k], idx[k]) for k in range(num_prefix_mods)]
                    cp = lp[0]
                    for v in lp[1:]:
                        cp = tf.minimum(cp, v)
                    wp = 0.0
                    for k in range(num_prefix_mods):
                        wp = wp + tf.gather(ups[k], idx[k]) * tf.exp(cp - lp[k])
                    c = tf.minimum(lse_y[None, :], cp[:, None])  # (b, n): every such logit <= c
                    coef = g_y_up[None, :] * tf.exp(c - lse_y[None, :]) + wp[:, None] * tf.exp(c - cp[:, None])
                else:
                    c = tf.broadcast_to(lse_y[None, :], [b, n])
                    coef = tf.broadcast_to(g_y_up[None, :], [b, n])
                grad = coef[:, :, None] * tf.exp(logits - c[:, :, None]) + g_z_up * tf.exp(logits - lse_z)
                grad = weighted(grad, valid)
                g2 = tf.reshape(grad, [b * n, n])
                h = tf.reshape(mm(g2, zmod), [b, n, d])  # sum_k G[p, j, k] z_k
                g_y = g_y + tf.reduce_sum(h * prod[:, None, :], axis=0)
                g_z = g_z + mm(g2, a, transpose_a=True)
                g_prefix = list(g_prefix)
                if num_prefix_mods:
                    g_prod = tf.reduce_sum(h * ymod[None, :, :], axis=1)  # (b, d)
                    for k in range(num_prefix_mods):
                        partial = g_prod
                        for k2, rr in enumerate(rows):
                            if k2 != k:
                                partial = partial * rr
                        g_prefix[k] = g_prefix[k] + tf.math.unsorted_segment_sum(partial, idx[k], n)
                return (i + 1, g_y, g_z, *g_prefix)

            init = (tf.constant(0), tf.zeros_like(ymod), tf.zeros_like(zmod), *[tf.zeros_like(r) for r in prefix_mods])
            res = tf.while_loop(lambda i, *_: i < num_blocks, bwd_body, init)
            return (*res[3:], res[1], res[2])

        return tuple(lses), grad_fn

    return joint_fn
