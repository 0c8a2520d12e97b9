"""A run killed with SIGKILL at any point, then re-run, ends exactly as an uninterrupted run.

Each scenario runs ``kill_run.py`` in a subprocess that kills itself at an injected point
(after a batch, or in the middle of writing one of the run's files: a slow writer cut off),
then resumes in this process with the same config and compares the final weights, metrics and
TensorBoard curves with an uninterrupted run.
"""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs.benchmark import benchmark_config
from tf_mmcl import training

pytestmark = pytest.mark.slow  # every test resumes runs killed in subprocesses

OVERRIDES = [
    "dataset.params.n_train=256",
    "dataset.params.n_val=64",
    "dataset.params.n_test=64",
    "epochs=3",
    "batch_size=64",
    "verbose=0",
]  # 4 steps per epoch; Symile "n" draws permutations
KILL_RUN = os.path.join(os.path.dirname(__file__), "kill_run.py")
# (point, what it interrupts)
SCENARIOS = {
    "config": "partial:config.json:1",  # the first file of a new run, half written
    "mid_epoch": "batch:2:2",  # between two steps of epoch 2
    "backup_arrays": "partial:.npz:2",  # the epoch-2 backup arrays, half written
    "backup_between": "after:.npz:2",  # backup arrays complete, its state file not yet
    "checkpoint": "partial:epoch_002.weights.h5:1",
    "model": "partial:model.keras:1",
    "metrics_final": "partial:metrics.json:4",  # the last metrics.json (status finished)
}


def config():
    return training.apply_overrides(benchmark_config("symile_xor", "symile"), list(OVERRIDES))


def launch(workdir, point, env=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OPENBLAS_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen(
        [sys.executable, KILL_RUN, workdir, point, *OVERRIDES],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def scalars(workdir):
    out = {}
    for path in glob.glob(os.path.join(workdir, "tensorboard", "*", "events.out.tfevents.*")):
        split = os.path.basename(os.path.dirname(path))
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.setdefault((split, value.tag), []).append(event.step)
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Every scenario's workdir after the kill (the subprocesses run side by side)."""
    root = tmp_path_factory.mktemp("killed")
    procs = {name: launch(str(root / name), point) for name, point in SCENARIOS.items()}
    dirs = {}
    for name, proc in procs.items():
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == -9, f"{name}: not killed (rc {proc.returncode}):\n{output[-3000:]}"
        dirs[name] = str(root / name)
    return dirs


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("reference"))
    result = training.train(config(), workdir)
    with open(os.path.join(workdir, "metrics.csv")) as f:
        csv = f.read()
    return workdir, result, csv


def assert_same_run(workdir, result, reference):
    ref_dir, ref, ref_csv = reference
    for got, want in zip(result.model.get_weights(), ref.model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    with open(os.path.join(workdir, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["status"] == "finished" and saved["epochs_done"] == 3
    for key, values in ref.history.items():
        np.testing.assert_allclose(saved["history"][key], values, rtol=1e-6, atol=1e-6)
    with open(os.path.join(workdir, "metrics.csv")) as f:
        rows = [r.split(",") for r in f.read().strip().splitlines()]
    ref_rows = [r.split(",") for r in ref_csv.strip().splitlines()]
    assert rows[0] == ref_rows[0] and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    np.testing.assert_allclose(np.array(rows[1:], float), np.array(ref_rows[1:], float), rtol=1e-6, atol=1e-6)
    curves = scalars(workdir)
    assert curves == scalars(ref_dir)  # every curve has the steps 0, 1, 2 once
    assert curves[("train", "epoch_loss")] == [0, 1, 2]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "epoch_001.weights.h5",
        "epoch_002.weights.h5",
        "epoch_003.weights.h5",
    ]
    assert not os.path.exists(os.path.join(workdir, "backup"))
    assert not [n for n in os.listdir(workdir) if ".tmp-" in n]
    _, model = training.load_run(workdir)
    for got, want in zip(model.get_weights(), ref.model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_killed_run_resumes_to_the_uninterrupted_result(scenario, killed, reference):
    workdir = killed[scenario]
    result = training.train(config(), workdir)
    assert result.status in ("trained", "resumed")
    assert_same_run(workdir, result, reference)
    again = training.train(config(), workdir)  # a finished run is not retrained
    assert again.status == "finished"


def test_a_corrupt_backup_is_named_and_the_previous_one_used(tmp_path, reference):
    workdir = str(tmp_path / "run")
    proc = launch(workdir, "batch:3:1")
    assert proc.communicate(timeout=600)[0] is not None and proc.returncode == -9
    newest = os.path.join(workdir, "backup", "epoch_000002.npz")
    with open(newest, "r+b") as f:  # the disk lost the tail of the newest backup
        f.truncate(os.path.getsize(newest) // 2)
    with pytest.warns(UserWarning, match="epoch_000002.npz is corrupt or incomplete"):
        result = training.train(config(), workdir)
    assert result.status == "resumed"
    assert_same_run(workdir, result, reference)
