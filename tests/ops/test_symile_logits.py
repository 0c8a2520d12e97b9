"""shuffled_negative_logsumexp: the closed-form backward equals autodiff of the materialised "n" logits."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import unit_rows
from tf_mmcl.ops import shuffled_negative_logits, shuffled_negative_logsumexp


def _case(m, n, d, seed=0):
    rng = np.random.default_rng(seed)
    reps = [tf.constant(unit_rows(rng, n, d)) for _ in range(m)]
    perms = tf.constant(np.stack([rng.permutation(n) for _ in range(m - 1)]).astype(np.int32))
    # A non-uniform upstream gradient, so every row's weight in the backward matters.
    weights = tf.constant(rng.uniform(0.5, 2.0, size=n).astype(np.float32))
    return reps, perms, weights


def _plain(anchor, others, perms, scale):
    return tf.reduce_logsumexp(scale * shuffled_negative_logits(anchor, others, perms), axis=1)


def _value_and_grads(fn, reps, perms, weights, scale, mode="eager"):
    def run(scale, *reps):
        with tf.GradientTape() as tape:
            tape.watch([scale, *reps])
            value = tf.reduce_sum(weights * fn(reps[0], list(reps[1:]), perms, scale))
        return [value] + tape.gradient(value, [scale, *reps])

    if mode != "eager":
        run = tf.function(run, jit_compile=mode == "xla")
    return [x.numpy() for x in run(tf.constant(scale, tf.float32), *reps)]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("m,scale", [(3, 1.0), (3, 14.3), (3, 100.0), (4, 14.3)])
def test_value_and_gradients_match_autodiff(m, scale, mode):
    reps, perms, weights = _case(m, 9, 5)
    ours = _value_and_grads(shuffled_negative_logsumexp, reps, perms, weights, scale, mode)
    ref = _value_and_grads(_plain, reps, perms, weights, scale, "eager")
    for x, y in zip(ours, ref):
        assert np.all(np.isfinite(x))
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6 * max(1.0, scale / 10.0))


def test_given_positive_equals_computed_positive():
    reps, perms, _ = _case(3, 6, 4, seed=1)
    positive = tf.reduce_sum(reps[0] * reps[1] * reps[2], axis=1)
    a = shuffled_negative_logsumexp(reps[0], reps[1:], perms, 7.0)
    b = shuffled_negative_logsumexp(reps[0], reps[1:], perms, 7.0, positive=positive)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), _plain(reps[0], reps[1:], perms, 7.0).numpy(), rtol=1e-6)


def test_unknown_batch_size_in_tf_function():
    reps, perms, weights = _case(3, 7, 4, seed=2)
    spec = tf.TensorSpec([None, None], tf.float32)

    @tf.function(input_signature=[spec] * 3 + [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.float32)])
    def run(a, b, c, p, scale):
        with tf.GradientTape() as tape:
            tape.watch([a, b, c, scale])
            value = tf.reduce_sum(weights * shuffled_negative_logsumexp(a, [b, c], p, scale))
        return [value] + tape.gradient(value, [scale, a, b, c])

    ours = [x.numpy() for x in run(*reps, perms, tf.constant(20.0))]
    ref = _value_and_grads(_plain, reps, perms, weights, 20.0)
    for x, y in zip(ours, ref):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=4e-6)


def test_extreme_scale_stays_finite_and_ties_give_log_n():
    reps, perms, weights = _case(3, 8, 3, seed=3)
    out = _value_and_grads(shuffled_negative_logsumexp, reps, perms, weights, 1e4)
    assert all(np.all(np.isfinite(x)) for x in out)
    same = [tf.ones((5, 4)) / 2.0] * 3  # every logit equal: log-sum-exp = logit + log N
    lse = shuffled_negative_logsumexp(same[0], same[1:], tf.constant([[1, 2, 3, 4, 0]] * 2), 3.0)
    np.testing.assert_allclose(lse.numpy(), 3.0 * 4 * 0.125 + np.log(5.0), rtol=1e-6)
