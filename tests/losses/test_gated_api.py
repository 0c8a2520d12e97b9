"""Gated Symile's public API: the candidate-index path of ContrastiveGate.gated_scores and the
GatedSymileLoss Keras loss (config round trip, equality with the function, errors)."""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.test_gate import CONFIGS, build_gate, make_embeddings, np_candidate_scores, np_params
from tf_mmcl import losses
from tf_mmcl.losses import gated as gated_module
from tf_mmcl.losses.gated import GatedSymileLoss, gated_symile_loss


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_candidate_indices_match_gathered_candidates_and_numpy(cfg):
    """Pool + indices (projections once per pool row) == gathered (B, K, D) candidates, values and
    gradients w.r.t. every gate weight and the embeddings; both == the explicit numpy gate."""
    gate = build_gate(**cfg)
    emb = make_embeddings(seed=3)
    idx = np.random.default_rng(4).integers(0, len(emb["a"]), size=(len(emb["a"]), 4)).astype("int32")
    masks = {"b": np.array([1, 0, 1, 1, 1], bool)}
    variables = {m: tf.Variable(v) for m, v in emb.items()}

    def scores(use_indices):
        queries = {"b": variables["b"], "c": variables["c"]}
        if use_indices:
            return gate.gated_scores("a", queries, variables["a"], query_masks=masks, candidate_indices=idx)
        return gate.gated_scores("a", queries, tf.gather(variables["a"], idx), query_masks=masks)

    results = []
    for use_indices in (True, False):
        with tf.GradientTape() as tape:
            s = scores(use_indices)
            total = tf.reduce_sum(tf.sin(3.0 * s))
        watched = gate.trainable_weights + list(variables.values())
        grads = [tf.convert_to_tensor(g) if g is not None else None for g in tape.gradient(total, watched)]
        results.append((s.numpy(), grads))
    (s_idx, g_idx), (s_gat, g_gat) = results
    assert s_idx.shape == (5, 4)
    np.testing.assert_allclose(s_idx, s_gat, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_idx, g_gat):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    # the explicit (B, K, D) numpy gate, with the missing b rows filled by the neutral direction
    filled, _ = gate.fill_missing({"b": emb["b"], "c": emb["c"]}, masks, required=["b", "c"])
    ref, _ = np_candidate_scores(
        gate, np_params(gate), 0, {m: filled[m].numpy() for m in ("b", "c")}, emb["a"][idx].astype(np.float64)
    )
    # The numpy reference has no presence (a masked modality keeps its softmax weight there), so
    # compare the rows whose query modalities are all present.
    present = masks["b"]
    np.testing.assert_allclose(s_idx[present], ref[present], rtol=1e-4, atol=1e-5)


def test_candidate_indices_errors():
    gate = build_gate()
    emb = make_embeddings()
    queries = {"b": emb["b"], "c": emb["c"]}
    with pytest.raises(ValueError, match="candidate_indices must be integers"):
        gate.gated_scores("a", queries, emb["a"], candidate_indices=np.zeros((5, 2), "float32"))
    with pytest.raises(ValueError, match=r"candidate_indices must be \(B, K\)"):
        gate.gated_scores("a", queries, emb["a"], candidate_indices=np.zeros((5,), "int32"))
    with pytest.raises(ValueError, match="candidate_indices have 3 rows"):
        gate.gated_scores("a", queries, emb["a"], candidate_indices=np.zeros((3, 2), "int32"))
    with pytest.raises(ValueError, match="per-row candidates"):
        gate.gated_scores("a", queries, np.stack([emb["a"]] * 5), candidate_indices=np.zeros((5, 2), "int32"))


@pytest.mark.parametrize("sampling,num_negatives", [("pair", None), ("pair", 3), ("n", None), ("n_squared", None)])
def test_keras_loss_equals_the_function(sampling, num_negatives):
    gate = build_gate(gate_type="sigmoid")
    emb = make_embeddings(seed=5)
    masks = {"c": np.array([1, 1, 0, 1, 1], bool)}
    loss = GatedSymileLoss(
        gate, negative_sampling=sampling, num_negatives=num_negatives, distill_weight=0.2, logit_scale=3.0, seed=7
    )
    got = float(loss(None, dict(emb, c_mask=masks["c"])))
    # the same seed generator state: a fresh generator from the same seed
    seed = keras.random.SeedGenerator(7) if (sampling == "n" or num_negatives) else None
    ref = float(
        gated_symile_loss(
            emb,
            gate,
            3.0,
            negative_sampling=sampling,
            num_negatives=num_negatives,
            distill_weight=0.2,
            masks=masks,
            seed=seed,
        )
    )
    assert np.isfinite(got)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    # a learnable scale in y_pred replaces the constructor's
    scaled = float(GatedSymileLoss(gate, negative_sampling="n_squared")(None, dict(emb, logit_scale=3.0)))
    ref2 = float(gated_symile_loss(emb, gate, 3.0, negative_sampling="n_squared"))
    np.testing.assert_allclose(scaled, ref2, rtol=1e-5)


def test_keras_loss_config_round_trip_and_registration():
    gate = build_gate(mode="matrix")
    loss = GatedSymileLoss(
        gate,
        negative_sampling="pair",
        num_negatives=4,
        distill_weight=0.1,
        variance_scaling=False,
        modalities=["a", "c"],
        logit_scale=2.0,
        seed=3,
        name="g",
    )
    config = loss.get_config()
    assert config["gate"]["config"]["mode"] == "matrix"
    clone = GatedSymileLoss.from_config(config)
    assert clone.get_config() == config
    assert clone.gate.mode == "matrix" and clone.targets == ["a", "c"] and clone.num_negatives == 4
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(again, GatedSymileLoss) and again.get_config() == config
    assert losses.GatedSymileLoss is GatedSymileLoss
    assert keras.saving.get_registered_object("tf_mmcl>GatedSymileLoss") is GatedSymileLoss


def test_keras_loss_errors_name_the_argument():
    gate = build_gate()
    with pytest.raises(ValueError, match="gate must be a ContrastiveGate"):
        GatedSymileLoss("gate")
    with pytest.raises(ValueError, match="negative_sampling"):
        GatedSymileLoss(gate, negative_sampling="all")
    with pytest.raises(ValueError, match="num_negatives"):
        GatedSymileLoss(gate, num_negatives=0)
    with pytest.raises(ValueError, match="num_negatives only applies"):
        GatedSymileLoss(gate, negative_sampling="n", num_negatives=3)
    with pytest.raises(ValueError, match="distill_weight"):
        GatedSymileLoss(gate, distill_weight=-1.0)
    with pytest.raises(ValueError, match="modalities"):
        GatedSymileLoss(gate, modalities=["a", "z"])
    with pytest.raises(ValueError, match="seed"):
        GatedSymileLoss(gate, seed=1.5)
    with pytest.raises(TypeError, match="variance_scaling"):
        GatedSymileLoss(gate, variance_scaling="yes")
    with pytest.raises(ValueError, match="sample_weight"):
        GatedSymileLoss(gate)(None, make_embeddings(), sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="Missing embeddings"):
        GatedSymileLoss(gate)(None, {m: v for m, v in make_embeddings().items() if m != "b"})


def test_loss_module_does_not_use_private_gate_members():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(gated_module))
    private = sorted(
        {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "gate"
            and node.attr.startswith("_")
        }
    )
    assert not private, f"the loss uses private gate members {private}"


def test_docstring_examples():
    result = doctest.testmod(gated_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
