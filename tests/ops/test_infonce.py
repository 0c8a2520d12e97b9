"""symmetric_infonce_from_embeddings: the closed-form backward equals autodiff of the plain form."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import unit_rows
from tf_mmcl.losses import symmetric_infonce
from tf_mmcl.ops import dot_scores, symmetric_infonce_from_embeddings


def _value_and_grads(fn, a, b, scale, valid):
    a, b, scale = tf.constant(a), tf.constant(b), tf.constant(scale)
    with tf.GradientTape() as tape:
        tape.watch([a, b, scale])
        value = fn(a, b, scale, valid)
    return [value.numpy()] + [g.numpy() for g in tape.gradient(value, [a, b, scale])]


def _plain(a, b, scale, valid):
    return symmetric_infonce(scale * dot_scores(a, b), valid)


MASKS = {
    "none": None,
    "some_absent": np.array([True, False, True, True, False, True, True, True]),
    "one_valid": np.array([False] * 7 + [True]),
    "none_valid": np.zeros(8, bool),
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_value_and_gradients_match_autodiff(mask, scale):
    rng = np.random.default_rng(0)
    a, b = unit_rows(rng, 8, 5), unit_rows(rng, 8, 5)
    valid = None if MASKS[mask] is None else tf.constant(MASKS[mask])
    ours = _value_and_grads(symmetric_infonce_from_embeddings, a, b, np.float32(scale), valid)
    ref = _value_and_grads(_plain, a, b, np.float32(scale), valid)
    for x, y in zip(ours, ref):
        assert np.all(np.isfinite(x))
        # Gradients grow with the scale, and so does float32 round-off in either form.
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6 * max(1.0, scale / 10.0))
    if mask == "none_valid":
        assert ours[0] == 0.0 and not np.any(ours[1]) and not np.any(ours[2]) and ours[3] == 0.0


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)] * 2 + [tf.TensorSpec([], tf.float32)])
def _value_and_grads_unknown_sizes(a, b, scale):
    with tf.GradientTape() as tape:
        tape.watch([a, b, scale])
        value = symmetric_infonce_from_embeddings(a, b, scale)
    return [value] + tape.gradient(value, [a, b, scale])


@pytest.mark.parametrize("n,d", [(8, 5), (5, 8), (6, 6)])
@pytest.mark.parametrize("scale", [1.0, 100.0])
@pytest.mark.parametrize("static", [True, False])
def test_both_arrangements_match_autodiff(n, d, scale, static):
    """d > N (sizes known) takes the logits-side arrangement, otherwise the embedding-side one;
    with the sizes unknown at trace time (static=False) the embedding-side one runs for every shape."""
    rng = np.random.default_rng(5)
    a, b = unit_rows(rng, n, d), unit_rows(rng, n, d)
    if static:
        ours = _value_and_grads(symmetric_infonce_from_embeddings, a, b, np.float32(scale), None)
    else:
        ours = [x.numpy() for x in _value_and_grads_unknown_sizes(a, b, tf.constant(scale, tf.float32))]
    ref = _value_and_grads(_plain, a, b, np.float32(scale), None)
    for x, y in zip(ours, ref):
        assert np.all(np.isfinite(x))
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6 * max(1.0, scale / 10.0))


def test_absent_rows_get_no_gradient_and_do_not_change_the_loss():
    rng = np.random.default_rng(1)
    a, b = unit_rows(rng, 6, 4), unit_rows(rng, 6, 4)
    valid = np.array([True, True, False, True, False, True])
    value, ga, gb, _ = _value_and_grads(symmetric_infonce_from_embeddings, a, b, np.float32(10.0), tf.constant(valid))
    assert not np.any(ga[~valid]) and not np.any(gb[~valid])
    # Same as the loss over the present rows alone.
    sub = _value_and_grads(symmetric_infonce_from_embeddings, a[valid], b[valid], np.float32(10.0), None)
    np.testing.assert_allclose(value, sub[0], rtol=1e-6)
    np.testing.assert_allclose(ga[valid], sub[1], rtol=1e-5, atol=1e-7)


def test_analytic_cases():
    rng = np.random.default_rng(2)
    # Perfect alignment with a large scale -> ~0; identical candidates (uniform logits) -> log N.
    r = np.eye(6, dtype=np.float32)
    assert float(symmetric_infonce_from_embeddings(r, r, 100.0)) < 1e-6
    same = np.tile(unit_rows(rng, 1, 4), (6, 1))
    np.testing.assert_allclose(float(symmetric_infonce_from_embeddings(same, same, 10.0)), np.log(6.0), rtol=1e-6)


def test_half_precision_inputs_give_float32_and_the_float32_value():
    rng = np.random.default_rng(3)
    a, b = unit_rows(rng, 8, 16), unit_rows(rng, 8, 16)
    ref = float(symmetric_infonce_from_embeddings(a, b, 20.0))
    for dtype in (tf.float16, tf.bfloat16):
        out = symmetric_infonce_from_embeddings(tf.cast(a, dtype), tf.cast(b, dtype), 20.0)
        assert out.dtype == tf.float32
        np.testing.assert_allclose(float(out), ref, rtol=2e-2)


@pytest.mark.parametrize("jit", [False, True])
def test_dynamic_batch_in_tf_function_and_xla(jit):
    @tf.function(
        jit_compile=jit,
        input_signature=[tf.TensorSpec([None, 4], tf.float32)] * 2
        + [tf.TensorSpec([], tf.float32), tf.TensorSpec([None], tf.bool)],
    )
    def step(a, b, scale, valid):
        with tf.GradientTape() as tape:
            tape.watch([a, b, scale])
            value = symmetric_infonce_from_embeddings(a, b, scale, valid)
        return value, tape.gradient(value, [a, b, scale])

    rng = np.random.default_rng(4)
    for n in (3, 7):
        a, b = unit_rows(rng, n, 4), unit_rows(rng, n, 4)
        valid = np.ones(n, bool)
        valid[0] = False
        value, grads = step(a, b, tf.constant(5.0), valid)
        ref = _value_and_grads(_plain, a, b, np.float32(5.0), tf.constant(valid))
        np.testing.assert_allclose(value.numpy(), ref[0], rtol=1e-5)
        for g, r in zip(grads, ref[1:]):
            np.testing.assert_allclose(g.numpy(), r, rtol=1e-4, atol=1e-6)


def test_extreme_scale_stays_finite():
    rng = np.random.default_rng(5)
    a, b = unit_rows(rng, 8, 3), unit_rows(rng, 8, 3)
    out = _value_and_grads(symmetric_infonce_from_embeddings, a, b, np.float32(1e4), None)
    assert all(np.all(np.isfinite(x)) for x in out)


def test_batched_pairs_equal_the_mean_of_single_pairs():
    from tf_mmcl.ops import mean_symmetric_infonce_over_pairs

    rng = np.random.default_rng(6)
    a = np.stack([unit_rows(rng, 6, 4) for _ in range(3)])
    b = np.stack([unit_rows(rng, 6, 4) for _ in range(3)])
    a_t, b_t, s_t = tf.constant(a), tf.constant(b), tf.constant(12.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a_t, b_t, s_t])
        batched = mean_symmetric_infonce_over_pairs(a_t, b_t, s_t)
        single = tf.add_n([symmetric_infonce_from_embeddings(a_t[p], b_t[p], s_t) for p in range(3)]) / 3.0
    np.testing.assert_allclose(batched.numpy(), single.numpy(), rtol=1e-6)
    for x, y in zip(tape.gradient(batched, [a_t, b_t, s_t]), tape.gradient(single, [a_t, b_t, s_t])):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"\(P, N, d\)"):
        mean_symmetric_infonce_over_pairs(a[0], b[0], 1.0)


def test_clip_loss_eager_and_graph_paths_agree():
    from tf_mmcl.losses import clip_loss

    rng = np.random.default_rng(7)
    reps = [tf.constant(unit_rows(rng, 8, 5)) for _ in range(4)]
    eager = float(clip_loss(reps, 9.0))  # batched eager path
    graph = float(tf.function(lambda r: clip_loss(r, 9.0))(reps))  # per-pair graph path
    np.testing.assert_allclose(eager, graph, rtol=1e-6)
