"""tools/reproduce.py on m3_digits_pairwise: a reduced quick run on `tiny` built from the cached clips.

CI has no espeak-ng: the dataset is built from ``tests/datasets/data/m3_digits_clips`` into a
temporary data dir. The scoring decomposition and the verdict are checked on constructed inputs.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ml_collections
import numpy as np
import pytest

import reproductions as experiments
from reproductions import m3_digits_pairwise, runner

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "reproduce.py"
CLIPS = ROOT / "tests" / "datasets" / "data" / "m3_digits_clips"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["Symile", "ConFu", "Gated Symile", "CLIP", "GRAM"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    data_dir = tmp_path_factory.mktemp("tfds")
    args = [
        "--config=configs/reproduce/m3_digits_pairwise.py:quick",
        "--seeds=1",
        "--config.dataset_config=tiny",
        f"--config.data_dir={data_dir}",
        f"--config.clip_source={CLIPS}",
        "--config.batch_size=20",
        "--config.steps=25",
        f"--output_dir={out}",
    ]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    start = time.time()
    proc = subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, time.time() - start


@pytest.mark.slow
def test_quick_run_record(quick_run):
    out, _ = quick_run
    record = json.loads((out / "results" / "m3_digits_pairwise.json").read_text())
    assert record["experiment"] == "m3_digits_pairwise" and record["quick"] is True and record["num_seeds"] == 1
    assert record["config"]["dataset_config"] == "tiny" and record["config"]["steps"] == 25
    assert record["config"]["batch_size"] == 20
    assert record["command"].startswith(
        "python tools/reproduce.py --config=configs/reproduce/m3_digits_pairwise.py:quick "
    )
    assert len(record["per_seed"]) == 1
    for seed in record["per_seed"]:
        # tiny: 5 languages x 10 digits = 50 candidate texts, 40 / 20 train / test examples.
        assert seed["languages"] == ["en", "de", "es", "fi", "tr"]
        assert seed["num_candidates"] == 50 and seed["n_train"] == 40 and seed["n_test"] == 20
        assert list(seed["methods"]) == LABELS
        for lab, m in seed["methods"].items():
            assert all(0.0 <= m[k] <= 1.0 for k in m3_digits_pairwise.METRICS), (lab, m)
            # An exact hit has the right digit and the right language.
            assert m["acc_2to1"] <= min(m["digit_2to1"], m["language_2to1"]) + 1e-9, (lab, m)
            assert m["acc_image"] <= m["digit_image"] + 1e-9 and m["acc_audio"] <= m["language_audio"] + 1e-9
            assert np.isfinite(m["first_loss"]) and np.isfinite(m["final_loss"])
            assert m["final_loss"] < m["first_loss"], (lab, m)  # the 40 training examples are being fitted
    header2, header1 = record["tables"][0]["header"], record["tables"][1]["header"]
    assert header2[:4] == ["method", "2→1 accuracy", "right digit", "right language"]
    assert [row[0] for row in record["tables"][0]["rows"]] == LABELS
    # One seed: each cell is the value alone (a "± 0.0" would read as no spread between seeds).
    assert all("±" not in cell and float(cell) >= 0 for row in record["tables"][0]["rows"] for cell in row[1:4])
    assert "image→text" in header1 and "audio→text" in header1
    assert record["verdict"].startswith(("**as predicted for a pairwise structure**", "**not as predicted**"))
    assert record["wall_time_s"] > 0


@pytest.mark.slow
def test_quick_run_markdown_and_plot(quick_run):
    out, _ = quick_run
    md = (out / "results.md").read_text()
    assert "## 6b. m3_digits_pairwise" in md and "QUICK run" in md
    assert "--config=configs/reproduce/m3_digits_pairwise.py:quick" in md
    assert any(line.startswith("| method | 2→1 accuracy |") for line in md.splitlines())
    assert "![m3_digits_pairwise](plots/results_m3_digits_pairwise.png)" in md
    data = (out / "plots" / "results_m3_digits_pairwise.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    import matplotlib.image

    image = matplotlib.image.imread(str(out / "plots" / "results_m3_digits_pairwise.png"))
    assert image.shape[0] > 200 and image.shape[1] > 500 and float(np.std(image[..., :3])) > 0.01


class _FixedScores:
    """Stands in for a model: a fixed argmax per query set and row (the row index is carried in
    pixel (0, 0) of the image and in audio[:, 0, 0]), to check the scoring decomposition."""

    def __init__(self, picks):
        self.picks = picks

    def score(self, queries, candidate_modality, candidates):
        assert candidate_modality == "text"
        kind = "both" if len(queries) == 2 else next(iter(queries))
        x = queries["image"][:, 0, 0, 0] if "image" in queries else queries["audio"][:, 0, 0]
        pick = self.picks[kind][x.astype(int)]
        scores = np.zeros((len(pick), len(candidates)), np.float32)
        scores[np.arange(len(pick)), pick] = 1.0
        return scores


def test_evaluate_splits_digit_and_language():
    label, language = np.array([3, 7, 1, 0]), np.array([2, 0, 4, 1])
    test = {
        "label": label,
        "language": language,
        "text_id": language * 10 + label,
        "image": np.zeros((4, 8, 8, 1), np.float32),
        "audio": np.zeros((4, 5, 32), np.float32),
    }
    test["image"][:, 0, 0, 0] = np.arange(4)
    test["audio"][:, 0, 0] = np.arange(4)
    # Candidate k is digit k % 10 in language k // 10; the true text ids are 23, 7, 41, 10.
    picks = {"both": np.array([23, 17, 41, 10]), "image": np.array([3, 17, 21, 30]), "audio": np.array([25, 9, 49, 12])}
    r = m3_digits_pairwise.evaluate(_FixedScores(picks), test, np.zeros((50, 12), np.int32), eval_batch=3)
    # both: 23 = (lang 2, digit 3) exact; 17 = (1, 7) digit only; 41 = (4, 1) exact; 10 = (1, 0) exact.
    assert r["acc_2to1"] == 0.75 and r["digit_2to1"] == 1.0 and r["language_2to1"] == 0.75
    # image: every digit right; languages 0, 1, 2, 3 vs 2, 0, 4, 1: none right.
    assert r["acc_image"] == 0.0 and r["digit_image"] == 1.0
    # audio: languages 2, 0, 4, 1 all right; digits 5, 9, 9, 2 all wrong.
    assert r["acc_audio"] == 0.0 and r["language_audio"] == 1.0


def _per_seed(acc):
    seed = {
        "languages": ["en", "de", "es", "fi", "tr"],
        "num_candidates": 50,
        "n_train": 6000,
        "n_test": 1000,
        "methods": {},
    }
    for lab, a in acc.items():
        seed["methods"][lab] = {k: a for k in m3_digits_pairwise.METRICS}
        seed["methods"][lab]["digit_2to1"] = 0.95
    return [seed, seed]


def test_verdict_says_whether_clip_matches_symile():
    config = ml_collections.ConfigDict(
        {"methods": [{"label": "Symile"}, {"label": "CLIP"}], "steps": 1, "batch_size": 1}
    )
    exp = experiments.get_experiment("m3_digits_pairwise")
    # Pairwise structure: CLIP is expected to match Symile (ratio near 1), not to fall to 1/5 of it.
    held = exp.summarize(_per_seed({"Symile": 0.6, "CLIP": 0.66}), config)
    assert held["verdict"].startswith("**as predicted for a pairwise structure**") and "ratio 1.10" in held["verdict"]
    missed = exp.summarize(_per_seed({"Symile": 0.6, "CLIP": 0.13}), config)
    assert missed["verdict"].startswith("**not as predicted**")
    untrained = exp.summarize(_per_seed({"Symile": 0.03, "CLIP": 0.0}), config)
    assert untrained["verdict"].startswith("**not as predicted**")
    assert any("near chance" in f for f in untrained["findings"])


def test_config_full_and_quick():
    full = runner.load_config(ROOT / "configs" / "reproduce" / "m3_digits_pairwise.py")
    quick = runner.load_config(f"{ROOT / 'configs' / 'reproduce' / 'm3_digits_pairwise.py'}:quick")
    assert full.num_seeds >= 3 and quick.num_seeds == 2 and quick.steps < full.steps
    assert full.dataset_config == "default"
    assert [m["label"] for m in full.methods] == LABELS
    assert "m3_digits_pairwise" in experiments.EXPERIMENTS
