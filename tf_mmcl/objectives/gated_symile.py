"""Gated Symile: Symile with a :class:`~tf_mmcl.layers.ContrastiveGate` that weighs each
modality per candidate (Rheude et al., "Hidden in the Multiplicative Interaction", 2026).

Options: ``negative_sampling="pair" | "n" | "n_squared"``, ``num_negatives`` (``"pair"`` only),
``distill_weight``, ``variance_scaling``, ``seed`` (of the gate and of the sampled negatives)
and the gate's options (``mode``, ``gate_type``, ``use_null``, ``neutral``, ``key_dim``,
``strength_logit_init``, ``renormalize``, ``temperature_init``).

Layers: the gate, kept on the model as ``model.gate``; ``call`` adds its weights
``"gate_weights/<target>"`` ((N, M), modality order) and the SavedModel export a
``gate_weights`` endpoint. The sampled negatives draw from ``model._loss_seed``.

Scores: the per-candidate gated MIP (:meth:`~tf_mmcl.layers.ContrastiveGate.gated_scores`).
An absent query modality (left out of the queries, or masked) is replaced by its neutral
direction with gate weight 0. Retrieval: the gate depends on the candidate, so the ungated
product of the queries only proposes a shortlist.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.keys import gate_weights_key
from tf_mmcl.layers import ContrastiveGate
from tf_mmcl.losses.base import positive_number
from tf_mmcl.losses.gated import GATED_NEGATIVE_SAMPLING, gated_symile_loss
from tf_mmcl.objectives.base import Objective, check_options
from tf_mmcl.objectives.registry import register

__all__ = ["GATE_OPTIONS", "GatedSymile"]

#: The gate's options (forwarded to ContrastiveGate) with their defaults.
GATE_OPTIONS = {
    "mode": "attention",
    "gate_type": "softmax",
    "use_null": True,
    "neutral": "random_trainable",
    "key_dim": 256,
    "strength_logit_init": -6.0,
    "renormalize": True,
    "temperature_init": 1.0,
}


@keras.saving.register_keras_serializable(package="tf_mmcl")
@register("gated_symile")
class GatedSymile(Objective):
    """Gated Symile (candidate-conditioned gate on the multilinear product).

    Example:
        >>> GatedSymile(key_dim=8).options["negative_sampling"]
        'pair'
    """

    defaults = dict(
        {
            "negative_sampling": "pair",
            "num_negatives": None,
            "distill_weight": 0.0,
            "variance_scaling": True,
            "seed": None,
        },
        **GATE_OPTIONS,
    )
    min_modalities = 3

    def validate(self, options):
        check_options(
            options,
            seeds=("seed",),
            ints=("num_negatives", "key_dim"),
            bools=("renormalize", "use_null", "variance_scaling"),
            strings=("negative_sampling", "mode", "gate_type", "neutral"),
        )
        positive_number(options["distill_weight"], "distill_weight", allow_zero=True)
        sampling = options["negative_sampling"]
        if sampling not in GATED_NEGATIVE_SAMPLING:
            raise ValueError(f"Unknown negative_sampling {sampling!r}; expected one of {GATED_NEGATIVE_SAMPLING}.")
        if options["num_negatives"] is not None and sampling != "pair":
            raise ValueError('num_negatives only applies to negative_sampling="pair".')
        return options

    def make_layers(self, modalities, embedding_dim):
        o = self.options
        gate = ContrastiveGate(
            list(modalities), seed=o["seed"], name="contrastive_gate", **{k: o[k] for k in GATE_OPTIONS}
        )
        # Fresh sampled negatives / permutations every step, reproducible from the seed.
        return {"gate": gate, "_loss_seed": keras.random.SeedGenerator(o["seed"], name="loss_seed")}

    def build(self, model, feature_shapes):
        if not model.gate.built:
            model.gate.build({n: (None, model.embedding_dim) for n in model.modalities})

    def embedding_outputs(self, model, embeddings, masks):
        weights = model.gate({n: embeddings[n] for n in model.modalities}, masks=masks or None)
        return {gate_weights_key(t): w for t, w in weights.items()}

    def export_endpoints(self, model):
        def gate_weights(embeddings):
            return {f"{t}_gate_weights": w for t, w in model.gate.gate_weights(embeddings).items()}

        return {"gate_weights": gate_weights}

    def loss(self, model, y_pred, masks, scale, permutations=None):
        # The loss function with the model's own gate and ``_loss_seed`` (not a GatedSymileLoss,
        # whose own seed generator would draw other negatives than existing models and
        # checkpoints do).
        self.check_permutations(permutations)
        o = self.options
        reps = {n: y_pred[n] for n in model.modalities}
        mask_dict = None if masks is None else {n: m for n, m in zip(model.modalities, masks) if m is not None}
        return gated_symile_loss(
            reps,
            model.gate,
            scale,
            negative_sampling=o["negative_sampling"],
            num_negatives=o["num_negatives"],
            distill_weight=o["distill_weight"],
            variance_scaling=o["variance_scaling"],
            masks=mask_dict,
            seed=model._loss_seed,
            modalities=model.modalities,
        )

    def similarity(self, model, queries, target, candidates, fused=None, query_masks=None):
        # Query modalities left out are missing: the gate puts their neutral direction in.
        b = ops.shape(next(iter(queries.values())))[0]
        full, masks = {}, dict(query_masks or {})
        for n in model.modalities:
            if n == target:
                continue
            if n in queries:
                full[n] = queries[n]
            else:
                full[n] = ops.zeros((b, model.embedding_dim), "float32")
                masks[n] = ops.zeros((b,), "bool")
        return model.gate.gated_scores(target, full, candidates, query_masks=masks or None)

    def reduces_exactly(self, model, names):
        return False

    def reduce_queries(self, model, target, embeddings, fused, masks):
        # The ungated Symile product: a shortlist the index re-scores with the gated score.
        return self._product(model, embeddings, masks)
