"""Experiment 5 (noise robustness) on m3_digits `tiny`: the noisy test inputs and a reduced run."""

from pathlib import Path

import numpy as np
import pytest

from reproductions import noise_robustness, runner
from tf_mmcl.data.corruptions import snr_db

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "tests" / "datasets" / "data" / "m3_digits_clips"
QUICK = f"{ROOT / 'configs' / 'reproduce' / 'noise_robustness.py'}:quick"


@pytest.fixture(scope="module")
def tiny_overrides(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    return {
        "data_dir": str(data_dir),
        "dataset_config": "tiny",
        "clip_source": str(CLIPS),
        "batch_size": 20,
        "steps": 8,
        "methods": [
            {"label": "ConFu", "objective": "confu", "options": {"lam": 0.5}},
            {"label": "CLIP", "objective": "clip", "options": {}},
        ],
    }


def test_noisy_inputs_hit_the_snr_and_leave_the_other_modality_clean(tiny_overrides):
    config = runner.load_config(QUICK, tiny_overrides)
    data, _, test = noise_robustness.prepare_splits(config, seed=0)
    inputs = noise_robustness.noisy_test_inputs(data, test, config, seed=0)
    assert list(inputs) == [
        "clean",
        "10 dB A deg.",
        "10 dB V deg.",
        "15 dB A deg.",
        "15 dB V deg.",
        "20 dB A deg.",
        "20 dB V deg.",
    ]
    np.testing.assert_array_equal(inputs["clean"]["image"], test["image"])
    for snr in (10, 15, 20):
        v, a = inputs[f"{snr} dB V deg."], inputs[f"{snr} dB A deg."]
        assert abs(snr_db(test["image"], v["image"]) - snr) < 1.0
        np.testing.assert_array_equal(v["audio"], test["audio"])  # only the image is degraded
        np.testing.assert_array_equal(a["image"], test["image"])
        assert a["audio"].shape == test["audio"].shape and np.isfinite(a["audio"]).all()
        assert not np.allclose(a["audio"], test["audio"])
    # Noisier waveform -> features further from the clean ones.
    dist = [np.abs(inputs[f"{snr} dB A deg."]["audio"] - test["audio"]).mean() for snr in (10, 15, 20)]
    assert dist[0] > dist[1] > dist[2] > 0
    # The clean features of the test waveforms are what the experiment's loader made.
    from reproductions.m3_digits import audio_inputs, waveform_log_mels

    np.testing.assert_allclose(
        audio_inputs(waveform_log_mels(data, test["waveform"]), config.audio_features), test["audio"], atol=1e-4
    )


def test_reduced_run_records_every_condition(tiny_overrides, tmp_path):
    record = runner.run_experiment(
        QUICK,
        seeds=2,
        overrides=tiny_overrides,
        output_dir=str(tmp_path),
        log=lambda msg: None,
    )
    assert record["num_seeds"] == 2 and len(record["per_seed"]) == 2
    for seed in record["per_seed"]:
        assert len(seed["conditions"]) == 7
        for lab in ("ConFu", "CLIP"):
            for metric in ("acc_2to1", "digit_2to1", "language_2to1", "digit_image", "language_audio"):
                values = seed["methods"][lab][metric]
                assert len(values) == 7 and all(0.0 <= v <= 1.0 for v in values), (lab, metric)
    ours, kept, paper = record["tables"]
    assert ours["header"][1:] == record["per_seed"][0]["conditions"]
    assert [r[0] for r in ours["rows"]] == ["ConFu", "CLIP"]
    assert any(r[0].startswith("CLIP (V only)") for r in kept["rows"])
    assert paper["rows"][-1][0] == "ConFu"
    assert record["verdict"].split(":")[0] in (
        "**reproduced**",
        "**not reproduced**",
        "**inconclusive** (the noise does not degrade any method)",
    )
    assert (tmp_path / "plots" / "results_noise_robustness.png").read_bytes()[:4] == b"\x89PNG"
