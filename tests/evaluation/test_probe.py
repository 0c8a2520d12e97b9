"""Linear probe: learns separable problems, k-shot sampling, determinism, errors."""

import numpy as np
import pytest

from tf_mmcl.evaluation import LogisticRegressionProbe, few_shot_indices, linear_probe


def _blobs(n=600, k=4, d=5, sep=6.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * sep
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(size=(n, d)), y


def test_probe_learns_separable_multiclass():
    x, y = _blobs()
    res = linear_probe(x[:300], y[:300], x[300:], y[300:])
    assert res["accuracy"] > 0.97 and res["num_train"] == 300


def test_probe_k_shot_and_determinism():
    x, y = _blobs(seed=1)
    r1 = linear_probe(x[:400], y[:400], x[400:], y[400:], shots=3, seed=2)
    r2 = linear_probe(x[:400], y[:400], x[400:], y[400:], shots=3, seed=2)
    assert r1 == r2 and r1["num_train"] == 12 and r1["accuracy"] > 0.9
    idx = few_shot_indices(y, 5, seed=0)
    assert np.all(np.bincount(y[idx]) == 5)
    assert not np.array_equal(idx, few_shot_indices(y, 5, seed=1))


def test_probe_fits_xor_only_with_the_right_features():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(400, 2))
    y = bits[:, 0] ^ bits[:, 1]
    raw = bits + 0.05 * rng.normal(size=bits.shape)
    assert linear_probe(raw[:200], y[:200], raw[200:], y[200:])["accuracy"] < 0.8  # not linearly separable
    prod = np.c_[raw, (2 * raw[:, 0] - 1) * (2 * raw[:, 1] - 1)]
    assert linear_probe(prod[:200], y[:200], prod[200:], y[200:])["accuracy"] > 0.97


def test_probe_probabilities_and_labels():
    x, y = _blobs(k=3, seed=3)
    labels = np.array(["cat", "dog", "owl"])[y]
    p = LogisticRegressionProbe(C=10.0).fit(x, labels)
    proba = p.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(p.predict(x)) <= {"cat", "dog", "owl"} and p.score(x, labels) > 0.95


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: LogisticRegressionProbe(C=0), "C must"),
        (lambda: LogisticRegressionProbe(max_iter=0), "max_iter"),
        (lambda: LogisticRegressionProbe().fit(np.zeros((4, 2)), np.zeros(4)), "two classes"),
        (lambda: LogisticRegressionProbe().fit(np.zeros((4, 2)), np.zeros(3)), "labels"),
        (lambda: LogisticRegressionProbe().fit(np.zeros(4), np.zeros(4)), r"\(N, d\)"),
        (lambda: LogisticRegressionProbe().fit(np.full((2, 2), np.nan), [0, 1]), "NaN"),
        (lambda: LogisticRegressionProbe().predict(np.zeros((2, 2))), "fitted"),
        (lambda: LogisticRegressionProbe().fit(np.eye(2), [0, 1]).predict(np.zeros((2, 3))), "width"),
        (lambda: few_shot_indices([0, 0, 1], 2), "fewer than"),
        (lambda: few_shot_indices([0, 1], 0), "shots"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
