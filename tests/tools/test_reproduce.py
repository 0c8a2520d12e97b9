"""tools/reproduce.py: a reduced --quick run end to end, and the piece-wise Markdown assembly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reproductions as experiments
from reproductions import runner

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "reproduce.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# One experiment, --quick, with reduced sizes: 2 seeds x 2 methods x one p_hat.
QUICK_ARGS = [
    "--experiments=symile_xor",
    "--quick",
    "--seeds=2",
    "--set=p_hats=[1.0]",
    "--set=steps=60",
    "--set=n_train=2000",
    "--set=n_test=500",
    "--set=batch_size=500",
    "--set=protocol='section1'",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(TOOL), *QUICK_ARGS, f"--output_dir={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_quick_run_writes_record_with_the_measured_claim(quick_run):
    out, _ = quick_run
    record = json.loads((out / "results" / "symile_xor.json").read_text())
    assert record["quick"] is True and record["num_seeds"] == 2
    assert record["config"]["steps"] == 60 and record["config"]["p_hats"] == [1.0]
    acc = {lab: [s["methods"][lab]["accuracy"][0] for s in record["per_seed"]] for lab in ("Symile", "CLIP")}
    assert all(0.0 <= a <= 1.0 for v in acc.values() for a in v)
    # The claim itself, at p_hat = 1 with 2^5 candidates: Symile solves XOR, CLIP is at chance.
    assert min(acc["Symile"]) > 0.8, acc
    assert max(acc["CLIP"]) < 2.0**-5 + 0.06, acc
    assert record["verdict"].startswith("**reproduced**")
    assert record["wall_time_s"] > 0 and "--quick" in record["command"]


@pytest.mark.slow
def test_quick_run_writes_markdown_section(quick_run):
    out, _ = quick_run
    md = (out / "results.md").read_text()
    assert "do not edit by hand" in md
    assert "## 1. Symile XOR" in md
    assert "QUICK run" in md
    assert "- **Machine**:" in md and "- **Wall time**:" in md
    assert "--experiments=symile_xor" in md  # the exact command
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


def test_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="Unknown experiment 'nope'"):
        experiments.get_experiment("nope")
    with pytest.raises(ValueError, match="unknown key 'no_such_key'"):
        runner.load_config("symile_xor", quick=True, overrides=["no_such_key=1"])
    with pytest.raises(ValueError, match="key=value"):
        runner.load_config("symile_xor", overrides=["steps"])
    with pytest.raises(ValueError, match="No experiment records"):
        runner.assemble_markdown(str(tmp_path))


def test_every_registered_experiment_has_a_config_with_quick_overrides():
    assert list(experiments.EXPERIMENTS) == [
        "symile_xor",
        "confu_xor",
        "gated_fragility",
        "misalignment",
        "noise_robustness",
        "m3_digits",
        "m3_digits_pairwise",
    ]
    for name in experiments.EXPERIMENTS:
        full = runner.load_config(name)
        quick = runner.load_config(name, quick=True)
        assert full.num_seeds >= 3, name  # results report mean ± std over >= 3 seeds
        assert "quick" not in full and quick.to_dict() != full.to_dict(), name
        assert quick.steps <= full.steps, name


@pytest.mark.slow
def test_parallel_seeds_match_sequential_seeds(tmp_path):
    # --jobs runs seeds in spawned worker processes: same per-seed measurements, seed order kept.
    overrides = ["p_hats=[1.0]", "steps=15", "n_train=1000", "n_test=300", "batch_size=250"]
    kwargs = dict(quick=True, seeds=2, overrides=overrides, log=lambda msg: None)
    sequential = runner.run_experiment("symile_xor", output_dir=str(tmp_path / "seq"), jobs=1, **kwargs)
    parallel = runner.run_experiment("symile_xor", output_dir=str(tmp_path / "par"), jobs=2, **kwargs)
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


def test_gated_fragility_runs_the_authors_setting(tmp_path):
    overrides = ["rates=[0.0]", "authors_setting=True", "steps=5", "n_train=600", "n_test=256", "n_val=128"]
    record = runner.run_experiment(
        "gated_fragility", quick=True, seeds=1, overrides=overrides, output_dir=str(tmp_path), log=lambda msg: None
    )
    seed = record["per_seed"][0]
    assert seed["rate"] == [0.0]
    for lab in ("Gated Symile", "Symile", "CLIP"):
        authors = seed["authors"][lab]
        assert 0.0 <= authors["top1"] <= 1.0
        # Every test row of the authors' setting has one misaligned modality, none clean.
        assert set(authors["by_kind"]) == {"misaligned"} and authors["by_kind"]["misaligned"]["count"] == 256
        assert set(seed["methods"][lab]["by_kind"][0]) == {"clean"}
    captions = [t.get("caption", "") for t in record["tables"]]
    assert any(c.startswith("The authors' setting") for c in captions)
    assert "authors' setting: gated" in record["verdict"]
