"""The pairwise (CLIP) objective with the negative Lp distance as similarity.

``S_ij = -logit_scale * ||r_a[i] - r_b[j]||_p ** p`` (``power=True``), then the same symmetric
InfoNCE as :func:`tf_mmcl.losses.clip_loss`, averaged over every pair of modalities. This is the
objective of the "Negate or Embrace" simulation (Cai et al., 2025, after Zimmermann et al.'s
``LpSimCLRLoss``: p = 2, ``pow=True``, tau = 1, unnormalised representations). Reached through
``clip_loss(..., similarity="lp", p=...)``, ``CLIPLoss(similarity="lp")`` or the model's
``objective="clip", similarity="lp"`` (with ``normalize=False`` for unnormalised embeddings).

Negatives (``negatives``):

* ``"cross_modal"`` (default): the other modality's rows of the same batch, as in CLIP.
* ``"independent"``: the authors' ``LpSimCLRLoss`` as their simulation calls it. The batch's
  first half holds the pairs and its second half an independent sample. A query ``a_k`` (first
  half of modality a) is scored against its partner ``b_k`` and against modality *a*'s own
  embeddings ``a'_l`` of the second half: ``pos_k = D(a_k, b_k)``,
  ``L_k = s * pos_k + log mean exp(-s * [D(a_k, a'_1), ..., D(a_k, a'_h), pos_k])`` (a mean over
  the h + 1 terms, so the value is ``log(h + 1)`` below the cross-entropy form, with the same
  gradients), and each modality pair takes ``0.5 * (mean_k L_k(a, b, a') + mean_k L_k(b, a, b'))``.
  An odd last row is left out. (Their code raises the signed differences to ``p`` for p >= 1,
  which is the Lp norm's p-th power only for even p; here it is ``|.| ** p`` for every p.)
"""

from __future__ import annotations

import itertools

from keras import ops

from tf_mmcl.losses.base import (
    as_logit_scale,
    checked_inputs,
    combine_masks,
    masked_mean,
    symmetric_infonce,
)
from tf_mmcl.ops.infonce import ABSENT_LOGIT
from tf_mmcl.ops.lp_distance import check_lp_order, lp_distance_matrix

__all__ = ["lp_clip_loss", "SIMILARITIES", "LP_NEGATIVES"]

# The pairwise objective's similarities: "cosine" (dot products of the L2-normalised embeddings,
# the default) and "lp" (negative Lp distance).
SIMILARITIES = ("cosine", "lp")
# Where the Lp objective's negatives come from: the other modality's rows of the batch (CLIP) or
# the query modality's own embeddings of an independent sample (the authors' LpSimCLRLoss).
LP_NEGATIVES = ("cross_modal", "independent")


def check_similarity(similarity, p):
    """Validates the pairwise objective's ``similarity`` / ``p`` options."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
    return check_lp_order(p)


def check_lp_negatives(negatives, similarity="lp"):
    """Validates the ``lp_negatives`` option (``"independent"`` needs ``similarity="lp"``)."""
    if negatives not in LP_NEGATIVES:
        raise ValueError(f"lp_negatives must be one of {LP_NEGATIVES}, got {negatives!r}.")
    if negatives != "cross_modal" and similarity != "lp":
        raise ValueError(
            f'lp_negatives={negatives!r} needs similarity="lp" (the cosine objective takes the other '
            'modality\'s rows as negatives): set similarity="lp" or keep lp_negatives="cross_modal".'
        )
    return negatives


def _lp_rows(a, b, p, power, eps=1e-12):
    """``D(a_k, b_k)`` row by row, the diagonal of :func:`lp_distance_matrix` (same ``eps`` use)."""
    diff = ops.abs(a - b)
    if p < 1.0:
        diff = diff + eps
    total = ops.sum(diff * diff if p == 2.0 else ops.power(diff, p), axis=-1)
    return total if power else ops.power(total + eps, 1.0 / p)


def _independent_term(query, partner, others, scale, p, power, valid=None, valid_others=None):
    """``mean_k [s * pos_k + log mean exp(-s * [D(q_k, o_l) for valid l] + [-s * pos_k])]``."""
    pos = scale * _lp_rows(query, partner, p, power)
    neg = -scale * lp_distance_matrix(query, others, p=p, power=power)
    count = ops.cast(ops.shape(others)[0], "float32")
    if valid_others is not None:
        neg = ops.where(ops.cast(valid_others, "bool")[None, :], neg, ABSENT_LOGIT)
        count = ops.sum(ops.cast(valid_others, "float32"))
    logits = ops.concatenate([neg, -pos[:, None]], axis=1)
    rows = pos + ops.logsumexp(logits, axis=1) - ops.log(count + 1.0)
    return masked_mean(rows, valid)


def _independent_loss(reps, masks, scale, p, power):
    n = reps[0].shape[0]
    if n is not None and n < 2:
        raise ValueError(
            'lp_negatives="independent" needs at least 2 rows (the pairs, then as many independent '
            f"samples); got a batch of {n}."
        )
    half = ops.shape(reps[0])[0] // 2
    first = [r[:half] for r in reps]
    second = [r[half : 2 * half] for r in reps]
    m1 = m2 = [None] * len(reps)
    if masks is not None:
        m1 = [None if m is None else m[:half] for m in masks]
        m2 = [None if m is None else m[half : 2 * half] for m in masks]
    pairs = list(itertools.combinations(range(len(reps)), 2))
    total = 0.0
    for i, j in pairs:
        valid = combine_masks(m1, (i, j))
        forward = _independent_term(first[i], first[j], second[i], scale, p, power, valid, m2[i])
        backward = _independent_term(first[j], first[i], second[j], scale, p, power, valid, m2[j])
        total = total + 0.5 * (forward + backward)
    return total / len(pairs)


def lp_clip_loss(
    representations, logit_scale, p=2.0, power=True, masks=None, check_finite=False, negatives="cross_modal"
):
    """Mean over modality pairs of the symmetric InfoNCE on ``-logit_scale * Lp distance``.

    Args:
        representations: list of M >= 2 (N, d) embeddings (not necessarily normalised).
        logit_scale: multiplier of the similarities (1 / tau; the paper uses 1).
        p: order of the distance (> 0; the paper uses 2).
        power: use ``||.||_p ** p`` (the paper) rather than ``||.||_p``.
        masks: optional list of M bool (N,) presence masks, as :func:`clip_loss`.
        check_finite: assert finiteness inside ``tf.function`` too.
        negatives: ``"cross_modal"`` (CLIP's) or ``"independent"`` (the authors' loss: the
            second half of the batch is the independent sample; see the module docstring).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> r = 10.0 * np.eye(4, dtype="float32")
        >>> round(float(lp_clip_loss([r, r], 1.0)), 4)
        0.0
        >>> a = np.array([[0.0], [1.0], [0.0], [2.0]], "float32")  # rows 2-3: the independent sample
        >>> round(float(lp_clip_loss([a, a], 1.0, negatives="independent")), 4)
        -0.4718
    """
    p = check_lp_order(p)
    check_lp_negatives(negatives)
    # Unnormalised embeddings are the point here: no unit-norm precondition.
    reps, masks = checked_inputs(representations, masks, unit_norm=False, check_finite_values=check_finite)
    scale = as_logit_scale(logit_scale)
    if negatives == "independent":
        return _independent_loss(reps, masks, scale, p, power)
    pairs = list(itertools.combinations(range(len(reps)), 2))
    total = 0.0
    for i, j in pairs:
        logits = -scale * lp_distance_matrix(reps[i], reps[j], p=p, power=power)
        total = total + symmetric_infonce(logits, combine_masks(masks, (i, j)))
    return total / len(pairs)
