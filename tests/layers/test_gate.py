"""ContrastiveGate: weights, neutral interpolation, per-candidate scores, masks, errors, saving.

Every expected value comes from the independent numpy gate below (``np_*``), written from the
paper's description and the authors' ``ModalityAttentionGate``, not from the layer's code.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import unit_rows
from tf_mmcl.layers.gate import ContrastiveGate

NAMES = ["a", "b", "c"]
N, D, DK = 5, 8, 6


# ----------------------------------------------------------------------------- numpy reference
def _softplus(x):
    return np.log1p(np.exp(x))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _unit(x, eps=1e-6):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def np_params(gate):
    """The gate's weights as numpy arrays (float64)."""
    p = {
        "temp": _softplus(float(gate.log_temperature.numpy())) + 0.1,
        "alpha": _sigmoid(float(gate.strength_logit.numpy())),
        "null_logit": None if gate.null_logit is None else gate.null_logit.numpy().astype(np.float64),
        "neutral": (
            None if gate.neutral_directions is None else _unit(gate.neutral_directions.numpy().astype(np.float64))
        ),
    }
    if gate.mode == "attention":
        p["wq"] = [l.kernel.numpy().astype(np.float64) for l in gate.query_projections]
        p["wk"] = [l.kernel.numpy().astype(np.float64) for l in gate.key_projections]
        if gate.use_null:
            p["ln"] = (gate.null_norm.gamma.numpy(), gate.null_norm.beta.numpy())
            p["h"] = (gate.null_hidden.kernel.numpy(), gate.null_hidden.bias.numpy())
            p["o"] = (gate.null_output.kernel.numpy(), gate.null_output.bias.numpy())
    else:
        p["table"] = gate.gate_logits.numpy().astype(np.float64)
    return p


def np_null_head(p, x):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    z = (x - mu) / np.sqrt(var + 1e-5) * p["ln"][0] + p["ln"][1]
    h = np.maximum(z @ p["h"][0] + p["h"][1], 0.0)
    return (h @ p["o"][0] + p["o"][1])[..., 0]


def np_weights(gate, p, t, e_t, e_others, present=None):
    """Weights of the other modalities for target index t.

    e_t: (..., D) target embeddings; e_others: list (other modalities, index order) of (..., D),
    broadcastable against e_t; present: list of 0/1 arrays broadcastable, or None.
    Returns (list of weights, p_null).
    """
    m_count = len(gate.modalities)
    others = [i for i in range(m_count) if i != t]
    if gate.mode == "attention":
        q = _unit(e_t @ p["wq"][t])
        s = [np.sum(q * _unit(e @ p["wk"][m]), -1) / p["temp"] for e, m in zip(e_others, others)]
        null = (np_null_head(p, e_t) + p["null_logit"][t]) / p["temp"] if gate.use_null else None
    else:
        shape = np.broadcast_shapes(e_t.shape[:-1], *[e.shape[:-1] for e in e_others])
        s = [np.full(shape, p["table"][t, m]) for m in others]
        null = np.full(shape, p["null_logit"][t] / p["temp"]) if gate.use_null else None
    shape = np.broadcast_shapes(*[x.shape for x in s])
    s = [np.broadcast_to(x, shape) for x in s]
    pres = [
        np.ones(shape) if present is None or present[k] is None else np.broadcast_to(present[k], shape)
        for k in range(len(s))
    ]
    if gate.gate_type == "softmax":
        logits = [np.where(pr > 0.5, x, -np.inf) for x, pr in zip(s, pres)]
        if gate.use_null:
            logits.append(np.broadcast_to(null, shape))
        z = np.stack(logits, -1)
        zmax = np.max(z, -1, keepdims=True)
        zmax = np.where(np.isfinite(zmax), zmax, 0.0)
        ex = np.exp(z - zmax)
        tot = ex.sum(-1, keepdims=True)
        prob = np.where(tot > 0, ex / np.where(tot > 0, tot, 1.0), 0.0)
        w = [prob[..., k] for k in range(len(s))]
        pn = prob[..., -1] if gate.use_null else np.zeros(shape)
    else:
        pn = _sigmoid(np.broadcast_to(null, shape)) if gate.use_null else np.zeros(shape)
        w = [_sigmoid(x) * (1 - pn) * pr for x, pr in zip(s, pres)]
    return w, pn


def np_gated(gate, p, index, e, w):
    """Neutral interpolation + strength + renormalisation of modality ``index``."""
    a = p["alpha"]
    w = np.asarray(w)[..., None]
    if p["neutral"] is None:
        return (1 - a) * e + a * (w * e)
    g = w * e + (1 - w) * p["neutral"][index]
    g = (1 - a) * e + a * g
    return _unit(g) if gate.renormalize else g


def np_candidate_scores(gate, p, t, queries, cands):
    """Explicit (B, C, D) computation: score[b, c] = <cand_c, prod_m G_m(b, c)>."""
    m_count = len(gate.modalities)
    others = [i for i in range(m_count) if i != t]
    q = [np.asarray(queries[gate.modalities[m]], np.float64)[:, None, :] for m in others]  # (B, 1, D)
    c = np.asarray(cands, np.float64)
    c = c[None, :, :] if c.ndim == 2 else c  # (1|B, C, D)
    w, _ = np_weights(gate, p, t, c, q)
    prod = np.ones(np.broadcast_shapes(c.shape, q[0].shape))
    for k, m in enumerate(others):
        prod = prod * np_gated(gate, p, m, q[k], w[k])
    return np.sum(prod * c, -1), w


def make_embeddings(seed=0, n=N, d=D, names=NAMES):
    rng = np.random.default_rng(seed)
    return {m: unit_rows(rng, n, d) for m in names}


def randomize(gate, seed=1):
    """Moves every trainable gate weight away from its initial value (so nothing passes by accident)."""
    rng = np.random.default_rng(seed)
    for v in gate.trainable_weights:
        val = v.numpy()
        v.assign((val + 0.3 * rng.normal(size=val.shape)).astype(val.dtype))


def build_gate(names=NAMES, d=D, **kw):
    kw.setdefault("key_dim", DK)
    kw.setdefault("seed", 0)
    kw.setdefault("strength_logit_init", 0.5)
    gate = ContrastiveGate(names, **kw)
    gate.build({m: (None, d) for m in names})
    randomize(gate)
    return gate


CONFIGS = [
    dict(mode="attention", gate_type="softmax", use_null=True),
    dict(mode="attention", gate_type="softmax", use_null=False),
    dict(mode="attention", gate_type="sigmoid", use_null=True),
    dict(mode="attention", gate_type="sigmoid", use_null=False),
    dict(mode="matrix", gate_type="softmax", use_null=True),
    dict(mode="matrix", gate_type="sigmoid", use_null=True),
]


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_gate_weights_match_numpy_reference(cfg):
    gate = build_gate(**cfg)
    emb = make_embeddings()
    w, p_null = gate.gate_weights(emb, return_null=True)
    p = np_params(gate)
    for t, target in enumerate(NAMES):
        others = [m for m in NAMES if m != target]
        ref_w, ref_null = np_weights(
            gate, p, t, emb[target].astype(np.float64), [emb[m].astype(np.float64) for m in others]
        )
        got = w[target].numpy()
        assert got.dtype == np.float32 and got.shape == (N, 3)
        np.testing.assert_array_equal(got[:, t], 1.0)
        for k, m in enumerate(others):
            np.testing.assert_allclose(got[:, NAMES.index(m)], ref_w[k], atol=2e-6)
        np.testing.assert_allclose(p_null[target].numpy(), ref_null, atol=2e-6)
        assert np.all((got >= 0) & (got <= 1))
        off = got.sum(1) - 1.0
        if cfg["gate_type"] == "softmax":  # off-target weights sum to 1 - p_null
            np.testing.assert_allclose(off, 1.0 - p_null[target].numpy(), atol=1e-6)
        if cfg["mode"] == "matrix":  # global weights: the same for every row
            np.testing.assert_allclose(got, np.broadcast_to(got[:1], got.shape), atol=1e-7)
    # the Keras call returns the same weights
    out = gate(emb)
    for target in NAMES:
        np.testing.assert_allclose(out[target].numpy(), w[target].numpy(), atol=1e-7)


def test_attention_weights_depend_on_the_row():
    gate = build_gate()
    w = gate.gate_weights(make_embeddings())["a"].numpy()
    assert np.std(w[:, 1]) > 1e-3


def test_initial_strength_temperature_and_weights():
    gate = ContrastiveGate(NAMES, key_dim=DK, seed=0)
    emb = make_embeddings()
    gate(emb)
    alpha = float(gate.strength())
    assert abs(alpha - 1.0 / (1.0 + math.exp(6.0))) < 1e-7 and abs(alpha - 0.0025) < 5e-5
    assert abs(float(gate.temperature()) - (math.log(2.0) + 0.1)) < 1e-6
    np.testing.assert_array_equal(gate.null_logit.numpy(), 0.0)
    # neutral directions start as unit vectors, trainable by default
    np.testing.assert_allclose(np.linalg.norm(gate.neutral_directions.numpy(), axis=1), 1.0, atol=1e-6)
    assert gate.neutral_directions.trainable
    # almost ungated at init: gated embeddings within ~alpha of the inputs
    g = gate.gate_tuple("a", emb)
    for m in ("b", "c"):
        assert np.max(np.abs(g[m].numpy() - emb[m])) < 4 * alpha
    # matrix/sigmoid init: w = 0.5 * (1 - p_null) = 0.5 * (1 - sigmoid(0)) = 0.25
    mat = ContrastiveGate(NAMES, mode="matrix", gate_type="sigmoid", key_dim=DK)
    np.testing.assert_allclose(mat(emb)["a"].numpy()[:, 1:], 0.25, atol=1e-6)
    assert not any("projection" in v.path for v in mat.weights)


@pytest.mark.parametrize("neutral", ["random_trainable", "random_frozen", "ones", None])
@pytest.mark.parametrize("renormalize", [True, False])
def test_gate_tuple_neutral_interpolation(neutral, renormalize):
    gate = build_gate(neutral=neutral, renormalize=renormalize)
    emb = make_embeddings(seed=3)
    p = np_params(gate)
    if neutral == "ones":
        np.testing.assert_allclose(p["neutral"], 1 / math.sqrt(D), atol=1e-6)
        np.testing.assert_allclose(gate.neutral_directions.numpy(), 1 / math.sqrt(D), atol=1e-6)
    assert (gate.neutral_directions is None) == (neutral is None)
    if neutral is not None:
        assert gate.neutral_directions.trainable == (neutral == "random_trainable")
    w = gate.gate_weights(emb)
    for target in NAMES:
        g = gate.gate_tuple(target, emb)
        assert sorted(g) == sorted(m for m in NAMES if m != target)
        for m, got in g.items():
            i = NAMES.index(m)
            ref = np_gated(gate, p, i, emb[m].astype(np.float64), w[target].numpy()[:, i].astype(np.float64))
            np.testing.assert_allclose(got.numpy(), ref, atol=2e-6)
            norms = np.linalg.norm(got.numpy(), axis=1)
            if neutral is not None and renormalize:
                np.testing.assert_allclose(norms, 1.0, atol=1e-5)
            else:  # interpolation toward another unit vector / scaling shrinks the norm
                assert np.all(norms < 1.0 - 1e-3)


# ----------------------------------------------------------------------------- per candidate
@pytest.mark.parametrize(
    "cfg",
    [
        CONFIGS[0],
        CONFIGS[2],
        CONFIGS[4],
        dict(mode="attention", neutral=None),
        dict(mode="attention", renormalize=False),
    ],
    ids=["att-softmax", "att-sigmoid", "matrix", "no-neutral", "no-renorm"],
)
@pytest.mark.parametrize("names", [NAMES, ["a", "b", "c", "d"]], ids=["M3", "M4"])
def test_gated_scores_match_explicit_tuples(cfg, names):
    gate = build_gate(names=names, **cfg)
    emb = make_embeddings(seed=2, names=names)
    p = np_params(gate)
    rng = np.random.default_rng(7)
    for t, target in enumerate(names):
        queries = {m: emb[m] for m in names if m != target}
        cands = unit_rows(rng, 7, D)
        scores, weights = gate.gated_scores(target, queries, cands, return_weights=True)
        ref, ref_w = np_candidate_scores(gate, p, t, queries, cands)
        assert scores.dtype == "float32" and tuple(scores.shape) == (N, 7)
        np.testing.assert_allclose(scores.numpy(), ref, atol=3e-6)
        assert tuple(weights.shape) == (N, 7, len(names))
        np.testing.assert_array_equal(weights.numpy()[..., t], 1.0)
        others = [i for i in range(len(names)) if i != t]
        for k, i in enumerate(others):
            np.testing.assert_allclose(weights.numpy()[..., i], np.broadcast_to(ref_w[k], (N, 7)), atol=2e-6)
        # per-row candidates (B, K, D) give the same as gathering the shared ones
        idx = rng.integers(0, 7, size=(N, 3))
        per_row = gate.gated_scores(target, queries, cands[idx])
        np.testing.assert_allclose(per_row.numpy(), np.take_along_axis(scores.numpy(), idx, 1), atol=3e-6)


def test_per_candidate_weights_differ_per_candidate_and_match_own_tuple():
    gate = build_gate()
    emb = make_embeddings(seed=4)
    queries = {"b": emb["b"], "c": emb["c"]}
    _, w = gate.gated_scores("a", queries, emb["a"], return_weights=True)
    w = w.numpy()
    # the weight row b puts on "b" changes with the candidate c
    spread = w[:, :, 1].max(axis=1) - w[:, :, 1].min(axis=1)
    assert np.all(spread > 1e-2), spread
    # the candidate that is row b's own target gives the row's own-tuple weights
    own = gate.gate_weights(emb)["a"].numpy()
    np.testing.assert_allclose(w[np.arange(N), np.arange(N)], own, atol=2e-6)
    # ... and the diagonal score is the MIP of the row's own gated tuple
    g = gate.gate_tuple("a", emb)
    s = gate.gated_scores("a", queries, emb["a"]).numpy()
    np.testing.assert_allclose(np.diag(s), np.sum(emb["a"] * g["b"].numpy() * g["c"].numpy(), 1), atol=2e-6)


# ----------------------------------------------------------------------------- masks
def test_missing_modality_is_the_neutral_direction():
    gate = build_gate()
    emb = make_embeddings(seed=5)
    masks = {"c": np.array([True, False, True, False, True])}
    w, p_null = gate.gate_weights(emb, masks=masks, return_null=True)
    for target in ("a", "b"):
        got = w[target].numpy()
        np.testing.assert_array_equal(got[[1, 3], 2], 0.0)
        np.testing.assert_allclose(got.sum(1) - 1, 1 - p_null[target].numpy(), atol=1e-6)  # mass moves elsewhere
    p = np_params(gate)
    g = gate.gate_tuple("a", emb, masks=masks)["c"].numpy()
    np.testing.assert_allclose(g[[1, 3]], np.tile(p["neutral"][2], (2, 1)), atol=1e-6)
    # present rows are unaffected by other rows' masks
    g_full = gate.gate_tuple("a", emb)["c"].numpy()
    np.testing.assert_allclose(g[[0, 2, 4]], g_full[[0, 2, 4]], atol=1e-6)
    # per-candidate path: query row 1 has c missing -> its gated c is the neutral for every candidate
    queries = {"b": emb["b"], "c": emb["c"]}
    s = gate.gated_scores("a", queries, emb["a"], query_masks=masks).numpy()
    q_filled = dict(queries, c=np.where(masks["c"][:, None], emb["c"], p["neutral"][2]))
    ref, _ = np_candidate_scores(gate, p, 0, q_filled, emb["a"])
    ref_w = np_weights(
        gate,
        p,
        0,
        emb["a"][None].astype(np.float64),
        [q_filled["b"][:, None].astype(np.float64), q_filled["c"][:, None].astype(np.float64)],
        present=[None, masks["c"][:, None].astype(np.float64)],
    )[0]
    _, w_c = gate.gated_scores("a", queries, emb["a"], query_masks=masks, return_weights=True)
    np.testing.assert_allclose(w_c.numpy()[..., 2], ref_w[1], atol=2e-6)
    np.testing.assert_array_equal(w_c.numpy()[[1, 3], :, 2], 0.0)
    assert np.all(np.isfinite(s)) and np.isfinite(ref).all()


@pytest.mark.parametrize("use_null", [True, False])
@pytest.mark.parametrize("gate_type", ["softmax", "sigmoid"])
def test_all_modalities_missing_and_zero_embeddings_have_finite_gradients(use_null, gate_type):
    gate = build_gate(use_null=use_null, gate_type=gate_type)
    emb = make_embeddings(seed=6)
    emb["b"][0] = 0.0  # a zero embedding
    emb["a"][1] = 0.0
    masks = {m: np.zeros(N, bool) for m in NAMES}
    tensors = {m: tf.constant(v) for m, v in emb.items()}
    with tf.GradientTape() as tape:
        tape.watch(list(tensors.values()))
        w, p_null = gate.gate_weights(tensors, masks=masks, return_null=True)
        g = gate.gate_tuple("a", tensors, masks=masks)
        s = gate.gated_scores("a", {"b": tensors["b"], "c": tensors["c"]}, tensors["a"], query_masks=masks)
        g2 = gate.gate_tuple("c", tensors)  # zero rows, no masks
        total = (
            sum(tf.reduce_sum(x) for x in w.values())
            + sum(tf.reduce_sum(x) for x in g.values())
            + tf.reduce_sum(s)
            + sum(tf.reduce_sum(x) for x in g2.values())
        )
    for target in NAMES:
        np.testing.assert_array_equal(np.delete(w[target].numpy(), NAMES.index(target), 1), 0.0)
        expected_null = 1.0 if (use_null and gate_type == "softmax") else None
        if expected_null is not None:
            np.testing.assert_allclose(p_null[target].numpy(), 1.0, atol=1e-6)
    grads = tape.gradient(total, list(tensors.values()) + gate.trainable_variables)
    assert all(gr is None or np.all(np.isfinite(np.asarray(gr))) for gr in grads)
    assert all(np.all(np.isfinite(x.numpy())) for x in list(g.values()) + list(g2.values()) + [s])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(modalities=["a", "b"]), "at least 3"),
        (dict(modalities=["a", "b", "a"]), "duplicates"),
        (dict(modalities="abc"), "list of modality names"),
        (dict(mode="global"), "gate mode"),
        (dict(gate_type="relu"), "gate_type"),
        (dict(neutral="zeros"), "neutral"),
        (dict(key_dim=0), "key_dim"),
        (dict(temperature_init=0.0), "temperature_init"),
        (dict(strength_logit_init=float("nan")), "strength_logit_init"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_constructor_errors(kwargs, match):
    kwargs = dict(dict(modalities=NAMES), **kwargs)
    with pytest.raises(ValueError, match=match):
        ContrastiveGate(**kwargs)


def test_input_errors():
    gate = build_gate()
    emb = make_embeddings()
    with pytest.raises(ValueError, match="unknown modality"):
        gate.gate_weights(dict(emb, x=emb["a"]))
    with pytest.raises(ValueError, match="missing modality"):
        gate.gate_weights({"a": emb["a"], "b": emb["b"]})
    with pytest.raises(ValueError, match="rank 2"):
        gate.gate_weights(dict(emb, a=emb["a"][0]))
    with pytest.raises(ValueError, match="width"):
        gate.gate_weights(dict(emb, a=np.ones((N, D + 1), "float32")))
    with pytest.raises(ValueError, match="batch sizes differ"):
        gate.gate_weights(dict(emb, a=emb["a"][:3]))
    with pytest.raises(ValueError, match="Unknown target"):
        gate.gate_tuple("z", emb)
    with pytest.raises(ValueError, match="masks: unknown"):
        gate.gate_weights(emb, masks={"z": np.ones(N, bool)})
    with pytest.raises(ValueError, match=r"must be a \(N,\) boolean vector"):
        gate.gate_weights(emb, masks={"a": np.ones((N, 1), bool)})
    with pytest.raises(ValueError, match="rows"):
        gate.gate_weights(emb, masks={"a": np.ones(N + 1, bool)})
    with pytest.raises(ValueError, match="dict"):
        gate.gate_weights([emb["a"], emb["b"], emb["c"]])
    queries = {"b": emb["b"], "c": emb["c"]}
    with pytest.raises(ValueError, match="non-target"):
        gate.gated_scores("a", emb, emb["a"])
    with pytest.raises(ValueError, match="missing modality"):
        gate.gated_scores("a", {"b": emb["b"]}, emb["a"])
    with pytest.raises(ValueError, match="candidates"):
        gate.gated_scores("a", queries, emb["a"][0])
    with pytest.raises(ValueError, match="width"):
        gate.gated_scores("a", queries, np.ones((4, D + 2), "float32"))
    with pytest.raises(ValueError, match="per-row candidates"):
        gate.gated_scores("a", queries, np.ones((N + 1, 2, D), "float32"))
    with pytest.raises(ValueError, match="Unknown target"):
        gate.gated_scores("q", queries, emb["a"])
    fresh = ContrastiveGate(NAMES, key_dim=DK)
    with pytest.raises(ValueError, match="widths differ"):
        fresh.gate_weights(dict(emb, c=np.ones((N, D + 1), "float32")))


# ----------------------------------------------------------------------------- serialisation
def test_config_round_trip():
    gate = ContrastiveGate(
        NAMES,
        mode="matrix",
        gate_type="sigmoid",
        use_null=False,
        neutral="ones",
        key_dim=4,
        strength_logit_init=-2.0,
        renormalize=False,
        temperature_init=0.5,
        seed=3,
        name="g",
    )
    config = gate.get_config()
    for key, value in dict(
        modalities=NAMES,
        mode="matrix",
        gate_type="sigmoid",
        use_null=False,
        neutral="ones",
        key_dim=4,
        strength_logit_init=-2.0,
        renormalize=False,
        temperature_init=0.5,
        seed=3,
    ).items():
        assert config[key] == value, key
    clone = ContrastiveGate.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(gate))
    assert isinstance(restored, ContrastiveGate) and restored.get_config() == config
    assert ContrastiveGate.from_config(ContrastiveGate(NAMES, neutral=None).get_config()).neutral is None


def test_keras_file_save_and_load(tmp_path):
    inputs = {m: keras.Input((D,), name=m) for m in NAMES}
    enc = {m: keras.layers.Dense(D, name=f"enc_{m}")(inputs[m]) for m in NAMES}
    gate = ContrastiveGate(NAMES, key_dim=DK, seed=0, strength_logit_init=0.0, name="gate")
    weights = gate(enc)
    model = keras.Model(inputs, weights)
    randomize(gate, seed=9)
    x = make_embeddings(seed=8)
    before = model.predict(x, verbose=0)
    path = tmp_path / "gate_model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.predict(x, verbose=0)
    assert sorted(after) == sorted(NAMES)
    for m in NAMES:
        np.testing.assert_array_equal(after[m], before[m])
    lgate = loaded.get_layer("gate")
    assert isinstance(lgate, ContrastiveGate)
    for v0, v1 in zip(gate.weights, lgate.weights):
        np.testing.assert_array_equal(v0.numpy(), v1.numpy())


# ----------------------------------------------------------------------------- mixed precision
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_outputs_are_float32(policy):
    emb = make_embeddings(seed=10)
    ref_gate = build_gate()
    ref = ref_gate.gate_weights(emb)["a"].numpy()
    keras.mixed_precision.set_global_policy(policy)
    gate = ContrastiveGate(NAMES, key_dim=DK, seed=0, strength_logit_init=0.5)
    gate.build({m: (None, D) for m in NAMES})
    for v, r in zip(gate.weights, ref_gate.weights):
        v.assign(r.numpy())
    assert all(v.dtype == "float32" for v in gate.weights)
    half = {m: tf.cast(v, gate.compute_dtype) for m, v in emb.items()}
    w = gate(half)
    g = gate.gate_tuple("a", half)
    s = gate.gated_scores("a", {"b": half["b"], "c": half["c"]}, half["a"])
    assert all(x.dtype == "float32" for x in list(w.values()) + list(g.values()) + [s])
    np.testing.assert_allclose(w["a"].numpy(), ref, atol=0.03)
