"""MLPEncoder and ImageEncoder (AudioEncoder: test_audio_frontend.py, TextEncoder:
test_text_encoder.py)."""

import keras
import numpy as np
import pytest

from tests.layers.layer_test_utils import (
    functional_model,
    run_fit_test,
    run_precision_test,
    run_saving_test,
    run_serialization_test,
    run_shape_test,
)
from tf_mmcl.layers import ImageEncoder, MLPEncoder

RNG = np.random.default_rng(0)
VECTORS = RNG.normal(size=(6, 5)).astype("float32")
IMAGES = RNG.uniform(size=(4, 12, 12, 3)).astype("float32")


# ----------------------------------------------------------------------------- MLPEncoder


def test_mlp_linear_encoder_is_one_dense():
    encoder = MLPEncoder(hidden_units=(), output_dim=3)
    out = encoder(VECTORS).numpy()
    kernel, bias = encoder.get_weights()
    assert kernel.shape == (5, 3)
    np.testing.assert_allclose(out, VECTORS @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_mlp_layout_relu_then_linear():
    encoder = MLPEncoder(hidden_units=(7,), output_dim=3)
    out = encoder(VECTORS).numpy()
    k0, b0, k1, b1 = encoder.get_weights()
    np.testing.assert_allclose(out, np.maximum(VECTORS @ k0 + b0, 0) @ k1 + b1, rtol=1e-5, atol=1e-6)


def test_mlp_output_dim_none_uses_last_hidden_width():
    encoder = MLPEncoder(hidden_units=(8, 4))
    out = run_shape_test(encoder, VECTORS, (6, 4))
    assert encoder.feature_dim == 4
    assert np.all(out.numpy() >= 0)  # last hidden layer is activated (ReLU)


def test_mlp_layer_norm_and_dropout_sublayers():
    encoder = MLPEncoder(hidden_units=(8,), output_dim=2, dropout=0.5, use_layer_norm=True)
    encoder(VECTORS)
    kinds = [type(l).__name__ for l in encoder._flatten_layers(include_self=False)]
    assert kinds.count("LayerNormalization") == 1 and kinds.count("Dropout") == 1
    # Dropout only in training.
    np.testing.assert_allclose(encoder(VECTORS), encoder(VECTORS, training=False))
    assert not np.allclose(encoder(VECTORS, training=True), encoder(VECTORS, training=False))


def test_mlp_config_shapes_precision():
    encoder = MLPEncoder(hidden_units=(8,), output_dim=3, activation="gelu", use_layer_norm=True)
    run_shape_test(encoder, VECTORS, (6, 3))
    run_serialization_test(encoder, VECTORS)
    run_precision_test(MLPEncoder, {"hidden_units": (8,), "output_dim": 3, "use_layer_norm": True}, VECTORS)


def test_mlp_fit_and_save(tmp_path):
    model = functional_model(MLPEncoder(hidden_units=(8,), output_dim=2), VECTORS)
    run_fit_test(model, VECTORS, np.ones((6, 2), "float32"))
    run_saving_test(model, VECTORS, tmp_path, MLPEncoder)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_units": (), "output_dim": None}, "at least one layer"),
        ({"hidden_units": (0,)}, "hidden_units"),
        ({"hidden_units": (8,), "output_dim": -2}, "output_dim"),
        ({"dropout": -0.1}, "dropout"),
        ({"activation": "no_such_activation"}, "activation|Could not interpret"),
    ],
)
def test_mlp_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPEncoder(**kwargs)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5)])
def test_mlp_bad_rank(shape):
    with pytest.raises(ValueError, match="rank 2"):
        MLPEncoder(hidden_units=(4,))(np.zeros(shape, "float32"))


# ----------------------------------------------------------------------------- ImageEncoder


@pytest.mark.parametrize("normalization", ["batch", "group", None])
def test_image_encoder_shapes(normalization):
    encoder = ImageEncoder(filters=(4, 8), normalization=normalization, norm_groups=2, output_dim=5)
    run_shape_test(encoder, IMAGES, (4, 5))
    kinds = [type(l).__name__ for l in encoder._flatten_layers(include_self=False)]
    expected_norm = {"batch": "BatchNormalization", "group": "GroupNormalization"}
    if normalization:
        assert kinds.count(expected_norm[normalization]) == 2
    else:
        assert "BatchNormalization" not in kinds and "GroupNormalization" not in kinds
    # Stride-2 stages: 12 -> 6 -> 3 before pooling.
    convs = [l for l in encoder._flatten_layers(include_self=False) if isinstance(l, keras.layers.Conv2D)]
    assert [c.strides for c in convs] == [(2, 2), (2, 2)]


def test_image_encoder_without_output_dim_and_other_sizes():
    encoder = ImageEncoder(filters=(4, 6), pooling="max", convs_per_stage=2, strides=1)
    assert encoder(IMAGES).shape == (4, 6)
    # Any spatial size works once built for a channel count.
    assert encoder(np.zeros((2, 20, 9, 3), "float32")).shape == (2, 6)


def test_image_encoder_batchnorm_train_vs_inference():
    encoder = ImageEncoder(filters=(4,), normalization="batch")
    a = encoder(IMAGES, training=True).numpy()
    b = encoder(IMAGES, training=False).numpy()
    assert not np.allclose(a, b)


def test_image_encoder_config_precision():
    encoder = ImageEncoder(
        filters=(4, 8), normalization="group", norm_groups=4, output_dim=3, dropout=0.1, activation="gelu"
    )
    run_serialization_test(encoder, IMAGES)
    run_precision_test(ImageEncoder, {"filters": (4,), "output_dim": 3}, IMAGES)
    run_precision_test(ImageEncoder, {"filters": (4,), "normalization": "group", "norm_groups": 2}, IMAGES)


def test_image_encoder_fit_and_save(tmp_path):
    model = functional_model(ImageEncoder(filters=(4, 8), output_dim=2), IMAGES)
    run_fit_test(model, IMAGES, np.ones((4, 2), "float32"))
    run_saving_test(model, IMAGES, tmp_path, ImageEncoder, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": ()}, "filters"),
        ({"filters": (4, 0)}, "filters"),
        ({"pooling": "mean"}, "pooling"),
        ({"normalization": "layer"}, "normalization"),
        ({"normalization": "group", "filters": (6,), "norm_groups": 4}, "divisible"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"strides": 0}, "strides"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_image_encoder_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageEncoder(**kwargs)


@pytest.mark.parametrize("shape", [(4, 12, 12), (4, 2, 12, 12, 3)])
def test_image_encoder_bad_rank(shape):
    with pytest.raises(ValueError, match="rank 4"):
        ImageEncoder(filters=(4,))(np.zeros(shape, "float32"))
