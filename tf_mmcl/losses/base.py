"""Pieces every objective shares: cross-entropy with diagonal positives, the logit-scale
argument, and the Keras ``Loss`` base that reads a dict of embeddings keyed by modality."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from tf_mmcl.keys import FUSED_SEPARATOR, LOGIT_SCALE_KEY, fused_key, is_fused_key, is_mask_key, mask_key
from tf_mmcl.ops.checks import check_logit_scale, check_presence_masks, check_representations
from tf_mmcl.ops.infonce import ABSENT_LOGIT

__all__ = [
    "LOGIT_SCALE_KEY",
    "ContrastiveLoss",
    "as_logit_scale",
    "check_masks",
    "checked_inputs",
    "combine_masks",
    "diagonal_cross_entropy",
    "fused_key",
    "masked_mean",
    "positive_number",
    "require_bool",
    "symmetric_infonce",
]

# LOGIT_SCALE_KEY and fused_key are defined in tf_mmcl.keys (the batch-key protocol) and
# re-exported here.


def as_logit_scale(logit_scale):
    """The multiplier applied to similarities, as a float32 scalar tensor.

    Refused unless a finite number > 0 (checked at once for numbers and eager tensors, by a
    run-time assertion inside ``tf.function``; see :func:`tf_mmcl.ops.checks.check_logit_scale`).
    """
    return check_logit_scale(logit_scale)


def positive_number(value, name, allow_zero=False):
    """``float(value)``, refused unless a finite real number > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return v


def positive_int_or_none(value, name):
    """Refuses ``value`` unless ``None`` or an integer >= 1 (bools are not integers here)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")


def require_bool(value, name):
    """``value`` if it is a real bool (NumPy bools too); a string such as ``"false"`` is an error."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(
        f"{name} must be True or False, got {type(value).__name__} {value!r}"
        + (': a string is not parsed ("false" would read as True).' if isinstance(value, str) else ".")
    )


def checked_inputs(representations, masks=None, **kwargs):
    """Validated (float32 embeddings, bool masks or None) for an objective (see ``check_representations``)."""
    if masks is None:
        return check_representations(representations, **kwargs), None
    if isinstance(representations, (list, tuple)) and (
        not isinstance(masks, (list, tuple)) or len(masks) != len(representations)
    ):
        check_presence_masks(masks, len(representations))  # raises the clear error
    reps, masks = check_representations(representations, masks=masks, **kwargs)
    if all(mk is None for mk in masks):
        masks = None
    return reps, masks


def masked_mean(values, valid=None):
    """Mean of ``values`` over rows where ``valid`` (all rows when ``None``); 0 if none valid."""
    if valid is None:
        return ops.mean(values)
    w = ops.cast(valid, "float32")
    return ops.sum(values * w) / ops.maximum(ops.sum(w), 1.0)


def diagonal_cross_entropy(logits, valid=None):
    """Mean over rows of CE(logits[i], label=i): ``mean_i(logsumexp(logits[i]) - logits[i, i])``.

    Works for non-square (N, C >= N) logits too (positives at column i).

    Args:
        logits: (N, C) float logits.
        valid: optional bool (N,): rows (and, for square logits, the matching candidate
            columns) that take part. Invalid rows are left out of the mean; invalid columns
            are no candidates. Rows with fewer than 2 valid candidates contribute 0.
    """
    logits = ops.cast(logits, "float32")
    if valid is not None:
        valid = ops.cast(valid, "bool")
        logits = ops.where(valid[None, :], logits, ABSENT_LOGIT)
    # ops.diagonal rather than a gather: its gradient is a cheap diagonal scatter.
    return masked_mean(ops.logsumexp(logits, axis=1) - ops.diagonal(logits), valid)


def symmetric_infonce(logits, valid=None):
    """``0.5 * (CE(S) + CE(S^T))`` with positives on the diagonal of the square ``S``.

    ``valid`` (bool (N,)) restricts both directions to the rows present in both modalities.
    Both directions share one masked logit matrix and its diagonal (the transpose direction is
    a log-sum-exp over axis 0, no transposed copy).
    """
    logits = ops.cast(logits, "float32")
    if valid is not None:
        valid = ops.cast(valid, "bool")
        pair = ops.logical_and(valid[:, None], valid[None, :])
        logits = ops.where(pair, logits, ABSENT_LOGIT)
    positive = ops.diagonal(logits)
    rows = ops.logsumexp(logits, axis=1) - positive
    cols = ops.logsumexp(logits, axis=0) - positive
    return 0.5 * (masked_mean(rows, valid) + masked_mean(cols, valid))


def combine_masks(masks, indices):
    """Logical AND of ``masks[i]`` for ``i`` in ``indices`` (``None`` entries mean all present)."""
    if masks is None:
        return None
    out = None
    for i in indices:
        m = masks[i]
        if m is None:
            continue
        m = ops.cast(m, "bool")
        out = m if out is None else ops.logical_and(out, m)
    return out


def check_masks(masks, num_modalities, name="masks"):
    """Validates a list of optional (N,) presence masks, one per modality (bool, or int 0/1)."""
    return check_presence_masks(masks, num_modalities, name=name)


class ContrastiveLoss(keras.losses.Loss):
    """Base for the Keras objectives: ``y_pred`` is a dict of (N, d) embeddings by modality.

    ``y_true`` is ignored (positives are the aligned rows). A learnable scale travels in
    ``y_pred["logit_scale"]``; without it the constructor's fixed ``logit_scale`` is used.
    Presence masks travel as ``y_pred["<modality>_mask"]`` (bool (N,)); keys holding ``+``
    (ConFu's fused pairs) are not modalities either.

    Args:
        modalities: modality names in the order the objective uses (anchor order, index order
            of "others"). ``None``: the insertion order of ``y_pred``'s keys.
        logit_scale: multiplier used when ``y_pred`` carries none.
        check_finite: inside ``tf.function``, assert the embeddings are finite (see
            ``tf_mmcl.ops.checks``); eager calls always check.
    """

    #: Keys of ``y_pred`` that are not modality embeddings.
    reserved_keys = (LOGIT_SCALE_KEY,)

    def __init__(
        self,
        modalities=None,
        logit_scale=1.0 / 0.07,
        check_finite=False,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if modalities is not None:
            modalities = [str(m) for m in modalities]
            bad = [m for m in modalities if is_fused_key(m) or m == LOGIT_SCALE_KEY]
            if bad:
                raise ValueError(
                    f"Modality names may not contain '{FUSED_SEPARATOR}' or be {LOGIT_SCALE_KEY!r}: {bad}."
                )
            if len(set(modalities)) != len(modalities):
                raise ValueError(f"modalities contains duplicates: {modalities}.")
        self.modalities = modalities
        self.logit_scale = positive_number(logit_scale, "logit_scale")
        self.check_finite = require_bool(check_finite, "check_finite")

    def __call__(self, y_true, y_pred, sample_weight=None):
        # The objective is a scalar over the whole batch: no per-sample weights or reduction.
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not support sample_weight.")
        return self.call(y_true, y_pred)

    def split(self, y_pred):
        """Returns (names, embeddings in order, logit scale tensor, masks list or None)."""
        if not isinstance(y_pred, dict):
            raise TypeError(
                f"{type(self).__name__} expects y_pred as a dict of embeddings keyed by modality, "
                f"got {type(y_pred).__name__}."
            )
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
        masks = [y_pred.get(mask_key(n)) for n in names]
        masks = None if all(mk is None for mk in masks) else masks
        return names, [y_pred[n] for n in names], as_logit_scale(scale), masks

    def _is_extra_key(self, key):
        # Fused-pair embeddings ("a+b") travel in the same dict; modality names never hold "+".
        return is_fused_key(key) or is_mask_key(key)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "modalities": self.modalities,
                "logit_scale": self.logit_scale,
                "check_finite": self.check_finite,
            }
        )
        return config
