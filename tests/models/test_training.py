"""Each objective trains with model.fit on XOR-like data; only the beyond-pairs ones solve it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_mmcl
from tests.models.xor_data import all_candidates, make_xor

CHANCE = 1 / 8


def _train(objective, epochs=6, **options):
    keras.utils.set_random_seed(0)
    train, _ = make_xor(1024, 0)
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(), output_dim=16) for m in "abc"},
        embedding_dim=16,
        objective=objective,
        **options,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    ds = tf.data.Dataset.from_tensor_slices(train).shuffle(1024, seed=0).batch(64, drop_remainder=True)
    history = model.fit(ds, epochs=epochs, verbose=0)
    return model, history


def _two_to_one_accuracy(model):
    test, target = make_xor(512, 1)
    scores = model.score({"a": test["a"], "b": test["b"]}, "c", all_candidates()).numpy()
    return float(np.mean(scores.argmax(axis=1) == target))


@pytest.mark.parametrize(
    "objective,options",
    [
        ("symile", {"negative_sampling": "n"}),
        ("symile", {"negative_sampling": "n_squared"}),
        ("confu", {"lam": 0.5}),
        ("gated_symile", {"key_dim": 16, "num_negatives": 15}),
    ],
)
def test_beyond_pairs_objectives_solve_xor(objective, options):
    model, history = _train(objective, **options)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert _two_to_one_accuracy(model) > 0.9


def test_pairwise_clip_stays_near_chance_on_xor():
    model, history = _train("clip")
    assert np.all(np.isfinite(history.history["loss"]))
    assert abs(_two_to_one_accuracy(model) - CHANCE) < 0.08


@pytest.mark.parametrize("objective", ["gram", "triangle"])
def test_volume_baselines_train(objective):
    model, history = _train(objective, epochs=2)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_logged_metrics_and_evaluate():
    model, history = _train("symile", epochs=1)
    assert {"loss", "top1_a", "top1_b", "top1_c", "logit_scale"} <= set(history.history)
    test, _ = make_xor(128, 2)
    result = model.evaluate(test, batch_size=64, verbose=0, return_dict=True)
    assert {"loss", "top1_c", "logit_scale"} <= set(result)
    # Learnable scale moved away from its init.
    assert abs(history.history["logit_scale"][-1] - 1 / 0.07) > 1e-3


def test_in_batch_top1_is_one_for_distinct_rows_of_a_trained_model():
    # Distinct one-hot rows shared by all modalities: every row is retrieved.
    keras.utils.set_random_seed(0)
    x = {m: np.eye(8, dtype="float32") for m in "abc"}
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(), output_dim=8) for m in "abc"}, embedding_dim=8, objective="clip"
    )
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    history = model.fit(x, epochs=30, batch_size=8, verbose=0)
    assert history.history["top1_a"][-1] == 1.0


@pytest.mark.parametrize(
    "objective,options",
    [
        ("symile", {"negative_sampling": "n_squared"}),
        ("clip", {}),
        ("confu", {}),
        ("gram", {}),
        ("gated_symile", {"key_dim": 8}),
    ],
)
def test_missing_modality_trains_without_nan(objective, options):
    keras.utils.set_random_seed(0)
    data, _ = make_xor(32, 3)
    rng = np.random.default_rng(0)
    data["b_mask"] = rng.random(32) > 0.3
    data["c_mask"] = np.zeros(32, bool)  # c missing everywhere
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in "abc"},
        embedding_dim=8,
        objective=objective,
        **options,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(data, epochs=1, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    # A modality absent from the batch altogether, announced by its mask.
    out = model({"a": data["a"], "b": data["b"], "c_mask": np.zeros(32, bool)})
    assert out["a"].shape == (32, 8)
