"""BackboneEncoder over plain Keras models: works without keras-hub installed."""

import keras
import numpy as np
import pytest

import tf_mmcl
from tf_mmcl.layers import BackboneEncoder


def _text_backbone():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    return keras.Model({"token_ids": ids, "padding_mask": mask}, keras.layers.Embedding(20, 4)(ids))


def test_a_text_modality_can_be_missing():
    enc = BackboneEncoder(_text_backbone())
    assert (enc.kind, enc.pooling, enc.input_dtype) == ("text", "mean", "int32")
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {"text": enc, "a": tf_mmcl.layers.MLPEncoder()}, embedding_dim=4, objective="clip"
    )
    x = {"text": np.array([[1, 2, 0], [3, 0, 0]], "int32"), "a": np.ones((2, 3), "float32")}
    full = model(x)
    # Absent text (mask all False): int32 placeholder ids, the other modality unchanged.
    out = model({"a": x["a"], "text_mask": np.zeros(2, bool)})
    np.testing.assert_allclose(out["a"], full["a"], atol=1e-6)


def test_text_backbone_with_inputs_it_cannot_derive_is_refused():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    pos = keras.Input((None,), dtype="int32", name="position_ids")
    bb = keras.Model({"token_ids": ids, "position_ids": pos}, keras.layers.Embedding(20, 4)(ids))
    with pytest.raises(ValueError, match="position_ids"):
        BackboneEncoder(bb)
    with pytest.raises(ValueError, match="trainable_blocks"):
        BackboneEncoder(_text_backbone(), trainable_blocks=-1)
    with pytest.raises(ValueError, match="padding_id"):
        BackboneEncoder(_text_backbone(), padding_id="0")
