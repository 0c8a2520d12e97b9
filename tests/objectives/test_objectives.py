"""The objective classes: registry, options, serialisation, and the model's use of them."""

import keras
import numpy as np
import pytest

import tf_mmcl
from tf_mmcl import keys, objectives

# The options each objective accepted (with defaults) when the model dispatched on strings.
LEGACY_OPTIONS = {
    "clip": {"similarity": "cosine", "p": 2.0, "lp_power": True, "normalize": True, "lp_negatives": "cross_modal"},
    "symile": {"negative_sampling": "n", "seed": None, "block_size": None},
    "confu": {"lam": 0.5, "fusion_hidden_dim": None, "fusion_layers": 2, "fusion_dropout": 0.1, "mask_ratio": 0.0},
    "gram": {"eps": 1e-8},
    "triangle": {"squared": True, "eps": 1e-8},
    "gated_symile": {
        "negative_sampling": "pair",
        "num_negatives": None,
        "distill_weight": 0.0,
        "variance_scaling": True,
        "seed": None,
        "mode": "attention",
        "gate_type": "softmax",
        "use_null": True,
        "neutral": "random_trainable",
        "key_dim": 256,
        "strength_logit_init": -6.0,
        "renormalize": True,
        "temperature_init": 1.0,
    },
}


def test_builtin_names_and_defaults_are_unchanged():
    assert objectives.BUILTIN == tuple(LEGACY_OPTIONS) == tf_mmcl.models.OBJECTIVES
    for name, options in LEGACY_OPTIONS.items():
        assert objectives.defaults(name) == options
        assert objectives.get(name).options == options and objectives.get(name).name == name


@pytest.mark.parametrize("name", objectives.BUILTIN)
def test_each_objective_serialises(name):
    obj = objectives.get(name)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(again) is type(obj) and again.options == obj.options
    assert type(obj).from_config(obj.get_config()).options == obj.options


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("symile", {"seed": 1.5}, "seed must be an int or None"),
        ("symile", {"block_size": 0}, "block_size"),
        ("confu", {"lam": 1.5}, r"lam must be in \[0, 1\]"),
        ("confu", {"fusion_dropout": 1.0}, r"fusion_dropout must be in \[0, 1\)"),
        ("triangle", {"squared": "yes"}, "squared"),
        ("clip", {"normalize": False}, 'normalize=False needs similarity="lp"'),
        ("clip", {"similarity": "dot"}, "similarity must be one of"),
        ("gated_symile", {"negative_sampling": "n", "num_negatives": 4}, "num_negatives only applies to"),
        ("gated_symile", {"negative_sampling": "all"}, "Unknown negative_sampling 'all'"),
        ("gated_symile", {"mode": 3}, "mode must be a string"),
    ],
)
def test_options_are_validated_by_the_objective(name, options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        objectives.get(name, **options)


def test_model_takes_a_name_or_an_instance_and_saves_the_same_config():
    enc = lambda: {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "abc"}  # noqa: E731
    by_name = tf_mmcl.models.MultimodalContrastiveModel(enc(), 4, objective="confu", lam=0.25)
    by_instance = tf_mmcl.models.MultimodalContrastiveModel(enc(), 4, objective=objectives.ConFu(lam=0.25))
    a, b = by_name.get_config(), by_instance.get_config()
    a.pop("name"), b.pop("name"), a.pop("encoders"), b.pop("encoders")
    assert a == b and a["objective"] == "confu" and a["lam"] == 0.25 and not a["learn_logit_scale"]
    assert isinstance(by_name.objective, objectives.ConFu) and by_name.options["lam"] == 0.25
    with pytest.raises(ValueError, match="pass them to its constructor"):
        tf_mmcl.models.MultimodalContrastiveModel(enc(), 4, objective=objectives.ConFu(), lam=0.1)


def test_objective_layers_are_the_heads_it_added():
    enc = lambda: {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "abc"}  # noqa: E731
    assert tf_mmcl.models.MultimodalContrastiveModel(enc(), 4, objective="clip").objective_layers() == []
    confu = tf_mmcl.models.MultimodalContrastiveModel(enc(), 4, objective="confu")
    assert confu.objective_layers() == [confu.fusion_heads[k] for k in ("a+b", "a+c", "b+c")]
    gated = tf_mmcl.models.MultimodalContrastiveModel(enc(), 4, objective="gated_symile", key_dim=4)
    assert gated.objective_layers() == [gated.gate]


def test_key_protocol():
    assert keys.mask_key("a") == "a_mask" and keys.mask_modality("a_mask") == "a"
    assert keys.mask_modality("a") is None and keys.is_mask_key("x_mask")
    assert keys.split_fused_key(keys.fused_key("a", "b")) == ("a", "b") and keys.is_fused_key("a+b")
    with pytest.raises(ValueError, match="not a fused-pair key"):
        keys.split_fused_key("a+b+c")
    assert keys.gate_weights_target(keys.gate_weights_key("t")) == "t" and keys.gate_weights_target("t") is None
    for bad in ("a+b", "a/b", "a_mask", "logit_scale", "label"):
        with pytest.raises(ValueError, match="Invalid modality name"):
            keys.check_modality_name(bad, reserved=("label",))


def test_deprecated_reduction_adapter_still_answers():
    with pytest.warns(DeprecationWarning):
        reduction = tf_mmcl.retrieval.reduction_for("symile")
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "abc"}, 4, objective="symile"
    )
    emb = model({m: np.ones((2, 3), "float32") for m in "abc"})
    assert reduction.exact(model, ["a", "b"])
    np.testing.assert_allclose(
        reduction.vector(model, "c", {"a": emb["a"], "b": emb["b"]}, {}, {}), emb["a"] * emb["b"]
    )
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="No query reduction"):
        tf_mmcl.retrieval.reduction_for("vicreg")


# Recorded from .keras files written before objectives became classes (same models): the config
# keys and the weight paths of the objective's layers must not move, or old files stop loading.
LEGACY_KERAS_LAYOUT = {
    "confu": (
        {"fusion_dropout", "fusion_hidden_dim", "fusion_layers", "lam", "mask_ratio"},
        [
            f"fusion_heads/fusion_head{s}/{layer}/vars/{i}"
            for s in ("", "_1", "_2")
            for layer in ("hidden_layers/dense", "output_dense")
            for i in (0, 1)
        ],
    ),
    "gated_symile": (
        {
            "distill_weight",
            "gate_type",
            "key_dim",
            "mode",
            "negative_sampling",
            "neutral",
            "num_negatives",
            "renormalize",
            "seed",
            "strength_logit_init",
            "temperature_init",
            "use_null",
            "variance_scaling",
        },
        [
            "gate/key_projections/dense/vars/0",
            "gate/key_projections/dense_1/vars/0",
            "gate/key_projections/dense_2/vars/0",
            "gate/null_hidden/vars/0",
            "gate/null_hidden/vars/1",
            "gate/null_norm/vars/0",
            "gate/null_norm/vars/1",
            "gate/null_output/vars/0",
            "gate/null_output/vars/1",
            "gate/query_projections/dense/vars/0",
            "gate/query_projections/dense_1/vars/0",
            "gate/query_projections/dense_2/vars/0",
            "gate/vars/0",
            "gate/vars/1",
            "gate/vars/2",
            "gate/vars/3",
        ],
    ),
}
MODEL_KEYS = {
    "embedding_dim",
    "encoders",
    "global_negatives",
    "in_batch_metrics",
    "learn_logit_scale",
    "logit_scale_init",
    "max_logit_scale",
    "name",
    "objective",
    "passthrough_keys",
    "projection_hidden_units",
}


@pytest.mark.parametrize("name", sorted(LEGACY_KERAS_LAYOUT))
def test_keras_file_layout_is_unchanged(name, tmp_path):
    import io
    import json
    import zipfile

    import h5py

    options = {
        "confu": {"lam": 0.5, "fusion_hidden_dim": 8},
        "gated_symile": {"key_dim": 8, "seed": 3, "strength_logit_init": 1.0},
    }[name]
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in "abc"}, embedding_dim=6, objective=name, **options
    )
    model({m: np.zeros((4, 5), "float32") for m in "abc"})
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))["config"]
        paths = []
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            f.visititems(lambda n, o: paths.append(n) if isinstance(o, h5py.Dataset) else None)
    option_keys, objective_paths = LEGACY_KERAS_LAYOUT[name]
    assert set(config) == MODEL_KEYS | option_keys and config["objective"] == name
    assert [p for p in paths if p.split("/")[0] in ("fusion_heads", "gate")] == objective_paths
