import itertools

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl import ops


def test_mip_matches_numpy_and_reduces_to_dot():
    rng = np.random.default_rng(1)
    reps = [rng.normal(size=(5, 7)).astype("float32") for _ in range(4)]
    np.testing.assert_allclose(ops.mip(reps), np.sum(np.prod(np.stack(reps), axis=0), axis=1), rtol=1e-5)
    np.testing.assert_allclose(ops.mip(reps[:2]), np.sum(reps[0] * reps[1], axis=1), rtol=1e-5)


def test_mip_scores_is_product_of_queries_times_candidates():
    rng = np.random.default_rng(2)
    q = [rng.normal(size=(3, 6)).astype("float32") for _ in range(2)]
    c = rng.normal(size=(9, 6)).astype("float32")
    expected = (q[0] * q[1]) @ c.T
    np.testing.assert_allclose(ops.mip_scores(q, c), expected, rtol=1e-5, atol=1e-6)
    # One query modality: the dot product; a (d,) query is one row.
    np.testing.assert_allclose(ops.mip_scores([q[0]], c), q[0] @ c.T, rtol=1e-5, atol=1e-6)
    assert ops.mip_scores([q[0][0]], c).shape == (1, 9)
    # Consistency with mip on aligned rows.
    np.testing.assert_allclose(np.diag(ops.mip_scores(q, c[:3])), ops.mip(q + [c[:3]]), rtol=1e-5, atol=1e-6)


def test_mip_scores_rejects_width_mismatch():
    with pytest.raises(ValueError, match="widths differ"):
        ops.mip_scores([np.ones((2, 3), "float32")], np.ones((4, 5), "float32"))


def _naive_gram_volume(anchor, others, eps):
    out = np.zeros((anchor.shape[0], others[0].shape[0]))
    for i, j in itertools.product(range(anchor.shape[0]), range(others[0].shape[0])):
        v = np.stack([anchor[i]] + [o[j] for o in others]).astype("float64")
        out[i, j] = np.sqrt(max(np.linalg.det(v @ v.T), eps))
    return out


@pytest.mark.parametrize("m", [2, 3, 4, 6])
def test_gram_volume_matches_naive_determinant(m):
    rng = np.random.default_rng(m)
    anchor = rng.normal(size=(4, 8)).astype("float32")
    others = [rng.normal(size=(5, 8)).astype("float32") for _ in range(m - 1)]
    np.testing.assert_allclose(
        ops.gram_volume_matrix(anchor, others), _naive_gram_volume(anchor, others, 1e-8), rtol=2e-4, atol=1e-5
    )


def test_gram_volume_gradient_finite_at_singular_gram():
    x = tf.Variable(np.eye(3, dtype="float32"))
    with tf.GradientTape() as tape:
        vol = ops.gram_volume_matrix(x, [x, x])  # every positive tuple is degenerate
        total = tf.reduce_sum(vol)
    grad = tape.gradient(total, x)
    assert np.all(np.isfinite(grad.numpy()))


def test_triangle_area_matches_geometry():
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(size=(4, 5)).astype("float32") for _ in range(3))
    expected_sq = np.zeros((4, 4))
    for i, j in itertools.product(range(4), range(4)):
        u, v = a[i] - b[j], a[i] - c[j]
        expected_sq[i, j] = 0.5 * max(u @ u * (v @ v) - (u @ v) ** 2, 0.0)
    np.testing.assert_allclose(ops.triangle_area_matrix(a, b, c), expected_sq, rtol=1e-4, atol=1e-4)
    area = ops.triangle_area_matrix(a, b, c, squared=False, eps=0.0)
    np.testing.assert_allclose(area, 0.5 * np.sqrt(2 * expected_sq), rtol=1e-4, atol=1e-4)
    # Unit right triangle (e1, e2, e3): sides sqrt(2), area sqrt(3)/2.
    e = np.eye(3, dtype="float32")
    assert abs(float(ops.triangle_area_matrix(e[:1], e[1:2], e[2:], squared=False)[0, 0]) - np.sqrt(3) / 2) < 1e-5


def test_half_precision_inputs_compute_in_float32():
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float16")
    for out in (
        ops.mip([x, x]),
        ops.mip_scores([x], x),
        ops.gram_volume_matrix(x, [x]),
        ops.triangle_area_matrix(x, x, x),
    ):
        assert out.dtype == tf.float32
