"""ProjectionHead, L2Normalize and LogitScale."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.layer_test_utils import (
    functional_model,
    run_fit_test,
    run_precision_test,
    run_saving_test,
    run_serialization_test,
    run_shape_test,
)
from tf_mmcl.layers import L2Normalize, LogitScale, ProjectionHead


@pytest.fixture
def features():
    return np.random.default_rng(0).normal(size=(6, 5)).astype("float32")


# ----------------------------------------------------------------------------- ProjectionHead


def test_projection_head_default_is_linear(features):
    head = ProjectionHead(3)
    out = head(features).numpy()
    assert len(head.weights) == 2  # one Dense: kernel and bias
    kernel, bias = head.get_weights()
    np.testing.assert_allclose(out, features @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_projection_head_mlp_layout(features):
    head = ProjectionHead(3, hidden_units=(7, 4), activation="tanh")
    out = head(features).numpy()
    k0, b0, k1, b1, k2, b2 = head.get_weights()
    assert k0.shape == (5, 7) and k1.shape == (7, 4) and k2.shape == (4, 3)
    expected = np.tanh(np.tanh(features @ k0 + b0) @ k1 + b1) @ k2 + b2
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_projection_head_shapes_and_config(features):
    head = ProjectionHead(3, hidden_units=(8,), dropout=0.2)
    run_shape_test(head, features, (6, 3))
    run_serialization_test(head, features)
    # Rank 3 inputs map the last axis.
    assert ProjectionHead(4)(np.zeros((2, 3, 5), "float32")).shape == (2, 3, 4)


def test_projection_head_precision(features):
    run_precision_test(ProjectionHead, {"output_dim": 4, "hidden_units": (8,)}, features)


def test_projection_head_fit_and_save(features, tmp_path):
    model = functional_model(ProjectionHead(2, hidden_units=(8,)), features)
    run_fit_test(model, features, np.ones((6, 2), "float32"))
    run_saving_test(model, features, tmp_path, ProjectionHead)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"output_dim": 0}, "output_dim"),
        ({"output_dim": 2.5}, "output_dim"),
        ({"output_dim": 4, "hidden_units": (8, -1)}, "hidden_units"),
        ({"output_dim": 4, "dropout": 1.0}, "dropout"),
        ({"output_dim": 4, "hidden_units": "abc"}, "hidden_units"),
    ],
)
def test_projection_head_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProjectionHead(**kwargs)


def test_projection_head_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        ProjectionHead(4)(np.zeros((5,), "float32"))


# ----------------------------------------------------------------------------- L2Normalize


def test_l2_normalize_unit_norm_and_zero_row(features):
    x = features.copy()
    x[2] = 0.0
    out = L2Normalize()(x).numpy()
    norms = np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(np.delete(norms, 2), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[2], 0.0)
    np.testing.assert_allclose(out[0], x[0] / np.linalg.norm(x[0]), rtol=1e-6)


def test_l2_normalize_gradient_finite_at_zero_row(features):
    x = tf.constant(np.concatenate([features[:2], np.zeros((1, 5), "float32")]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(L2Normalize()(x) * tf.range(5, dtype=tf.float32))
    grad = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(grad))


def test_l2_normalize_axis(features):
    out = L2Normalize(axis=0)(features).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), 1.0, rtol=1e-6)


def test_l2_normalize_shapes_config_precision(features):
    layer = L2Normalize(epsilon=1e-8)
    run_shape_test(layer, features, features.shape)
    run_serialization_test(layer, features)
    run_precision_test(L2Normalize, {}, features, float32_output=True)
    # Half-precision inputs come out float32 too.
    out = L2Normalize()(tf.constant(features, tf.float16))
    assert out.dtype == tf.float32


def test_l2_normalize_fit_and_save(features, tmp_path):
    inp = keras.Input((5,))
    out = L2Normalize()(keras.layers.Dense(3)(inp))
    model = keras.Model(inp, out)
    run_fit_test(model, features, np.tile([[1.0, 0.0, 0.0]], (6, 1)).astype("float32"))
    run_saving_test(model, features, tmp_path, L2Normalize)


@pytest.mark.parametrize("kwargs", [{"epsilon": 0.0}, {"epsilon": -1.0}, {"axis": 1.5}])
def test_l2_normalize_bad_args(kwargs):
    with pytest.raises(ValueError):
        L2Normalize(**kwargs)


def test_l2_normalize_axis_out_of_range(features):
    with pytest.raises(ValueError, match="axis"):
        L2Normalize(axis=2)(features)


# ----------------------------------------------------------------------------- LogitScale


def test_logit_scale_value_and_variable():
    layer = LogitScale(init_value=1 / 0.07)
    out = layer(np.zeros((3, 2), "float32"))
    assert out.shape == () and out.dtype == tf.float32
    np.testing.assert_allclose(float(out), 1 / 0.07, rtol=1e-6)
    np.testing.assert_allclose(float(layer.value()), 1 / 0.07, rtol=1e-6)
    np.testing.assert_allclose(float(layer.log_scale.numpy()), math.log(1 / 0.07), rtol=1e-6)
    assert layer.log_scale.dtype == "float32"
    # Input values are ignored.
    np.testing.assert_allclose(float(layer(np.full((3, 2), 7.0, "float32"))), float(out))
    # value() builds an unbuilt layer.
    assert abs(float(LogitScale(5.0).value()) - 5.0) < 1e-5


def test_logit_scale_clamped_at_max():
    layer = LogitScale(init_value=10.0, max_value=50.0)
    layer.build()
    layer.log_scale.assign(math.log(1000.0))
    np.testing.assert_allclose(float(layer.value()), 50.0, rtol=1e-6)
    with tf.GradientTape() as tape:
        s = layer.value()
    assert float(tape.gradient(s, layer.log_scale.value)) == 0.0
    layer.log_scale.assign(math.log(20.0))
    with tf.GradientTape() as tape:
        s = layer.value()
    np.testing.assert_allclose(float(tape.gradient(s, layer.log_scale.value)), 20.0, rtol=1e-5)


def test_logit_scale_config_and_shapes():
    layer = LogitScale(init_value=3.0, max_value=30.0, trainable=False)
    x = np.zeros((2, 4), "float32")
    run_serialization_test(layer, x)
    assert layer.get_config()["trainable"] is False
    assert layer.compute_output_shape((None, 4)) == ()
    symbolic = layer(keras.KerasTensor((None, 4)))
    assert tuple(symbolic.shape) == () and symbolic.dtype == "float32"
    assert LogitScale.from_config(layer.get_config()).trainable is False


def test_logit_scale_precision():
    run_precision_test(LogitScale, {"init_value": 2.0}, np.zeros((2, 3), "float32"), float32_output=True)


def _contrastive_model(scale_layer):
    a, b = keras.Input((4,)), keras.Input((4,))
    za = L2Normalize()(keras.layers.Dense(4, name="proj_a")(a))
    zb = L2Normalize()(keras.layers.Dense(4, name="proj_b")(b))
    scale = scale_layer(za)
    logits = keras.ops.matmul(za, keras.ops.transpose(zb)) * scale
    return keras.Model([a, b], logits)


def _contrastive_data():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 4)).astype("float32")
    b = (a + 0.1 * rng.normal(size=(8, 4))).astype("float32")
    return [a, b], np.arange(8)


@pytest.mark.parametrize("trainable", [True, False])
def test_logit_scale_fit_trainable_or_frozen(trainable, tmp_path):
    layer = LogitScale(init_value=5.0, trainable=trainable, name="scale")
    model = _contrastive_model(layer)
    x, y = _contrastive_data()
    start = float(layer.log_scale.numpy())
    assert any(w is layer.log_scale for w in model.trainable_weights) == trainable
    run_fit_test(model, x, y, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    moved = float(layer.log_scale.numpy()) != start
    assert moved == trainable
    run_saving_test(model, x, tmp_path, LogitScale)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init_value": 0.0}, "init_value"),
        ({"init_value": -1.0}, "init_value"),
        ({"init_value": 200.0, "max_value": 100.0}, "max_value"),
    ],
)
def test_logit_scale_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogitScale(**kwargs)
