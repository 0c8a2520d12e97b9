"""Lp distances between every query and every candidate: the similarity of "Negate or Embrace".

Cai et al. (2025)'s simulation, after Zimmermann et al. (2021)'s ``LpSimCLRLoss``, scores a pair
by ``-||a - b||_p ** p`` (``power=True``, their default, p = 2: the squared Euclidean distance)
between *unnormalised* representations, instead of the cosine. The pairwise objective takes it
as ``similarity="lp"`` (:func:`tf_mmcl.losses.clip_loss`).
"""

from __future__ import annotations

import math

from keras import ops

__all__ = ["lp_distance_matrix", "check_lp_order"]


def check_lp_order(p):
    """Returns ``p`` as a float, or raises if it is not a positive finite number."""
    try:
        value = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"p (the order of the Lp distance) must be a positive number, got {p!r}.") from None
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"p (the order of the Lp distance) must be a positive finite number, got {p!r}.")
    return value


def lp_distance_matrix(queries, candidates, p=2.0, power=True, eps=1e-12):
    """``D[i, j] = sum_k |q_ik - c_jk| ** p`` (``power=True``) or its p-th root, in float32.

    p = 2 with ``power=True`` takes the matmul form ``|q|^2 + |c|^2 - 2 q.c`` (clamped at 0),
    without the (B, C, d) difference tensor; other orders build it. ``eps`` keeps gradients
    finite where they are not at a zero difference: it is added to ``|q - c|`` for p < 1 and
    under the root for ``power=False``.

    Args:
        queries: (B, d).
        candidates: (C, d).
        p: order of the distance, > 0.
        power: return the p-th power of the Lp norm (the paper's default) instead of the norm.
        eps: see above.

    Returns:
        (B, C) float32 distances (>= 0; the similarity is their negative).

    Example:
        >>> import numpy as np
        >>> q = np.array([[0., 0.]], "float32"); c = np.array([[3., 4.], [1., 0.]], "float32")
        >>> lp_distance_matrix(q, c).numpy()
        array([[25.,  1.]], dtype=float32)
        >>> lp_distance_matrix(q, c, p=2, power=False).numpy()
        array([[5., 1.]], dtype=float32)
        >>> lp_distance_matrix(q, c, p=1).numpy()
        array([[7., 1.]], dtype=float32)
    """
    p = check_lp_order(p)
    q = ops.cast(ops.convert_to_tensor(queries), "float32")
    c = ops.cast(ops.convert_to_tensor(candidates), "float32")
    if len(q.shape) != 2 or len(c.shape) != 2:
        raise ValueError(
            f"lp_distance_matrix: queries and candidates must be (B, d) and (C, d), "
            f"got shapes {tuple(q.shape)} and {tuple(c.shape)}."
        )
    if q.shape[-1] is not None and c.shape[-1] is not None and int(q.shape[-1]) != int(c.shape[-1]):
        raise ValueError(
            f"lp_distance_matrix: embedding widths differ: queries {tuple(q.shape)}, candidates {tuple(c.shape)}."
        )
    if p == 2.0:
        q2 = ops.sum(q * q, axis=-1)[:, None]
        c2 = ops.sum(c * c, axis=-1)[None, :]
        total = ops.maximum(q2 + c2 - 2.0 * ops.matmul(q, ops.transpose(c)), 0.0)
    else:
        diff = ops.abs(q[:, None, :] - c[None, :, :])
        if p < 1.0:
            diff = diff + eps
        total = ops.sum(diff if p == 1.0 else ops.power(diff, p), axis=-1)
    if power:
        return total
    return ops.power(total + eps, 1.0 / p)
