"""Divergence guard, workdir ownership, config validation before any write, corrupt-file messages."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.benchmark import benchmark_config
from tf_mmcl import training
from tf_mmcl.layers import MLPEncoder
from tf_mmcl.models import MultimodalContrastiveModel

TINY = [
    "dataset.params.n_train=128",
    "dataset.params.n_val=32",
    "dataset.params.n_test=32",
    "epochs=2",
    "batch_size=32",
    "verbose=0",
]


def tiny_config(*overrides, objective="clip"):
    return training.apply_overrides(benchmark_config("symile_xor", objective), TINY + list(overrides))


def small_model(objective="symile"):
    model = MultimodalContrastiveModel(
        {m: MLPEncoder(hidden_units=(8,), output_dim=8) for m in "abc"}, embedding_dim=4, objective=objective
    )
    return model


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, 3)).astype("float32") for m in "abc"}


# ---------------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_nan_input_stops_training_naming_the_feature_and_step(jit_compile):
    x = data()
    x["b"][37, 1] = np.nan  # batch 2 of pass 0 or a later one: the step is named, whatever it is
    model = small_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    with pytest.raises(training.DivergenceError, match=r"at step \d+ .*input 'b' is not finite"):
        training.fit(model, x, batch_size=16, epochs=3, seed=0)
    assert model.finite_monitor is None  # the guard is detached again


def test_a_nan_learning_rate_stops_at_the_first_step_naming_a_weight():
    model = small_model("clip")
    model.compile(optimizer=keras.optimizers.SGD(float("nan")), steps_per_execution=2)
    with pytest.raises(training.DivergenceError, match=r"at step 0 \(epoch 1, batch 1\): weight .* is not finite"):
        training.fit(model, data(), batch_size=16, epochs=2, seed=0)


def test_the_guard_does_not_change_the_trained_weights():
    weights = []
    for check in (True, False):
        keras.utils.set_random_seed(3)
        model = small_model("gated_symile")
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        training.fit(model, data(), batch_size=16, epochs=2, seed=1, check_finite=check)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_a_diverged_run_keeps_its_last_good_epoch(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    config = tiny_config("epochs=3")
    original = training.loop.batch_stream

    def poisoned(data, batch_size, seed, start_step=0):  # NaN in feature b from step 6 (epoch 2) on
        def poison(i, batch):
            return dict(batch, b=tf.where(i + start_step >= 6, batch["b"] * np.float32("nan"), batch["b"]))

        return original(data, batch_size, seed, start_step).enumerate().map(poison)

    monkeypatch.setattr(training.loop, "batch_stream", poisoned)
    with pytest.raises(training.DivergenceError, match=r"step 6 \(epoch 2, batch 3\): input 'b' is not finite") as e:
        training.train(config, workdir)
    # The way out: other settings need a new workdir or --overwrite (this one belongs to the config).
    assert "diverge again" in str(e.value) and "new --workdir" in str(e.value) and "--overwrite" in str(e.value)
    assert not os.path.exists(os.path.join(workdir, "model.keras"))
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["epoch_001.weights.h5"]
    with open(os.path.join(workdir, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["status"] == "running" and saved["epochs_done"] == 1
    assert all(np.isfinite(v).all() for v in saved["history"].values())
    # The tool's message names step 6 (epoch 2, batch 3); the backup of epoch 1 is still there.
    assert os.listdir(os.path.join(workdir, "backup")) == ["epoch_000001.json", "epoch_000001.npz"] or sorted(
        os.listdir(os.path.join(workdir, "backup"))
    ) == ["epoch_000001.json", "epoch_000001.npz"]


# ---------------------------------------------------------------------------------- workdir
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    result = training.train(tiny_config(), workdir)
    return workdir, result


def test_another_config_in_the_same_workdir_is_an_error_naming_the_keys(finished_run):
    workdir, _ = finished_run
    with open(os.path.join(workdir, "config.json")) as f:
        before = f.read()
    with pytest.raises(
        ValueError,
        match=r"another config: learning_rate: 0.02 in the workdir, 0.5 now; "
        r"model.objective: 'clip' in the workdir, 'symile' now.*--workdir.*--overwrite",
    ):
        training.train(tiny_config("learning_rate=0.5", objective="symile"), workdir)
    with open(os.path.join(workdir, "config.json")) as f:
        assert f.read() == before


def test_a_finished_run_is_not_retrained_and_overwrite_retrains(finished_run, tmp_path):
    workdir, first = finished_run
    with open(os.path.join(workdir, "metrics.csv")) as f:
        csv = f.read()
    again = training.train(tiny_config("verbose=2"), workdir)  # verbose is not part of the identity
    assert again.status == "finished" and again.history == first.history
    with open(os.path.join(workdir, "metrics.csv")) as f:
        assert f.read() == csv  # no duplicate epochs
    copy = str(tmp_path / "copy")
    import shutil

    shutil.copytree(workdir, copy)
    redone = training.train(tiny_config("learning_rate=0.5"), copy, overwrite=True)
    assert redone.status == "trained"
    with open(os.path.join(copy, "metrics.csv")) as f:
        assert len(f.read().strip().splitlines()) == 3
    assert training.load_run(copy)[0].learning_rate == 0.5


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=-1", "epochs must be an integer >= 1, got -1"),
        ("epochs=0", "epochs must be an integer >= 1, got 0"),
        ("batch_size=1", "batch_size must be an integer >= 2, got 1"),
        ("learning_rate=float('nan')", "learning_rate must be a finite number > 0, got nan"),
        ("learning_rate=-0.1", "learning_rate must be a finite number > 0"),
        ("weight_decay=float('inf')", "weight_decay must be a finite number >= 0"),
        ("steps_per_epoch=-2", "steps_per_epoch must be an integer >= 0"),
        ("dataset.params.n_train=1", "fewer than batch_size=32"),
    ],
)
def test_bad_values_fail_before_any_file_is_written(tmp_path, override, message):
    workdir = tmp_path / "never"
    config = tiny_config()
    key, value = override.split("=", 1)
    node = config
    for part in key.split(".")[:-1]:
        node = node[part]
    node[key.split(".")[-1]] = eval(value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        training.train(config, str(workdir))
    assert not workdir.exists()


# ---------------------------------------------------------------------------------- corrupt files
def test_a_truncated_model_or_config_is_named_as_corrupt(finished_run, tmp_path):
    workdir, _ = finished_run
    import shutil

    for name in ("model.keras", "config.json"):
        copy = tmp_path / name
        shutil.copytree(workdir, copy)
        target = copy / name
        target.write_bytes(target.read_bytes()[:96])
        with pytest.raises(ValueError, match=f"{name} is corrupt or incomplete") as e:
            training.load_run(str(copy))
        assert "File not found" not in str(e.value)  # the file is there: only its content is bad
    # The training tool names the corrupt config as well, with the way out.
    with pytest.raises(ValueError, match=r"config.json is corrupt or incomplete.*--overwrite"):
        training.train(tiny_config(), str(tmp_path / "config.json"))
