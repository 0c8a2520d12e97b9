"""Model API: outputs, embed/score semantics, bad input, .keras round trip, mixed precision."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tf_mmcl
from tests.models.xor_data import make_xor
from tf_mmcl import ops as sim

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model(objective="symile", **options):
    keras.utils.set_random_seed(0)
    return tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in "abc"},
        embedding_dim=6,
        objective=objective,
        **options,
    )


X, _ = make_xor(10, 0)


# Outputs beyond the modality embeddings, per objective (the batch-key protocol of tf_mmcl.keys).
EXTRA_OUTPUTS = {"confu": {"a+b", "a+c", "b+c"}, "gated_symile": {"gate_weights/a", "gate_weights/b", "gate_weights/c"}}
OBJECTIVE_OPTIONS = {"gated_symile": {"key_dim": 8}}


@pytest.mark.parametrize("objective", tf_mmcl.models.OBJECTIVES)
def test_call_outputs_are_unit_float32_embeddings(objective):
    model = _model(objective, **OBJECTIVE_OPTIONS.get(objective, {}))
    out = model(X)
    for m in "abc":
        assert out[m].dtype == "float32" and tuple(out[m].shape) == (10, 6)
        np.testing.assert_allclose(np.linalg.norm(out[m], axis=1), 1.0, rtol=1e-5)
    assert set(out) - set("abc") == EXTRA_OUTPUTS.get(objective, set())
    for key in set(out) - set("abc"):  # gate weights (N, M); fused pairs (N, D)
        want = (10, 3) if tf_mmcl.keys.gate_weights_target(key) else (10, 6)
        assert tuple(out[key].shape) == want


# The (M-1)->1 score each embedding-only objective defines, from the embeddings.
EXPECTED_SCORES = {
    "symile": lambda e: sim.mip_scores([e["a"], e["b"]], e["c"]),
    "clip": lambda e: sim.dot_scores(e["a"], e["c"]) + sim.dot_scores(e["b"], e["c"]),
    "gram": lambda e: -np.transpose(sim.gram_volume_matrix(e["c"], [e["a"], e["b"]])),
    "triangle": lambda e: -np.transpose(sim.triangle_area_matrix(e["c"], e["a"], e["b"])),
}


@pytest.mark.parametrize("objective", sorted(EXPECTED_SCORES))
def test_score_follows_each_objective(objective):
    model = _model(objective)
    emb = model(X)
    scale = float(model.logit_scale.value())
    scores = model.score({"a": X["a"], "b": X["b"]}, "c", X["c"]).numpy()
    np.testing.assert_allclose(scores, scale * np.asarray(EXPECTED_SCORES[objective](emb)), rtol=1e-4, atol=1e-4)
    # 1 -> 1 is the scaled cosine for every embedding-only objective.
    np.testing.assert_allclose(
        model.score({"a": X["a"]}, "c", X["c"]), scale * sim.dot_scores(emb["a"], emb["c"]), rtol=1e-4, atol=1e-4
    )


def test_confu_scores_with_the_fused_pair():
    model = _model("confu")
    out = model(X)
    np.testing.assert_allclose(
        model.score({"a": X["a"], "b": X["b"]}, "c", X["c"]),
        model.logit_scale.value() * sim.dot_scores(out["a+b"], out["c"]),
        rtol=1e-4,
        atol=1e-4,
    )
    # The ConFu temperature is the authors' fixed 0.07 unless asked otherwise.
    assert not model.logit_scale.trainable and abs(float(model.logit_scale.value()) - 1 / 0.07) < 1e-4


def test_gated_score_uses_the_gate_per_candidate():
    model = _model("gated_symile", key_dim=8, strength_logit_init=3.0)
    emb = model(X)
    scores = model.score({"a": X["a"], "b": X["b"]}, "c", X["c"]).numpy()
    gated = model.gate.gated_scores("c", {"a": emb["a"], "b": emb["b"]}, emb["c"])
    np.testing.assert_allclose(scores, model.logit_scale.value() * gated, rtol=1e-4, atol=1e-4)
    ungated = model.logit_scale.value() * sim.mip_scores([emb["a"], emb["b"]], emb["c"])
    assert np.max(np.abs(scores - ungated)) > 1e-3


def test_embed_matches_call():
    model = _model()
    np.testing.assert_allclose(model.embed("b", X["b"]), model(X)["b"], rtol=1e-6)


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"a": X["a"], "b": X["b"]}, "Missing modality 'c'"),
        (dict(X, d=X["a"]), "Unknown input key"),
        ({"a": X["a"], "b": X["b"], "c": X["c"], "c_mask": np.ones((10, 1), bool)}, r"\(N,\) boolean"),
    ],
)
def test_bad_inputs(bad, match):
    model = _model()
    model(X)
    with pytest.raises(ValueError, match=match):
        model(bad)


def test_bad_constructor_and_api_arguments():
    enc = {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "abc"}
    with pytest.raises(ValueError, match="Unknown objective"):
        tf_mmcl.models.MultimodalContrastiveModel(enc, 4, objective="vicreg")
    with pytest.raises(ValueError, match="Unknown option"):
        tf_mmcl.models.MultimodalContrastiveModel(enc, 4, objective="clip", lam=0.5)
    with pytest.raises(ValueError, match="exactly 3"):
        tf_mmcl.models.MultimodalContrastiveModel(dict(enc, d=tf_mmcl.layers.MLPEncoder()), 4, objective="triangle")
    with pytest.raises(ValueError, match="Invalid modality name"):
        tf_mmcl.models.MultimodalContrastiveModel({"a+b": enc["a"], "c": enc["c"]}, 4)
    with pytest.raises(ValueError, match="at least 2"):
        tf_mmcl.models.MultimodalContrastiveModel({"a": enc["a"]}, 4)
    model = _model()
    model(X)
    with pytest.raises(ValueError, match="Unknown modality"):
        model.embed("z", X["a"])
    with pytest.raises(ValueError, match="cannot also be a query"):
        model.score({"c": X["c"]}, "c", X["c"])
    with pytest.raises(ValueError, match="Unknown query"):
        model.score({"z": X["c"]}, "c", X["c"])
    with pytest.raises(ValueError, match="rank"):
        model({"a": X["a"][None], "b": X["b"], "c": X["c"]})


@pytest.mark.parametrize(
    "objective,options",
    [("symile", {"negative_sampling": "n_squared"}), ("confu", {"lam": 0.5}), ("gated_symile", {"key_dim": 8})],
)
@pytest.mark.slow
def test_keras_file_round_trip_in_a_fresh_process(tmp_path, objective, options):
    model = _model(objective, **options)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(X, epochs=1, batch_size=5, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    np.savez(tmp_path / "x.npz", **X)
    expected = {k: np.asarray(v) for k, v in model(X).items()}
    expected["score"] = np.asarray(model.score({"a": X["a"], "b": X["b"]}, "c", X["c"]))
    script = textwrap.dedent(f"""
        import json, numpy as np, keras, tf_mmcl
        x = dict(np.load({str(tmp_path / "x.npz")!r}))
        model = keras.models.load_model({path!r})
        out = {{k: np.asarray(v).tolist() for k, v in model(x).items()}}
        out["score"] = np.asarray(model.score({{"a": x["a"], "b": x["b"]}}, "c", x["c"])).tolist()
        print("RESULT" + json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert set(loaded) == set(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(np.asarray(loaded[k], dtype=v.dtype), v, err_msg=k)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_variables_and_logits_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = _model("symile", negative_sampling="n_squared")
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(X, epochs=1, batch_size=5, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(v.dtype == "float32" for v in model.variables)
    out = model(X)
    assert all(out[m].dtype == "float32" for m in "abc")
    assert model.score({"a": X["a"], "b": X["b"]}, "c", X["c"]).dtype == "float32"
    assert model.compute_loss(X, None, out).dtype == "float32"


def test_query_masks_use_each_scores_neutral_element():
    mask = np.array([True, False] * 5)
    model = _model("symile")
    emb = model(X)
    scale = float(model.logit_scale.value())
    got = model.score({"a": X["a"], "b": X["b"]}, "c", X["c"], query_masks={"b": mask}).numpy()
    # Symile: a missing b is the all-ones vector, so those rows score like 1 -> 1 from a.
    one_to_one = scale * np.asarray(sim.dot_scores(emb["a"], emb["c"]))
    two_to_one = scale * np.asarray(sim.mip_scores([emb["a"], emb["b"]], emb["c"]))
    np.testing.assert_allclose(got[~mask], one_to_one[~mask], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[mask], two_to_one[mask], rtol=1e-4, atol=1e-4)
    model = _model("clip")
    emb = model(X)
    got = model.score({"a": X["a"], "b": X["b"]}, "c", X["c"], query_masks={"b": mask}).numpy()
    np.testing.assert_allclose(
        got[~mask],
        float(model.logit_scale.value()) * np.asarray(sim.dot_scores(emb["a"], emb["c"]))[~mask],
        rtol=1e-4,
        atol=1e-4,
    )
    with pytest.raises(ValueError, match="unknown modality"):
        model.score({"a": X["a"]}, "c", X["c"], query_masks={"z": mask})


def test_global_negatives_is_a_saved_option():
    model = _model("clip", global_negatives=False)
    restored = tf_mmcl.models.MultimodalContrastiveModel.from_config(model.get_config())
    assert restored.global_negatives is False
    with pytest.raises(ValueError, match="global_negatives"):
        _model("clip", global_negatives="yes")
