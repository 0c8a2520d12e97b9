"""MultimodalContrastiveModel refuses bad arguments and inputs instead of coercing or dropping them."""

import numpy as np
import pytest
import tensorflow as tf

import tf_mmcl
from tf_mmcl.models import MultimodalContrastiveModel

X = {m: np.random.default_rng(i).random((8, 3)).astype("float32") for i, m in enumerate("abc")}


def make(objective="symile", names="abc", **kwargs):
    encoders = {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in names}
    return MultimodalContrastiveModel(encoders, embedding_dim=4, objective=objective, **kwargs)


@pytest.fixture(scope="module")
def model():
    m = make()
    m(X)
    return m


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"learn_logit_scale": "false"}, TypeError, "learn_logit_scale must be True or False"),
        ({"learn_logit_scale": 0}, TypeError, "learn_logit_scale must be True or False"),
        ({"passthrough_keys": "label"}, TypeError, r"passthrough_keys .* pass \('label',\)"),
        ({"embedding_dim": True}, ValueError, "embedding_dim must be a positive int"),
        ({"embedding_dim": 4.0}, ValueError, "embedding_dim must be a positive int"),
        ({"embedding_dim": -2}, ValueError, "embedding_dim must be a positive int"),
        ({"logit_scale_init": "14"}, TypeError, "logit_scale_init must be a number"),
        ({"logit_scale_init": 0.0}, ValueError, "logit_scale_init must be a finite number > 0"),
        ({"max_logit_scale": float("nan")}, ValueError, "max_logit_scale"),
        ({"seed": "1"}, TypeError, "seed must be an int"),
        ({"negative_sampling": "n_squared", "block_size": 0}, ValueError, "block_size"),
        ({"global_negatives": "yes"}, ValueError, "global_negatives must be True or False"),
    ],
)
def test_constructor_arguments(kwargs, error, match):
    kwargs = dict(kwargs)
    dim = kwargs.pop("embedding_dim", 4)
    encoders = {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "abc"}
    with pytest.raises(error, match=match):
        MultimodalContrastiveModel(encoders, embedding_dim=dim, **kwargs)


@pytest.mark.parametrize(
    "objective,kwargs,match",
    [
        ("confu", {"lam": "0.5"}, "lam must be a number"),
        ("confu", {"lam": 2}, r"lam must be in \[0, 1\]"),
        ("confu", {"fusion_layers": 0}, "fusion_layers"),
        ("confu", {"fusion_dropout": 1.0}, r"fusion_dropout must be in \[0, 1\)"),
        ("gated_symile", {"num_negatives": 0}, "num_negatives"),
        ("gated_symile", {"num_negatives": 2.5}, "num_negatives"),
        ("gated_symile", {"negative_sampling": "all"}, "negative_sampling"),
        ("gated_symile", {"renormalize": "true"}, "renormalize must be True or False"),
        ("gated_symile", {"distill_weight": -1}, "distill_weight"),
        ("triangle", {"squared": "no"}, "squared must be True or False"),
        ("gram", {"eps": -1}, "eps must be a finite number > 0"),
    ],
)
def test_objective_options(objective, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(objective, **kwargs)


@pytest.mark.parametrize("kwargs", [{"sample_weight": np.ones(8)}, {"class_weight": {0: 1.0}}, {"y": np.ones(8)}])
def test_fit_refuses_what_it_would_drop(kwargs):
    m = make("clip")
    m.compile(optimizer="adam")
    with pytest.raises(ValueError, match="sample_weight|class_weight|no targets y"):
        m.fit(X, epochs=1, batch_size=4, verbose=0, **kwargs)


def test_fit_refuses_misaligned_arrays():
    m = make("clip")
    m.compile(optimizer="adam")
    with pytest.raises(ValueError, match="different numbers of rows"):
        m.fit(dict(X, a=X["a"][:5]), epochs=1, verbose=0)


def test_fit_checks_symile_permutations_in_graph_mode():
    m = make("symile", negative_sampling="n")
    m.compile(optimizer="adam")
    m.symile_permutations = np.zeros((3, 2, 8), "int32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="permutation of range"):
        m.fit(X, epochs=1, batch_size=8, verbose=0)


@pytest.mark.parametrize(
    "inputs,match",
    [
        (dict(X, a=X["a"] * np.nan), "Input .*a.* contains NaN or Inf"),
        (dict(X, a_mask=np.full(8, 2, "int32")), "only 0 and 1"),
    ],
)
def test_fit_checks_values_in_graph_mode(inputs, match):
    m = make("clip")
    m.compile(optimizer="adam")
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        m.fit(inputs, epochs=1, batch_size=8, verbose=0)


def test_a_second_fit_with_another_width_is_refused_before_any_step():
    # Keras reuses a step traced with relaxed shapes, where the width is unknown: without the host
    # check the mistake surfaced as "Matrix size-incompatible" inside an encoder.
    m = make("clip")
    m.compile(optimizer="adam")
    m.fit(X, epochs=1, batch_size=8, verbose=0)
    m.fit(dict(X), epochs=1, batch_size=4, verbose=0)  # the same widths: fine
    wider = dict(X, b=np.concatenate([X["b"], X["b"][:, :1]], axis=1))
    message = r"modality 'b' has rows of shape \(4\); the model was built for rows of shape \(3\)"
    with pytest.raises(ValueError, match="fit: x: " + message):
        m.fit(wider, epochs=1, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"fit: x \(a tf.data.Dataset\): " + message):
        m.fit(tf.data.Dataset.from_tensor_slices(wider).batch(8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="fit: validation_data: " + message):
        m.fit(X, epochs=1, batch_size=8, verbose=0, validation_data=(wider,))
    with pytest.raises(ValueError, match="evaluate: x: " + message):
        m.evaluate(wider, batch_size=8, verbose=0)
    with pytest.raises(
        ValueError, match=r"predict: x: modality 'b' has rows of shape \(1, 3\); .* built for rows of shape \(3\)"
    ):
        m.predict(dict(X, b=X["b"][:, None, :]), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="the model was built for"):
        m.embed("b", wider["b"])
    # The weights were not touched by the refused calls.
    before = [w.numpy().copy() for w in m.weights]
    with pytest.raises(ValueError):
        m.fit(wider, epochs=1, batch_size=8, verbose=0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, m.weights))


@pytest.mark.parametrize(
    "inputs,error,match",
    [
        (dict(X, a_mask=np.full(8, 0.3, "float32")), TypeError, "presence mask must be bool"),
        (dict(X, a_mask=np.ones(5, bool)), ValueError, "a_mask has 5 entries but the batch has 8 rows"),
        (dict(X, a=np.array([["x"] * 3] * 8)), TypeError, "Input 'a' has dtype"),
        (dict(X, a=X["a"] * np.inf), ValueError, "Input 'a' contains NaN or Inf"),
        (dict(X, a=X["a"][:5]), ValueError, "different batch sizes"),
        (dict(X, d=X["a"]), ValueError, "Unknown input key"),
        ({"a": X["a"], "b": X["b"]}, ValueError, "Missing modality 'c'"),
    ],
)
def test_call_inputs(model, inputs, error, match):
    with pytest.raises(error, match=match):
        model(inputs)


def test_score_never_broadcasts_query_rows(model):
    with pytest.raises(ValueError, match="different numbers of rows"):
        model.score({"a": X["a"][:5], "b": X["b"][:1]}, "c", X["c"])

    @tf.function(input_signature=[tf.TensorSpec([None, 3])] * 3, autograph=False)
    def scores(a, b, c):
        return model.score({"a": a, "b": b}, "c", c)

    with pytest.raises(tf.errors.InvalidArgumentError, match="different number of rows"):
        scores(X["a"][:5], X["b"][:1], X["c"])


def test_score_names_the_candidates(model):
    with pytest.raises(ValueError, match=r"candidates \(raw 'c' inputs\) has shape \(4, 7\)"):
        model.score({"a": X["a"], "b": X["b"]}, "c", np.ones((4, 7), "float32"))
    with pytest.raises(ValueError, match=r"embed: x \(raw 'a' inputs\) has rank 1"):
        model.embed("a", np.ones(3, "float32"))


@pytest.mark.parametrize(
    "cands,error,match",
    [
        (np.ones((4, 4), "int32"), TypeError, "candidate_embeddings has dtype int32"),
        (np.ones((4, 5), "float32"), ValueError, r"must be \(C, 4\) embeddings"),
        (np.full((4, 4), 3.0, "float32"), ValueError, "L2-normalised"),
    ],
)
def test_candidate_embeddings(model, cands, error, match):
    with pytest.raises(error, match=match):
        model.score_candidate_embeddings({"a": X["a"]}, "c", cands)


@pytest.mark.parametrize(
    "masks,error,match",
    [
        ({"a": np.full(8, 0.3, "float32")}, TypeError, "presence mask must be bool"),
        ({"a": np.ones(5, bool)}, ValueError, "has 5 entries but the batch has 8 rows"),
        ({"z": np.ones(8, bool)}, ValueError, "unknown modality"),
        ({"c": np.ones(8, bool)}, ValueError, "candidate modality has no query mask"),
        (np.ones(8, bool), TypeError, "query_masks must be a dict"),
    ],
)
def test_query_masks(model, masks, error, match):
    with pytest.raises(error, match=match):
        model.score({"a": X["a"], "b": X["b"]}, "c", X["c"], query_masks=masks)


def test_confu_lam_zero_scores_and_exports(tmp_path):
    m = make("confu", lam=0.0)
    m(X)
    scores = m.score({"a": X["a"], "b": X["b"]}, "c", X["c"])
    # No fusion heads: the (M-1)->1 score is CLIP's sum of cosines.
    emb = {k: m.embed(k, X[k]) for k in "abc"}
    expected = m.logit_scale.value() * (
        tf.matmul(emb["a"], emb["c"], transpose_b=True) + tf.matmul(emb["b"], emb["c"], transpose_b=True)
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    from tf_mmcl.export import export_for_serving

    path = export_for_serving(m, str(tmp_path), "confu0", warmup=False)
    served = tf.saved_model.load(path)
    out = served.signatures["score_c"](a=X["a"], b=X["b"], candidate_embeddings=emb["c"])["logits"]
    np.testing.assert_allclose(out, scores, rtol=1e-5, atol=1e-5)
