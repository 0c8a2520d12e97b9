"""Tiny models of every objective for the retrieval tests."""

import numpy as np

import tf_mmcl

MODALITIES = ("a", "b", "c")


def tiny_model(objective, n=40, seed=0, **options):
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in MODALITIES},
        embedding_dim=8,
        objective=objective,
        **options,
    )
    rng = np.random.default_rng(seed)
    x = {m: rng.normal(size=(n, 5)).astype("float32") for m in MODALITIES}
    model(x)
    return model, x


def model_top_k(model, queries, modality, candidates, k, query_masks=None):
    """Exhaustive reference: rank model.score row by row (lower position first among ties)."""
    scores = np.asarray(model.score(queries, modality, candidates, query_masks=query_masks))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


def assert_exact_top_k(model, queries, modality, candidates, scores, positions, query_masks=None, atol=1e-4):
    """``(scores, positions)`` is a top-k of ``model.score`` row by row, up to float ties.

    Tiny random ReLU encoders give (near-)duplicate embeddings, so equal-score candidates may
    come in either order: the check is that every returned candidate carries its exhaustive
    score, the scores are the exhaustive top-k values, and no candidate repeats.
    """
    full = np.asarray(model.score(queries, modality, candidates, query_masks=query_masks))
    k = positions.shape[1]
    ref = -np.sort(-full, axis=1)[:, :k]
    np.testing.assert_allclose(np.take_along_axis(full, positions, 1), scores, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(scores, ref, rtol=1e-5, atol=atol)
    assert all(len(set(row.tolist())) == k for row in positions)
