"""ConFu: contrastive fusion, pairwise terms plus fused-pair-vs-third terms (Koutoupis et al.)."""

from __future__ import annotations

import itertools

import keras

from tf_mmcl.losses.base import (
    ContrastiveLoss,
    as_logit_scale,
    checked_inputs,
    combine_masks,
    fused_key,
    positive_number,
)
from tf_mmcl.ops import check_representations
from tf_mmcl.ops.checks import check_unit_norm as unit_norm_check
from tf_mmcl.ops.infonce import infonce_unchecked

__all__ = ["confu_loss", "ConFuLoss", "confu_pairs"]

#: ConFu's temperature in the authors' code is fixed at 0.07 (not learned).
CONFU_LOGIT_SCALE = 1.0 / 0.07


def _check_lam(lam):
    lam = positive_number(lam, "lam", allow_zero=True)
    if lam > 1.0:
        raise ValueError(f"lam must be in [0, 1] (the weight of the fused terms), got {lam!r}.")
    return lam


def confu_pairs(num_modalities):
    """The modality index pairs that get a fusion head, in order: (0, 1), (0, 2), (1, 2), ..."""
    return list(itertools.combinations(range(num_modalities), 2))


def confu_loss(
    representations, fused, logit_scale=CONFU_LOGIT_SCALE, lam=0.5, masks=None, check_finite=False, check_unit_norm=True
):
    """The ConFu objective of the authors' code, for any M >= 3.

    With ``L(u, v) = 0.5 * (CE(S) + CE(S^T))``, ``S = logit_scale * u v^T``:

    * pairwise terms ``P``: ``L(z_i, z_j)`` for every pair i < j;
    * fused terms ``F``: ``L(z_ij, z_k)`` for every fused pair (i, j) and every k not in it;
    * total ``(lam * sum(F) + (1 - lam) * sum(P)) / (|P| + |F|)``; for M = 3 that is the
      reference's ``[lam (3 fused) + (1 - lam) (3 pairwise)] / 6``. With ``lam = 0`` the
      reference returns ``sum(P) / |P|`` (``/3``, not ``/6``) and needs no fused embeddings;
      we do the same, so the value jumps by 2x between lam = 0 and lam -> 0+ exactly as there.

    Missing modalities: each term uses only the rows where every modality it involves is
    present (both for ``L(z_i, z_j)``; i, j and k for ``L(z_ij, z_k)``).

    Args:
        representations: list of M >= 3 unimodal (N, d) L2-normalised embeddings.
        fused: list of fused (N, d) embeddings in :func:`confu_pairs` order (or a dict keyed by
            index pair ``(i, j)``); may be ``None`` when ``lam == 0``.
        logit_scale: multiplier, fixed at 1/0.07 in the authors' code.
        lam: weight of the fused terms, in [0, 1].
        masks: optional list of M bool (N,) presence masks (``None`` entries: all present).
        check_finite: assert finiteness of every value inside ``tf.function`` too.
        check_unit_norm: refuse rows that are not L2-normalised (see
            :data:`tf_mmcl.ops.checks.UNIT_NORM_TOLERANCE`); ``False`` for deliberately
            unnormalised inputs (e.g. comparisons with reference code on raw vectors).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> r = np.eye(4, dtype="float32")
        >>> float(confu_loss([r, r, r], [r, r, r], logit_scale=100.0)) < 1e-3
        True
    """
    lam = _check_lam(lam)
    reps, masks = checked_inputs(
        representations, masks, unit_norm=check_unit_norm, min_modalities=3, check_finite_values=check_finite
    )
    scale = as_logit_scale(logit_scale)
    m = len(reps)
    pairs = confu_pairs(m)
    pair_total = 0.0
    for i, j in pairs:
        pair_total = pair_total + infonce_unchecked(reps[i], reps[j], scale, combine_masks(masks, (i, j)))
    if float(lam) == 0.0:
        return pair_total / len(pairs)
    if fused is None:
        raise ValueError("confu_loss needs the fused-pair embeddings when lam > 0.")
    if isinstance(fused, dict):
        missing = [p for p in pairs if tuple(p) not in fused]
        if missing:
            raise ValueError(f"fused is missing the pair(s) {missing}.")
        fused = [fused[p] for p in pairs]
    if not isinstance(fused, (list, tuple)) or len(fused) != len(pairs):
        got = len(fused) if isinstance(fused, (list, tuple)) else type(fused).__name__
        raise ValueError(f"fused must hold {len(pairs)} embeddings (one per pair {pairs}), got {got}.")
    # Shapes against the unimodal embeddings (norms on their own: absent rows are exempt).
    both = check_representations(
        list(reps[:1]) + list(fused), name="fused", unit_norm=False, check_finite_values=check_finite
    )
    fused = both[1:]
    if check_unit_norm:
        fused = unit_norm_check(
            fused,
            [f"fused[{k}]" for k in range(len(pairs))],
            None if masks is None else [combine_masks(masks, p) for p in pairs],
        )
    fused_total = 0.0
    num_fused_terms = 0
    for (i, j), z_ij in zip(pairs, fused):
        for k in range(m):
            if k in (i, j):
                continue
            fused_total = fused_total + infonce_unchecked(z_ij, reps[k], scale, combine_masks(masks, (i, j, k)))
            num_fused_terms += 1
    return (lam * fused_total + (1.0 - lam) * pair_total) / (len(pairs) + num_fused_terms)


@keras.saving.register_keras_serializable(package="tf_mmcl")
class ConFuLoss(ContrastiveLoss):
    """Keras loss for :func:`confu_loss`.

    ``y_pred`` holds the unimodal embeddings by modality and the fused ones under
    ``fused_key(a, b)`` (``"a+b"``, the two names in modality order). The default logit scale is
    the authors' fixed 1/0.07; a model with a learnable scale passes it as ``"logit_scale"``.

    Example:
        >>> import numpy as np
        >>> r = np.eye(4, dtype="float32")
        >>> y = {"a": r, "b": r, "c": r, "a+b": r, "a+c": r, "b+c": r, "logit_scale": 100.0}
        >>> float(ConFuLoss(lam=0.5)(None, y)) < 1e-3
        True
    """

    def __init__(
        self, lam=0.5, modalities=None, logit_scale=CONFU_LOGIT_SCALE, check_finite=False, name="confu_loss", **kwargs
    ):
        super().__init__(modalities=modalities, logit_scale=logit_scale, check_finite=check_finite, name=name, **kwargs)
        self.lam = _check_lam(lam)

    def call(self, y_true, y_pred):
        names, reps, scale, masks = self.split(y_pred)
        fused = None
        if self.lam > 0.0:
            fused = []
            for i, j in confu_pairs(len(names)):
                key = fused_key(names[i], names[j])
                if key not in y_pred:
                    raise ValueError(f"ConFuLoss needs the fused embedding {key!r} in y_pred when lam > 0.")
                fused.append(y_pred[key])
        return confu_loss(reps, fused, scale, lam=self.lam, masks=masks, check_finite=self.check_finite)

    def get_config(self):
        config = super().get_config()
        config["lam"] = self.lam
        return config
