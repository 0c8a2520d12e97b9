"""Per-objective reduction of a query tuple to one vector for maximum-inner-product search.

One place maps an objective name to its :class:`QueryReduction` (:data:`REDUCTIONS`,
:func:`reduction_for`). A reduction turns the query embeddings of a batch (B rows of the
present query modalities, optional presence masks, ConFu's fused pair embeddings) into one
(B, D) vector per row:

* **exact** reductions satisfy ``similarity(queries, c) == <vector, c>`` for every candidate
  ``c`` (the model's own :meth:`~tf_mmcl.models.MultimodalContrastiveModel.score_embeddings`),
  so the top-k of ``<vector, c>`` *is* the model's top-k:

  - CLIP: the sum of pairwise cosines is ``<sum_m q_m, c>``; a missing query is 0, the
    neutral element of the sum.
  - Symile: the multilinear product is ``<prod_m q_m, c>``; a missing query is the all-ones
    vector, the neutral element of the product.
  - ConFu: one query modality: the cosine ``<q, c>``; two or more: the mean over query pairs
    of the fused pair embeddings (a pair with a missing member contributes 0, as in the
    model). With ``lam = 0`` there are no fusion heads; the vector is then read off the model
    itself by scoring the identity basis (the score is linear in ``c``), so it follows
    whatever the model does (today: the model's own "needs the fused embeddings" error).
  - GRAM / TRIANGLE with one query modality: the model scores 1->1 by the cosine.

* **proxy** reductions (GRAM / TRIANGLE with two or more queries: the volume is smallest for
  candidates near every query, so the normalised sum of the queries; Gated Symile: the
  ungated Symile product, since the gate depends on the candidate) only propose a shortlist;
  :class:`~tf_mmcl.retrieval.CandidateIndex` re-scores it with the model's own score and
  measures the shortlist's recall.

When objectives move into one module each, each module supplies its ``QueryReduction`` and
registers it here; the index and the serving export only use this interface.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["QueryReduction", "REDUCTIONS", "reduction_for"]


def _masked(q, mask, fill):
    if mask is None:
        return q
    return tf.where(tf.cast(mask, tf.bool)[:, None], q, tf.cast(fill, q.dtype))


class QueryReduction:
    """Base interface: ``exact(model, names)`` and ``vector(model, target, emb, fused, masks)``.

    Args (of :meth:`vector`):
        model: the :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
        target: the candidate modality.
        embeddings: dict present query modality -> (B, D) float32 L2-normalised embeddings.
        fused: dict ``"a+b"`` -> (B, D) fused pair embeddings (ConFu), possibly empty.
        masks: dict modality -> (B,) bool presence, possibly empty.

    Returns (of :meth:`vector`): (B, D) float32; the raw similarity (no logit scale) of an
    exact reduction is its inner product with a candidate.
    """

    name = None

    def exact(self, model, names):
        """True if the vector reproduces the model's similarity for the query modalities ``names``."""
        raise NotImplementedError

    def vector(self, model, target, embeddings, fused, masks):
        raise NotImplementedError

    @staticmethod
    def _ordered(model, embeddings):
        return [n for n in model.modalities if n in embeddings]


class SumReduction(QueryReduction):
    """CLIP: ``sum_m q_m`` (missing -> 0)."""

    name = "clip"

    def exact(self, model, names):
        return True

    def vector(self, model, target, embeddings, fused, masks):
        total = None
        for n in self._ordered(model, embeddings):
            q = _masked(tf.cast(embeddings[n], tf.float32), masks.get(n), 0.0)
            total = q if total is None else total + q
        return total


class ProductReduction(QueryReduction):
    """Symile: ``prod_m q_m`` (missing -> ones)."""

    name = "symile"

    def exact(self, model, names):
        return True

    def vector(self, model, target, embeddings, fused, masks):
        prod = None
        for n in self._ordered(model, embeddings):
            q = _masked(tf.cast(embeddings[n], tf.float32), masks.get(n), 1.0)
            prod = q if prod is None else prod * q
        return prod


def _identity_probe(model, target, embeddings, fused, masks):
    """The query vector of a score linear in the candidate: the scores of the identity basis."""
    basis = tf.eye(model.embedding_dim, dtype=tf.float32)
    return tf.cast(model.score_embeddings(embeddings, target, basis, fused_embeddings=fused or None,
                                          query_masks=masks or None), tf.float32)


class FusedReduction(QueryReduction):
    """ConFu: the cosine for one query, the mean of the fused pair embeddings for more."""

    name = "confu"

    def exact(self, model, names):
        return True

    def vector(self, model, target, embeddings, fused, masks):
        names = self._ordered(model, embeddings)
        if len(names) == 1:
            return _masked(tf.cast(embeddings[names[0]], tf.float32), masks.get(names[0]), 0.0)
        if not model.fusion_heads:  # lam = 0: follow the model's own convention
            return _identity_probe(model, target, embeddings, fused, masks)
        from tf_mmcl.losses.base import fused_key

        keys = [fused_key(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        missing = [k for k in keys if k not in fused]
        if missing:
            raise ValueError(f"ConFu (M-1)->1 retrieval needs the fused embeddings {missing}.")
        total = None
        for key in keys:
            v = tf.cast(fused[key], tf.float32)
            for member in key.split("+"):
                v = _masked(v, masks.get(member), 0.0)
            total = v if total is None else total + v
        return total / float(len(keys))


class VolumeProxy(QueryReduction):
    """GRAM / TRIANGLE: exact (cosine) for one query; otherwise the normalised query sum as proxy."""

    def __init__(self, name):
        self.name = name

    def exact(self, model, names):
        return len(names) == 1

    def vector(self, model, target, embeddings, fused, masks):
        if masks:
            raise ValueError(f"The {self.name} score needs every query modality; query_masks are not "
                             "supported for it (leave a missing modality out of the queries instead).")
        total = SumReduction().vector(model, target, embeddings, fused, {})
        return tf.math.l2_normalize(total, axis=-1)


class GatedProxy(QueryReduction):
    """Gated Symile: the gate depends on the candidate, so the ungated product is only a proxy."""

    name = "gated_symile"

    def exact(self, model, names):
        return False

    def vector(self, model, target, embeddings, fused, masks):
        return ProductReduction().vector(model, target, embeddings, fused, masks)


REDUCTIONS = {
    "clip": SumReduction(),
    "symile": ProductReduction(),
    "confu": FusedReduction(),
    "gram": VolumeProxy("gram"),
    "triangle": VolumeProxy("triangle"),
    "gated_symile": GatedProxy(),
}
"""Objective name -> :class:`QueryReduction`."""


def reduction_for(objective):
    """The :class:`QueryReduction` of an objective name (a model's ``objective``).

    Example:
        >>> reduction_for("symile").name
        'symile'
    """
    try:
        return REDUCTIONS[objective]
    except KeyError:
        raise ValueError(f"No query reduction for objective {objective!r}; known: {sorted(REDUCTIONS)}.") from None
