"""Shared checks for the layer tests, in the spirit of keras-hub's ``TestCase`` helpers.

Each helper asserts one Keras convention: config round trip, weights created by ``build``,
symbolic shapes, dtype policies, one ``fit`` step and ``.keras`` save / load.
"""

from __future__ import annotations

import json

import keras
import numpy as np

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def _to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def _shape_of(inputs):
    if isinstance(inputs, (list, tuple)):
        return [tuple(np.shape(x)) for x in inputs]
    return tuple(np.shape(inputs))


def _keras_input(shape, dtype):
    return keras.Input(shape=shape[1:], batch_size=None, dtype=dtype)


def run_serialization_test(layer, inputs, call_kwargs=None, atol=1e-6):
    """get_config -> from_config gives the same config and, after copying weights, outputs.

    Also checks the config is JSON serialisable, the registered name is ``tf_mmcl>Class``,
    and that ``build`` alone (no call) creates every weight.
    """
    call_kwargs = call_kwargs or {}
    expected = _to_numpy(layer(inputs, **call_kwargs))
    config = layer.get_config()
    json.dumps(config)
    clone = type(layer).from_config(config)
    assert clone.get_config() == config

    # build() must create all weights, without a call.
    clone.build(_shape_of(inputs))
    assert clone.built
    assert len(clone.weights) == len(layer.weights)
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in layer.weights]

    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_to_numpy(clone(inputs, **call_kwargs)), expected, atol=atol)

    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"tf_mmcl>{type(layer).__name__}"
    revived = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(revived) is type(layer)
    assert revived.get_config() == config
    return clone


def run_shape_test(layer, inputs, expected_shape, call_kwargs=None):
    """Eager output shape, ``compute_output_shape`` and a symbolic call all agree."""
    call_kwargs = call_kwargs or {}
    out = layer(inputs, **call_kwargs)
    assert tuple(out.shape) == tuple(expected_shape)
    assert tuple(layer.compute_output_shape(_shape_of(inputs))) == tuple(expected_shape)
    if isinstance(inputs, (list, tuple)):
        symbolic_in = [keras.KerasTensor((None,) + np.shape(x)[1:], dtype=str(x.dtype)) for x in inputs]
    else:
        symbolic_in = keras.KerasTensor((None,) + np.shape(inputs)[1:], dtype=str(inputs.dtype))
    symbolic = layer(symbolic_in, **call_kwargs)
    assert tuple(symbolic.shape) == (None,) + tuple(expected_shape)[1:]
    assert tuple(
        layer.compute_output_shape(
            [tuple(s.shape) for s in symbolic_in] if isinstance(symbolic_in, list) else tuple(symbolic_in.shape)
        )
    ) == tuple(symbolic.shape)
    return out


def run_precision_test(cls, init_kwargs, inputs, call_kwargs=None, float32_output=False):
    """Under each global policy: output dtype, float32 variables, sublayers share the policy."""
    call_kwargs = call_kwargs or {}
    try:
        for policy in POLICIES:
            keras.mixed_precision.set_global_policy(policy)
            layer = cls(**init_kwargs)
            out = layer(inputs, **call_kwargs)
            expected = "float32" if float32_output else layer.compute_dtype
            assert keras.backend.standardize_dtype(out.dtype) == expected, (policy, out.dtype)
            assert np.all(np.isfinite(_to_numpy(out).astype("float32"))), policy
            for weight in layer.weights:
                if "float" in weight.dtype:
                    assert weight.dtype == "float32", (policy, weight.path, weight.dtype)
            for sub in layer._flatten_layers(include_self=False, recursive=True):
                assert sub.dtype_policy.name == policy, (policy, sub.name)
            # Per-layer dtype argument works as well as the global policy.
            keras.mixed_precision.set_global_policy("float32")
            layer = cls(**init_kwargs, dtype=policy)
            out = layer(inputs, **call_kwargs)
            expected = "float32" if float32_output else layer.compute_dtype
            assert keras.backend.standardize_dtype(out.dtype) == expected, (policy, out.dtype)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def run_fit_test(model, x, y, loss="mse", epochs=3, learning_rate=1e-2, expect_decrease=True):
    """A few full-batch ``fit`` steps: finite loss that goes down, trainable weights move."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, jit_compile=False)
    before = [np.array(w.numpy()) for w in model.trainable_weights]
    n = len(y) if not isinstance(y, dict) else len(next(iter(y.values())))
    history = model.fit(x, y, batch_size=n, epochs=epochs, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)), losses
    if expect_decrease:
        assert losses[-1] < losses[0], losses
    after = [np.array(w.numpy()) for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    return losses


def run_saving_test(model, x, tmp_path, layer_cls, atol=0.0):
    """``.keras`` save -> load in the same process gives identical outputs."""
    expected = _to_numpy(model(x, training=False))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert any(isinstance(l, layer_cls) for l in loaded._flatten_layers()), layer_cls
    np.testing.assert_allclose(_to_numpy(loaded(x, training=False)), expected, atol=atol, rtol=0)
    return loaded


def functional_model(layer, inputs, head=None):
    """A one-layer functional model around ``layer`` (optionally followed by ``head``)."""
    if isinstance(inputs, (list, tuple)):
        k_in = [_keras_input(np.shape(x), str(x.dtype)) for x in inputs]
    else:
        k_in = _keras_input(np.shape(inputs), str(inputs.dtype))
    out = layer(k_in)
    if head is not None:
        out = head(out)
    return keras.Model(k_in, out)
