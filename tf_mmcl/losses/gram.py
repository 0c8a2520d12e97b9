"""GRAM: contrastive alignment by the Gram-determinant volume (Cicchetti et al., ICLR 2025)."""

from __future__ import annotations

import keras

from tf_mmcl.losses.base import (
    ContrastiveLoss,
    as_logit_scale,
    checked_inputs,
    combine_masks,
    positive_number,
    symmetric_infonce,
)
from tf_mmcl.ops import gram_volume_matrix

__all__ = ["gram_loss", "GRAMLoss"]


def gram_loss(representations, logit_scale, eps=1e-8, masks=None, check_finite=False, check_unit_norm=True):
    """Symmetric InfoNCE on ``-logit_scale * Vol``, averaged over the M anchor choices.

    For anchor m, ``Vol[i, j]`` is the Gram volume of ``(r_m[i], others[0][j], ...)`` with the
    other modalities in index order (:func:`tf_mmcl.ops.gram_volume_matrix`); the loss for that
    anchor is ``0.5 * (CE(L) + CE(L^T))`` with ``L = -logit_scale * Vol``. This is the GRAM
    baseline as the Gated Symile authors implement it, extended from M = 3 to any M >= 2.

    Missing modalities: a volume needs every vector, so only rows with all modalities present
    take part (as queries and as candidates).

    Args:
        representations: list of M >= 2 (N, d) L2-normalised embeddings.
        logit_scale: multiplier (scalar).
        eps: clamp of the Gram determinant before the square root.
        masks: optional list of M bool (N,) presence masks (``None`` entries: all present).
        check_finite: assert finiteness of every value inside ``tf.function`` too.
        check_unit_norm: refuse rows that are not L2-normalised (see
            :data:`tf_mmcl.ops.checks.UNIT_NORM_TOLERANCE`); ``False`` for deliberately
            unnormalised inputs (e.g. comparisons with reference code on raw vectors).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> r = [rng.normal(size=(6, 5)).astype("float32") for _ in range(3)]
        >>> r = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in r]  # L2-normalised rows
        >>> float(gram_loss(r, 1.0)) > 0
        True
    """
    eps = positive_number(eps, "eps")
    reps, masks = checked_inputs(representations, masks, unit_norm=check_unit_norm, check_finite_values=check_finite)
    scale = as_logit_scale(logit_scale)
    valid = combine_masks(masks, range(len(reps)))
    total = 0.0
    for a in range(len(reps)):
        others = [r for j, r in enumerate(reps) if j != a]
        total = total + symmetric_infonce(-scale * gram_volume_matrix(reps[a], others, eps=eps), valid)
    return total / len(reps)


@keras.saving.register_keras_serializable(package="tf_mmcl")
class GRAMLoss(ContrastiveLoss):
    """Keras loss for :func:`gram_loss` over a dict of embeddings keyed by modality.

    Identical modalities are not a zero-loss input: with ``b_j == c_j`` every candidate volume
    is 0, all logits tie and the loss is ``log N``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> def unit(x): return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")
        >>> a = unit(rng.normal(size=(8, 16)))
        >>> b, c = (unit(a + 0.1 * rng.normal(size=a.shape)) for _ in range(2))
        >>> aligned = float(GRAMLoss()(None, {"a": a, "b": b, "c": c}))
        >>> shuffled = float(GRAMLoss()(None, {"a": a, "b": b, "c": c[::-1]}))  # c's rows no longer match a's
        >>> aligned < shuffled
        True
    """

    def __init__(
        self, modalities=None, logit_scale=1.0 / 0.07, eps=1e-8, check_finite=False, name="gram_loss", **kwargs
    ):
        super().__init__(modalities=modalities, logit_scale=logit_scale, check_finite=check_finite, name=name, **kwargs)
        self.eps = positive_number(eps, "eps")

    def call(self, y_true, y_pred):
        _, reps, scale, masks = self.split(y_pred)
        return gram_loss(reps, scale, eps=self.eps, masks=masks, check_finite=self.check_finite)

    def get_config(self):
        config = super().get_config()
        config["eps"] = self.eps
        return config
