"""One module per layer: import paths, registered names and ``.keras`` configs of older files."""

import importlib

import keras
import numpy as np
import pytest

import tf_mmcl.layers
from tf_mmcl.layers import encoders

MODULE_OF = {
    "AudioEncoder": "tf_mmcl.layers.audio_encoder",
    "BackboneEncoder": "tf_mmcl.layers.backbone",
    "ContrastiveGate": "tf_mmcl.layers.gate",
    "FusionHead": "tf_mmcl.layers.fusion",
    "ImageEncoder": "tf_mmcl.layers.image_encoder",
    "L2Normalize": "tf_mmcl.layers.heads",
    "LogitScale": "tf_mmcl.layers.heads",
    "MLPEncoder": "tf_mmcl.layers.mlp_encoder",
    "ProjectionHead": "tf_mmcl.layers.heads",
    "TextEncoder": "tf_mmcl.layers.text_encoder",
    "TransformerEncoderBlock": "tf_mmcl.layers.transformer_block",
}


def test_every_public_layer_has_its_module():
    assert sorted(tf_mmcl.layers.__all__) == sorted(MODULE_OF)
    for name, module in MODULE_OF.items():
        cls = getattr(tf_mmcl.layers, name)
        assert cls.__module__ == module
        assert getattr(importlib.import_module(module), name) is cls


@pytest.mark.parametrize("name", encoders.__all__)
def test_encoders_module_still_exports_the_encoders(name):
    assert getattr(encoders, name) is getattr(tf_mmcl.layers, name)


@pytest.mark.parametrize("name", sorted(MODULE_OF))
def test_registered_names_are_unchanged(name):
    cls = getattr(tf_mmcl.layers, name)
    assert keras.saving.get_registered_name(cls) == f"tf_mmcl>{name}"
    assert keras.saving.get_registered_object(f"tf_mmcl>{name}") is cls


def test_config_saved_under_the_old_module_path_still_loads():
    # A `.keras` file written when the encoders lived in `tf_mmcl.layers.encoders` stores that
    # module path; the registered name must be enough to revive the layer.
    encoder = tf_mmcl.layers.MLPEncoder(hidden_units=(4,), output_dim=3, name="mlp")
    encoder.build((None, 5))
    serialized = keras.saving.serialize_keras_object(encoder)
    assert serialized["registered_name"] == "tf_mmcl>MLPEncoder"
    serialized["module"] = "tf_mmcl.layers.encoders"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is tf_mmcl.layers.MLPEncoder
    revived.set_weights(encoder.get_weights())
    x = np.ones((2, 5), "float32")
    np.testing.assert_allclose(revived(x), encoder(x))


def test_shared_checks_are_public():
    from tf_mmcl.layers import sublayers, validation

    for module in (validation, sublayers):
        assert module.__all__
        assert all(not name.startswith("_") for name in module.__all__)
    with pytest.raises(ValueError, match="`filters` must contain positive ints"):
        validation.validate_tuple((8, 0), "filters")
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\)"):
        validation.validate_rate(1.0)
