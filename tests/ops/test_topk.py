"""Blocked matmul + streaming top-k equals top_k of the full score matrix."""

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.ops import block_top_k, blocked_top_k, merge_top_k, streaming_top_k


@pytest.mark.parametrize("c,block,group", [(1000, 128, 8), (1000, 1000, 16), (999, 100, 7), (37, 5, 4), (64, 64, 1)])
def test_blocked_top_k_matches_full_top_k(c, block, group):
    rng = np.random.default_rng(c)
    cand = rng.normal(size=(c, 16)).astype("float32")
    q = rng.normal(size=(9, 16)).astype("float32")
    k = min(10, c)
    s, i = blocked_top_k(q, cand, k, block_size=block, group_size=group)
    ref_s, ref_i = tf.math.top_k(q @ cand.T, k)
    np.testing.assert_array_equal(i.numpy(), ref_i.numpy())
    np.testing.assert_allclose(s.numpy(), ref_s.numpy(), rtol=1e-5)


def test_inside_tf_function_and_bfloat16_storage():
    rng = np.random.default_rng(1)
    cand = rng.normal(size=(500, 8)).astype("float32")
    var = tf.Variable(tf.cast(cand, tf.bfloat16))
    q = rng.normal(size=(4, 8)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec((None, 8), tf.float32)])
    def search(x):
        return blocked_top_k(x, var, 5, block_size=64, group_size=8)

    s, i = search(q)
    rounded = tf.cast(var, tf.float32).numpy()
    ref_s, ref_i = tf.math.top_k(q @ rounded.T, 5)
    np.testing.assert_array_equal(i.numpy(), ref_i.numpy())
    np.testing.assert_allclose(s.numpy(), ref_s.numpy(), rtol=1e-5)


def test_group_pruning_with_ties_and_minus_inf_padding():
    scores = tf.constant([[1.0, 5.0, 5.0, 0.0, 2.0, 5.0, 3.0]])
    v, i = block_top_k(scores, 3, group_size=2)
    assert v.numpy().tolist() == [[5.0, 5.0, 5.0]]
    assert sorted(i.numpy()[0].tolist()) == [1, 2, 5]


def test_streaming_with_custom_score_and_merge():
    full = tf.constant(np.random.default_rng(2).normal(size=(3, 50)).astype("float32"))
    v, i = streaming_top_k(lambda start, size: full[:, start : start + size], 50, 4, block_size=7)
    ref_v, ref_i = tf.math.top_k(full, 4)
    np.testing.assert_array_equal(i.numpy(), ref_i.numpy())
    mv, mi = merge_top_k(
        tf.constant([[3.0, 1.0]]), tf.constant([[0, 1]]), tf.constant([[2.0, 1.0]]), tf.constant([[5, 6]]), 3
    )
    assert mi.numpy().tolist() == [[0, 5, 1]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="k=11 exceeds"):
        blocked_top_k(np.zeros((1, 2), "float32"), np.zeros((10, 2), "float32"), 11)
    with pytest.raises(ValueError, match="k must be an int"):
        blocked_top_k(np.zeros((1, 2), "float32"), np.zeros((10, 2), "float32"), 0)
    with pytest.raises(ValueError, match="width"):
        blocked_top_k(np.zeros((1, 3), "float32"), np.zeros((10, 2), "float32"), 1)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        blocked_top_k(np.zeros((1, 2), "float32"), np.zeros((10, 2), "int32"), 1)
