"""The pairwise (CLIP) objective with the negative Lp distance as similarity.

``S_ij = -logit_scale * ||r_a[i] - r_b[j]||_p ** p`` (``power=True``), then the same symmetric
InfoNCE as :func:`tf_mmcl.losses.clip_loss`, averaged over every pair of modalities. This is the
objective of the "Negate or Embrace" simulation (Cai et al., 2025, after Zimmermann et al.'s
``LpSimCLRLoss``: p = 2, ``pow=True``, tau = 1, unnormalised representations). Reached through
``clip_loss(..., similarity="lp", p=...)``, ``CLIPLoss(similarity="lp")`` or the model's
``objective="clip", similarity="lp"`` (with ``normalize=False`` for unnormalised embeddings).

Differences from the authors' loss, which do not change what is optimised in the limit but are
worth knowing: their negatives for the query ``x_i`` are the *same modality*'s embeddings of an
independent batch ``x'_j`` (plus the positive), and they average the exponentials (log-mean-exp,
a constant ``log(N + 1)`` below a log-sum-exp); here the negatives are the other modality's rows
of the same batch, as in CLIP.
"""

from __future__ import annotations

import itertools

from tf_mmcl.losses.base import as_logit_scale, checked_inputs, combine_masks, symmetric_infonce
from tf_mmcl.ops.lp_distance import check_lp_order, lp_distance_matrix

__all__ = ["lp_clip_loss", "SIMILARITIES"]

# The pairwise objective's similarities: "cosine" (dot products of the L2-normalised embeddings,
# the default) and "lp" (negative Lp distance).
SIMILARITIES = ("cosine", "lp")


def check_similarity(similarity, p):
    """Validates the pairwise objective's ``similarity`` / ``p`` options."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
    return check_lp_order(p)


def lp_clip_loss(representations, logit_scale, p=2.0, power=True, masks=None, check_finite=False):
    """Mean over modality pairs of the symmetric InfoNCE on ``-logit_scale * Lp distance``.

    Args:
        representations: list of M >= 2 (N, d) embeddings (not necessarily normalised).
        logit_scale: multiplier of the similarities (1 / tau; the paper uses 1).
        p: order of the distance (> 0; the paper uses 2).
        power: use ``||.||_p ** p`` (the paper) rather than ``||.||_p``.
        masks: optional list of M bool (N,) presence masks, as :func:`clip_loss`.
        check_finite: assert finiteness inside ``tf.function`` too.

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> r = 10.0 * np.eye(4, dtype="float32")
        >>> round(float(lp_clip_loss([r, r], 1.0)), 4)
        0.0
    """
    p = check_lp_order(p)
    # Unnormalised embeddings are the point here: no unit-norm precondition.
    reps, masks = checked_inputs(representations, masks, unit_norm=False, check_finite_values=check_finite)
    scale = as_logit_scale(logit_scale)
    pairs = list(itertools.combinations(range(len(reps)), 2))
    total = 0.0
    for i, j in pairs:
        logits = -scale * lp_distance_matrix(reps[i], reps[j], p=p, power=power)
        total = total + symmetric_infonce(logits, combine_masks(masks, (i, j)))
    return total / len(pairs)
