"""The pairwise objective with the negative Lp distance ("Negate or Embrace") vs NumPy."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl import layers, losses, ops
from tf_mmcl.models import MultimodalContrastiveModel


def np_lp_distance(a, b, p, power):
    d = np.sum(np.abs(a[:, None, :] - b[None, :, :]) ** p, axis=-1)
    return d if power else d ** (1.0 / p)


def np_logsumexp(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def np_lp_clip(reps, scale, p, power, masks=None):
    total = 0.0
    pairs = list(itertools.combinations(range(len(reps)), 2))
    for i, j in pairs:
        s = -scale * np_lp_distance(reps[i], reps[j], p, power)
        valid = np.ones(len(s), bool)
        if masks is not None:
            for k in (i, j):
                if masks[k] is not None:
                    valid &= masks[k]
        s = s[valid][:, valid]
        pos = np.diag(s)
        total += 0.5 * (np.mean(np_logsumexp(s, 1) - pos) + np.mean(np_logsumexp(s, 0) - pos))
    return total / len(pairs)


@pytest.mark.parametrize("p, power", [(2.0, True), (2.0, False), (1.0, True), (3.0, True), (1.5, False)])
def test_distance_matrix_matches_numpy(p, power):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(7, 4))
    got = ops.lp_distance_matrix(a.astype("float32"), b.astype("float32"), p=p, power=power).numpy()
    np.testing.assert_allclose(got, np_lp_distance(a, b, p, power), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p, power", [(2.0, True), (1.0, True), (3.0, False)])
def test_loss_values_and_gradients_match_numpy(p, power):
    rng = np.random.default_rng(1)
    reps = [rng.normal(size=(6, 3)) for _ in range(3)]
    scale = 0.7
    want = np_lp_clip(reps, scale, p, power)
    tensors = [tf.Variable(r.astype("float32")) for r in reps]
    with tf.GradientTape() as tape:
        loss = losses.clip_loss(tensors, scale, similarity="lp", p=p, lp_power=power)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    grads = tape.gradient(loss, tensors)
    # Central differences of the float64 NumPy loss.
    h = 1e-6
    for m, r in enumerate(reps):
        numeric = np.zeros_like(r)
        for idx in np.ndindex(r.shape):
            up = [x.copy() for x in reps]
            down = [x.copy() for x in reps]
            up[m][idx] += h
            down[m][idx] -= h
            numeric[idx] = (np_lp_clip(up, scale, p, power) - np_lp_clip(down, scale, p, power)) / (2 * h)
        np.testing.assert_allclose(grads[m].numpy(), numeric, rtol=1e-3, atol=1e-4)


def test_masks_and_graph_mode():
    rng = np.random.default_rng(2)
    reps = [rng.normal(size=(6, 3)) for _ in range(3)]
    masks = [None, np.array([1, 1, 0, 1, 1, 1], bool), np.array([1, 0, 1, 1, 1, 1], bool)]
    want = np_lp_clip(reps, 1.0, 2.0, True, masks)
    loss_fn = tf.function(lambda r, m1, m2: losses.clip_loss(r, 1.0, masks=[None, m1, m2], similarity="lp"))
    got = loss_fn([r.astype("float32") for r in reps], masks[1], masks[2])
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_cosine_default_is_unchanged():
    rng = np.random.default_rng(3)
    reps = [r / np.linalg.norm(r, axis=1, keepdims=True) for r in rng.normal(size=(3, 8, 4))]
    reps = [r.astype("float32") for r in reps]
    default = float(losses.clip_loss(reps, 10.0))
    explicit = float(losses.clip_loss(reps, 10.0, similarity="cosine", p=3.0))
    want = 0.0
    for i, j in itertools.combinations(range(3), 2):
        s = 10.0 * reps[i].astype(np.float64) @ reps[j].T.astype(np.float64)
        pos = np.diag(s)
        want += 0.5 * (np.mean(np_logsumexp(s, 1) - pos) + np.mean(np_logsumexp(s, 0) - pos)) / 3
    assert default == explicit
    np.testing.assert_allclose(default, want, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(similarity="euclid"), "similarity"),
        (dict(similarity="lp", p=0.0), "p"),
        (dict(similarity="lp", p="two"), "p"),
        (dict(similarity="lp", p=float("inf")), "p"),
    ],
)
def test_bad_options(kwargs, match):
    r = np.eye(3, dtype="float32")
    with pytest.raises(ValueError, match=match):
        losses.clip_loss([r, r], 1.0, **kwargs)
    with pytest.raises(ValueError, match=match):
        losses.CLIPLoss(**kwargs)


def test_keras_loss_config_round_trip():
    loss = losses.CLIPLoss(modalities=["a", "b"], logit_scale=1.0, similarity="lp", p=1.0, lp_power=False)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (again.similarity, again.p, again.lp_power) == ("lp", 1.0, False)
    rng = np.random.default_rng(4)
    y = {"a": rng.normal(size=(5, 3)).astype("float32"), "b": rng.normal(size=(5, 3)).astype("float32")}
    np.testing.assert_allclose(float(again(None, y)), np_lp_clip([y["a"], y["b"]], 1.0, 1.0, False), rtol=1e-5)


def test_model_clip_lp_unnormalised_trains_scores_and_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    x = {m: rng.normal(size=(32, 3)).astype("float32") for m in "ab"}
    model = MultimodalContrastiveModel(
        {m: layers.MLPEncoder(hidden_units=(8,)) for m in "ab"},
        embedding_dim=4,
        objective="clip",
        similarity="lp",
        p=2.0,
        normalize=False,
        logit_scale_init=1.0,
        learn_logit_scale=False,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    ea, eb = model.embed("a", x["a"]).numpy(), model.embed("b", x["b"]).numpy()
    assert not np.allclose(np.linalg.norm(ea, axis=1), 1.0)  # not normalised
    np.testing.assert_allclose(
        model.score({"a": x["a"]}, "b", x["b"]).numpy(), -np_lp_distance(ea, eb, 2.0, True), rtol=1e-4, atol=1e-4
    )
    # The model's loss is the Lp objective on its embeddings.
    np.testing.assert_allclose(
        float(model.compute_loss(x, None, model(x))), np_lp_clip([ea, eb], 1.0, 2.0, True), rtol=1e-4
    )
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.options["similarity"], loaded.options["normalize"]) == ("lp", False)
    np.testing.assert_allclose(loaded.embed("a", x["a"]).numpy(), ea, rtol=1e-6)


def test_model_rejects_bad_clip_options():
    enc = {m: layers.MLPEncoder(hidden_units=(4,)) for m in "ab"}
    with pytest.raises(ValueError, match="similarity"):
        MultimodalContrastiveModel(enc, embedding_dim=2, objective="clip", similarity="l2")
    with pytest.raises(ValueError, match="normalize"):
        MultimodalContrastiveModel(enc, embedding_dim=2, objective="clip", normalize="no")
    with pytest.raises(ValueError, match='needs similarity="lp"'):
        MultimodalContrastiveModel(enc, embedding_dim=2, objective="clip", normalize=False)
    with pytest.raises(ValueError, match="Unknown option"):
        MultimodalContrastiveModel(enc, embedding_dim=2, objective="symile", similarity="lp")


# --- lp_negatives="independent": the authors' LpSimCLRLoss as their simulation calls it ---------


def np_authors_term(anchor, partner, others, tau, p, power, valid=None, valid_others=None):
    """One direction of the authors' loss, written out: alpha = 0.5, log-mean-exp, positive included."""
    neg = np.sum(np.abs(anchor[:, None, :] - others[None, :, :]) ** p, axis=-1)
    pos = np.sum(np.abs(anchor - partner) ** p, axis=-1)
    if not power:
        neg, pos = neg ** (1.0 / p), pos ** (1.0 / p)
    if valid_others is not None:
        neg = neg[:, valid_others]
    both = np.concatenate([neg, pos[:, None]], axis=1)
    log_mean_exp = np_logsumexp(-both / tau, 1) - np.log(both.shape[1])
    per_row = 2.0 * (0.5 * pos / tau + 0.5 * log_mean_exp)
    if valid is not None:
        per_row = per_row[valid]
    return np.mean(per_row)


def np_independent(reps, scale, p, power, masks=None):
    h = len(reps[0]) // 2
    total = 0.0
    pairs = list(itertools.combinations(range(len(reps)), 2))
    for i, j in pairs:
        valid = None
        others_valid = {i: None, j: None}
        if masks is not None:
            valid = np.ones(h, bool)
            for k in (i, j):
                if masks[k] is not None:
                    valid &= masks[k][:h]
                    others_valid[k] = masks[k][h : 2 * h]
        a, b = reps[i][:h], reps[j][:h]
        a2, b2 = reps[i][h : 2 * h], reps[j][h : 2 * h]
        forward = np_authors_term(a, b, a2, 1.0 / scale, p, power, valid, others_valid[i])
        backward = np_authors_term(b, a, b2, 1.0 / scale, p, power, valid, others_valid[j])
        total += 0.5 * (forward + backward)
    return total / len(pairs)


def numeric_gradients(fn, reps, h=1e-6):
    out = []
    for m, r in enumerate(reps):
        g = np.zeros_like(r)
        for idx in np.ndindex(r.shape):
            up = [x.copy() for x in reps]
            down = [x.copy() for x in reps]
            up[m][idx] += h
            down[m][idx] -= h
            g[idx] = (fn(up) - fn(down)) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize(
    "num_modalities, rows, p, power, scale",
    [(2, 8, 2.0, True, 1.0), (2, 9, 2.0, True, 0.5), (3, 6, 1.0, True, 1.0), (2, 6, 3.0, False, 2.0)],
)
def test_independent_negatives_values_and_gradients_match_numpy(num_modalities, rows, p, power, scale):
    rng = np.random.default_rng(10 + rows)
    reps = [rng.normal(size=(rows, 3)) for _ in range(num_modalities)]
    want = np_independent(reps, scale, p, power)
    tensors = [tf.Variable(r.astype("float32")) for r in reps]
    with tf.GradientTape() as tape:
        loss = losses.clip_loss(tensors, scale, similarity="lp", p=p, lp_power=power, lp_negatives="independent")
    np.testing.assert_allclose(float(loss), want, rtol=1e-5, atol=1e-6)
    grads = tape.gradient(loss, tensors)
    numeric = numeric_gradients(lambda r: np_independent(r, scale, p, power), reps)
    for got, expected in zip(grads, numeric):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-3, atol=1e-4)
    if rows % 2:  # the odd last row takes no part
        assert np.all(grads[0].numpy()[-1] == 0.0)


def test_independent_negatives_differ_from_cross_modal_and_use_the_same_modality():
    rng = np.random.default_rng(11)
    a, b = (rng.normal(size=(8, 2)).astype("float32") for _ in range(2))
    independent = float(losses.clip_loss([a, b], 1.0, similarity="lp", lp_negatives="independent"))
    cross = float(losses.clip_loss([a, b], 1.0, similarity="lp"))
    assert abs(independent - cross) > 1e-3
    # Moving modality b's second half changes only the b-query direction's negatives.
    b_moved = b.copy()
    b_moved[4:] += 5.0
    forward_a = np_authors_term(a[:4].astype(np.float64), b[:4], a[4:], 1.0, 2.0, True)
    moved = float(losses.clip_loss([a, b_moved], 1.0, similarity="lp", lp_negatives="independent"))
    backward = np_authors_term(b[:4].astype(np.float64), a[:4], b_moved[4:], 1.0, 2.0, True)
    np.testing.assert_allclose(moved, 0.5 * (forward_a + backward), rtol=1e-5)


def test_independent_negatives_with_masks_and_in_graph_mode():
    rng = np.random.default_rng(12)
    reps = [rng.normal(size=(10, 3)) for _ in range(3)]
    masks = [None, np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1], bool), np.array([1, 0, 1, 1, 1, 1, 1, 1, 0, 1], bool)]
    want = np_independent(reps, 1.5, 2.0, True, masks)
    fn = tf.function(
        lambda r, m1, m2: losses.clip_loss(r, 1.5, masks=[None, m1, m2], similarity="lp", lp_negatives="independent")
    )
    got = fn([r.astype("float32") for r in reps], masks[1], masks[2])
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lp_negatives="independent"), 'needs similarity="lp"'),
        (dict(similarity="lp", lp_negatives="same"), "lp_negatives must be one of"),
    ],
)
def test_bad_lp_negatives(kwargs, match):
    r = np.eye(4, dtype="float32")
    with pytest.raises(ValueError, match=match):
        losses.clip_loss([r, r], 1.0, **kwargs)
    with pytest.raises(ValueError, match=match):
        losses.CLIPLoss(**kwargs)
    enc = {m: layers.MLPEncoder(hidden_units=(4,)) for m in "ab"}
    with pytest.raises(ValueError, match=match):
        MultimodalContrastiveModel(enc, embedding_dim=2, objective="clip", **kwargs)
    with pytest.raises(ValueError, match="at least 2 rows"):
        losses.clip_loss([r[:1], r[:1]], 1.0, similarity="lp", lp_negatives="independent")


def test_model_with_independent_negatives_trains_and_round_trips():
    rng = np.random.default_rng(13)
    x = {m: rng.normal(size=(32, 3)).astype("float32") for m in "ab"}
    model = MultimodalContrastiveModel(
        {m: layers.MLPEncoder(hidden_units=(8,)) for m in "ab"},
        embedding_dim=2,
        objective="clip",
        similarity="lp",
        normalize=False,
        lp_negatives="independent",
        logit_scale_init=1.0,
        learn_logit_scale=False,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    ea, eb = model.embed("a", x["a"]).numpy(), model.embed("b", x["b"]).numpy()
    np.testing.assert_allclose(
        float(model.compute_loss(x, None, model(x))), np_independent([ea, eb], 1.0, 2.0, True), rtol=1e-4
    )
    loss = losses.CLIPLoss(modalities=["a", "b"], similarity="lp", lp_negatives="independent")
    assert keras.losses.deserialize(keras.losses.serialize(loss)).lp_negatives == "independent"
