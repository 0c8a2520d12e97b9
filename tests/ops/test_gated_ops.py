"""tf_mmcl.ops.gated: the per-candidate gated scores against a naive (B, C, D) reference.

The reference below materialises every gated tuple (row b, candidate c) explicitly, as the
authors' ``retrieval_step`` does (a B*C batch of gated vectors), and scores it with a plain
product and dot: the layout the ops avoid. Values and gradients (w.r.t. the rows, candidates,
weights, strength and neutral directions) must agree to float32 round-off.
"""

import doctest

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.ops import gated as gated_ops

B, C, D, K = 5, 7, 6, 2


def naive_scores(rows, weights, cands, alpha, neutral, renormalize, eps=1e-6, per_row=False):
    """rows (B, K, D), weights (B, C, K), cands (C, D) or (B, C, D) -> (B, C); explicit tuples."""
    c = cands if per_row else tf.broadcast_to(cands[None], (rows.shape[0],) + tuple(cands.shape))
    prod = tf.ones_like(c)
    for k in range(rows.shape[1]):
        e = tf.broadcast_to(rows[:, None, k, :], c.shape)  # (B, C, D): the materialised tuple
        w = weights[..., k][..., None]
        if neutral is None:
            g = (1.0 - alpha + alpha * w) * e
        else:
            g = (1.0 - alpha) * e + alpha * (w * e + (1.0 - w) * neutral[k])
            if renormalize:
                g = g / tf.maximum(tf.norm(g, axis=-1, keepdims=True), eps)
        prod = prod * g
    return tf.reduce_sum(prod * c, axis=-1)


def _inputs(seed=0, per_row=False):
    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    rows = tf.constant(unit(rng.normal(size=(B, K, D))), tf.float32)
    cands = tf.constant(unit(rng.normal(size=(B, C, D) if per_row else (C, D))), tf.float32)
    weights = tf.constant(rng.uniform(size=(B, C, K)), tf.float32)
    neutral = tf.constant(unit(rng.normal(size=(K, D))) * 1.3, tf.float32)  # not unit: renorm matters
    alpha = tf.constant(0.37, tf.float32)
    return rows, weights, cands, alpha, neutral


@pytest.mark.parametrize("modality_axis", [-1, 1])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("neutral_kind,renormalize", [("random", True), ("random", False), (None, False)])
def test_scores_and_gradients_match_the_naive_reference(per_row, neutral_kind, renormalize, modality_axis):
    rows, weights, cands, alpha, neutral = _inputs(seed=1, per_row=per_row)
    neutral = neutral if neutral_kind else None
    variables = [tf.Variable(x) for x in (rows, weights, cands, alpha)] + (
        [tf.Variable(neutral)] if neutral_kind else []
    )
    probe = tf.constant(np.random.default_rng(2).normal(size=(B, C)), tf.float32)  # a random cotangent

    def run(fn):
        with tf.GradientTape() as tape:
            r, w, c, a = variables[:4]
            n = variables[4] if neutral_kind else None
            out = fn(r, w, c, a, n)
            total = tf.reduce_sum(out * probe)
        return out, tape.gradient(total, variables)

    def fast(r, w, c, a, n):
        if modality_axis == 1:  # weights laid out (B, K, C)
            w = tf.transpose(w, (0, 2, 1))
            return gated_ops.gated_candidate_scores(r, w, c, a, n, renormalize, modality_axis=1)
        return gated_ops.gated_candidate_scores(r, w, c, a, n, renormalize)

    got, got_grads = run(fast)
    ref, ref_grads = run(lambda r, w, c, a, n: naive_scores(r, w, c, a, n, renormalize, per_row=per_row))
    assert got.shape == (B, C)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    for g, r in zip(got_grads, ref_grads):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-5)


def test_candidate_indices_equal_gathered_candidates_in_values_and_gradients():
    rows, _, pool, alpha, neutral = _inputs(seed=3)
    rng = np.random.default_rng(4)
    idx = tf.constant(rng.integers(0, C, size=(B, 4)), tf.int32)
    weights = tf.constant(rng.uniform(size=(B, 4, K)), tf.float32)
    pool_v = tf.Variable(pool)
    with tf.GradientTape(persistent=True) as tape:
        by_index = gated_ops.gated_candidate_scores(rows, weights, pool_v, alpha, neutral, candidate_indices=idx)
        gathered = gated_ops.gated_candidate_scores(rows, weights, tf.gather(pool_v, idx), alpha, neutral)
        s1, s2 = tf.reduce_sum(by_index * by_index), tf.reduce_sum(gathered * gathered)
    np.testing.assert_allclose(by_index.numpy(), gathered.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        tf.convert_to_tensor(tape.gradient(s1, pool_v)).numpy(),
        tf.convert_to_tensor(tape.gradient(s2, pool_v)).numpy(),
        rtol=1e-4,
        atol=1e-6,
    )
    keys = tf.math.l2_normalize(tf.constant(rng.normal(size=(B, K, 3)), tf.float32), -1)
    queries = tf.math.l2_normalize(tf.constant(rng.normal(size=(C, 3)), tf.float32), -1)
    a = gated_ops.candidate_attention_logits(keys, queries, 0.7, candidate_indices=idx)
    b = gated_ops.candidate_attention_logits(keys, tf.gather(queries, idx), 0.7)
    ref = np.einsum("bkd,bcd->bck", keys.numpy(), tf.gather(queries, idx).numpy()) / 0.7
    np.testing.assert_allclose(a.numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), ref, rtol=1e-5, atol=1e-6)


def _np_softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@pytest.mark.parametrize("gate_type", ["softmax", "sigmoid"])
@pytest.mark.parametrize("use_null", [True, False])
def test_gate_weights_against_numpy(gate_type, use_null):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(4, 3, K)).astype("float32")
    null = rng.normal(size=(4, 3)).astype("float32") if use_null else None
    presence = np.array([1, 0, 1, 1], "float32")[:, None, None] * np.ones((1, 1, K), "float32")
    presence[:, :, 0] = 1.0  # only modality 1 of row 1 is missing
    w, p_null = gated_ops.gate_weights(logits, null, presence, gate_type)
    if gate_type == "softmax":
        z = np.where(presence > 0.5, logits, -np.inf)
        z = np.concatenate([z, null[..., None]], -1) if use_null else z
        prob = _np_softmax(z)
        ref_w, ref_p = prob[..., :K], (prob[..., K] if use_null else np.zeros((4, 3)))
    else:
        ref_p = 1 / (1 + np.exp(-null)) if use_null else np.zeros((4, 3))
        ref_w = 1 / (1 + np.exp(-logits)) * (1 - ref_p)[..., None] * presence
    np.testing.assert_allclose(np.asarray(w), ref_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(p_null), ref_p, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(w)[1, :, 1] == 0.0)  # a missing modality gets exactly 0


@pytest.mark.parametrize("gate_type", ["softmax", "sigmoid"])
@pytest.mark.parametrize("use_null", [True, False])
def test_gate_weights_modality_axis_and_gradients_match_the_concatenated_softmax(gate_type, use_null):
    # The softmax with NULL is formed without concatenating the NULL logit (its shift carries no
    # gradient); values and gradients equal the textbook softmax over [logits, null], in both layouts.
    rng = np.random.default_rng(8)
    logits = tf.Variable(rng.normal(size=(4, 3, K)).astype("float32") * 3.0)
    null = tf.Variable(rng.normal(size=(4, 3)).astype("float32")) if use_null else None
    presence = np.ones((4, 1, K), "float32")
    presence[2, 0, 1] = 0.0
    probe = tf.constant(rng.normal(size=(4, 3, K)), tf.float32)
    variables = [logits] + ([null] if use_null else [])

    def grads(fn):
        with tf.GradientTape() as tape:
            w, p = fn()
            total = tf.reduce_sum(w * probe) + (tf.reduce_sum(p * probe[..., 0]) if use_null else 0.0)
        return w, p, tape.gradient(total, variables)

    def textbook():
        if gate_type == "sigmoid":
            p = tf.sigmoid(null) if use_null else tf.zeros((4, 3))
            return tf.sigmoid(logits) * (1.0 - p)[..., None] * presence, p
        z = tf.where(presence > 0.5, logits, gated_ops.MASKED_LOGIT)
        z = tf.concat([z, null[..., None]], -1) if use_null else z
        prob = tf.nn.softmax(z, axis=-1)
        return prob[..., :K] * presence, (prob[..., K] if use_null else tf.zeros((4, 3)))

    def transposed():
        w, p = gated_ops.gate_weights(
            tf.transpose(logits, (0, 2, 1)), null, np.transpose(presence, (0, 2, 1)), gate_type, axis=1
        )
        return tf.transpose(w, (0, 2, 1)), p

    ref = grads(textbook)
    for fn in (lambda: gated_ops.gate_weights(logits, null, presence, gate_type), transposed):
        got = grads(fn)
        for a, b in zip(got[:2], ref[:2]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
        for a, b in zip(got[2], ref[2]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_interpolate_matches_formula():
    rng = np.random.default_rng(6)
    e = rng.normal(size=(3, D)).astype("float32")
    w = rng.uniform(size=(3,)).astype("float32")
    n = rng.normal(size=(D,)).astype("float32")
    g = (1 - 0.4) * e + 0.4 * (w[:, None] * e + (1 - w[:, None]) * n)
    np.testing.assert_allclose(np.asarray(gated_ops.interpolate(e, w, 0.4, n, renormalize=False)), g, rtol=1e-5)
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(gated_ops.interpolate(e, w, 0.4, n)), unit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gated_ops.interpolate(e, w, 0.4)), (0.6 + 0.4 * w[:, None]) * e, rtol=1e-5)


def test_bad_arguments_are_named():
    rows, weights, cands, alpha, neutral = _inputs()
    with pytest.raises(ValueError, match="gate_type"):
        gated_ops.gate_weights(np.zeros((2, 2), "float32"), gate_type="relu")
    with pytest.raises(ValueError, match="rows"):
        gated_ops.gated_candidate_scores(rows[0], weights, cands, alpha, neutral)
    with pytest.raises(ValueError, match="weights"):
        gated_ops.gated_candidate_scores(rows, weights[0], cands, alpha, neutral)
    with pytest.raises(ValueError, match="modality_axis"):
        gated_ops.gated_candidate_scores(rows, weights, cands, alpha, neutral, modality_axis=0)
    with pytest.raises(ValueError, match="weights have 7 modalities"):
        gated_ops.gated_candidate_scores(rows, weights, cands, alpha, neutral, modality_axis=1)
    with pytest.raises(ValueError, match="axis"):
        gated_ops.gate_weights(np.zeros((2, 2), "float32"), axis=2)
    with pytest.raises(ValueError, match="null_logits"):
        gated_ops.gate_weights(np.zeros((2, 2), "float32"), null_logits=np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match="row_keys"):
        gated_ops.candidate_attention_logits(rows[0], cands, 1.0)


def test_docstring_examples():
    result = doctest.testmod(gated_ops, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
