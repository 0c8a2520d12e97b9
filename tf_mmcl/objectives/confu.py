"""ConFu: pairwise InfoNCE plus fused-pair-vs-third-modality terms.

Options: ``lam`` (0.5, the weight of the fused terms), ``fusion_hidden_dim``,
``fusion_layers`` (2), ``fusion_dropout`` (0.1), ``mask_ratio`` (0).

Layers: one :class:`~tf_mmcl.layers.FusionHead` per modality pair over the *encoder features*
(none when ``lam = 0``), kept on the model as ``model.fusion_heads`` (``"a+b"`` -> head); their
L2-normalised outputs are ``call``'s ``"a+b"`` outputs. The logit scale is fixed at 1/0.07
unless the model is given ``learn_logit_scale=True`` (as the authors' code).

Scores: 1->1 is the cosine; (M-1)->1 is the mean over query pairs of the fused pair embedding's
cosine with the candidate (with ``lam = 0`` there are no fusion heads and the objective is
CLIP's pairwise InfoNCE, so it scores like CLIP). An absent query row is 0 and a fused pair with
an absent member contributes 0. Retrieval: exact (the score is linear in the candidate).
"""

from __future__ import annotations

import itertools

import keras
import tensorflow as tf

from tf_mmcl import losses as losses_lib
from tf_mmcl import ops as sim
from tf_mmcl.keys import fused_key, split_fused_key
from tf_mmcl.layers import FusionHead
from tf_mmcl.losses.base import positive_number
from tf_mmcl.objectives.base import Objective, check_options, fill_absent
from tf_mmcl.objectives.registry import register

__all__ = ["ConFu"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
@register("confu")
class ConFu(Objective):
    """ConFu (contrastive fusion).

    Example:
        >>> ConFu(lam=0.25).learn_logit_scale
        False
    """

    defaults = {"lam": 0.5, "fusion_hidden_dim": None, "fusion_layers": 2, "fusion_dropout": 0.1, "mask_ratio": 0.0}
    min_modalities = 3
    learn_logit_scale = False
    absent_query_value = 0.0

    def validate(self, options):
        check_options(options, ints=("fusion_hidden_dim", "fusion_layers"), fractions=("fusion_dropout", "mask_ratio"))
        lam = positive_number(options["lam"], "lam", allow_zero=True)
        if lam > 1.0:
            raise ValueError(f"lam must be in [0, 1] (the weight of ConFu's fused terms), got {options['lam']!r}.")
        return options

    def make_layers(self, modalities, embedding_dim):
        o = self.options
        heads = {}
        if o["lam"] > 0:
            for i, j in itertools.combinations(range(len(modalities)), 2):
                heads[fused_key(modalities[i], modalities[j])] = FusionHead(
                    embedding_dim,
                    hidden_dim=o["fusion_hidden_dim"],
                    num_layers=o["fusion_layers"],
                    dropout=o["fusion_dropout"],
                    mask_ratio=o["mask_ratio"],
                    name=f"fusion_{modalities[i]}_{modalities[j]}",
                )
        return {"fusion_heads": heads}

    def build(self, model, feature_shapes):
        for key, head in model.fusion_heads.items():
            if not head.built:
                a, b = split_fused_key(key)
                head.build([feature_shapes[a], feature_shapes[b]])

    def feature_outputs(self, model, features, training=None):
        """The normalised fused embeddings of every pair whose two modalities are in ``features``."""
        out = {}
        for key, head in model.fusion_heads.items():
            a, b = split_fused_key(key)
            if a in features and b in features:
                out[key] = model.normalize(head([features[a], features[b]], training=training))
        return out

    def loss_keys(self, model):
        return list(model.fusion_heads)

    def make_loss(self, modalities):
        return losses_lib.ConFuLoss(lam=self.options["lam"], modalities=modalities)

    def tuple_score(self, model, names, qs, candidates, fused):
        if model.fusion_heads:
            pair_keys = [fused_key(a, b) for a, b in itertools.combinations(names, 2)]
            if fused is None or any(k not in fused for k in pair_keys):
                raise ValueError(f"ConFu (M-1)->1 scores need the fused embeddings {pair_keys}.")
            total = 0.0
            for k in pair_keys:
                total = total + sim.dot_scores(fused[k], candidates)
            return total / len(pair_keys)
        # lam = 0: no fusion heads, the objective is CLIP's pairwise InfoNCE: sum of cosines.
        total = 0.0
        for q in qs:
            total = total + sim.dot_scores(q, candidates)
        return total

    def reduces_exactly(self, model, names):
        return True

    def reduce_queries(self, model, target, embeddings, fused, masks):
        names = self._ordered(model, embeddings)
        if len(names) == 1:
            return fill_absent(tf.cast(embeddings[names[0]], tf.float32), masks.get(names[0]), 0.0)
        if not model.fusion_heads:  # lam = 0: follow the model's own score by probing it
            return _identity_probe(model, target, embeddings, fused, masks)
        keys = [fused_key(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        missing = [k for k in keys if k not in fused]
        if missing:
            raise ValueError(f"ConFu (M-1)->1 retrieval needs the fused embeddings {missing}.")
        total = None
        for key in keys:
            v = tf.cast(fused[key], tf.float32)
            for member in split_fused_key(key):
                v = fill_absent(v, masks.get(member), 0.0)
            total = v if total is None else total + v
        return total / float(len(keys))


def _identity_probe(model, target, embeddings, fused, masks):
    """The query vector of a score linear in the candidate: the scores of the identity basis."""
    basis = tf.eye(model.embedding_dim, dtype=tf.float32)
    return tf.cast(
        model.score_embeddings(embeddings, target, basis, fused_embeddings=fused or None, query_masks=masks or None),
        tf.float32,
    )
