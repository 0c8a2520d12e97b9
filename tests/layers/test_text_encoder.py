"""TextEncoder and TransformerEncoderBlock."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.layer_test_utils import (
    run_fit_test,
    run_precision_test,
    run_saving_test,
    run_serialization_test,
    run_shape_test,
)
from tf_mmcl.layers import TextEncoder, TransformerEncoderBlock

SMALL = {"vocab_size": 30, "embed_dim": 8, "num_heads": 2, "ff_dim": 16, "max_length": 10}
IDS = np.array([[5, 7, 9, 2, 0, 0], [3, 0, 0, 0, 0, 0], [4, 4, 8, 1, 6, 11]], "int32")


def _pad(ids, extra, padding_id=0):
    return np.pad(ids, ((0, 0), (0, extra)), constant_values=padding_id)


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
@pytest.mark.parametrize("num_layers", [0, 2])
def test_padding_never_changes_features(pooling, num_layers):
    if pooling == "cls" and num_layers == 0:
        pytest.raises(ValueError, TextEncoder, **SMALL, num_layers=0, pooling="cls")
        return
    encoder = TextEncoder(**SMALL, num_layers=num_layers, pooling=pooling, output_dim=5)
    base = encoder(IDS).numpy()
    padded = encoder(_pad(IDS, 4)).numpy()
    np.testing.assert_allclose(padded, base, atol=1e-5)
    # Also inside a compiled graph with a dynamic sequence length.
    fn = tf.function(lambda x: encoder(x), input_signature=[tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(fn(_pad(IDS, 2)).numpy(), base, atol=1e-5)


def test_padding_id_other_than_zero():
    encoder = TextEncoder(**SMALL, padding_id=1)
    ids = np.where(IDS == 0, 1, IDS + 1).astype("int32")
    np.testing.assert_allclose(encoder(_pad(ids, 3, padding_id=1)), encoder(ids), atol=1e-5)
    # Token 0 is an ordinary token now: appending it changes the features.
    assert not np.allclose(encoder(_pad(ids, 3, padding_id=0)), encoder(ids), atol=1e-4)


def test_real_tokens_do_change_features():
    encoder = TextEncoder(**SMALL, num_layers=1)
    base = encoder(IDS).numpy()
    changed = IDS.copy()
    changed[1, 1] = 9  # a real token where there was padding
    out = encoder(changed).numpy()
    assert not np.allclose(out[1], base[1], atol=1e-4)
    np.testing.assert_allclose(out[[0, 2]], base[[0, 2]], atol=1e-5)  # rows independent
    # Positions matter with attention layers...
    swapped = IDS.copy()
    swapped[0, :2] = swapped[0, 1::-1]
    assert not np.allclose(encoder(swapped)[0], base[0], atol=1e-4)


def test_bag_of_tokens_is_mean_of_embeddings_and_order_invariant():
    encoder = TextEncoder(**SMALL, num_layers=0, pooling="mean")
    out = encoder(IDS).numpy()
    table = encoder.token_embedding.embeddings.numpy()
    expected = np.stack([table[row[row != 0]].mean(axis=0) for row in IDS])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert len(encoder.weights) == 1  # no positions, no blocks
    np.testing.assert_allclose(encoder(IDS[:, ::-1].copy()), out, atol=1e-6)
    maxed = TextEncoder(**SMALL, num_layers=0, pooling="max")
    maxed.build(IDS.shape)
    maxed.set_weights(encoder.get_weights())
    np.testing.assert_allclose(maxed(IDS), np.stack([table[r[r != 0]].max(0) for r in IDS]), rtol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_all_padding_row_gives_zero_features(pooling):
    encoder = TextEncoder(**SMALL, pooling=pooling)
    ids = np.array([[0, 0, 0], [4, 5, 0]], "int32")
    out = encoder(ids).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0], 0.0)


def test_cls_weights_and_shapes():
    encoder = TextEncoder(**SMALL, num_layers=1, pooling="cls", output_dim=3)
    run_shape_test(encoder, IDS, (3, 3))
    names = [w.name for w in encoder.weights]
    assert "cls_embedding" in names and "position_embedding" in names
    assert encoder.position_embedding.shape == (SMALL["max_length"] + 1, SMALL["embed_dim"])


def test_full_length_sequence_accepted():
    encoder = TextEncoder(**SMALL, pooling="cls")
    ids = np.ones((2, SMALL["max_length"]), "int32")
    assert encoder(ids).shape == (2, SMALL["embed_dim"])


def test_config_and_precision():
    encoder = TextEncoder(**SMALL, num_layers=2, pooling="max", dropout=0.1, output_dim=4)
    run_serialization_test(encoder, IDS)
    run_precision_test(TextEncoder, dict(SMALL, pooling="mean"), IDS)
    run_precision_test(TextEncoder, dict(SMALL, pooling="max", num_layers=1), IDS)


def test_dropout_only_in_training():
    encoder = TextEncoder(**SMALL, dropout=0.5)
    np.testing.assert_allclose(encoder(IDS), encoder(IDS, training=False))
    assert not np.allclose(encoder(IDS, training=True), encoder(IDS, training=False))


def test_fit_and_save(tmp_path):
    inp = keras.Input((None,), dtype="int32")
    model = keras.Model(inp, TextEncoder(**SMALL, pooling="cls", output_dim=2)(inp))
    run_fit_test(model, IDS, np.ones((3, 2), "float32"))
    loaded = run_saving_test(model, IDS, tmp_path, TextEncoder, atol=1e-6)
    # Variable length and padding invariance after reload.
    np.testing.assert_allclose(loaded(_pad(IDS, 1)), model(IDS), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"embed_dim": 9}, "divisible"),
        ({"num_layers": -1}, "num_layers"),
        ({"pooling": "first"}, "pooling"),
        ({"pooling": "cls", "num_layers": 0}, "cls"),
        ({"padding_id": 30}, "padding_id"),
        ({"padding_id": -1}, "padding_id"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_length": 0}, "max_length"),
        ({"output_dim": 0}, "output_dim"),
    ],
)
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TextEncoder(**dict(SMALL, **kwargs))


def test_bad_inputs():
    encoder = TextEncoder(**SMALL)
    with pytest.raises(ValueError, match="max_length"):
        encoder(np.ones((2, SMALL["max_length"] + 1), "int32"))
    built_dynamic = TextEncoder(**SMALL)
    built_dynamic.build((None, None))
    with pytest.raises(ValueError, match="max_length"):
        built_dynamic(np.ones((2, SMALL["max_length"] + 1), "int32"))
    with pytest.raises(ValueError, match="rank 2"):
        TextEncoder(**SMALL)(np.ones((2, 3, 4), "int32"))
    with pytest.raises(ValueError, match="integer token ids"):
        TextEncoder(**SMALL)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="integer token ids"):
        TextEncoder(**SMALL, dtype="mixed_float16")(tf.ones((2, 3), tf.float32))
    with pytest.raises(ValueError, match="integer token ids"):
        keras.Model(*(lambda i: (i, TextEncoder(**SMALL)(i)))(keras.Input((4,))))


def test_input_dtype_is_int32_and_int64_ids_work():
    encoder = TextEncoder(**SMALL, dtype="mixed_bfloat16")
    assert encoder.input_dtype == "int32"
    np.testing.assert_allclose(
        encoder(IDS.astype("int64")).numpy().astype("float32"), encoder(IDS).numpy().astype("float32")
    )


# ------------------------------------------------------------------- TransformerEncoderBlock


def test_transformer_block_mask_blocks_padding_keys():
    block = TransformerEncoderBlock(embed_dim=8, num_heads=2, ff_dim=16)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    out = block(x, padding_mask=mask).numpy()
    x2 = x.copy()
    x2[0, 3:] = 100.0  # garbage in padded positions
    out2 = block(x2, padding_mask=mask).numpy()
    np.testing.assert_allclose(out2[0, :3], out[0, :3], atol=1e-5)
    run_serialization_test(block, x)
    run_shape_test(block, x, x.shape)
    with pytest.raises(ValueError, match="embed_dim"):
        TransformerEncoderBlock(embed_dim=8, num_heads=2, ff_dim=16)(np.zeros((2, 5, 6), "float32"))
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoderBlock(embed_dim=8, num_heads=3, ff_dim=16)
