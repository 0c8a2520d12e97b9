"""Symile: InfoNCE on the multilinear inner product (MIP) of all modalities.

Options: ``negative_sampling="n" | "n_squared"``, ``seed`` (of the sampled permutations),
``block_size`` (streaming block of the n_squared logits).

Scores: the MIP of the query modalities and the candidate ((M-1)->1 and 1->1 alike). An absent
query row is the all-ones vector, the neutral element of the product; an anchor's loss averages
over the rows where it is present. Retrieval: exact, ``MIP(q_1..q_k, c) = <prod_m q_m, c>``.
The model's ``symile_permutations`` hook (fixed permutations for ``"n"``) is honoured here.
"""

from __future__ import annotations

import keras

from tf_mmcl import losses as losses_lib
from tf_mmcl import ops as sim
from tf_mmcl.objectives.base import Objective, check_options
from tf_mmcl.objectives.registry import register

__all__ = ["Symile"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
@register("symile")
class Symile(Objective):
    """Symile (multilinear inner product).

    Example:
        >>> Symile(negative_sampling="n_squared").absent_query_value
        1.0
    """

    defaults = {"negative_sampling": "n", "seed": None, "block_size": None}
    absent_query_value = 1.0

    def validate(self, options):
        check_options(options, ints=("block_size",), strings=("negative_sampling",), seeds=("seed",))
        return options

    def make_loss(self, modalities):
        o = self.options
        return losses_lib.SymileLoss(
            negative_sampling=o["negative_sampling"], seed=o["seed"], block_size=o["block_size"], modalities=modalities
        )

    def check_permutations(self, permutations):
        if permutations is not None and self.options["negative_sampling"] != "n":
            super().check_permutations(permutations)

    def loss(self, model, y_pred, masks, scale, permutations=None):
        self.check_permutations(permutations)
        if permutations is None:
            return super().loss(model, y_pred, masks, scale)
        return losses_lib.symile_loss(
            [y_pred[n] for n in model.modalities], scale, "n", permutations=permutations, masks=masks
        )

    def tuple_score(self, model, names, qs, candidates, fused):
        return sim.mip_scores(qs, candidates)

    def reduces_exactly(self, model, names):
        return True

    def reduce_queries(self, model, target, embeddings, fused, masks):
        return self._product(model, embeddings, masks)
