"""A killed reproduction resumes: finished seeds, and the finished trainings of an unfinished seed, are kept
until the record is written, never mixed across runs."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reproductions import runner, seed_store
from reproductions.seed_store import SEEDS_SUBDIR, SeedStore
from reproductions.symile_xor import SymileXOR

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "reproduce" / "symile_xor.py") + ":quick"
OVERRIDES = {"p_hats": [1.0], "steps": 15, "n_train": 1000, "n_test": 300, "batch_size": 250, "protocol": "section1"}


def _measurements(record):
    """The per-seed measurements without the wall-clock times (which differ between any two runs)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "second" not in k and k != "time_s"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(record["per_seed"])


def test_a_run_that_dies_resumes_with_the_missing_seeds_only(tmp_path, monkeypatch):
    original = SymileXOR.run_seed
    calls, killed = [], []

    def run_seed(self, config, seed, log):
        calls.append(seed)
        if seed == 2 and not killed:
            killed.append(seed)
            raise RuntimeError("killed while training seed 2")
        return original(self, config, seed, log)

    monkeypatch.setattr(SymileXOR, "run_seed", run_seed)
    out = tmp_path / "docs"
    kwargs = dict(overrides=OVERRIDES, seeds=3, output_dir=str(out), log=lambda msg: None)
    with pytest.raises(RuntimeError, match="killed"):
        runner.run_experiment(CONFIG, **kwargs)
    assert not (out / "results" / "symile_xor.json").exists()
    stored = sorted(p.name for p in (out / "results" / SEEDS_SUBDIR).glob("*/seed_*.json"))
    assert stored == ["seed_0.json", "seed_1.json"]

    calls.clear()
    resumed = runner.run_experiment(CONFIG, **kwargs)
    assert calls == [2] and resumed["resumed_seeds"] == [0, 1]
    assert not (out / "results" / SEEDS_SUBDIR).exists()  # removed once the record holds every seed

    calls.clear()
    uninterrupted = runner.run_experiment(CONFIG, **dict(kwargs, output_dir=str(tmp_path / "fresh")))
    assert calls == [0, 1, 2] and uninterrupted["resumed_seeds"] == []
    assert _measurements(resumed) == _measurements(uninterrupted)
    assert resumed["tables"] == uninterrupted["tables"] and resumed["verdict"] == uninterrupted["verdict"]
    markdown = Path(runner.assemble_markdown(str(out))).read_text()
    assert "seed(s) [0, 1] were finished by an earlier, interrupted run of the same command" in markdown


def test_other_config_other_code_and_noresume_run_every_seed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(SymileXOR, "run_seed", lambda self, config, seed, log: calls.append(seed) or {"seed": seed})
    monkeypatch.setattr(SymileXOR, "summarize", lambda self, per_seed, config: {"tables": [], "verdict": "-"})
    monkeypatch.setattr(SymileXOR, "plot", lambda self, per_seed, config, path: Path(path).write_bytes(b"png"))
    out = tmp_path / "docs"
    config = runner.load_config(CONFIG, OVERRIDES)

    def store_seed_0():
        SeedStore(out / "results", "symile_xor", config.to_dict(), runner._json_default).save(
            0, {"seed": 0, "stored": True}
        )

    store_seed_0()
    other = dict(config.to_dict(), steps=16)
    SeedStore(out / "results", "symile_xor", other, runner._json_default).save(1, {"seed": 1, "stored": True})

    def run(**kwargs):
        calls.clear()
        kwargs = dict(overrides=OVERRIDES, seeds=2, output_dir=str(out), log=lambda m: None, **kwargs)
        return runner.run_experiment(CONFIG, **kwargs)

    # Seed 1 of another config (steps=16) is not taken; seed 0 of this config is.
    record = run()
    assert calls == [1] and record["resumed_seeds"] == [0] and record["per_seed"][0] == {"seed": 0, "stored": True}

    # --noresume: stored seeds are discarded and every seed runs.
    store_seed_0()
    record = run(resume=False)
    assert calls == [0, 1] and record["resumed_seeds"] == [] and record["per_seed"][0] == {"seed": 0}

    # A seed computed by other code is run again, and the log says why.
    store_seed_0()
    monkeypatch.setattr(seed_store, "code_digest", lambda: "another-version")
    messages = []
    calls.clear()
    record = runner.run_experiment(CONFIG, overrides=OVERRIDES, seeds=2, output_dir=str(out), log=messages.append)
    assert calls == [0, 1] and record["resumed_seeds"] == []
    assert any("computed by other code" in m for m in messages), messages


def test_seed_store_skips_corrupt_and_foreign_files(tmp_path):
    messages = []
    store = SeedStore(tmp_path, "demo", {"steps": 10}, log=messages.append)
    store.save(0, {"top1": 0.5})
    store.save(1, {"top1": 0.6})
    (store.directory / "seed_1.json").write_text('{"seed": 1, "res')  # cut short (not via the atomic write)
    (store.directory / ".tmp-123-seed_2.json").write_text("half")  # a write killed mid-way
    assert store.load(3) == {0: {"top1": 0.5}}
    assert not list(store.directory.glob(".tmp-*"))
    assert any("seed 1 is run again" in m and "corrupt" in m for m in messages), messages
    # A file copied in from another config's directory is recognised by its digest.
    other = SeedStore(tmp_path, "demo", {"steps": 11})
    other.save(1, {"top1": 0.9})
    (other.directory / "seed_1.json").replace(store.directory / "seed_1.json")
    assert store.load(3) == {0: {"top1": 0.5}}
    assert any("belongs to another run" in m for m in messages)
    store.clear()
    assert not store.directory.exists() and other.directory.exists()  # only this config's seeds go


@pytest.mark.slow
def test_sigkill_then_the_same_command_finishes_the_run(tmp_path):
    # The real thing: the tool SIGKILLed after its first seed, then run again with the same command.
    out = tmp_path / "docs"
    args = [sys.executable, str(ROOT / "tools" / "reproduce.py"), f"--config={CONFIG}", "--seeds=3"]
    args += [f"--config.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in OVERRIDES.items()]
    args += [f"--output_dir={out}"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((out / "results" / SEEDS_SUBDIR).glob("*/seed_0.json")) and time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results" / "symile_xor.json").exists()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "resuming: seed(s) [0" in done.stdout + done.stderr
    record = json.loads((out / "results" / "symile_xor.json").read_text())
    assert record["resumed_seeds"][0] == 0 and len(record["per_seed"]) == 3
    assert not (out / "results" / SEEDS_SUBDIR).exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


# --- Units: the trainings inside one seed -------------------------------------------------------

MISALIGNMENT = str(ROOT / "configs" / "reproduce" / "misalignment.py") + ":quick"


def test_unit_store_keeps_each_finished_unit_of_this_config_and_code(tmp_path):
    messages = []
    store = SeedStore(tmp_path, "demo", {"steps": 10}, log=messages.append)
    units = store.units(0)
    computed = []

    def compute(value):
        def run():
            computed.append(value)
            return {"top1": value, "curve": [(1, value)]}

        return run

    # Stored as it reads back from JSON (the tuple becomes a list), then returned without computing.
    assert units.run("w=2/Symile", compute(0.5)) == {"top1": 0.5, "curve": [[1, 0.5]]}
    assert units.run("w=2/Symile", compute(0.9)) == {"top1": 0.5, "curve": [[1, 0.5]]}
    assert computed == [0.5] and any("w=2/Symile finished earlier" in m for m in messages)
    # Keys that differ only in characters a file name cannot hold still get their own files.
    assert units.run("w=2/Symile/missing mask", compute(0.3))["top1"] == 0.3
    assert units.run("w=2/Symile/missing:mask", compute(0.4))["top1"] == 0.4
    assert len(list(units.directory.glob("*.json"))) == 3
    # Another seed of the same run does not see seed 0's units.
    assert store.units(1).run("w=2/Symile", compute(0.7))["top1"] == 0.7

    # A unit cut short, a unit computed by other code, a temporary file of a killed write: run again.
    path = units._path("w=2/Symile")
    path.write_text('{"key": "w=2/Sym')
    (units.directory / ".tmp-99-unit.json").write_text("half")
    assert units.run("w=2/Symile", compute(0.6))["top1"] == 0.6
    assert any("corrupt" in m and "it is run again" in m for m in messages), messages
    assert not list(units.directory.glob(".tmp-*"))
    entry = json.loads(path.read_text())
    path.write_text(json.dumps(dict(entry, code_digest="another-version")))
    assert units.run("w=2/Symile", compute(0.8))["top1"] == 0.8
    assert any("computed by other code" in m for m in messages), messages
    # A unit file of another key copied over this one is recognised.
    path.write_text(json.dumps(dict(json.loads(path.read_text()), key="w=5/Symile")))
    assert units.run("w=2/Symile", compute(0.2))["top1"] == 0.2
    assert any("belongs to another run" in m for m in messages), messages

    with pytest.raises(ValueError, match="non-empty string"):
        units.run("", compute(0.1))
    # Sent to a worker process: the same directory and digests, printing instead of the closure.
    sent = pickle.loads(pickle.dumps(units))
    assert (sent.directory, sent.code_digest, sent.config_digest) == (
        units.directory,
        units.code_digest,
        units.config_digest,
    )
    assert sent.run("w=2/Symile", compute(1.0))["top1"] == 0.2

    # The seed's file holds its units: they go when it is written.
    store.save(0, {"done": True})
    assert not units.directory.exists() and store.units(1).directory.exists()
    store.clear()
    assert not store.directory.exists()


def test_without_a_runner_a_unit_is_just_computed():
    from reproductions.misalignment import Misalignment

    assert Misalignment().resumable("x", lambda: {"value": (1, 2)}) == {"value": (1, 2)}


def test_a_seed_killed_between_trainings_restarts_at_its_first_unfinished_training(
    tmp_path, monkeypatch, tiny_misalignment
):
    from reproductions import common

    original = common.train_model
    trained, killed = [], []

    def train_model(model, *args, **kwargs):
        trained.append(model.name)
        if len(trained) == 2 and not killed:  # the second training of the seed is killed
            killed.append(True)
            raise RuntimeError("killed while training the second method")
        return original(model, *args, **kwargs)

    monkeypatch.setattr(common, "train_model", train_model)
    out = tmp_path / "docs"
    messages = []
    kwargs = dict(overrides=tiny_misalignment, seeds=1, output_dir=str(out), log=messages.append)
    with pytest.raises(RuntimeError, match="killed"):
        runner.run_experiment(MISALIGNMENT, **kwargs)
    units = list((out / "results" / SEEDS_SUBDIR).glob("*/seed_0.units/*.json"))
    assert len(units) == 1 and json.loads(units[0].read_text())["key"] == "both biases/Lp InfoNCE (paper)"

    trained.clear()
    resumed = runner.run_experiment(MISALIGNMENT, **kwargs)
    assert len(trained) == 1  # only the unfinished training ran
    assert any("both biases/Lp InfoNCE (paper) finished earlier by this command" in m for m in messages)
    assert not (out / "results" / SEEDS_SUBDIR).exists()

    trained.clear()
    uninterrupted = runner.run_experiment(MISALIGNMENT, **dict(kwargs, output_dir=str(tmp_path / "fresh")))
    assert len(trained) == 2
    assert _measurements(resumed) == _measurements(uninterrupted)
    assert resumed["tables"] == uninterrupted["tables"] and resumed["findings"] == uninterrupted["findings"]


@pytest.mark.slow
def test_a_seed_in_a_worker_process_resumes_its_finished_trainings(tmp_path, tiny_misalignment):
    # --jobs=2: each seed runs in its own process, which gets the seed's units through pickling.
    out = tmp_path / "docs"
    config = runner.load_config(MISALIGNMENT, tiny_misalignment)
    store = SeedStore(out / "results", "misalignment", config.to_dict(), runner._json_default)
    plain = runner.run_experiment(
        MISALIGNMENT, tiny_misalignment, seeds=1, output_dir=str(tmp_path / "plain"), log=lambda m: None
    )
    stored = plain["per_seed"][0]["settings"][0]["methods"]["Lp InfoNCE (paper)"]
    marked = dict(stored, first_loss=123.0)  # tells the stored unit from a retrained one
    store.units(1).run("both biases/Lp InfoNCE (paper)", lambda: marked)
    record = runner.run_experiment(
        MISALIGNMENT, tiny_misalignment, seeds=2, output_dir=str(out), jobs=2, log=lambda m: None
    )
    methods = [s["settings"][0]["methods"] for s in record["per_seed"]]
    assert methods[1]["Lp InfoNCE (paper)"]["first_loss"] == 123.0
    assert methods[0]["Lp InfoNCE (paper)"]["first_loss"] != 123.0
    assert np.isfinite(methods[1]["cosine InfoNCE (tf_mmcl)"]["final_loss"])
    assert not (out / "results" / SEEDS_SUBDIR).exists()
