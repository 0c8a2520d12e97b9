"""The absl programs in tools/: train -> evaluate -> export, make_dataset, demo, and their errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test runs the command-line tools in subprocesses

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
    "--config.dataset.params.n_train=256",
    "--config.dataset.params.n_val=64",
    "--config.dataset.params.n_test=64",
    "--config.batch_size=64",
    "--config.epochs=1",
]


def run_tool(tool, *args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", tool), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_clean_error(proc, *fragments):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("cli") / "symile")
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        workdir,
        *TINY,
        "--config.verbose=2",
    )
    assert proc.returncode == 0, proc.stderr
    return workdir, proc


def test_train_writes_the_run_and_shows_keras_progress(trained):
    workdir, proc = trained
    assert "4/4 - " in proc.stdout and "val_loss" in proc.stdout  # Keras per-epoch log: 256/64 steps
    assert "Trained symile on symile_xor" in proc.stdout
    for name in ("config.json", "metrics.csv", "metrics.json", "model.keras", "checkpoints/epoch_001.weights.h5"):
        assert os.path.isfile(os.path.join(workdir, name)), name
        assert os.path.join(workdir, name.split("/")[0]) in proc.stdout
    assert os.path.isdir(os.path.join(workdir, "tensorboard"))


def test_evaluate_prints_and_writes_the_table_and_plots(trained):
    workdir, _ = trained
    proc = run_tool("evaluate.py", "--workdir", workdir)
    assert proc.returncode == 0, proc.stderr
    assert "| b,c->a |" in proc.stdout and "chance top-1 = 0.031" in proc.stdout
    for name in ("results.md", "results.json", "retrieval.png", "training_curves.png"):
        assert os.path.getsize(os.path.join(workdir, "eval", name)) > 0


def test_evaluate_index_retrieval_ranks_the_whole_test_split(trained):
    workdir, _ = trained
    proc = run_tool("evaluate.py", "--workdir", workdir, "--index_retrieval")
    assert proc.returncode == 0, proc.stderr
    assert "whole test split through the index" in proc.stdout and "| b,c->a |" in proc.stdout
    assert "64 candidates" in proc.stdout  # every test row, not in-batch
    for name in ("index_retrieval.md", "index_retrieval.json"):
        assert os.path.getsize(os.path.join(workdir, "eval", name)) > 0


def test_export_writes_a_tf_serving_version(trained, tmp_path):
    workdir, _ = trained
    proc = run_tool("export.py", "--workdir", workdir, "--export_dir", str(tmp_path), "--name", "xor")
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(tmp_path / "xor" / "1" / "saved_model.pb")
    assert f"SavedModel for TF Serving: {tmp_path / 'xor' / '1'}" in proc.stdout
    assert np.load(tmp_path / "xor_candidates.npz")["candidate_embeddings"].shape == (32, 16)
    again = run_tool(
        "export.py", "--workdir", workdir, "--export_dir", str(tmp_path), "--name", "xor", "--version", "1"
    )
    assert_clean_error(again, "export.py: error:", "exists", "pass --overwrite")


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--config.batch_sise=64"], ["train.py: error:", "batch_sise", 'Did you mean "batch_size"']),
        (["--config.model.objective=infonce"], ["Unknown objective 'infonce'"]),
        (["--config.dataset.name=mnist"], ["Unknown dataset 'mnist'"]),
        (["--config.model.modalities=('a','b','x')"], ["do not match the modalities of dataset 'symile_xor'"]),
    ],
)
def test_train_config_errors_are_one_clear_line(tmp_path, args, fragments):
    proc = run_tool(
        "train.py", "--config", "configs/benchmark.py:symile_xor,clip", "--workdir", str(tmp_path / "w"), *TINY, *args
    )
    assert_clean_error(proc, *fragments)
    assert not os.path.exists(tmp_path / "w" / "model.keras")


def test_missing_or_unwritable_workdir(tmp_path):
    proc = run_tool("train.py", "--config", "configs/benchmark.py:symile_xor,clip")
    assert proc.returncode != 0 and "--workdir is required" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = run_tool(
        "train.py", "--config", "configs/benchmark.py:symile_xor,clip", "--workdir", str(tmp_path / "file" / "w")
    )
    assert_clean_error(proc, "train.py: error: Workdir", "not a directory")
    proc = run_tool("evaluate.py", "--workdir", str(tmp_path / "missing"))
    assert_clean_error(proc, "evaluate.py: error: Workdir", "does not exist; train first")


def test_make_dataset_prepares_tfds_data(tmp_path):
    proc = run_tool("make_dataset.py", "--dataset", "symile_xor/tiny", "--data_dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Prepared symile_xor/tiny/1.0.0" in proc.stdout and "'train': 64" in proc.stdout
    assert os.path.isdir(tmp_path / "symile_xor" / "tiny" / "1.0.0")
    proc = run_tool("make_dataset.py", "--dataset", "imagenet", "--data_dir", str(tmp_path))
    assert_clean_error(proc, "Unknown dataset 'imagenet'")


def test_demo_smoke(tmp_path):
    proc = run_tool(
        "demo.py",
        "--workdir",
        str(tmp_path),
        "--objectives",
        "clip,symile",
        "--verbose",
        "0",
        "--config.epochs=1",
        "--config.dataset.params.n_train=256",
        "--config.dataset.params.n_val=64",
        "--config.dataset.params.n_test=64",
    )
    assert proc.returncode == 0, proc.stderr
    assert "| method | top-1 1->1 | top-1 2->1 | train s |" in proc.stdout
    assert "| clip |" in proc.stdout and "| symile |" in proc.stdout
    for name in (
        "comparison.md",
        "comparison.png",
        "export/symile_xor_symile/1/saved_model.pb",
        "clip/model.keras",
        "symile/eval/results.md",
    ):
        assert os.path.isfile(tmp_path / name), name
        assert str(tmp_path / name.split("/")[0]) in proc.stdout
    assert "=== clip: 1 epochs" in proc.stdout and "=== symile: 1 epochs" in proc.stdout  # every config


def test_demo_overrides_use_the_config_syntax(tmp_path):
    proc = run_tool("demo.py", "--workdir", str(tmp_path), "--override=epochs=1")
    assert_clean_error(proc, "--override was removed", "--config.<key>=<value>", "--config.epochs=1")
    proc = run_tool("demo.py", "--workdir", str(tmp_path), "--config", "configs/benchmark.py:symile_xor,clip")
    assert_clean_error(proc, "--config is set by demo.py", "--config.<key>=<value>")
    proc = run_tool("demo.py", "--workdir", str(tmp_path), "--config.epochz=1")
    assert_clean_error(proc, "epochz", 'Did you mean "epochs"')


def test_train_a_finished_run_again_says_so_and_a_bad_value_leaves_no_workdir(trained, tmp_path):
    workdir, _ = trained
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        workdir,
        *TINY,
        "--config.verbose=0",
    )  # verbose is not part of the run's identity
    assert proc.returncode == 0, proc.stderr
    assert "has already finished (1 epoch(s)); nothing to do" in proc.stdout and "--overwrite" in proc.stdout
    with open(os.path.join(workdir, "metrics.csv")) as f:
        assert len(f.read().strip().splitlines()) == 2  # no duplicate epoch
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        workdir,
        *TINY,
        "--config.learning_rate=0.5",
    )
    assert_clean_error(
        proc, "belongs to a run with another config: learning_rate: 0.02 in the workdir, 0.5 now", "--overwrite"
    )
    fresh = str(tmp_path / "never")
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        fresh,
        *TINY,
        "--config.learning_rate=nan",
    )
    assert_clean_error(proc, "learning_rate must be a finite number > 0, got nan")
    assert not os.path.exists(fresh)
