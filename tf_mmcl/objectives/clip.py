"""CLIP: pairwise symmetric InfoNCE over every pair of modalities.

Options: ``similarity="cosine"`` (default) or ``"lp"`` (``-||a - b||_p ** p``, with ``p`` (2)
and ``lp_power`` (True; False: the norm itself)), ``normalize`` (True; False skips the L2
normalisation of the embeddings, as the Lp objective of "Negate or Embrace", and needs
``similarity="lp"``), and ``lp_negatives`` (``"cross_modal"``, CLIP's; ``"independent"``, with
``similarity="lp"``: the loss of the "Negate or Embrace" simulation, whose negatives are the
query modality's own embeddings of an independent sample -- the second half of each batch, so
a batch of 2B rows trains on B pairs; see :mod:`tf_mmcl.losses.lp_clip`).

Scores: the sum over query modalities of the pairwise similarity with the candidate (1->1:
the cosine). An absent query row adds 0. Retrieval: with the cosine the sum of the queries is
exact (``sum_m <q_m, c> = <sum_m q_m, c>``); the Lp score is not an inner product, so the sum
only proposes a shortlist that the index re-scores.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl import losses as losses_lib
from tf_mmcl import ops as sim
from tf_mmcl.losses.base import require_bool
from tf_mmcl.losses.lp_clip import check_lp_negatives, check_similarity
from tf_mmcl.objectives.base import Objective
from tf_mmcl.objectives.registry import register

__all__ = ["CLIP"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
@register("clip")
class CLIP(Objective):
    """Pairwise InfoNCE (CLIP), cosine or negative-Lp similarity.

    Example:
        >>> CLIP(similarity="lp", normalize=False).normalize_embeddings
        False
    """

    # similarity "lp": "Negate or Embrace"'s -||a - b||_p ** p (lp_power); normalize=False keeps
    # the embeddings unnormalised, as that paper's simulation.
    defaults = {"similarity": "cosine", "p": 2.0, "lp_power": True, "normalize": True, "lp_negatives": "cross_modal"}
    absent_query_value = 0.0

    def validate(self, options):
        options["p"] = check_similarity(options["similarity"], options["p"])
        if not isinstance(options["normalize"], bool):
            raise ValueError(f"normalize must be True or False, got {options['normalize']!r}.")
        if not options["normalize"] and options["similarity"] != "lp":
            raise ValueError(
                'normalize=False needs similarity="lp": the cosine objective takes '
                'L2-normalised embeddings (set similarity="lp" or keep normalize=True).'
            )
        require_bool(options["lp_power"], "lp_power")
        check_lp_negatives(options["lp_negatives"], options["similarity"])
        return options

    @property
    def normalize_embeddings(self):
        return self.options["normalize"]

    def make_loss(self, modalities):
        o = self.options
        return losses_lib.CLIPLoss(
            similarity=o["similarity"],
            p=o["p"],
            lp_power=o["lp_power"],
            lp_negatives=o["lp_negatives"],
            modalities=modalities,
        )

    def similarity(self, model, queries, target, candidates, fused=None, query_masks=None):
        if self.options["similarity"] != "lp":
            return super().similarity(model, queries, target, candidates, fused, query_masks)
        # Sum over query modalities of -||q - c||_p^p; an absent query row adds 0.
        names = list(queries)
        qs = [queries[n] for n in names]
        if query_masks:
            qs, fused = self.fill_absent(names, qs, fused, query_masks)
        total = 0.0
        for n, q in zip(names, qs):
            s = -sim.lp_distance_matrix(q, candidates, p=self.options["p"], power=self.options["lp_power"])
            if query_masks and query_masks.get(n) is not None:
                s = ops.where(ops.cast(query_masks[n], "bool")[:, None], s, 0.0)
            total = total + s
        return total

    def tuple_score(self, model, names, qs, candidates, fused):
        # Sum of pairwise cosine similarities.
        total = 0.0
        for q in qs:
            total = total + sim.dot_scores(q, candidates)
        return total

    def reduces_exactly(self, model, names):
        return self.options["similarity"] == "cosine"

    def reduce_queries(self, model, target, embeddings, fused, masks):
        return self._sum(model, embeddings, masks, fill=0.0)
