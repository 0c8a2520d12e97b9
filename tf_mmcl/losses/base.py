"""Pieces every objective shares: cross-entropy with diagonal positives, the logit-scale
argument, and the Keras ``Loss`` base that reads a dict of embeddings keyed by modality."""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = [
    "LOGIT_SCALE_KEY",
    "ContrastiveLoss",
    "as_logit_scale",
    "diagonal_cross_entropy",
    "fused_key",
    "symmetric_infonce",
]

#: Key under which a model passes its (clamped, exponentiated) logit scale in ``y_pred``.
LOGIT_SCALE_KEY = "logit_scale"


def fused_key(first, second):
    """Name of the ConFu fused embedding of two modalities, e.g. ``"image+audio"``."""
    return f"{first}+{second}"


def as_logit_scale(logit_scale):
    """The multiplier applied to similarities, as a float32 scalar tensor."""
    s = ops.cast(ops.convert_to_tensor(logit_scale), "float32")
    if len(s.shape) > 1 or (len(s.shape) == 1 and s.shape[0] not in (1, None)):
        raise ValueError(f"logit_scale must be a scalar, got shape {tuple(s.shape)}.")
    return ops.reshape(s, ())


def diagonal_cross_entropy(logits):
    """Mean over rows of CE(logits[i], label=i): ``mean_i(logsumexp(logits[i]) - logits[i, i])``.

    Works for non-square (N, C >= N) logits too (positives at column i).
    """
    logits = ops.cast(logits, "float32")
    n = ops.shape(logits)[0]
    positive = ops.take_along_axis(logits, ops.expand_dims(ops.arange(n), 1), axis=1)[:, 0]
    return ops.mean(ops.logsumexp(logits, axis=1) - positive)


def symmetric_infonce(logits):
    """``0.5 * (CE(S) + CE(S^T))`` with positives on the diagonal of the square ``S``."""
    return 0.5 * (diagonal_cross_entropy(logits) + diagonal_cross_entropy(ops.transpose(logits)))


class ContrastiveLoss(keras.losses.Loss):
    """Base for the Keras objectives: ``y_pred`` is a dict of (N, d) embeddings by modality.

    ``y_true`` is ignored (positives are the aligned rows). A learnable scale travels in
    ``y_pred["logit_scale"]``; without it the constructor's fixed ``logit_scale`` is used.

    Args:
        modalities: modality names in the order the objective uses (anchor order, index order
            of "others"). ``None``: the insertion order of ``y_pred``'s keys.
        logit_scale: multiplier used when ``y_pred`` carries none.
        check_finite: inside ``tf.function``, assert the embeddings are finite (see
            ``tf_mmcl.ops.checks``); eager calls always check.
    """

    #: Keys of ``y_pred`` that are not modality embeddings.
    reserved_keys = (LOGIT_SCALE_KEY,)

    def __init__(self, modalities=None, logit_scale=1.0 / 0.07, check_finite=False,
                 name=None, reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if modalities is not None:
            modalities = [str(m) for m in modalities]
            bad = [m for m in modalities if "+" in m or m == LOGIT_SCALE_KEY]
            if bad:
                raise ValueError(f"Modality names may not contain '+' or be {LOGIT_SCALE_KEY!r}: {bad}.")
            if len(set(modalities)) != len(modalities):
                raise ValueError(f"modalities contains duplicates: {modalities}.")
        self.modalities = modalities
        if not isinstance(logit_scale, (int, float)) or not math.isfinite(logit_scale) or logit_scale <= 0:
            raise ValueError(f"logit_scale must be a positive finite number, got {logit_scale!r}.")
        self.logit_scale = float(logit_scale)
        self.check_finite = bool(check_finite)

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The objective is a scalar over the whole batch: no per-sample weights or reduction.
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not support sample_weight.")
        return self.call(y_true, y_pred)

    def split(self, y_pred):
        """Returns (names, list of embeddings in order, logit scale tensor)."""
        if not isinstance(y_pred, dict):
            raise TypeError(
                f"{type(self).__name__} expects y_pred as a dict of embeddings keyed by modality, "
                f"got {type(y_pred).__name__}.")
        available = [k for k in y_pred if k not in self.reserved_keys and not self._is_extra_key(k)]
        if self.modalities is None:
            names = available
        else:
            unknown = sorted(set(available) - set(self.modalities))
            if unknown:
                raise ValueError(f"Unknown modality name(s) {unknown}; this loss expects {self.modalities}.")
            missing = [m for m in self.modalities if m not in y_pred]
            if missing:
                raise ValueError(f"Missing embeddings for modality(ies) {missing}; got keys {sorted(y_pred)}.")
            names = list(self.modalities)
        scale = y_pred.get(LOGIT_SCALE_KEY, self.logit_scale)
        return names, [y_pred[n] for n in names], as_logit_scale(scale)

    def _is_extra_key(self, key):
        # Fused-pair embeddings ("a+b") travel in the same dict; modality names never hold "+".
        return "+" in key

    def get_config(self):
        config = super().get_config()
        config.update({
            "modalities": self.modalities,
            "logit_scale": self.logit_scale,
            "check_finite": self.check_finite,
        })
        return config
