"""Sweeps: a metric against SNR, misalignment rate and missing rate."""

import numpy as np
import pytest

from tf_mmcl.evaluation import misalignment_sweep, missing_sweep, retrieve, snr_sweep, sweep


def _aligned(n=200, d=16, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")  # unit rows: dot = cosine
    return {"a": x, "b": x.copy()}


def _top1(arrays):
    return retrieve([arrays["b"]], arrays["a"], np.arange(len(arrays["a"])), ks=(1,))


def test_misalignment_sweep_top1_is_one_minus_fraction():
    res = misalignment_sweep(_aligned(), "b", [0.0, 0.25, 0.5, 1.0], _top1)
    np.testing.assert_allclose(res.metrics["top1"], [1.0, 0.75, 0.5, 0.0])
    assert res.param == "misaligned_fraction" and res.rows()[1]["misaligned_fraction"] == 0.25


def test_snr_sweep_is_monotone():
    res = snr_sweep(_aligned(d=4), "b", [30.0, 10.0, 0.0, -10.0], _top1, seed=1)
    top1 = res.metrics["top1"]
    assert top1[0] == 1.0 and np.all(np.diff(top1) <= 0) and top1[-1] < 0.3
    assert "| snr_db |" in res.to_markdown()


def test_missing_sweep_counts_masks():
    arrays = _aligned(2000)
    res = missing_sweep(arrays, "b", [0.0, 0.2, 0.6], lambda a: {"missing": float(1 - a["b_mask"].mean())})
    np.testing.assert_allclose(res.metrics["missing"], [0.0, 0.2, 0.6], atol=0.03)


def test_sweep_flattens_nested_metrics_and_is_deterministic():
    r = sweep("p", [1, 2], lambda v: {"dir": {"top1": v / 10}, "skip": np.zeros(3)})
    np.testing.assert_allclose(r.metrics["dir/top1"], [0.1, 0.2])
    assert "skip" not in r.metrics
    a = snr_sweep(_aligned(), "b", [5.0], lambda x: {"v": float(x["b"].sum())}, seed=3)
    b = snr_sweep(_aligned(), "b", [5.0], lambda x: {"v": float(x["b"].sum())}, seed=3)
    assert a.metrics["v"][0] == b.metrics["v"][0]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: sweep("p", [], lambda v: {}), "at least one value"),
        (lambda: sweep("p", [1], 3), "callable"),
        (lambda: sweep("p", [1], lambda v: 1.0), "dict of metrics"),
        (lambda: snr_sweep(_aligned(), "zz", [1.0], _top1), "not in the arrays"),
        (lambda: misalignment_sweep(_aligned(), "b", [1.5], _top1), "fraction"),
        (lambda: missing_sweep(_aligned(), "b", [-0.5], _top1), "rate"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
