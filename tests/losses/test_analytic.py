"""Analytic values every objective must reproduce, independent of any reference code."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import unit_rows
from tf_mmcl.losses import clip_loss, confu_loss, gram_loss, symile_loss, triangle_loss

N, D = 6, 8


def _same_rows(m, n=N):
    """m modalities whose rows are all equal: every similarity is the same."""
    r = np.tile(unit_rows(np.random.default_rng(0), 1, D), (n, 1))
    return [r] * m


@pytest.mark.parametrize("m", [2, 3, 4])
def test_uniform_similarities_give_log_candidates(m):
    reps = _same_rows(m)
    assert math.isclose(float(clip_loss(reps, 10.0)), math.log(N), rel_tol=1e-5)
    assert math.isclose(float(symile_loss(reps, 10.0, "n_squared")), (m - 1) * math.log(N), rel_tol=1e-5)
    assert math.isclose(float(symile_loss(reps, 10.0, "n", seed=3)), math.log(N), rel_tol=1e-5)
    assert math.isclose(float(gram_loss(reps, 10.0)), math.log(N), rel_tol=1e-5)
    if m == 3:
        assert math.isclose(float(triangle_loss(reps, 10.0)), math.log(N), rel_tol=1e-5)
    if m >= 3:
        fused = [reps[0]] * (m * (m - 1) // 2)
        # The reference normalises by the number of terms but weights them by lam and 1 - lam,
        # so uniform logits give (lam F + (1 - lam) P) log N / (P + F).
        p = m * (m - 1) // 2
        f = p * (m - 2)
        expected = (0.5 * f + 0.5 * p) * math.log(N) / (p + f)
        assert math.isclose(float(confu_loss(reps, fused, 10.0)), expected, rel_tol=1e-5)
        assert math.isclose(float(confu_loss(reps, None, 10.0, lam=0.0)), math.log(N), rel_tol=1e-5)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_perfect_alignment_at_high_scale_is_near_zero(m):
    # Orthonormal rows: positives score 1 (MIP of identical one-hot rows), negatives 0.
    reps = [np.eye(N, D, dtype="float32")] * m
    assert float(clip_loss(reps, 100.0)) < 1e-3
    assert float(symile_loss(reps, 100.0, "n_squared")) < 1e-3
    if m == 2:
        assert float(gram_loss(reps, 100.0)) < 1e-3
    else:
        # Volume-based objectives cannot separate a negative tuple whose own rows coincide:
        # (e_i, e_j, e_j) spans a flat volume / zero-area triangle exactly like the positive, so
        # with every modality identical all logits tie and the loss is log N (GRAM's and
        # TRIANGLE's known blind spot, kept as in the reference).
        assert math.isclose(float(gram_loss(reps, 100.0)), math.log(N), rel_tol=1e-5)
    if m == 3:
        assert math.isclose(float(triangle_loss(reps, 100.0)), math.log(N), rel_tol=1e-5)
    if m >= 3:
        assert float(confu_loss(reps, [reps[0]] * (m * (m - 1) // 2), 100.0)) < 1e-3


def test_symile_n_with_identity_permutations_has_no_false_negative_shortcut():
    # With identity permutations the "n" logits equal the aligned MIPs: positives only on
    # the diagonal for orthonormal rows, loss ~ 0 at high scale.
    reps = [np.eye(N, D, dtype="float32")] * 3
    perms = np.tile(np.arange(N), (3, 2, 1))
    assert float(symile_loss(reps, 100.0, "n", permutations=perms)) < 1e-3


@pytest.mark.parametrize("m", [3, 4])
def test_common_batch_permutation_leaves_losses_unchanged(m):
    rng = np.random.default_rng(5)
    reps = [unit_rows(rng, N, D) for _ in range(m)]
    perm = rng.permutation(N)
    shuffled = [r[perm] for r in reps]
    for fn in (lambda r: clip_loss(r, 4.0), lambda r: symile_loss(r, 4.0, "n_squared"), lambda r: gram_loss(r, 4.0)):
        np.testing.assert_allclose(fn(reps), fn(shuffled), rtol=1e-5)
    if m == 3:
        np.testing.assert_allclose(triangle_loss(reps, 4.0), triangle_loss(shuffled, 4.0), rtol=1e-5)


def _naive_symile_n_squared(reps, scale):
    """Enumerates all N^(M-1) candidate tuples explicitly in float64."""
    reps = [r.astype("float64") for r in reps]
    n = reps[0].shape[0]
    total = 0.0
    for a in range(len(reps)):
        others = [r for j, r in enumerate(reps) if j != a]
        cands = np.stack(
            [
                np.prod([o[k] for o, k in zip(others, idx)], axis=0)
                for idx in itertools.product(range(n), repeat=len(others))
            ]
        )
        logits = scale * reps[a] @ cands.T
        pos = scale * np.sum(reps[a] * np.prod(others, axis=0), axis=1)
        mx = logits.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
        total += np.mean(lse - pos)
    return total / len(reps)


@pytest.mark.parametrize(
    "m,n,d,block", [(2, 5, 4, None), (3, 6, 5, None), (3, 7, 3, 2), (3, 5, 4, 4), (4, 4, 3, None), (4, 5, 3, 3)]
)
def test_streamed_n_squared_equals_naive_enumeration(m, n, d, block):
    rng = np.random.default_rng(10 * m + n)
    reps = [unit_rows(rng, n, d) for _ in range(m)]
    ours = symile_loss(reps, 3.0, "n_squared", block_size=block)
    np.testing.assert_allclose(float(ours), _naive_symile_n_squared(reps, 3.0), rtol=1e-5, atol=1e-5)


def _materialised_n_squared(reps, scale):
    """The same logits materialised in TF (the reference's layout), for gradient comparison."""
    n = reps[0].shape[0]
    total = 0.0
    for a in range(len(reps)):
        others = [r for j, r in enumerate(reps) if j != a]
        idx = np.array(list(itertools.product(range(n), repeat=len(others))))
        cands = tf.ones((len(idx), reps[0].shape[1]))
        for k, o in enumerate(others):
            cands = cands * tf.gather(o, idx[:, k])
        logits = scale * tf.matmul(reps[a], cands, transpose_b=True)
        pos = scale * tf.reduce_sum(reps[a] * tf.reduce_prod(tf.stack(others), axis=0), axis=1)
        total += tf.reduce_mean(tf.reduce_logsumexp(logits, axis=1) - pos)
    return total / len(reps)


@pytest.mark.parametrize("m,block", [(3, None), (3, 2), (4, 3)])
def test_streamed_gradients_equal_materialised_gradients(m, block):
    rng = np.random.default_rng(m)
    reps = [tf.Variable(unit_rows(rng, 5, 4)) for _ in range(m)]
    scale = tf.Variable(2.5)
    with tf.GradientTape(persistent=True) as tape:
        ours = symile_loss(reps, scale, "n_squared", block_size=block)
        ref = _materialised_n_squared(reps, scale)
    g_ours = tape.gradient(ours, reps + [scale])
    g_ref = tape.gradient(ref, reps + [scale])
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_streamed_n_squared_works_in_tf_function_with_dynamic_batch():
    rng = np.random.default_rng(0)
    reps = [unit_rows(rng, 6, 4) for _ in range(3)]
    spec = tf.TensorSpec([None, 4], tf.float32)

    @tf.function(input_signature=[spec, spec, spec])
    def f(a, b, c):
        with tf.GradientTape() as tape:
            tape.watch(a)
            loss = symile_loss([a, b, c], 2.0, "n_squared")
        return loss, tape.gradient(loss, a)

    loss, grad = f(*reps)
    np.testing.assert_allclose(float(loss), _naive_symile_n_squared(reps, 2.0), rtol=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


def test_symile_n_seed_is_reproducible_and_permutations_are_used():
    rng = np.random.default_rng(1)
    reps = [unit_rows(rng, 8, 4) for _ in range(3)]
    a = float(symile_loss(reps, 3.0, "n", seed=7))
    assert a == float(symile_loss(reps, 3.0, "n", seed=7))
    # Explicit permutations: compare with an independent numpy computation.
    perms = np.stack([np.stack([rng.permutation(8) for _ in range(2)]) for _ in range(3)])
    expected = 0.0
    for m in range(3):
        others = [r for j, r in enumerate(reps) if j != m]
        prod = np.prod([o[p] for o, p in zip(others, perms[m])], axis=0)
        logits = 3.0 * reps[m].astype("float64") @ prod.T
        np.fill_diagonal(logits, 3.0 * np.sum(reps[m] * np.prod(others, axis=0), axis=1))
        lse = np.log(np.exp(logits).sum(axis=1))
        expected += np.mean(lse - np.diag(logits))
    np.testing.assert_allclose(float(symile_loss(reps, 3.0, "n", permutations=perms)), expected / 3, rtol=1e-5)


def test_confu_lambda_weighting_matches_formula():
    rng = np.random.default_rng(2)
    reps = [unit_rows(rng, 5, 4) for _ in range(3)]
    fused = [unit_rows(rng, 5, 4) for _ in range(3)]
    pair = clip_loss(reps, 1 / 0.07) * 3  # sum of the three pairwise terms
    fused_terms = sum(float(clip_loss([f, reps[k]], 1 / 0.07)) for f, k in zip(fused, [2, 1, 0]))
    for lam in (0.25, 0.5, 1.0):
        expected = (lam * fused_terms + (1 - lam) * float(pair)) / 6
        np.testing.assert_allclose(float(confu_loss(reps, fused, lam=lam)), expected, rtol=1e-5)
    # lam = 0: the reference averages the pairwise terms over 3, not 6.
    np.testing.assert_allclose(float(confu_loss(reps, None, lam=0.0)), float(pair) / 3, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_give_float32_loss(dtype):
    rng = np.random.default_rng(3)
    reps32 = [unit_rows(rng, 6, 8) for _ in range(3)]
    reps = [tf.cast(r, dtype) for r in reps32]
    for fn in (
        lambda r: clip_loss(r, 5.0),
        lambda r: symile_loss(r, 5.0, "n_squared"),
        lambda r: gram_loss(r, 5.0),
        lambda r: triangle_loss(r, 5.0),
        lambda r: confu_loss(r, r, 5.0),
    ):
        out = fn(reps)
        assert out.dtype == tf.float32
        # Same as the float32 loss of the rounded inputs.
        np.testing.assert_allclose(out, fn([tf.cast(r, "float32") for r in reps]), rtol=1e-6)


def test_masks_all_present_equal_unmasked():
    rng = np.random.default_rng(11)
    reps = [unit_rows(rng, N, D) for _ in range(3)]
    full = [np.ones(N, bool)] * 3
    for fn in (clip_loss, gram_loss, triangle_loss):
        np.testing.assert_allclose(fn(reps, 3.0, masks=full), fn(reps, 3.0), rtol=1e-6)
    np.testing.assert_allclose(
        symile_loss(reps, 3.0, "n_squared", masks=full), symile_loss(reps, 3.0, "n_squared"), rtol=1e-6
    )
    np.testing.assert_allclose(confu_loss(reps, reps, 3.0, masks=full), confu_loss(reps, reps, 3.0), rtol=1e-6)


def test_clip_mask_equals_loss_on_present_rows():
    rng = np.random.default_rng(12)
    reps = [unit_rows(rng, N, D) for _ in range(2)]
    present = np.array([1, 1, 0, 1, 0, 1], bool)
    np.testing.assert_allclose(
        clip_loss(reps, 3.0, masks=[present, None]), clip_loss([r[present] for r in reps], 3.0), rtol=1e-5
    )
    np.testing.assert_allclose(
        gram_loss(reps + reps[:1], 3.0, masks=[present, None, None]),
        gram_loss([r[present] for r in reps + reps[:1]], 3.0),
        rtol=1e-5,
    )


def test_symile_missing_factor_is_the_neutral_element():
    rng = np.random.default_rng(13)
    reps = [unit_rows(rng, N, D) for _ in range(3)]
    present = np.array([1, 0, 1, 1, 1, 0], bool)
    ones = np.where(present[:, None], reps[2], 1.0).astype("float32")
    masked = symile_loss(reps, 3.0, "n_squared", masks=[None, None, present])
    # Anchor c averages only its present rows; anchors a, b see ones in the missing c rows.
    expected = 0.0
    for a in range(3):
        others = [r for j, r in enumerate(reps[:2] + [ones]) if j != a]
        anchor = (reps[:2] + [ones])[a]
        lse = tf.reduce_logsumexp(
            3.0
            * anchor
            @ np.stack(
                [np.prod([o[k] for o, k in zip(others, idx)], axis=0) for idx in itertools.product(range(N), repeat=2)]
            ).T,
            axis=1,
        ).numpy()
        pos = 3.0 * np.sum(anchor * others[0] * others[1], axis=1)
        per_row = lse - pos
        expected += per_row[present].mean() if a == 2 else per_row.mean()
    np.testing.assert_allclose(float(masked), expected / 3, rtol=1e-5)


@pytest.mark.parametrize("sampling", ["n", "n_squared"])
def test_fully_missing_modality_gives_finite_loss_and_gradients(sampling):
    rng = np.random.default_rng(14)
    reps = [tf.Variable(unit_rows(rng, N, D)) for _ in range(3)]
    absent = np.zeros(N, bool)
    with tf.GradientTape() as tape:
        losses = [
            clip_loss(reps, 3.0, masks=[None, absent, None]),
            symile_loss(reps, 3.0, sampling, seed=1, masks=[None, absent, None]),
            gram_loss(reps, 3.0, masks=[None, absent, None]),
            triangle_loss(reps, 3.0, masks=[None, absent, None]),
            confu_loss(reps, reps, 3.0, masks=[None, absent, None]),
        ]
        total = tf.add_n(losses)
    grads = tape.gradient(total, reps)
    assert all(np.isfinite(float(v)) for v in losses)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    # Gram and triangle need every modality: nothing left, loss 0.
    assert float(losses[2]) == 0.0 and float(losses[3]) == 0.0
