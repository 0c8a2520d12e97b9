"""Fine-tuning: the backbone learns with a scaled learning rate, the heads with the full one."""

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import keras  # noqa: E402

import tf_mmcl  # noqa: E402
from tests.hub import hub_utils as hu  # noqa: E402
from tf_mmcl.hub import random_backbone  # noqa: E402
from tf_mmcl.hub.finetune import scale_backbone_learning_rate  # noqa: E402
from tf_mmcl.layers import BackboneEncoder  # noqa: E402


def _model():
    encoders = {
        "image": BackboneEncoder(random_backbone("vit", seed=1)),
        "text": BackboneEncoder(random_backbone("bert", seed=2)),
    }
    keras.utils.set_random_seed(3)
    model = tf_mmcl.models.MultimodalContrastiveModel(encoders, embedding_dim=8, objective="clip")
    x = hu.trio_inputs(n=8, padding_id=0)
    x = {"image": x["image"], "text": x["text"]}
    model(x)
    return model, x


def _deltas(model, x, multiplier):
    optimizer = keras.optimizers.SGD(0.5)
    if multiplier is not None:
        scale_backbone_learning_rate(optimizer, model, multiplier)
    model.compile(optimizer=optimizer)
    before = [np.array(v) for v in model.trainable_weights]
    model.train_on_batch(x)
    return [np.array(v) - b for v, b in zip(model.trainable_weights, before)]


def test_backbone_learning_rate_is_scaled_and_heads_are_not():
    full_model, x = _model()
    scaled_model, _ = _model()
    scaled_model.set_weights(full_model.get_weights())
    full = _deltas(full_model, x, None)
    scaled = _deltas(scaled_model, x, 0.25)
    backbone_ids = {id(v) for e in scaled_model.encoders.values() for v in e.backbone.trainable_weights}
    checked = {"backbone": 0, "head": 0}
    for v, d_full, d_scaled in zip(scaled_model.trainable_weights, full, scaled):
        if not np.abs(d_full).max() > 1e-7:
            continue
        if id(v) in backbone_ids:
            np.testing.assert_allclose(d_scaled, 0.25 * d_full, rtol=1e-3, atol=1e-7)
            checked["backbone"] += 1
        else:
            np.testing.assert_allclose(d_scaled, d_full, rtol=1e-3, atol=1e-7)
            checked["head"] += 1
    assert checked["backbone"] > 10 and checked["head"] >= 4
    with pytest.raises(ValueError, match="no BackboneEncoder"):
        scale_backbone_learning_rate(keras.optimizers.SGD(0.1), [keras.layers.Dense(2)], 0.1)
