"""An experiment with parts (m3_digits_wide: one width per dataset config) is run one part at a time into one record.

The training is replaced by stored measurements (the committed w = 5 seeds, relabelled for w = 10),
so what is tested is the joining: which records are joined, which are replaced, and what the
joined record, its summary and its Markdown say.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reproductions import record_parts, runner
from reproductions.m3_digits import M3DigitsWide

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "reproduce" / "m3_digits_wide.py")
COMMITTED = json.loads((ROOT / "docs" / "results" / "m3_digits_wide.json").read_text())


def _entry(dataset_config, seed, shift):
    """A width's measurements for one seed: the committed w = 5 seed, relabelled and shifted (to tell runs apart)."""
    entry = copy.deepcopy(COMMITTED["per_seed"][seed]["widths"]["5"])
    width = dataset_config.rsplit("_", 1)[1]
    entry["dataset_config"] = dataset_config
    entry["languages"] = entry["languages"][:1] * int(width)
    for metrics in entry["methods"].values():
        metrics["class_2to1"] = round(metrics["class_2to1"] + shift, 4)
    return width, entry


@pytest.fixture
def fake_training(monkeypatch):
    """``run_seed`` returns stored measurements; ``calls`` lists (seed, dataset configs) run, ``shift`` tags the run."""
    state = {"calls": [], "shift": 0.0}

    def run_seed(self, config, seed, log):
        state["calls"].append((seed, list(config.dataset_configs)))
        return {"widths": dict(_entry(d, seed, state["shift"]) for d in config.dataset_configs)}

    monkeypatch.setattr(M3DigitsWide, "run_seed", run_seed)
    return state


def _run(out, parts, messages=None, seeds=3, overrides=None, merge=True, command_dir=None):
    command = "python tools/reproduce.py --config=configs/reproduce/m3_digits_wide.py"
    command += f" '--config.dataset_configs={parts!r}'"
    if command_dir:
        command += f" --output_dir={command_dir}"
    return runner.run_experiment(
        CONFIG,
        overrides={"dataset_configs": parts, **(overrides or {})},
        seeds=seeds,
        output_dir=str(out),
        command=command,
        log=messages.append if messages is not None else (lambda m: None),
        merge=merge,
    )


def _widths(record):
    return [list(seed["widths"]) for seed in record["per_seed"]]


def test_a_second_width_is_joined_into_the_record_of_the_first(tmp_path, fake_training):
    out = tmp_path / "docs"
    first = _run(out, ["symile_m3_5"])
    assert "w = 10 not run" in first["verdict"] and "runs" not in first

    fake_training["shift"] = 0.01
    messages = []
    joined = _run(out, ["symile_m3_10"], messages)
    assert fake_training["calls"][-3:] == [(s, ["symile_m3_10"]) for s in range(3)]  # w = 5 is not trained again
    assert any("joined with" in m for m in messages), messages
    stored = json.loads((out / "results" / "m3_digits_wide.json").read_text())
    assert stored == json.loads(json.dumps(joined))
    assert _widths(stored) == [["5", "10"]] * 3
    assert stored["config"]["dataset_configs"] == ["symile_m3_5", "symile_m3_10"]
    for kept, seed in zip(first["per_seed"], stored["per_seed"]):
        assert seed["widths"]["5"] == kept["widths"]["5"]  # w = 5 as its own run measured it
        assert seed["widths"]["10"]["methods"]["Symile"]["class_2to1"] == pytest.approx(
            kept["widths"]["5"]["methods"]["Symile"]["class_2to1"] + 0.01
        )
    # One command regenerates both widths: the config's own dataset_configs, so no override.
    assert "dataset_configs" not in stored["command"] and stored["overrides"] == {}
    assert [run["parts"] for run in stored["runs"]] == [["symile_m3_5"], ["symile_m3_10"]]
    assert "symile_m3_5" in stored["runs"][0]["command"] and "symile_m3_10" in stored["runs"][1]["command"]
    assert stored["wall_time_s"] == pytest.approx(sum(run["wall_time_s"] for run in stored["runs"]), abs=0.11)
    # The summary covers both widths.
    assert stored["tables"][0]["header"] == ["method", "w = 5", "w = 10"]
    assert "not run" not in stored["verdict"] and "holds at w = 5, 10" in stored["verdict"]
    markdown = Path(runner.assemble_markdown(str(out))).read_text()
    assert "- **Runs**: the command above runs every part at once" in markdown
    assert "  - `dataset_configs` = symile_m3_10: `python tools/reproduce.py" in markdown

    # Running w = 5 again replaces w = 5's measurements and its run, and keeps w = 10's.
    fake_training["shift"] = 0.02
    again = _run(out, ["symile_m3_5"])
    assert _widths(again) == [["5", "10"]] * 3
    assert [run["parts"] for run in again["runs"]] == [["symile_m3_10"], ["symile_m3_5"]]
    for seed, before in zip(again["per_seed"], stored["per_seed"]):
        assert seed["widths"]["10"] == before["widths"]["10"]
        assert seed["widths"]["5"]["methods"]["CLIP"]["class_2to1"] == pytest.approx(
            before["widths"]["5"]["methods"]["CLIP"]["class_2to1"] + 0.02
        )


@pytest.mark.parametrize(
    "change, why",
    [
        ({"overrides": {"steps": 11000}}, "its config differs in ['steps']"),
        ({"seeds": 2}, "its num_seeds is 3, this run's 2"),
        ({"merge": False}, None),
    ],
)
def test_a_run_that_measures_something_else_replaces_the_record(tmp_path, fake_training, change, why):
    out = tmp_path / "docs"
    _run(out, ["symile_m3_5"])
    messages = []
    record = _run(out, ["symile_m3_10"], messages, **change)
    assert all(widths == ["10"] for widths in _widths(record)) and "runs" not in record
    if why:
        assert any(f"is replaced, not joined: {why}" in m for m in messages), messages
    else:
        assert not any("joined" in m for m in messages)


def test_merge_from_joins_parts_run_elsewhere_and_drops_their_output_dir(tmp_path, fake_training):
    docs, elsewhere = tmp_path / "docs", tmp_path / "gpu_box"
    _run(docs, ["symile_m3_5"])
    _run(elsewhere, ["symile_m3_10"], command_dir=str(elsewhere))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "reproduce.py"), f"--merge_from={elsewhere}", f"--output_dir={docs}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((docs / "results" / "m3_digits_wide.json").read_text())
    assert _widths(record) == [["5", "10"]] * 3
    assert all("--output_dir" not in run["command"] for run in record["runs"]), record["runs"]
    assert (docs / "plots" / "results_m3_digits_wide.png").read_bytes()[:4] == b"\x89PNG"
    assert "- **Runs**:" in (docs / "results.md").read_text()


def test_merge_from_an_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No experiment record under"):
        runner.merge_from(str(tmp_path / "nothing"), str(tmp_path / "docs"))


def test_command_for_parts_sets_or_drops_the_override():
    command = "python tools/reproduce.py --config=c.py '--config.dataset_configs=['\"'\"'a'\"'\"']' --jobs=2"
    assert record_parts.command_for_parts(command, "dataset_configs", ["a", "b"], ["a", "b"]) == (
        "python tools/reproduce.py --config=c.py --jobs=2"
    )
    assert record_parts.command_for_parts(command, "dataset_configs", ["b"], ["a", "b"]).endswith(
        "--jobs=2 '--config.dataset_configs=['\"'\"'b'\"'\"']'"
    )
    assert record_parts.strip_output_flags("python t.py --output_dir=/tmp/x --jobs=2") == "python t.py --jobs=2"
