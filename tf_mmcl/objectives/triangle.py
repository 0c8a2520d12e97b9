"""TRIANGLE: InfoNCE on minus the area of the triangle of exactly three modalities' embeddings.

Options: ``squared`` (True: the squared area), ``eps``.

Scores: ``-area(q_1, q_2, candidate)`` (2->1); 1->1 is the cosine. As GRAM, an absent query
modality cannot be filled and only complete rows take part in the loss; retrieval is exact for
one query and a proxy shortlist (normalised query sum) for two.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl import losses as losses_lib
from tf_mmcl import ops as sim
from tf_mmcl.objectives.base import check_options
from tf_mmcl.objectives.gram import VolumeObjective
from tf_mmcl.objectives.registry import register

__all__ = ["TRIANGLE"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
@register("triangle")
class TRIANGLE(VolumeObjective):
    """TRIANGLE (triangle area; exactly 3 modalities).

    Example:
        >>> TRIANGLE(squared=False).num_modalities
        3
    """

    defaults = {"squared": True, "eps": 1e-8}
    num_modalities = 3

    def validate(self, options):
        check_options(options, bools=("squared",))
        return options

    def make_loss(self, modalities):
        return losses_lib.TriangleLoss(squared=self.options["squared"], eps=self.options["eps"], modalities=modalities)

    def tuple_score(self, model, names, qs, candidates, fused):
        return -ops.transpose(
            sim.triangle_area_matrix(candidates, qs[0], qs[1], squared=self.options["squared"], eps=self.options["eps"])
        )
