"""GRAM: InfoNCE on minus the Gram volume spanned by all modalities' embeddings.

Option: ``eps`` (floor under the Gram determinant).

Scores: ``-volume(queries, candidate)`` ((M-1)->1); 1->1 is the cosine. The volume needs every
vector, so an absent query modality cannot be filled (``query_masks`` are refused) and in the
loss only rows with every modality present take part. Retrieval: exact for one query modality;
for more, the normalised sum of the queries (the volume is smallest for candidates near every
query) only proposes a shortlist.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tf_mmcl import losses as losses_lib
from tf_mmcl import ops as sim
from tf_mmcl.objectives.base import Objective
from tf_mmcl.objectives.registry import register

__all__ = ["GRAM", "VolumeObjective"]


class VolumeObjective(Objective):
    """Shared scoring of the volume objectives (GRAM, TRIANGLE): no absent queries, proxy retrieval."""

    absent_query_value = None

    def reduces_exactly(self, model, names):
        return len(names) == 1

    def reduce_queries(self, model, target, embeddings, fused, masks):
        if masks:
            raise ValueError(
                f"The {self.name} score needs every query modality; query_masks are not "
                "supported for it (leave a missing modality out of the queries instead)."
            )
        return tf.math.l2_normalize(self._sum(model, embeddings, {}), axis=-1)


@keras.saving.register_keras_serializable(package="tf_mmcl")
@register("gram")
class GRAM(VolumeObjective):
    """GRAM (Gram volume).

    Example:
        >>> GRAM().options
        {'eps': 1e-08}
    """

    defaults = {"eps": 1e-8}

    def make_loss(self, modalities):
        return losses_lib.GRAMLoss(eps=self.options["eps"], modalities=modalities)

    def tuple_score(self, model, names, qs, candidates, fused):
        return -ops.transpose(sim.gram_volume_matrix(candidates, qs, eps=self.options["eps"]))
