"""Experiment 1 on the paper's protocol: b from (a, c), best-validation checkpoint, bootstrap test sets."""

from pathlib import Path

import numpy as np
import pytest

from reproductions import runner, selection
from reproductions.symile_xor import bayes_top1_b

ROOT = Path(__file__).resolve().parents[2]


def test_paper_protocol_tables_and_claim(tmp_path):
    overrides = {
        "p_hats": [1.0],
        "steps": 60,
        "n_train": 2000,
        "n_val": 500,
        "n_test": 500,
        "batch_size": 500,
        "val_every": 20,
        "bootstrap": 4,
    }
    record = runner.run_experiment(
        f"{ROOT / 'configs' / 'reproduce' / 'symile_xor.py'}:quick",
        overrides,
        output_dir=str(tmp_path),
        seeds=1,
        log=lambda msg: None,
    )
    assert record["config"]["protocol"] == "paper"
    methods = record["per_seed"][0]["methods"]
    for lab in ("Symile", "CLIP"):
        assert len(methods[lab]["paper_bootstrap"][0]) == 4
        assert methods[lab]["paper_accuracy"][0] == pytest.approx(np.mean(methods[lab]["paper_bootstrap"][0]))
        assert methods[lab]["best_step"][0] in (20, 40, 60)
        assert 0.0 <= methods[lab]["accuracy"][0] <= 1.0  # a from (b, c), final weights
    # At p_hat = 1, b = a XOR c: Symile finds it, CLIP's pairwise score is at chance.
    assert methods["Symile"]["paper_accuracy"][0] > 0.8
    assert methods["CLIP"]["paper_accuracy"][0] < 2.0**-5 + 0.06
    tables = record["summary"]["tables"] if "summary" in record else record["tables"]
    assert "b from (a, c)" in tables[0]["caption"] and "Bayes-optimal²" in tables[0]["header"]
    assert tables[1]["caption"].startswith("Second table")


def test_bayes_b_and_bootstrap():
    assert bayes_top1_b(5, 1.0) == 1.0 and bayes_top1_b(5, 0.0) == 2.0**-5
    # Monte Carlo of the rule "b = a XOR c if c != a else 0" on the generator's distribution.
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, (20000, 3)), rng.integers(0, 2, (20000, 3))
    switch = rng.random(20000) < 0.5
    c = np.where(switch[:, None], a ^ b, a)
    guess = np.where((c != a).any(axis=1)[:, None], a ^ c, 0)
    assert np.mean((guess == b).all(axis=1)) == pytest.approx(bayes_top1_b(3, 0.5), abs=0.01)
    boot = selection.bootstrap_accuracy(np.r_[np.ones(50), np.zeros(50)], num_resamples=200, seed=1)
    assert len(boot) == 200 and abs(np.mean(boot) - 0.5) < 0.02 and np.std(boot) > 0.02
    with pytest.raises(ValueError):
        selection.bootstrap_accuracy([], 10)


def test_final_weights_equal_an_unvalidated_run():
    # Validating every val_every steps does not change training: the final weights are those of
    # common.train_model over the same steps (one continuous batch stream).
    import keras

    from reproductions import common
    from tf_mmcl.data.synthetic import make_symile_xor

    data = make_symile_xor(d_v=3, p_hat=1.0, n_train=400, n_val=100, n_test=100, seed=0)
    spec = {"objective": "symile", "options": {"negative_sampling": "n"}}  # random negatives
    weights = []
    for validated in (False, True):
        keras.utils.set_random_seed(0)
        model = common.build_model(spec, data.modalities, "identity", 8, 1.0, True)
        if validated:
            fit = selection.train_select_best(
                model, data.as_numpy("train"), data.as_numpy("val"), 100, 12, 0.05, 0.01, seed=0, val_every=4
            )
            assert fit["best_step"] in (4, 8, 12) and len(fit["val_values"]) == 3
        else:
            common.train_model(model, data.as_numpy("train"), 100, 12, 0.05, 0.01, seed=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
