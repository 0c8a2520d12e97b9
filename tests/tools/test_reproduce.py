"""tools/reproduce.py: a reduced quick run end to end, the config syntax, and the piece-wise Markdown assembly."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

import reproductions as experiments
from reproductions import runner

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "reproduce.py"
CONFIGS = ROOT / "configs" / "reproduce"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# One experiment's quick variant with reduced sizes: 2 seeds x 2 methods x one p_hat.
QUICK_ARGS = [
    "--config=configs/reproduce/symile_xor.py:quick",
    "--seeds=2",
    "--config.p_hats=[1.0]",
    "--config.steps=60",
    "--config.n_train=2000",
    "--config.n_test=500",
    "--config.batch_size=500",
    "--config.protocol=section1",
]


def config_file(name, variant=None):
    return str(CONFIGS / f"{name}.py") + (f":{variant}" if variant else "")


def run_tool(*args, cwd=ROOT, timeout=60):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    proc = run_tool(*QUICK_ARGS, f"--output_dir={out}", timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_quick_run_writes_record_with_the_measured_claim(quick_run):
    out, _ = quick_run
    record = json.loads((out / "results" / "symile_xor.json").read_text())
    assert record["quick"] is True and record["num_seeds"] == 2
    assert record["config"]["steps"] == 60 and record["config"]["p_hats"] == [1.0]
    assert record["config"]["protocol"] == "section1" and record["overrides"]["n_train"] == 2000
    acc = {lab: [s["methods"][lab]["accuracy"][0] for s in record["per_seed"]] for lab in ("Symile", "CLIP")}
    assert all(0.0 <= a <= 1.0 for v in acc.values() for a in v)
    # The claim itself, at p_hat = 1 with 2^5 candidates: Symile solves XOR, CLIP is at chance.
    assert min(acc["Symile"]) > 0.8, acc
    assert max(acc["CLIP"]) < 2.0**-5 + 0.06, acc
    assert record["verdict"].startswith("**reproduced**")
    assert record["wall_time_s"] > 0
    # The command that reproduces the record, in the config syntax, with repository-relative paths.
    assert record["command"].startswith(
        "python tools/reproduce.py --config=configs/reproduce/symile_xor.py:quick --seeds=2 '--config.p_hats=[1.0]'"
    )


@pytest.mark.slow
def test_quick_run_writes_markdown_section(quick_run):
    out, _ = quick_run
    md = (out / "results.md").read_text()
    assert "do not edit by hand" in md
    assert "## 1. Symile XOR" in md
    assert "QUICK run" in md
    assert "- **Machine**:" in md and "- **Wall time**:" in md
    assert "--config=configs/reproduce/symile_xor.py:quick --seeds=2" in md  # the exact command
    header = next(line for line in md.splitlines() if line.startswith("| p̂ |"))
    assert "Symile (ours)" in header and "CLIP (ours)" in header and "Bayes-optimal" in header
    assert "per-bit posterior" in header
    row = next(line for line in md.splitlines() if line.startswith("| 1.00 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # p̂, Bayes-optimal, per-bit posterior (both 100 % at p̂ = 1), then mean ± std per method.
    assert len(cells) == 5 and cells[1] == cells[2] == "100.0" and all("±" in c for c in cells[3:])
    assert "![symile_xor](plots/results_symile_xor.png)" in md
    # Only the experiment that ran has a section.
    assert "## 2. ConFu XOR" not in md


@pytest.mark.slow
def test_quick_run_writes_a_real_plot(quick_run):
    out, _ = quick_run
    path = out / "plots" / "results_symile_xor.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert float(np.std(image[..., :3])) > 0.01  # not a blank canvas


@pytest.mark.slow
def test_assembly_keeps_other_sections_and_replaces_own(quick_run, tmp_path):
    out, _ = quick_run
    record = json.loads((out / "results" / "symile_xor.json").read_text())
    (tmp_path / "results").mkdir()
    other = dict(
        record,
        experiment="confu_xor",
        title="2. ConFu XOR: stub title for the test",
        quick=False,
        verdict="other-verdict",
        plot="plots/results_confu_xor.png",
    )
    (tmp_path / "results" / "confu_xor.json").write_text(json.dumps(other))
    (tmp_path / "results" / "symile_xor.json").write_text(json.dumps(record))
    path = runner.assemble_markdown(str(tmp_path))
    md = Path(path).read_text()
    assert md.index("## 1. Symile XOR") < md.index("## 2. ConFu XOR: stub")  # registry order
    assert "other-verdict" in md and "full run" in md and "QUICK run" in md
    # Re-running one experiment rewrites only its record: the other section survives.
    (tmp_path / "results" / "symile_xor.json").write_text(json.dumps(dict(record, verdict="new-verdict")))
    md = Path(runner.assemble_markdown(str(tmp_path), str(tmp_path / "custom.md"))).read_text()
    assert "new-verdict" in md and "other-verdict" in md


@pytest.mark.slow
def test_resummarize_rebuilds_from_measurements_and_never_leaves_half_a_file(quick_run, tmp_path, monkeypatch):
    out, _ = quick_run
    docs = tmp_path / "docs"
    shutil.copytree(out, docs)
    record_path, plot_path = docs / "results" / "symile_xor.json", docs / "plots" / "results_symile_xor.png"
    before = json.loads(record_path.read_text())
    stale = dict(before, tables=[], findings=[], verdict="stale")
    record_path.write_text(json.dumps(stale))
    assert runner.resummarize(str(docs), log=lambda msg: None) == ["symile_xor"]
    again = json.loads(record_path.read_text())
    assert again["tables"] == before["tables"] and again["verdict"] == before["verdict"]
    assert again["per_seed"] == before["per_seed"]  # the measurements themselves are not rerun
    # A plot that fails half way: the record and the plot stay as they were, no temporary file is left.
    record_text, plot_bytes = record_path.read_text(), plot_path.read_bytes()

    def broken_plot(self, per_seed, config, path):
        Path(path).write_bytes(b"half a png")
        raise RuntimeError("plot failed")

    monkeypatch.setattr(type(experiments.get_experiment("symile_xor")), "plot", broken_plot)
    with pytest.raises(RuntimeError, match="plot failed"):
        runner.resummarize(str(docs), log=lambda msg: None)
    assert record_path.read_text() == record_text and plot_path.read_bytes() == plot_bytes
    assert sorted(p.name for p in (docs / "plots").iterdir()) == ["results_symile_xor.png"]


def test_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="Unknown experiment 'nope'"):
        experiments.get_experiment("nope")
    with pytest.raises(ValueError, match="unknown key 'no_such_key'.*'steps'"):
        runner.load_config(config_file("symile_xor", "quick"), {"no_such_key": 1})
    with pytest.raises(ValueError, match="encoder has no key 'output_dimz'"):
        runner.load_config(config_file("gated_fragility"), {"encoder.output_dimz": 1})
    with pytest.raises(ValueError, match=r"Unknown config variant 'fast'; expected one of \['quick'\]"):
        runner.load_config(config_file("symile_xor", "fast"))
    with pytest.raises(ValueError, match="does not exist"):
        runner.load_config(config_file("nope"))
    with pytest.raises(ValueError, match="No experiment records"):
        runner.assemble_markdown(str(tmp_path))


def test_overrides_set_top_level_and_nested_keys():
    config = runner.load_config(
        config_file("gated_fragility", "quick"), {"steps": 7, "encoder.output_dim": 16, "rates": [0.5]}
    )
    assert config.steps == 7 and config.encoder.output_dim == 16 and config.rates == [0.5]
    assert config.encoder.hidden_units == (64,) and config.num_seeds == 2  # the rest: the quick variant
    with pytest.raises(ValueError, match="steps=.*'many'"):
        runner.load_config(config_file("symile_xor"), {"steps": "many"})


def test_every_registered_experiment_has_a_full_config_and_a_quick_variant():
    assert list(experiments.EXPERIMENTS) == [
        "symile_xor",
        "confu_xor",
        "gated_fragility",
        "misalignment",
        "misalignment_long",
        "noise_robustness",
        "m3_digits",
        "m3_digits_pairwise",
        "m3_digits_wide",
        "m3_digits_missing",
    ]
    assert sorted(p.stem for p in CONFIGS.glob("*.py") if p.stem != "common") == sorted(experiments.EXPERIMENTS)
    for name in experiments.EXPERIMENTS:
        full = runner.load_config(config_file(name))
        quick = runner.load_config(config_file(name, "quick"))
        # Results report mean ± std over >= 3 seeds; misalignment_long is misalignment's one-seed
        # extension to 32x the budget (the spread over seeds is in misalignment's record).
        assert full.num_seeds >= (1 if name == "misalignment_long" else 3), name
        assert "quick" not in full and quick.to_dict() != full.to_dict(), name
        assert quick.steps <= full.steps and quick.num_seeds <= full.num_seeds, name
        assert quick.steps < full.steps or quick.num_seeds < full.num_seeds, name
        with pytest.raises(ValueError, match="Unknown config variant 'fast'"):
            runner.load_config(config_file(name, "fast"))


def test_variants_set_nested_keys_by_dotted_path():
    spec = importlib.util.spec_from_file_location("reproduce_common", CONFIGS / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    base = {"steps": 100, "faithful": {"enabled": True, "encoder": {"width": 8}}}
    config = common.variant(ml_collections.ConfigDict(base), "quick", quick={"steps": 10, "faithful.encoder.width": 2})
    assert config.steps == 10 and config.faithful.encoder.width == 2 and config.faithful.enabled is True
    with pytest.raises(
        ValueError, match=r"'faithful.widht', which is not a key of the config \['enabled', 'encoder'\]"
    ):
        common.variant(ml_collections.ConfigDict(base), "quick", quick={"faithful.widht": 2})
    with pytest.raises(ValueError, match="'steps' is not a nested dict"):
        common.variant(ml_collections.ConfigDict(base), "quick", quick={"steps.inner": 2})
    # The gated experiment's quick variant turns the faithful run off this way.
    assert runner.load_config(config_file("gated_fragility", "quick")).faithful.enabled is False
    assert runner.load_config(config_file("gated_fragility")).faithful.enabled is True


@pytest.mark.slow
def test_command_line_errors_name_the_fix():
    proc = run_tool("--experiments=symile_xor", "--quick", "--set=steps=50")
    assert_one_line_error(proc, "--set was removed", "--config.<key>=<value>", "configs/reproduce/symile_xor.py:quick")
    proc = run_tool("--experiments=symile_xor", "--config.steps=50")
    assert_one_line_error(proc, "--config.steps overrides a key of the config named by --config")
    proc = run_tool("--config=configs/reproduce/symile_xor.py:quick", "--config.stepz=50")
    assert_one_line_error(proc, "stepz", 'Did you mean "steps"')
    proc = run_tool("--config=configs/reproduce/gated_fragility.py:quick", "--config.encoder.output_dimz=8")
    assert_one_line_error(proc, "output_dimz")
    proc = run_tool("--config=configs/reproduce/gated_fragility.py:quick", "--config.encoder.output_dim=wide")
    assert_one_line_error(proc, "--config.encoder.output_dim=wide", "invalid literal for int")
    proc = run_tool("--config=configs/reproduce/symile_xor.py:fast")
    assert_one_line_error(proc, "Unknown config variant 'fast'", "['quick']")
    proc = run_tool("--config=configs/reproduce/symile_xor.py:quick", "--config.p_hats=1.0")
    assert_one_line_error(proc, "--config.p_hats", "expected a Python list")
    proc = run_tool("--config=configs/reproduce/symile_xor.py", "--quick")
    assert_one_line_error(proc, "does not go with --quick", "symile_xor.py:quick")
    proc = run_tool("--config=configs/reproduce/symile_xor.py", "--experiments=confu_xor")
    assert_one_line_error(proc, "does not go with --experiments")


@pytest.mark.slow
def test_parallel_seeds_match_sequential_seeds(tmp_path):
    # --jobs runs seeds in spawned worker processes: same per-seed measurements, seed order kept.
    overrides = {"p_hats": [1.0], "steps": 15, "n_train": 1000, "n_test": 300, "batch_size": 250}
    kwargs = dict(seeds=2, overrides=overrides, log=lambda msg: None)
    path = config_file("symile_xor", "quick")
    sequential = runner.run_experiment(path, output_dir=str(tmp_path / "seq"), jobs=1, **kwargs)
    parallel = runner.run_experiment(path, output_dir=str(tmp_path / "par"), jobs=2, **kwargs)
    assert sequential["jobs"] == 1 and parallel["jobs"] == 2
    for seq, par in zip(sequential["per_seed"], parallel["per_seed"]):
        for lab in ("Symile", "CLIP"):
            np.testing.assert_allclose(par["methods"][lab]["final_loss"], seq["methods"][lab]["final_loss"], rtol=1e-4)
            np.testing.assert_allclose(par["methods"][lab]["accuracy"], seq["methods"][lab]["accuracy"], atol=0.01)
    # Different seeds really ran (not one seed's result copied).
    assert (
        parallel["per_seed"][0]["methods"]["Symile"]["final_loss"]
        != parallel["per_seed"][1]["methods"]["Symile"]["final_loss"]
    )
    assert "in parallel processes" in Path(runner.assemble_markdown(str(tmp_path / "par"))).read_text()


def test_misalignment_compares_both_objectives_along_the_budget(tmp_path, tiny_misalignment):
    record = runner.run_experiment(
        config_file("misalignment", "quick"), tiny_misalignment, seeds=1, output_dir=str(tmp_path), log=lambda msg: None
    )
    setting = record["per_seed"][0]["settings"][0]
    assert setting["invariant"] == [0, 1, 2] and setting["n_train"] == 2 * 32 * 4  # one fresh row per row trained
    assert list(setting["methods"]) == ["Lp InfoNCE (paper)", "cosine InfoNCE (tf_mmcl)"]
    for method in setting["methods"].values():
        assert [c["step"] for c in method["curve"]] == [2, 4] and [c["pairs"] for c in method["curve"]] == [64, 128]
        assert {"s_inv", "tilde_s_3", "m_x", "m_t"} <= set(method["curve"][0]["per_block"])
        assert np.isfinite(method["final_loss"])
    # The paper's objective: log-mean-exp with the positive, so its loss starts near 0, not log(batch).
    assert abs(setting["methods"]["Lp InfoNCE (paper)"]["first_loss"]) < 1.0
    assert any(
        t["header"] == ["pairs seen", "Lp InfoNCE (paper)", "cosine InfoNCE (tf_mmcl)"] for t in record["tables"]
    )
    assert "at this budget" in record["verdict"] or "reproduced" in record["verdict"]
    assert any("does not reach 0.9" in f or "passes 0.9" in f for f in record["findings"])
    assert (tmp_path / "plots" / "results_misalignment.png").read_bytes()[:8] == PNG_MAGIC


def test_misalignment_helpers():
    from reproductions.misalignment import eval_steps, extrapolated_passing, first_passing

    assert eval_steps(100000, 8) == [781, 1562, 3125, 6250, 12500, 25000, 50000, 100000]
    assert eval_steps(3, 4) == [1, 2, 3]
    assert first_passing([10, 20, 40], [0.5, 0.91, 0.95], 0.9) == 20
    assert first_passing([10, 20], [0.5, 0.6], 0.9) is None
    # +0.1 per doubling over the last three budgets: 0.7 -> 0.9 takes two more doublings.
    assert extrapolated_passing([1000, 2000, 4000], [0.5, 0.6, 0.7], 0.9) == (16000, 0.1)
    # Only the last three budgets count (the early, steeper part does not).
    assert extrapolated_passing([500, 1000, 2000, 4000], [0.1, 0.5, 0.6, 0.7], 0.9) == (16000, 0.1)
    assert extrapolated_passing([1000, 2000, 4000], [0.6, 0.6, 0.6], 0.9) == (None, 0.0)  # flat: never
    assert extrapolated_passing([1000, 2000, 4000], [0.7, 0.8, 0.95], 0.9) == (None, None)  # already there
    assert extrapolated_passing([1000, 2000], [0.5, 0.6], 0.9) == (None, None)  # too few budgets


def test_keras_global_clipnorm_is_torch_clip_grad_norm_over_all_weights():
    # torch.nn.utils.clip_grad_norm_(params, 2.0): every gradient times min(1, 2 / ||all gradients||).
    import keras

    grads = [np.array([3.0, 0.0], "float32"), np.array([0.0, 4.0], "float32")]  # global norm 5, each < 5
    expected = [g * 2.0 / 5.0 for g in grads]
    variables = [keras.Variable(np.zeros(2, "float32")) for _ in grads]
    keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=2.0).apply_gradients(zip(grads, variables))
    for v, e in zip(variables, expected):
        np.testing.assert_allclose(-np.asarray(v), e, rtol=1e-6)
    per_variable = [keras.Variable(np.zeros(2, "float32")) for _ in grads]
    keras.optimizers.SGD(learning_rate=1.0, clipnorm=2.0).apply_gradients(zip(grads, per_variable))
    assert not np.allclose(-np.asarray(per_variable[0]), expected[0])  # clipnorm clips each weight alone


def test_mean_std_formatting_shows_a_spread_only_over_several_seeds():
    from reproductions.common import fmt_mean_std, mean_std

    assert fmt_mean_std([0.5, 0.7]) == "60.0 ± 14.1"  # sample std (ddof=1), in percent
    assert fmt_mean_std([0.53], 1.0, 2) == "0.53"  # one seed: no "± 0.00" that reads as no spread
    assert mean_std([0.53]) == (0.53, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])


def test_misalignment_long_is_misalignment_at_32x_the_pairs_with_no_row_revisited():
    short, long = runner.load_config(config_file("misalignment")), runner.load_config(config_file("misalignment_long"))
    changed = {"num_seeds", "steps", "n_train", "eval_points"}
    assert {k: v for k, v in long.to_dict().items() if k not in changed} == {
        k: v for k, v in short.to_dict().items() if k not in changed
    }
    assert long.batch_size * long.steps == 32 * short.batch_size * short.steps
    # The paper's objective encodes an independent sample per pair: 2 fresh rows per pair trained on.
    assert long.n_train >= 2 * long.batch_size * long.steps
    from reproductions.misalignment import eval_steps

    assert eval_steps(long.steps, long.eval_points)[0] * long.batch_size == 8192  # the curve starts at 8 k pairs
