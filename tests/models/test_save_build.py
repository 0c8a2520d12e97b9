"""Saving never drops weights: a built, untrained model of every objective round-trips exactly."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_mmcl  # noqa: F401  (registers the classes for load_model)
from tf_mmcl.layers import MLPEncoder
from tf_mmcl.models import OBJECTIVES, MultimodalContrastiveModel

X = {m: np.random.default_rng(0).normal(size=(8, 3)).astype("float32") for m in "abc"}


def make(objective):
    return MultimodalContrastiveModel(
        {m: MLPEncoder(hidden_units=(8,), output_dim=8) for m in "abc"}, embedding_dim=4, objective=objective
    )


def assert_round_trip(model, path):
    model.save(path)
    loaded = keras.models.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    want, got = model(X), loaded(X)
    for key in want:
        np.testing.assert_array_equal(np.asarray(want[key]), np.asarray(got[key]))
    np.testing.assert_array_equal(
        model.score({"a": X["a"], "b": X["b"]}, "c", X["c"]), loaded.score({"a": X["a"], "b": X["b"]}, "c", X["c"])
    )


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_built_untrained_model_round_trips_exactly(objective, tmp_path):
    model = make(objective)
    model(X)
    assert_round_trip(model, str(tmp_path / "m.keras"))


@pytest.mark.parametrize("objective", ["gated_symile", "confu"])
def test_embedding_every_modality_builds_the_whole_model(objective, tmp_path):
    model = make(objective)
    for m in "abc":
        model.embed(m, X[m])
    assert model.built and model.objective_layers() and all(layer.built for layer in model.objective_layers())
    assert_round_trip(model, str(tmp_path / "m.keras"))


def test_model_build_with_shapes_then_save(tmp_path):
    model = make("gated_symile")
    model.build({m: (None, 3) for m in "abc"})
    assert_round_trip(model, str(tmp_path / "m.keras"))


def test_saving_a_partly_built_model_is_a_clear_error(tmp_path):
    model = make("gated_symile")
    model.embed("b", X["b"])
    with pytest.raises(
        ValueError,
        match=r"not built, so the weights of the modality\(ies\) \['a', 'c'\].*"
        r"model\(batch\).*model.build",
    ):
        model.save(str(tmp_path / "m.keras"))
    with pytest.raises(ValueError, match="not (yet been )?built"):  # Keras says so itself here
        model.save_weights(str(tmp_path / "m.weights.h5"))


@pytest.mark.slow
def test_gated_symile_round_trip_in_a_fresh_process(tmp_path):
    model = make("gated_symile")
    model(X)
    path = str(tmp_path / "m.keras")
    model.save(path)
    np.save(tmp_path / "want.npy", model.embed("b", X["b"]).numpy())
    np.save(tmp_path / "x.npy", X["b"])
    code = (
        "import sys, numpy as np, keras, tf_mmcl; m = keras.models.load_model(sys.argv[1]); "
        "got = m.embed('b', np.load(sys.argv[2])).numpy(); "
        "print(float(np.abs(got - np.load(sys.argv[3])).max()))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", code, path, str(tmp_path / "x.npy"), str(tmp_path / "want.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == 0.0
