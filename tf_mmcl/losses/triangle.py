"""TRIANGLE: contrastive alignment by triangle area, for exactly three modalities."""

from __future__ import annotations

import keras

from tf_mmcl.losses.base import (
    ContrastiveLoss,
    as_logit_scale,
    checked_inputs,
    combine_masks,
    positive_number,
    require_bool,
    symmetric_infonce,
)
from tf_mmcl.ops import triangle_area_matrix

__all__ = ["triangle_loss", "TriangleLoss"]


def triangle_loss(
    representations, logit_scale, squared=True, eps=1e-8, masks=None, check_finite=False, check_unit_norm=True
):
    """Symmetric InfoNCE on ``-logit_scale * area``, averaged over the three anchor choices.

    Anchors (a; b, c), (b; a, c), (c; a, b) as the Gated Symile authors' baseline; ``area[i, j]``
    is the area of the triangle (anchor_i, b_j, c_j) (``squared=True``: the squared-area
    surrogate ``0.5 * det``, their default). Defined for M = 3 only. Missing modalities: only
    rows with all three present take part.

    Note: the reference's "efficient" area matrix pairs ``b_i . c_j`` where its own naive form
    (and the geometry) needs ``b_j . c_j``; we follow the geometry (equal to their naive
    ``compute_triangle_area_matrix``). See ``tests/losses/test_golden.py``.

    Args:
        representations: list of exactly 3 (N, d) L2-normalised embeddings.
        logit_scale: multiplier (scalar).
        squared: squared-area surrogate (default) or the area itself.
        eps: added under the square root when ``squared=False``.
        masks: optional list of 3 bool (N,) presence masks (``None`` entries: all present).
        check_finite: assert finiteness of every value inside ``tf.function`` too.
        check_unit_norm: refuse rows that are not L2-normalised (see
            :data:`tf_mmcl.ops.checks.UNIT_NORM_TOLERANCE`); ``False`` for deliberately
            unnormalised inputs (e.g. comparisons with reference code on raw vectors).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> def unit(x): return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")
        >>> a = unit(rng.normal(size=(8, 16)))
        >>> b, c = (unit(a + 0.1 * rng.normal(size=a.shape)) for _ in range(2))
        >>> aligned = float(triangle_loss([a, b, c], 10.0))
        >>> shuffled = float(triangle_loss([a, b, c[::-1]], 10.0))  # c's rows no longer match a's
        >>> aligned < shuffled
        True
    """
    squared = require_bool(squared, "squared")
    eps = positive_number(eps, "eps")
    reps, masks = checked_inputs(
        representations,
        masks,
        unit_norm=check_unit_norm,
        min_modalities=3,
        max_modalities=3,
        check_finite_values=check_finite,
    )
    scale = as_logit_scale(logit_scale)
    valid = combine_masks(masks, range(3))
    total = 0.0
    for a in range(3):
        b, c = [r for j, r in enumerate(reps) if j != a]
        area = triangle_area_matrix(reps[a], b, c, squared=squared, eps=eps)
        total = total + symmetric_infonce(-scale * area, valid)
    return total / 3.0


@keras.saving.register_keras_serializable(package="tf_mmcl")
class TriangleLoss(ContrastiveLoss):
    """Keras loss for :func:`triangle_loss` over a dict of three embeddings keyed by modality.

    Identical modalities are not a zero-loss input: with ``b_j == c_j`` every candidate area
    is 0, all logits tie and the loss is ``log N``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> def unit(x): return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")
        >>> a = unit(rng.normal(size=(8, 16)))
        >>> b, c = (unit(a + 0.1 * rng.normal(size=a.shape)) for _ in range(2))
        >>> aligned = float(TriangleLoss()(None, {"a": a, "b": b, "c": c}))
        >>> shuffled = float(TriangleLoss()(None, {"a": a, "b": b, "c": c[::-1]}))  # c's rows no longer match a's
        >>> aligned < shuffled
        True
    """

    def __init__(
        self,
        modalities=None,
        logit_scale=1.0 / 0.07,
        squared=True,
        eps=1e-8,
        check_finite=False,
        name="triangle_loss",
        **kwargs,
    ):
        super().__init__(modalities=modalities, logit_scale=logit_scale, check_finite=check_finite, name=name, **kwargs)
        if modalities is not None and len(modalities) != 3:
            raise ValueError(f"TRIANGLE is defined for exactly 3 modalities, got {list(modalities)}.")
        self.squared = require_bool(squared, "squared")
        self.eps = positive_number(eps, "eps")

    def call(self, y_true, y_pred):
        _, reps, scale, masks = self.split(y_pred)
        return triangle_loss(
            reps, scale, squared=self.squared, eps=self.eps, masks=masks, check_finite=self.check_finite
        )

    def get_config(self):
        config = super().get_config()
        config.update({"squared": self.squared, "eps": self.eps})
        return config
