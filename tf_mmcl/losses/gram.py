"""GRAM: contrastive alignment by the Gram-determinant volume (Cicchetti et al., ICLR 2025)."""

from __future__ import annotations

import keras

from tf_mmcl.losses.base import ContrastiveLoss, as_logit_scale, check_masks, combine_masks, symmetric_infonce
from tf_mmcl.ops import check_representations, gram_volume_matrix

__all__ = ["gram_loss", "GRAMLoss"]


def gram_loss(representations, logit_scale, eps=1e-8, masks=None, check_finite=False):
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
        check_finite: assert finiteness inside ``tf.function`` too.

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> r = [rng.normal(size=(6, 5)).astype("float32") for _ in range(3)]
        >>> float(gram_loss(r, 1.0)) > 0
        True
    """
    reps = check_representations(representations, check_finite_values=check_finite)
    scale = as_logit_scale(logit_scale)
    masks = check_masks(masks, len(reps))
    valid = combine_masks(masks, range(len(reps)))
    total = 0.0
    for a in range(len(reps)):
        others = [r for j, r in enumerate(reps) if j != a]
        total = total + symmetric_infonce(-scale * gram_volume_matrix(reps[a], others, eps=eps), valid)
    return total / len(reps)


@keras.saving.register_keras_serializable(package="tf_mmcl")
class GRAMLoss(ContrastiveLoss):
    """Keras loss for :func:`gram_loss` over a dict of embeddings keyed by modality.

    Example:
        >>> import numpy as np
        >>> r = np.eye(4, dtype="float32")
        >>> float(GRAMLoss()(None, {"a": r, "b": r, "c": r, "logit_scale": 50.0})) < 1e-3
        True
    """

    def __init__(self, modalities=None, logit_scale=1.0 / 0.07, eps=1e-8, check_finite=False,
                 name="gram_loss", **kwargs):
        super().__init__(modalities=modalities, logit_scale=logit_scale, check_finite=check_finite,
                         name=name, **kwargs)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        _, reps, scale, masks = self.split(y_pred)
        return gram_loss(reps, scale, eps=self.eps, masks=masks, check_finite=self.check_finite)

    def get_config(self):
        config = super().get_config()
        config["eps"] = self.eps
        return config
