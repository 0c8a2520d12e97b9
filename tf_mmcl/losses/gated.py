"""Gated Symile: the Symile objective with a :class:`~tf_mmcl.layers.gate.ContrastiveGate`
(Rheude et al., "Hidden in the Multiplicative Interaction", 2026).

The loss works with any gate object that has the layer's public interface (``modalities``,
``fill_missing``, ``gated_scores``, ``gate_tuple``); it does not import ``tf_mmcl.layers`` (losses
sit below layers). The per-candidate math is :mod:`tf_mmcl.ops.gated`.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tf_mmcl.losses.base import ContrastiveLoss, as_logit_scale, require_bool
from tf_mmcl.losses.symile import draw_permutations
from tf_mmcl.ops import check_representations, mip, shuffled_negative_logits, streamed_logsumexp

__all__ = [
    "GatedSymileLoss",
    "gated_symile_loss",
    "GATED_NEGATIVE_SAMPLING",
    "sample_candidate_indices",
    "variance_scale",
]

#: What the loss needs of a gate (the public interface of ContrastiveGate).
GATE_INTERFACE = ("modalities", "fill_missing", "gated_scores", "gate_tuple")

GATED_NEGATIVE_SAMPLING = ("pair", "n", "n_squared")


def variance_scale(dim, num_modalities):
    """Deterministic variance scaling ``d^((M-1)/2)`` of the authors' ``scale_mip_dvs``.

    A MIP of M random unit vectors in d dimensions has a standard deviation of order
    ``d^-((M-1)/2)``; multiplying by this factor brings the raw scores to order 1 before the
    logit scale.

    Example:
        >>> variance_scale(16, 3)
        16.0
    """
    return float(dim) ** ((num_modalities - 1) / 2.0)


def sample_candidate_indices(n, num_negatives, seed=None):
    """Candidate rows for the sampled "pair" path: (N, K+1) int32, row i = [i, K negatives].

    Negatives are drawn uniformly with replacement from the other N - 1 rows (a draw in
    [0, N-2] shifted past i), as the authors; K is clamped to N - 1 when N is static.

    Example:
        >>> idx = sample_candidate_indices(4, 2, seed=0)
        >>> tuple(idx.shape), [int(i) for i in idx[:, 0]]
        ((4, 3), [0, 1, 2, 3])
    """
    k = int(num_negatives)
    if isinstance(n, int):
        if n < 2:
            raise ValueError(f"sampled negatives need a batch of at least 2 rows, got {n}.")
        k = max(1, min(k, n - 1))
    neg = keras.random.randint((n, k), 0, n - 1, dtype="int32", seed=seed)
    pos = ops.arange(n, dtype="int32")[:, None]
    neg = neg + ops.cast(neg >= pos, "int32")  # skip the positive: uniform over the other rows
    return ops.concatenate([pos, neg], axis=1)


def candidate_counts(candidate_indices, num_candidates):
    """How often each candidate occurs in each row's sampled set: (N, C) float32 counts.

    Args:
        candidate_indices: (N, K+1) int indices into C candidates (e.g. from
            :func:`sample_candidate_indices`).
        num_candidates: C.

    Example:
        >>> import numpy as np
        >>> np.asarray(candidate_counts(np.array([[0, 2, 2], [1, 0, 2]]), 3)).tolist()
        [[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]]
    """
    idx = ops.cast(ops.convert_to_tensor(candidate_indices), "int32")
    rows = ops.broadcast_to(ops.arange(ops.shape(idx)[0], dtype="int32")[:, None], ops.shape(idx))
    pairs = ops.reshape(ops.stack([rows, idx], axis=-1), (-1, 2))
    ones = ops.ones((ops.shape(pairs)[0],), "float32")
    return ops.scatter(pairs, ones, (ops.shape(idx)[0], num_candidates))  # duplicates are summed


def _dense_sampling(n, num_negatives):
    """Whether the sampled "pair" loss scores every batch row and weighs columns by their counts.

    ``logsumexp`` over a row's K+1 sampled candidates (with repeats) equals
    ``logsumexp_c(logit[c] + log count[c])`` over all C batch rows, so when K+1 is a sizeable
    fraction of the batch, scoring all N x N pairs once is cheaper than gathering the sampled
    (N, K+1) entries of every per-candidate tensor (and their scatter-add gradients); with few
    negatives per row gathering is cheaper. Needs a static batch size.
    """
    return isinstance(n, int) and 2 * (min(int(num_negatives), n - 1) + 1) >= n


def check_gate(gate):
    """Raises ValueError unless ``gate`` has the public interface of a ContrastiveGate."""
    missing = [a for a in GATE_INTERFACE if not hasattr(gate, a)]
    if missing:
        raise ValueError(
            f"gate must be a ContrastiveGate (or have its interface {GATE_INTERFACE}), got "
            f"{type(gate).__name__} lacking {missing}."
        )
    return gate


def _weighted_mean(values, weights):
    """Mean of ``values`` over rows with weight 1 (all rows when ``weights`` is None); 0 if none."""
    if weights is None:
        return ops.mean(values)
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)


def gated_symile_loss(
    representations,
    gate,
    logit_scale,
    negative_sampling="pair",
    num_negatives=None,
    distill_weight=0.0,
    variance_scaling=True,
    masks=None,
    seed=None,
    modalities=None,
):
    """The Gated Symile objective (the authors' ``symile_gated``), for any M >= 3.

    For each target modality t (the mean over the targets is returned):

    * ``"pair"`` (the paper's candidate-conditioned path): row i scores each candidate c of the
      target modality by ``MIP(c, prod_{m != t} G_m(i, c))``, with the gate run on the tuple
      (candidate c, the other modalities of row i), so the weights differ for every candidate
      (:meth:`ContrastiveGate.gated_scores`; the math is
      :func:`tf_mmcl.ops.gated.gated_candidate_scores`); cross-entropy with the positive (row i's own
      target). With ``num_negatives=None`` the candidates of every row are all N target rows of
      the batch (deterministic). With an ``alpha -> 0`` gate this is then the plain
      "(M-1) -> 1" Symile loss: ``CE_i(S^T)`` for ``S[j, i] = MIP(t_j, others_i)``, i.e. for each
      row the cross-entropy of its (M-1)-modality query product against every target row.
      With ``num_negatives=K`` each row gets its positive plus K negatives drawn uniformly (with
      replacement) from the other rows of the batch (K is clamped to N - 1), as the authors.
    * ``"n"`` / ``"n_squared"`` (candidate-independent): each row's own tuple is gated once for
      target t (:meth:`ContrastiveGate.gate_tuple`), and the anchor-t term of
      :func:`tf_mmcl.losses.symile.symile_loss` is formed with the (ungated) target as anchor
      and the gated other modalities ("n": shuffled negatives with the same permutations
      ``symile_loss`` draws from ``seed``; "n_squared": every tuple of gated rows).

    Scores are multiplied by ``logit_scale * d^((M-1)/2)`` when ``variance_scaling`` (the authors'
    deterministic variance scaling, which they apply to their plain Symile and to retrieval as
    well; note that :func:`~tf_mmcl.losses.symile.symile_loss` does *not* apply it, so compare
    the two at the same effective scale). ``distill_weight`` adds, per target, the mean over the
    M modalities of the MSE between each present ungated embedding and its (stop-gradient) gated
    embedding in the row's own positive tuple (the target's own term is 0: the gate leaves the
    target untouched), pulling the ungated encoders toward what the gate keeps. The paper
    describes a 0.1-weighted term, but the authors' released code (TillmannRheude/gated_symile)
    computes none, so the default ``distill_weight=0`` reproduces that code; pass 0.1 for the
    paper's variant.

    Missing modalities (``masks[m][i]`` False) are replaced by their neutral direction with gate
    weight 0 (see :class:`ContrastiveGate`); rows whose target is missing are left out of that
    target's cross-entropy and missing entries out of the distillation term. A target missing in
    the whole batch contributes 0; nothing becomes NaN.

    Args:
        representations: dict name -> (N, D) L2-normalised embeddings, every gate modality.
        gate: a :class:`~tf_mmcl.layers.ContrastiveGate` over the same modalities (built on first
            use), or any object with its public interface (``GATE_INTERFACE``).
        logit_scale: multiplier of the (variance-scaled) scores (scalar, e.g. ``exp(log_scale)``).
        negative_sampling: ``"pair"``, ``"n"`` or ``"n_squared"``.
        num_negatives: K sampled negatives per row for ``"pair"``; ``None``: all other rows.
        distill_weight: weight (>= 0) of the distillation term.
        variance_scaling: multiply scores by ``d^((M-1)/2)``.
        masks: optional dict name -> (N,) bool, True = present.
        seed: int or ``keras.random.SeedGenerator`` for the sampled negatives ("pair" with K) or
            the "n" permutations.
        modalities: the targets whose losses are averaged (default: all ``gate.modalities``).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> from tf_mmcl.layers import ContrastiveGate
        >>> rng = np.random.default_rng(0)
        >>> reps = {}
        >>> for m in ["a", "b", "c"]:
        ...     x = rng.normal(size=(6, 8)).astype("float32")
        ...     reps[m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        >>> gate = ContrastiveGate(["a", "b", "c"], key_dim=8, seed=0)
        >>> loss = gated_symile_loss(reps, gate, logit_scale=1.0)
        >>> loss.shape, bool(np.isfinite(float(loss)))
        (TensorShape([]), True)
    """
    check_gate(gate)
    if negative_sampling not in GATED_NEGATIVE_SAMPLING:
        raise ValueError(f"Unknown negative_sampling {negative_sampling!r}; expected one of {GATED_NEGATIVE_SAMPLING}.")
    if num_negatives is not None:
        if negative_sampling != "pair":
            raise ValueError('num_negatives only applies to negative_sampling="pair".')
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
            raise ValueError(f"num_negatives must be a positive integer or None, got {num_negatives!r}.")
    if (
        isinstance(distill_weight, bool)
        or not isinstance(distill_weight, (int, float))
        or not math.isfinite(distill_weight)
        or distill_weight < 0
    ):
        raise ValueError(f"distill_weight must be a finite number >= 0, got {distill_weight!r}.")
    if not isinstance(representations, dict):
        raise ValueError(
            f"representations must be a dict of (N, D) embeddings keyed by modality, "
            f"got {type(representations).__name__}."
        )
    names = gate.modalities
    unknown = sorted(str(k) for k in representations if k not in names)
    if unknown:
        raise ValueError(f"representations: unknown modality name(s) {unknown}; the gate has {names}.")
    missing = [m for m in names if m not in representations]
    if missing:
        raise ValueError(f"representations: missing modality(ies) {missing}; the gate needs all of {names}.")
    if modalities is None:
        targets = list(names)
    else:
        if isinstance(modalities, str):
            modalities = [modalities]
        targets = [str(m) for m in modalities]
        bad = sorted(m for m in targets if m not in names)
        if bad:
            raise ValueError(f"modalities: unknown target name(s) {bad}; the gate has {names}.")
        if not targets or len(set(targets)) != len(targets):
            raise ValueError(f"modalities must be a non-empty list of distinct names, got {modalities!r}.")

    reps = check_representations([representations[m] for m in names], min_modalities=3)
    if isinstance(masks, dict):
        masks = {m: v for m, v in masks.items() if v is not None} or None
    tensors, presence = gate.fill_missing(dict(zip(names, reps)), masks)
    m_count = len(names)
    scale = as_logit_scale(logit_scale)
    if variance_scaling:
        d = reps[0].shape[1]
        scale = scale * variance_scale(int(d), m_count)
    n = ops.shape(reps[0])[0]
    n_static = None if reps[0].shape[0] is None else int(reps[0].shape[0])

    perms = None
    if negative_sampling == "n":
        perms = draw_permutations(m_count, n, seed)

    total = 0.0
    for target in targets:
        t = names.index(target)
        others = [names[i] for i in range(m_count) if i != t]
        present_t = presence[target]
        gated = None
        if negative_sampling == "pair":
            queries = {m: tensors[m] for m in others}
            query_masks = None if masks is None else {m: masks[m] for m in others if m in masks} or None
            if num_negatives is None:
                # (N, N): every target row of the batch is a candidate; the positive of row i is i.
                logits = scale * gate.gated_scores(target, queries, tensors[target], query_masks=query_masks)
                row_loss = ops.logsumexp(logits, axis=1) - ops.diagonal(logits)
            elif _dense_sampling(n_static, num_negatives):
                idx = sample_candidate_indices(n_static, num_negatives, seed)  # (N, K+1), positive in column 0
                logits = scale * gate.gated_scores(target, queries, tensors[target], query_masks=query_masks)
                # Counts are 0 (log = -inf: left out) or the column's multiplicity in the row's sample.
                weighted = logits + ops.log(candidate_counts(idx, n_static))
                row_loss = ops.logsumexp(weighted, axis=1) - ops.diagonal(logits)
            else:
                idx = sample_candidate_indices(n, num_negatives, seed)  # (N, K+1), positive in column 0
                logits = scale * gate.gated_scores(
                    target, queries, tensors[target], query_masks=query_masks, candidate_indices=idx
                )
                row_loss = ops.logsumexp(logits, axis=1) - logits[:, 0]
        else:
            gated = gate.gate_tuple(target, tensors, masks)
            anchor = tensors[target]
            other_list = [gated[m] for m in others]
            if negative_sampling == "n":
                logits = shuffled_negative_logits(scale * anchor, other_list, perms[t])
                row_loss = ops.logsumexp(logits, axis=1) - ops.diagonal(logits)
            else:
                lse = streamed_logsumexp(scale * anchor, other_list)
                row_loss = lse - scale * mip([anchor] + other_list)
        loss_t = _weighted_mean(row_loss, present_t)
        if distill_weight:
            if gated is None:
                gated = gate.gate_tuple(target, tensors, masks)
            distill = 0.0
            for m in others:
                err = ops.mean(ops.square(tensors[m] - ops.stop_gradient(gated[m])), axis=-1)
                distill = distill + _weighted_mean(err, presence[m])
            loss_t = loss_t + float(distill_weight) * distill / m_count
        total = total + loss_t
    return ops.cast(total / len(targets), "float32")


@keras.saving.register_keras_serializable(package="tf_mmcl")
class GatedSymileLoss(ContrastiveLoss):
    """Keras loss for :func:`gated_symile_loss` over a dict of embeddings keyed by modality.

    The gate is a layer with trainable weights: it must also be part of the model being trained
    (e.g. ``MultimodalContrastiveModel(objective="gated_symile")`` owns one as ``model.gate``),
    so that the optimizer updates it. ``get_config`` serialises the gate's config (not its
    weights); ``from_config`` builds a fresh gate from it. For the sampled negatives ("pair" with
    ``num_negatives``) and the "n" permutations the loss keeps a ``keras.random.SeedGenerator``,
    so every call draws fresh ones (reproducibly for a given ``seed``).

    Args:
        gate: a :class:`~tf_mmcl.layers.ContrastiveGate` (or an object with its interface).
        negative_sampling: ``"pair"``, ``"n"`` or ``"n_squared"``.
        num_negatives: sampled negatives per row for ``"pair"`` (None: every other batch row).
        distill_weight: weight (>= 0) of the distillation term.
        variance_scaling: multiply the scores by ``d^((M-1)/2)``.
        modalities: the targets whose losses are averaged (default: all gate modalities). The
            embeddings of ``y_pred`` must hold every gate modality.
        logit_scale: multiplier used when ``y_pred`` carries no ``"logit_scale"``.
        seed: int seed of the negatives' generator, or None.
        check_finite: see :class:`~tf_mmcl.losses.ContrastiveLoss`.
        name: the loss name.

    Example:
        >>> import numpy as np
        >>> from tf_mmcl.layers import ContrastiveGate
        >>> rng = np.random.default_rng(0)
        >>> reps = {}
        >>> for m in ["a", "b", "c"]:
        ...     x = rng.normal(size=(6, 8)).astype("float32")
        ...     reps[m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        >>> gate = ContrastiveGate(["a", "b", "c"], key_dim=8, seed=0)
        >>> loss = GatedSymileLoss(gate, num_negatives=3, seed=1, logit_scale=2.0)
        >>> value = loss(None, dict(reps, b_mask=np.array([1, 1, 0, 1, 1, 1], bool)))
        >>> value.shape, bool(np.isfinite(float(value)))
        (TensorShape([]), True)
        >>> GatedSymileLoss.from_config(loss.get_config()).num_negatives
        3
    """

    def __init__(
        self,
        gate,
        negative_sampling="pair",
        num_negatives=None,
        distill_weight=0.0,
        variance_scaling=True,
        modalities=None,
        logit_scale=1.0 / 0.07,
        seed=None,
        check_finite=False,
        name="gated_symile_loss",
        **kwargs,
    ):
        if isinstance(gate, dict):
            gate = keras.saving.deserialize_keras_object(gate)
        check_gate(gate)
        super().__init__(
            modalities=list(gate.modalities), logit_scale=logit_scale, check_finite=check_finite, name=name, **kwargs
        )
        if negative_sampling not in GATED_NEGATIVE_SAMPLING:
            raise ValueError(
                f"Unknown negative_sampling {negative_sampling!r}; expected one of {GATED_NEGATIVE_SAMPLING}."
            )
        if num_negatives is not None and (
            isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1
        ):
            raise ValueError(f"num_negatives must be a positive integer or None, got {num_negatives!r}.")
        if num_negatives is not None and negative_sampling != "pair":
            raise ValueError('num_negatives only applies to negative_sampling="pair".')
        if (
            isinstance(distill_weight, bool)
            or not isinstance(distill_weight, (int, float))
            or not math.isfinite(distill_weight)
            or distill_weight < 0
        ):
            raise ValueError(f"distill_weight must be a finite number >= 0, got {distill_weight!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}.")
        if modalities is not None:
            targets = [modalities] if isinstance(modalities, str) else [str(m) for m in modalities]
            bad = sorted(m for m in targets if m not in gate.modalities)
            if bad or not targets or len(set(targets)) != len(targets):
                raise ValueError(
                    f"modalities must be distinct target names among {list(gate.modalities)}, got {modalities!r}."
                )
            modalities = targets
        self.gate = gate
        self.negative_sampling = negative_sampling
        self.num_negatives = num_negatives
        self.distill_weight = float(distill_weight)
        self.variance_scaling = require_bool(variance_scaling, "variance_scaling")
        self.targets = modalities
        self.seed = seed
        sampled = negative_sampling == "n" or (negative_sampling == "pair" and num_negatives is not None)
        self._seed_generator = keras.random.SeedGenerator(seed) if sampled else None

    def call(self, y_true, y_pred):
        names, reps, scale, masks = self.split(y_pred)
        mask_dict = None if masks is None else {n: m for n, m in zip(names, masks) if m is not None}
        return gated_symile_loss(
            dict(zip(names, reps)),
            self.gate,
            scale,
            negative_sampling=self.negative_sampling,
            num_negatives=self.num_negatives,
            distill_weight=self.distill_weight,
            variance_scaling=self.variance_scaling,
            masks=mask_dict,
            seed=self._seed_generator,
            modalities=self.targets,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("modalities", None)  # the gate's modalities
        config.update(
            {
                "gate": keras.saving.serialize_keras_object(self.gate),
                "negative_sampling": self.negative_sampling,
                "num_negatives": self.num_negatives,
                "distill_weight": self.distill_weight,
                "variance_scaling": self.variance_scaling,
                "modalities": self.targets,
                "seed": self.seed,
            }
        )
        return config
