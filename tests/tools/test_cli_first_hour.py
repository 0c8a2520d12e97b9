"""A new user's first hour with tools/: fast --help, one-line errors, objective switching,
the serving walkthrough's inputs, scratch output of --quick runs, and m3_digits training."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from configs.benchmark import benchmark_config
from tf_mmcl import training

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")
TINY = [
    "--config.dataset.params.n_train=256",
    "--config.dataset.params.n_val=64",
    "--config.dataset.params.n_test=64",
    "--config.batch_size=64",
    "--config.epochs=1",
    "--config.verbose=0",
]
# Runs a tool as __main__ and reports, at exit, whether TensorFlow was imported.
_PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('TENSORFLOW_IMPORTED', 'tensorflow' in sys.modules))\n"
    f"tool = sys.argv[1]; sys.argv = sys.argv[1:]; sys.path.insert(0, {TOOLS!r})\n"
    "runpy.run_path(tool, run_name='__main__')\n"
)


def run_tool(tool, *args, cwd=REPO, probe=False):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    path = os.path.join(TOOLS, tool)
    argv = [sys.executable, "-c", _PROBE, path, *args] if probe else [sys.executable, path, *args]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    proc.seconds = time.perf_counter() - start
    return proc


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(
    "tool",
    [
        "train.py",
        "evaluate.py",
        "export.py",
        "make_dataset.py",
        "demo.py",
        "reproduce.py",
        "serving_request.py",
        "benchmark.py",
        "benchmark_clip_kernels.py",
        "make_golden.py",
        "extract_features.py",
        "train_heads.py",
        "benchmark_hub.py",
    ],
)
def test_help_answers_without_tensorflow(tool):
    proc = run_tool(tool, "--help", probe=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TENSORFLOW_IMPORTED False" in proc.stdout, proc.stdout[-500:]
    assert "--" in proc.stdout  # the flags are listed


@pytest.mark.parametrize(
    "tool,args,fragments",
    [
        (
            "train.py",
            ["--config", "configs/benchmark.py:symile_xor,clip", "--workdri", "w"],
            ["train.py: error: unknown flag --workdri", "did you mean --workdir?"],
        ),
        ("train.py", ["--config", "configs/benchmark.py:symile_xor,clip"], ["--workdir is required"]),
        (
            "train.py",
            ["--config", "configs/nope.py", "--workdir", "w"],
            ["config file 'configs/nope.py' does not exist", "configs/benchmark.py:symile_xor,symile"],
        ),
        (
            "train.py",
            ["--config", "configs/benchmark.py:symile_xor,clip", "--help"],
            [],
        ),  # help wins, config not loaded
        ("evaluate.py", [], ["evaluate.py: error: --workdir is required"]),
        ("export.py", ["--workdir", "w", "--version=abc"], ["export.py: error:", "version"]),
        ("make_dataset.py", ["--dataset", "x", "--data_dri", "d"], ["unknown flag --data_dri", "--data_dir"]),
    ],
)
def test_flag_errors_are_one_line_without_tensorflow(tool, args, fragments):
    proc = run_tool(tool, *args, probe=True)
    assert "TENSORFLOW_IMPORTED False" in proc.stdout, proc.stdout[-500:] + proc.stderr[-500:]
    if "--help" in args:
        assert proc.returncode == 0 and "--workdir" in proc.stdout
    else:
        assert_one_line_error(proc, *fragments)


@pytest.mark.skipif(shutil.which("espeak-ng") is not None, reason="espeak-ng is installed here")
def test_m3_digits_without_espeak_is_one_line(tmp_path):
    proc = run_tool("make_dataset.py", "m3_digits", "--data_dir", str(tmp_path), probe=True)
    assert "TENSORFLOW_IMPORTED False" in proc.stdout
    assert_one_line_error(proc, "espeak-ng", "apt-get install -y espeak-ng", "--clip_source")


@pytest.mark.slow
def test_switching_the_objective_from_the_command_line(tmp_path):
    # symile -> clip: Symile's negative_sampling is dropped, clip's defaults apply.
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        str(tmp_path / "clip"),
        *TINY,
        "--config.model.objective=clip",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.load(open(tmp_path / "clip" / "config.json"))
    assert saved["model"]["objective"] == "clip"
    assert saved["model"]["objective_options"] == training.objective_defaults("clip")
    assert "negative_sampling" not in saved["model"]["objective_options"]
    # symile -> gated_symile with one option set on the command line (before the switch, even).
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        str(tmp_path / "gated"),
        *TINY,
        "--config.model.objective_options.key_dim=8",
        "--config.model.objective",
        "gated_symile",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    options = json.load(open(tmp_path / "gated" / "config.json"))["model"]["objective_options"]
    assert options["key_dim"] == 8 and options["negative_sampling"] == "pair"
    # An option the objective does not take: one line naming it and the fix.
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:symile_xor,symile",
        "--workdir",
        str(tmp_path / "bad"),
        *TINY,
        "--config.model.objective_options.key_dim=32",
    )
    assert_one_line_error(proc, "['key_dim'] are not options of objective 'symile'", "--config.model.objective=")
    assert not os.path.exists(tmp_path / "bad" / "model.keras")


def test_apply_overrides_resets_the_options_of_a_new_objective():
    config = benchmark_config("confu_xor", "confu")
    training.apply_overrides(config, ["model.objective_options.key_dim=4", "model.objective=gated_symile"])
    assert config.model.objective_options.to_dict() == dict(training.objective_defaults("gated_symile"), key_dim=4)
    training.apply_overrides(config, ["model.objective=gated_symile"])  # same objective: options kept
    assert config.model.objective_options.key_dim == 4
    config.model.objective = "clip"  # switched by hand, options left behind
    with pytest.raises(ValueError, match="not options of objective 'clip'"):
        training.validate_config(config)


@pytest.mark.slow
def test_serving_request_inputs_from_the_export_and_its_errors(tmp_path):
    from tests.export import export_utils as eu
    from tf_mmcl import export

    model = eu.mlp_model("symile", "abc")
    path = export.export_for_serving(model, str(tmp_path), "m", warmup=False)
    x = eu.mlp_inputs("abc", seed=1)
    np.savez(tmp_path / "examples.npz", **x)
    np.savez(tmp_path / "cands.npz", candidate_embeddings=model.embed("c", x["c"]).numpy())
    inputs = [
        "--input",
        f"a={tmp_path / 'examples.npz'}",
        "--input",
        f"b={tmp_path / 'examples.npz'}",
        "--input",
        f"candidate_embeddings={tmp_path / 'cands.npz'}",
    ]
    proc = run_tool("serving_request.py", path, "--signature", "score_c", *inputs, "--local")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "logits: shape (5, 5) dtype float32" in proc.stdout and "top-1 candidate per query" in proc.stdout
    proc = run_tool(
        "serving_request.py", path, "--signature", "score_c", *inputs, "--rest_out", str(tmp_path / "body.json")
    )
    assert proc.returncode == 0 and "REST body (inputs form)" in proc.stdout
    proc = run_tool("serving_request.py", path, "--signature", "score_c", *inputs, "--rest_url", "http://127.0.0.1:9")
    assert_one_line_error(proc, "cannot reach TF Serving at http://127.0.0.1:9", "--local")
    proc = run_tool("serving_request.py", path, "--signature", "score_c", "--input", f"a={tmp_path / 'cands.npz'}")
    assert_one_line_error(proc, "holds the arrays ['candidate_embeddings'], not 'a'", ":<array>")
    proc = run_tool("serving_request.py", path, "--input", f"a={tmp_path / 'missing.npy'}")
    assert_one_line_error(proc, "no file")


@pytest.mark.slow
def test_reproduce_quick_writes_outside_the_committed_docs(tmp_path):
    proc = run_tool("reproduce.py", "--quick", "--assemble_only", cwd=tmp_path)
    assert_one_line_error(proc, "No experiment records under workdir/reproduce_quick/results")
    records = tmp_path / "workdir" / "reproduce_quick" / "results"
    records.mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "docs", "results", "symile_xor.json"), records)
    proc = run_tool("reproduce.py", "--quick", "--assemble_only", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Wrote workdir/reproduce_quick/results.md" in proc.stdout
    assert "Symile XOR" in (tmp_path / "workdir" / "reproduce_quick" / "results.md").read_text()
    assert not os.path.exists(tmp_path / "docs")


@pytest.mark.slow
def test_m3_digits_trains_evaluates_and_exports_with_the_tools(tmp_path):
    clips = os.path.join(REPO, "tests", "datasets", "data", "m3_digits_clips")
    workdir = str(tmp_path / "m3")
    proc = run_tool(
        "train.py",
        "--config",
        "configs/benchmark.py:m3_digits,symile",
        "--workdir",
        workdir,
        "--config.dataset.tfds_name=m3_digits/tiny",
        f"--config.dataset.data_dir={tmp_path / 'data'}",
        f"--config.dataset.params.clip_source={clips}",
        "--config.batch_size=16",
        "--config.epochs=1",
        "--config.verbose=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Trained symile on m3_digits" in proc.stdout and "top1_text" in proc.stdout
    proc = run_tool("evaluate.py", "--workdir", workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| image,audio->text |" in proc.stdout and "50 candidates" in proc.stdout
    proc = run_tool("export.py", "--workdir", workdir, "--export_dir", str(tmp_path / "models"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cands = np.load(tmp_path / "models" / "m3_digits_symile_candidates.npz")
    assert cands["candidates"].dtype == np.int32 and cands["candidate_embeddings"].shape == (50, 32)


def test_import_without_tensorflow_names_the_extra():
    # -S -I: no site-packages, so no TensorFlow; the package must say which extra installs it.
    code = f"import sys; sys.path.insert(0, {REPO!r}); import tf_mmcl"
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: tf_mmcl needs TensorFlow"), proc.stderr
    assert 'pip install "tf-mmcl[cpu]"' in last and 'pip install "tf-mmcl[gpu]"' in last and ".[cpu]" in last
