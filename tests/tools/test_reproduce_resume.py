"""A killed reproduction resumes: finished seeds are kept until the record is written, never mixed across runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
