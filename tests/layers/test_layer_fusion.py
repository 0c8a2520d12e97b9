"""ConFu FusionHead."""

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
from tf_mmcl.layers import FusionHead
from tf_mmcl.layers.fusion import CONFU_DEFAULT_HIDDEN_DIM

RNG = np.random.default_rng(0)
H_I = RNG.normal(size=(6, 5)).astype("float32")
H_J = RNG.normal(size=(6, 3)).astype("float32")


def _leaky_relu(x, slope=0.2):
    return np.where(x >= 0, x, slope * x)


def test_layout_matches_authors_mlp():
    """num_layers=2: Linear -> ReLU -> Dropout -> Linear -> LeakyReLU(0.2) -> Dropout."""
    head = FusionHead(output_dim=4, hidden_dim=7)
    out = head([H_I, H_J]).numpy()
    dense = [l for l in head._flatten_layers(include_self=False) if isinstance(l, keras.layers.Dense)]
    assert len(dense) == 2
    k0, b0, k1, b1 = head.get_weights()
    assert k0.shape == (8, 7) and k1.shape == (7, 4)
    concat = np.concatenate([H_I, H_J], axis=1)
    expected = _leaky_relu(np.maximum(concat @ k0 + b0, 0) @ k1 + b1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.any(out < 0)  # leaky output, not ReLU


@pytest.mark.parametrize("num_layers", [1, 3])
def test_num_layers(num_layers):
    head = FusionHead(output_dim=4, hidden_dim=6, num_layers=num_layers, output_activation=None)
    out = head([H_I, H_J]).numpy()
    weights = head.get_weights()
    assert len(weights) == 2 * num_layers
    x = np.concatenate([H_I, H_J], axis=1)
    for i in range(num_layers - 1):
        x = np.maximum(x @ weights[2 * i] + weights[2 * i + 1], 0)
    np.testing.assert_allclose(out, x @ weights[-2] + weights[-1], rtol=1e-5, atol=1e-5)


def test_default_hidden_dim_is_authors_512():
    head = FusionHead(output_dim=4)
    head([H_I, H_J])
    assert head.hidden_dim is None and head.effective_hidden_dim == CONFU_DEFAULT_HIDDEN_DIM == 512
    assert head.get_weights()[0].shape == (8, 512)


def test_three_inputs_concatenated_in_order():
    h_k = RNG.normal(size=(6, 2)).astype("float32")
    head = FusionHead(output_dim=4, hidden_dim=5)
    run_shape_test(head, [H_I, H_J, h_k], (6, 4))
    assert head.get_weights()[0].shape == (10, 5)
    swapped = FusionHead.from_config(head.get_config())
    swapped.build([(6, 5), (6, 3), (6, 2)])
    swapped.set_weights(head.get_weights())
    np.testing.assert_allclose(swapped([H_I, H_J, h_k]), head([H_I, H_J, h_k]))


def test_dropout_and_output_dropout_only_in_training():
    head = FusionHead(output_dim=16, hidden_dim=8, dropout=0.5)
    inference = head([H_I, H_J]).numpy()
    np.testing.assert_allclose(head([H_I, H_J], training=False), inference)
    trained = head([H_I, H_J], training=True).numpy()
    assert not np.allclose(trained, inference)
    assert np.mean(trained == 0.0) > 0.2  # dropout after the output layer too (authors)
    no_out_drop = FusionHead(output_dim=16, hidden_dim=8, dropout=0.5, output_dropout=False, output_activation="linear")
    assert len([l for l in no_out_drop._flatten_layers(include_self=False) if isinstance(l, keras.layers.Dropout)]) == 1


def test_mask_ratio_masks_that_fraction_of_features():
    head = FusionHead(output_dim=4, hidden_dim=8, mask_ratio=0.3, seed=1)
    masked = head.mask_features(keras.ops.ones((400, 50))).numpy()
    assert set(np.unique(masked)) <= {0.0, 1.0}  # zeroed or kept, no rescaling
    assert abs(np.mean(masked == 0.0) - 0.3) < 0.02  # masks ~mask_ratio, not keeps it
    # Masks differ between calls and between rows.
    again = head.mask_features(keras.ops.ones((400, 50))).numpy()
    assert not np.array_equal(masked, again)


def test_masking_active_only_in_training():
    head = FusionHead(output_dim=4, hidden_dim=8, dropout=0.0, mask_ratio=0.5, seed=3)
    base = head([H_I, H_J]).numpy()
    np.testing.assert_allclose(head([H_I, H_J], training=False), base)
    assert not np.allclose(head([H_I, H_J], training=True), base)
    # With mask_ratio=0 and no dropout, training equals inference.
    plain = FusionHead(output_dim=4, hidden_dim=8, dropout=0.0)
    np.testing.assert_allclose(plain([H_I, H_J], training=True), plain([H_I, H_J]), atol=1e-6)


def test_masking_zeroes_input_features_before_the_mlp():
    # With hidden_dim layers removed (num_layers=1, linear output) the output is affine in
    # the masked concatenation, so we can recover which features were masked.
    head = FusionHead(output_dim=8, num_layers=1, dropout=0.0, mask_ratio=0.5, output_activation=None, seed=7)
    head.build([(None, 5), (None, 3)])
    head.set_weights([np.eye(8, dtype="float32"), np.zeros(8, "float32")])
    out = head([np.ones((200, 5), "float32"), np.ones((200, 3), "float32")], training=True).numpy()
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert abs(np.mean(out == 0.0) - 0.5) < 0.05


def test_config_and_precision():
    head = FusionHead(
        output_dim=4,
        hidden_dim=6,
        num_layers=3,
        dropout=0.2,
        mask_ratio=0.1,
        activation="gelu",
        output_activation="tanh",
        output_dropout=False,
        seed=4,
    )
    run_serialization_test(head, [H_I, H_J])
    for kwargs in (
        {"output_dim": 4, "hidden_dim": 6},
        {"output_dim": 4, "hidden_dim": 6, "mask_ratio": 0.5, "seed": 0},
    ):
        run_precision_test(FusionHead, kwargs, [H_I, H_J], call_kwargs={"training": True})


def test_fit_and_save(tmp_path):
    model = functional_model(FusionHead(output_dim=2, hidden_dim=8, dropout=0.0), [H_I, H_J])
    run_fit_test(model, [H_I, H_J], np.ones((6, 2), "float32"))
    run_saving_test(model, [H_I, H_J], tmp_path, FusionHead)
    masked = functional_model(FusionHead(output_dim=2, hidden_dim=8, mask_ratio=0.25), [H_I, H_J])
    run_fit_test(masked, [H_I, H_J], np.ones((6, 2), "float32"), expect_decrease=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"output_dim": 0}, "output_dim"),
        ({"output_dim": 4, "hidden_dim": 0}, "hidden_dim"),
        ({"output_dim": 4, "num_layers": 0}, "num_layers"),
        ({"output_dim": 4, "dropout": 1.0}, "dropout"),
        ({"output_dim": 4, "mask_ratio": 1.0}, "mask_ratio"),
        ({"output_dim": 4, "mask_ratio": -0.1}, "mask_ratio"),
        ({"output_dim": 4, "seed": "x"}, "seed"),
    ],
)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusionHead(**kwargs)


@pytest.mark.parametrize(
    "inputs, match",
    [
        (H_I, "list of >= 2"),
        ([H_I], ">= 2 modalities"),
        ([H_I, np.zeros((6, 3, 2), "float32")], "rank 2"),
        ([H_I, np.zeros((5, 3), "float32")], "same batch size"),
    ],
)
def test_bad_inputs(inputs, match):
    with pytest.raises(ValueError, match=match):
        FusionHead(output_dim=4, hidden_dim=4)(inputs)
