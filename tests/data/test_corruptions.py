"""Corruption transforms: empirical SNR, dropout rate, misaligned fraction, determinism, errors."""

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.data import GaussianNoise, Misalign, ModalityDropout, from_numpy, snr_db


def _x(n=2000, d=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype("float32") * 3.0 + 1.0


@pytest.mark.parametrize("target", [-5.0, 0.0, 10.0, 20.0])
def test_noise_hits_target_snr(target):
    x = _x()
    y = GaussianNoise("a", target, seed=1)({"a": x})["a"].numpy()
    assert abs(snr_db(x, y) - target) < 0.1
    per_row = snr_db(x, y, axis=1)
    assert abs(np.median(per_row) - target) < 0.5  # per example, not only on average


def test_noise_deterministic_respects_mask_and_leaves_others():
    x = _x(100, 8)
    mask = np.arange(100) % 2 == 0
    batch = {"a": x, "a_mask": mask, "b": x}
    t = GaussianNoise("a", 5.0, seed=3)
    y1, y2 = t(batch)["a"].numpy(), t(batch)["a"].numpy()
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, t(batch, seed=[9, 9])["a"].numpy())
    np.testing.assert_array_equal(y1[~mask], x[~mask])
    assert np.all(y1[mask] != x[mask])
    np.testing.assert_array_equal(t(batch)["b"], x)


def test_dropout_sets_mask_at_rate():
    x = _x(20000, 2)
    out = ModalityDropout("a", 0.3, seed=2)({"a": x})
    present = out["a_mask"].numpy()
    assert abs((~present).mean() - 0.3) < 0.01
    np.testing.assert_array_equal(out["a"].numpy()[~present], 0.0)
    np.testing.assert_array_equal(out["a"].numpy()[present], x[present])
    # Existing missing rows stay missing; fill_value=None keeps the values.
    prior = np.arange(20000) % 3 == 0
    out2 = ModalityDropout("a", 0.0, fill_value=None)({"a": x, "a_mask": ~prior})
    np.testing.assert_array_equal(out2["a_mask"].numpy(), ~prior)
    np.testing.assert_array_equal(np.asarray(out2["a"]), x)
    tok = ModalityDropout("t", 1.0, fill_value=7)({"t": np.ones((4, 3), "int32")})["t"].numpy()
    assert tok.dtype == np.int32 and np.all(tok == 7)


def test_dropout_fill_without_mask_is_symile_m3s_fill_convention():
    x = _x(2000, 2)
    mean = x.mean(axis=0)
    masked = ModalityDropout("a", 0.4, fill_value=mean, seed=5)({"a": x})
    filled = ModalityDropout("a", 0.4, fill_value=mean, seed=5, mask=False)({"a": x})
    assert "a_mask" not in filled  # scored like any other row
    np.testing.assert_array_equal(filled["a"].numpy(), masked["a"].numpy())  # same rows, same values
    missing = ~masked["a_mask"].numpy()
    assert 0.35 < missing.mean() < 0.45
    np.testing.assert_allclose(filled["a"].numpy()[missing], np.broadcast_to(mean, (missing.sum(), 2)))
    # An existing mask is left as it was.
    prior = np.arange(2000) % 2 == 0
    kept = ModalityDropout("a", 0.4, fill_value=mean, mask=False)({"a": x, "a_mask": prior})
    np.testing.assert_array_equal(kept["a_mask"], prior)
    with pytest.raises(ValueError, match="mask=False with fill_value=None would change nothing"):
        ModalityDropout("a", 0.4, fill_value=None, mask=False)
    with pytest.raises(ValueError, match="mask must be True or False, got 'no'"):
        ModalityDropout("a", 0.4, mask="no")


@pytest.mark.parametrize("fraction,n", [(0.0, 50), (0.1, 50), (0.37, 100), (1.0, 30)])
def test_misalign_moves_stated_fraction(fraction, n):
    ids = np.arange(n, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    out = Misalign("a", fraction, record_key="moved", seed=4)({"a": ids, "id": np.arange(n)})
    moved = out["a"].numpy()[:, 0] != np.arange(n)
    assert moved.sum() == round(fraction * n)
    np.testing.assert_array_equal(moved, out["moved"].numpy())
    np.testing.assert_array_equal(np.sort(out["a"].numpy()[:, 0]), np.arange(n))  # a permutation
    np.testing.assert_array_equal(out["id"], np.arange(n))  # other keys untouched


def test_misalign_single_row_rounds_up_to_a_swap_and_moves_mask():
    x = np.arange(10, dtype="float32")
    mask = np.arange(10) < 5
    out = Misalign("a", 0.1)({"a": x, "a_mask": mask})
    moved = out["a"].numpy() != x
    assert moved.sum() == 2
    np.testing.assert_array_equal(out["a_mask"].numpy(), mask[out["a"].numpy().astype(int)])


def test_apply_on_batched_dataset_is_deterministic():
    ds = from_numpy({"a": _x(40, 4)}).batch(8)
    t = GaussianNoise("a", 3.0, seed=5)
    r1 = [b["a"].numpy() for b in t.apply(ds)]
    r2 = [b["a"].numpy() for b in t.apply(ds)]
    for u, v in zip(r1, r2):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(r1[0] - _x(40, 4)[:8], r1[1] - _x(40, 4)[8:16])


def test_transforms_work_inside_tf_function():
    fn = tf.function(lambda b: Misalign("a", 0.5)(ModalityDropout("a", 0.5)(GaussianNoise("a", 10.0)(b))))
    out = fn({"a": tf.constant(_x(16, 4))})
    assert out["a"].shape == (16, 4) and out["a_mask"].dtype == tf.bool


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: GaussianNoise("a", float("inf")), "finite"),
        (lambda: GaussianNoise("a", 10.0)({"b": _x(2, 2)}), "not in the batch"),
        (lambda: GaussianNoise("a", 10.0)({"a": np.ones((2, 2), "int32")}), "floating point"),
        (lambda: GaussianNoise("a", 10.0)([1, 2]), "dict"),
        (lambda: ModalityDropout("a", 1.5), "rate"),
        (lambda: Misalign("a", -0.1), "fraction"),
        (lambda: Misalign("a", 0.5, seed=1.5), "seed"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
