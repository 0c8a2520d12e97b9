"""Identifiability R²: ≈ 1 for invertible maps of the latents, ≈ 0 for independent noise."""

import numpy as np
import pytest

from tf_mmcl.data.synthetic import latent_blocks, make_misalignment
from tf_mmcl.evaluation import identifiability_r2, identifiability_report, r2_score


def test_linear_invertible_map_gives_r2_one():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1000, 4))
    mix = rng.normal(size=(4, 4)) + 3 * np.eye(4)
    for reg in ("linear", "nonlinear"):
        r2 = identifiability_r2(z @ mix, z, regressor=reg, seed=1)
        assert r2.shape == (4,)
        assert np.all(r2 > (0.999 if reg == "linear" else 0.95)), (reg, r2)


def test_independent_noise_gives_r2_zero():
    rng = np.random.default_rng(1)
    h, z = rng.normal(size=(1200, 6)), rng.normal(size=(1200, 3))
    for reg in ("linear", "nonlinear"):
        r2 = identifiability_r2(h, z, regressor=reg, seed=0)
        assert np.all(np.abs(r2) < 0.05), (reg, r2)


def test_nonlinear_beats_linear_on_a_nonlinear_code():
    rng = np.random.default_rng(2)
    z = rng.uniform(-2, 2, size=(1500, 1))
    h = np.c_[z**2, np.cos(2 * z)]  # z is recoverable up to sign only nonlinearly... use |z|
    target = np.abs(z)
    lin = identifiability_r2(h, target, "linear")[0]
    non = identifiability_r2(h, target, "nonlinear")[0]
    assert non > 0.95 and non > lin


def test_misalignment_generator_pattern_from_true_image_latents():
    # The ideal representation of the theorem: exactly the invariant block (through a nonlinear
    # invertible map). R² is high for it and low for everything that was dropped.
    s = make_misalignment(
        semantics_n=4,
        modality_n=2,
        selected=[0, 1, 2],
        perturbed=[2],
        cond_pool=300,
        n_train=10,
        n_val=10,
        n_test=800,
        seed=0,
    )
    x = s.as_numpy("test")
    inv = x["s"][:, s.info["invariant"]]
    rep = np.tanh(inv @ np.array([[1.0, 0.5], [-0.3, 1.0]]))
    blocks = latent_blocks(x, s.info)
    report = identifiability_report(
        rep, {k: blocks[k] for k in ("s_inv", "s_2", "s_3", "m_x")}, regressors=("linear", "nonlinear")
    )
    assert report["s_inv"]["nonlinear"] > 0.9 and report["s_inv"]["linear"] > 0.8
    for lost in ("s_2", "s_3", "m_x"):
        assert report[lost]["nonlinear"] < 0.1, lost
    assert identifiability_report(rep, {"t": blocks["tilde_s_2"]}, "linear")["t"]["linear"] < 0.1


def test_deterministic_and_r2_score():
    rng = np.random.default_rng(3)
    h, z = rng.normal(size=(300, 3)), rng.normal(size=(300, 2))
    a = identifiability_r2(h, z, "nonlinear", seed=4)
    np.testing.assert_array_equal(a, identifiability_r2(h, z, "nonlinear", seed=4))
    assert r2_score([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])[0] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: identifiability_r2(np.zeros((10, 2)), np.zeros(10), regressor="svm"), "regressor"),
        (lambda: identifiability_r2(np.zeros(10), np.zeros(10)), r"\(N, D\)"),
        (lambda: identifiability_r2(np.zeros((10, 2)), np.zeros(9)), "rows"),
        (lambda: identifiability_r2(np.zeros((10, 2)), np.zeros((10, 2, 2))), "latents"),
        (lambda: identifiability_r2(np.full((10, 2), np.nan), np.zeros(10)), "NaN"),
        (lambda: identifiability_r2(np.zeros((10, 2)), np.zeros(10), test_fraction=1.0), "test_fraction"),
        (lambda: identifiability_r2(np.zeros((6, 2)), np.zeros(6)), "too few rows"),
        (lambda: identifiability_r2(np.zeros((50, 2)), np.zeros(50), folds=1), "folds"),
        (lambda: identifiability_report(np.zeros((50, 2)), {}), "at least one block"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_report_fits_all_blocks_at_once_with_the_numbers_of_one_block_at_a_time():
    # The report runs one fit per regressor for every block; each block still gets its own grid
    # choice, so the numbers equal those of identifiability_r2 on each block alone.
    rng = np.random.default_rng(7)
    z = rng.normal(size=(600, 9))
    h = np.tanh(z[:, :4] @ rng.normal(size=(4, 5))) + 0.3 * rng.normal(size=(600, 5))
    blocks = {"a": z[:, 0], "b": z[:, 1:4], "c": z[:, 4:6], "d": z[:, 6:9]}
    report = identifiability_report(h, blocks, ("linear", "nonlinear"), seed=2, num_features=64)
    for name, block in blocks.items():
        for r in ("linear", "nonlinear"):
            alone = float(np.mean(identifiability_r2(h, block, regressor=r, seed=2, num_features=64)))
            np.testing.assert_allclose(report[name][r], alone, rtol=0, atol=1e-12)
