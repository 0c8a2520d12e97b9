"""Tiny models of every objective for the retrieval tests."""

import numpy as np

import tf_mmcl

MODALITIES = ("a", "b", "c")


def tiny_model(objective, lam=None, n=40, seed=0):
    options = {}
    if objective == "confu" and lam is not None:
        options["lam"] = lam
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in MODALITIES},
        embedding_dim=8, objective=objective, **options)
    rng = np.random.default_rng(seed)
    x = {m: rng.normal(size=(n, 5)).astype("float32") for m in MODALITIES}
    model(x)
    return model, x


def model_top_k(model, queries, modality, candidates, k, query_masks=None):
    """Exhaustive reference: rank model.score row by row (lower position first among ties)."""
    scores = np.asarray(model.score(queries, modality, candidates, query_masks=query_masks))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order
