"""The synthetic benchmarks: determinism, the property that makes each hard, bad parameters."""

import numpy as np
import pytest

from tf_mmcl.data.synthetic import (
    CORRUPTION_KINDS,
    binary_candidates,
    bits_to_index,
    latent_blocks,
    make_confu_xor,
    make_fragility,
    make_misalignment,
    make_symile_xor,
)
from tf_mmcl.data.synthetic.misalignment import apply_mlp


def _mutual_information(x, y):
    """Plug-in MI (nats) of two discrete arrays of integer codes."""
    joint = np.zeros((x.max() + 1, y.max() + 1))
    np.add.at(joint, (x, y), 1.0)
    joint /= joint.sum()
    px, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / (px @ py)[nz])))


GENERATORS = [
    (make_symile_xor, dict(d_v=3, n_train=50, n_val=10, n_test=10)),
    (make_confu_xor, dict(d=3, embed_dim=8, noise_std=0.1, n_train=50, n_val=10, n_test=10)),
    (make_fragility, dict(dim=16, n_train=50, n_val=10, n_test=10)),
    (
        make_misalignment,
        dict(semantics_n=4, modality_n=2, perturbed=[3], cond_pool=300, n_train=50, n_val=10, n_test=10),
    ),
]


@pytest.mark.parametrize("fn,kwargs", GENERATORS, ids=lambda v: getattr(v, "__name__", ""))
def test_deterministic_per_seed(fn, kwargs):
    a, b, c = fn(seed=3, **kwargs), fn(seed=3, **kwargs), fn(seed=4, **kwargs)
    for split in ("train", "val", "test"):
        xa, xb, xc = a.as_numpy(split), b.as_numpy(split), c.as_numpy(split)
        assert sorted(xa) == sorted(xb)
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k])
        assert any(not np.array_equal(xa[m], xc[m]) for m in a.modalities)
    # Splits are independent draws, not copies.
    assert not np.array_equal(a.as_numpy("val")[a.modalities[0]], a.as_numpy("test")[a.modalities[0]])


@pytest.mark.parametrize("fn,kwargs", GENERATORS, ids=lambda v: getattr(v, "__name__", ""))
def test_datasets_yield_the_arrays(fn, kwargs):
    s = fn(seed=0, **kwargs)
    arrays = s.as_numpy("val")
    rows = list(s.val.as_numpy_iterator())
    assert len(rows) == s.num_examples("val") == 10
    for k, v in arrays.items():
        np.testing.assert_array_equal(np.stack([r[k] for r in rows]), v)
    for m in s.modalities:
        assert s.train.element_spec[m].dtype.name == "float32"


def test_symile_xor_pairwise_independent_triple_determines():
    s = make_symile_xor(d_v=2, p_hat=1.0, n_train=40000, n_val=1, n_test=1, seed=0)
    x = s.as_numpy("train")
    codes = {m: bits_to_index(x[m]) for m in "abc"}
    for p, q in (("a", "b"), ("a", "c"), ("b", "c")):
        assert _mutual_information(codes[p], codes[q]) < 0.003, (p, q)
    # The triple: c is a function of (a, b), and a of (b, c).
    np.testing.assert_array_equal(x["c"], np.logical_xor(x["a"], x["b"]).astype("float32"))
    np.testing.assert_array_equal(x["a"], np.logical_xor(x["b"], x["c"]).astype("float32"))
    assert _mutual_information(codes["a"], codes["b"] * 4 + codes["c"]) > np.log(4) - 0.01
    np.testing.assert_array_equal(binary_candidates(2)[x["a_index"]], x["a"])
    assert s.info["bayes_top1"] == 1.0


def test_symile_xor_p_hat_zero_is_pairwise():
    s = make_symile_xor(d_v=4, p_hat=0.0, n_train=500, n_val=1, n_test=1, seed=1)
    x = s.as_numpy("train")
    np.testing.assert_array_equal(x["c"], x["a"])
    assert x["switch"].sum() == 0


def test_symile_xor_switch_rate_and_m8():
    x = make_symile_xor(d_v=3, p_hat=0.3, n_train=20000, n_val=1, n_test=1).as_numpy("train")
    assert abs(x["switch"].mean() - 0.3) < 0.015
    on = x["switch"] == 1
    np.testing.assert_array_equal(x["c"][~on], x["a"][~on])
    np.testing.assert_array_equal(x["c"][on], np.logical_xor(x["a"], x["b"])[on])
    s8 = make_symile_xor(d_v=1, num_modalities=8, n_train=100, n_val=1, n_test=1)
    y = s8.as_numpy("train")
    assert s8.modalities == list("abcdefgh")
    parity = np.sum([y[m] for m in "abcdefg"], axis=0) % 2
    np.testing.assert_array_equal(y["h"], parity)


def test_confu_xor_pairwise_mi_zero_and_geometry():
    s = make_confu_xor(d=2, p_hat=1.0, n_train=40000, n_val=1, n_test=1)
    x = s.as_numpy("train")
    codes = {m: bits_to_index(x[m]) for m in ("z1", "z2", "z3")}
    for p, q in (("z1", "z2"), ("z2", "z3"), ("z1", "z3")):
        assert _mutual_information(codes[p], codes[q]) < 0.003
    np.testing.assert_array_equal(x["z2"], np.logical_xor(x["z1"], x["z3"]).astype("float32"))
    np.testing.assert_array_equal(codes["z2"], x["z2_index"])
    # Embedded version: noise-free inputs equal the candidate rows of their codes.
    g = make_confu_xor(d=3, embed_dim=7, noise_std=0.0, n_train=64, n_val=1, n_test=1, seed=2)
    y = g.as_numpy("train")
    np.testing.assert_allclose(y["z2"], g.info["candidates"][y["z2_index"]], atol=1e-6)
    assert y["z1"].shape == (64, 7)
    # With noise the inputs differ from the clean codes by about noise_std.
    n = make_confu_xor(d=3, embed_dim=7, noise_std=0.5, n_train=2000, n_val=1, n_test=1, seed=2).as_numpy("train")
    resid = n["z2"] - g.info["candidates"][n["z2_index"]]
    assert abs(resid.std() - 0.5) < 0.02


def test_fragility_rates_kinds_and_masks():
    s = make_fragility(dim=16, p_misaligned=0.2, p_weak=0.1, p_missing=0.15, n_train=20000, n_val=1, n_test=1, seed=0)
    x = s.as_numpy("train")
    frac = np.bincount(x["corruption"], minlength=4) / x["corruption"].size
    np.testing.assert_allclose(frac, [0.55, 0.2, 0.1, 0.15], atol=0.015)
    assert set(np.unique(x["corrupted_modality"][x["corruption"] > 0])) == {1, 2}
    assert np.all(x["corrupted_modality"][x["corruption"] == 0] == -1)
    missing = x["corruption"] == 3
    for idx, m in enumerate("abc"):
        rows = missing & (x["corrupted_modality"] == idx)
        np.testing.assert_array_equal(~x[f"{m}_mask"], rows)
        assert np.all(x[m][rows] == 0)
    assert x["a_mask"].all()
    assert CORRUPTION_KINDS[3] == "missing"


def test_fragility_clean_signal_encodes_xor_and_corruptions_break_it():
    s = make_fragility(
        n_bits=1,
        dim=8,
        p_flip=0.0,
        p_misaligned=0.3,
        p_weak=0.3,
        p_missing=0.0,
        unreliable="b",
        n_train=20000,
        n_val=1,
        n_test=1,
        seed=5,
    )
    x = s.as_numpy("train")
    a, b, c = (x[m][:, 0] > 0 for m in "abc")
    agree = a == (b ^ c)
    kind = x["corruption"]
    assert agree[kind == 0].all()  # clean: a = b XOR c exactly (no flips)
    assert 0.4 < agree[kind == 1].mean() < 0.6  # misaligned: b from another sample
    assert 0.55 < agree[kind == 2].mean() < 0.7  # weak at -10 dB: Phi(1/sqrt(10)) ~ 0.62
    # Any single pair is uninformative about the label; the triple determines it.
    assert abs(np.corrcoef(x["a"][:, 0], x["b"][:, 0])[0, 1]) < 0.03
    np.testing.assert_array_equal(x["label"], (x["a"][:, 0] > 0).astype(int))


def test_fragility_redundant_mode_layout():
    x = make_fragility(
        n_bits=2,
        dim=10,
        embed_mode="redundant",
        p_misaligned=0,
        p_weak=0,
        p_missing=0,
        p_flip=0.0,
        n_train=50,
        n_val=1,
        n_test=1,
    ).as_numpy("train")
    assert np.all(x["b"][:, 2:4] > 0) and np.all(x["c"][:, 0:2] > 0)  # the constant-1 blocks
    np.testing.assert_array_equal(x["a"][:, :2] > 0, x["b"][:, :2] > 0)  # u in a and b


def test_misalignment_biases_and_invertible_mixing():
    s = make_misalignment(
        semantics_n=6,
        modality_n=2,
        selected=[0, 1, 2, 3],
        perturbed=[3, 5],
        change_prob=0.5,
        cond_pool=400,
        n_train=4000,
        n_val=10,
        n_test=10,
        seed=0,
    )
    x = s.as_numpy("train")
    assert s.info["invariant"] == [0, 1, 2] and s.info["perturbed"] == [3]
    assert x["x"].shape == (4000, 8) and x["t"].shape == (4000, 6)
    np.testing.assert_array_equal(x["s_tilde"][:, :3], x["s"][:, :3])  # invariant: equal
    changed = ~np.isclose(x["s_tilde"][:, 3], x["s"][:, 3])
    assert abs(changed.mean() - 0.5) < 0.03  # perturbed w.p. change_prob
    # The mixing is invertible: the latents are recovered from x exactly by inverting g_x.
    z = np.concatenate([x["s"], x["m_x"]], axis=1)
    np.testing.assert_allclose(apply_mlp(s.info["mixing"]["x"], z), x["x"], rtol=1e-4, atol=1e-4)
    h = x["x"].astype(np.float64)
    for k, w in reversed(list(enumerate(s.info["mixing"]["x"]))):
        if k < len(s.info["mixing"]["x"]) - 1:
            h = np.where(h > 0, h, h / 0.2)
        h = np.linalg.solve(w, h.T).T
    np.testing.assert_allclose(h, z, atol=1e-3)
    # Same seed, different sizes: the same mixing maps.
    s2 = make_misalignment(
        semantics_n=6,
        modality_n=2,
        selected=[0, 1, 2, 3],
        perturbed=[3, 5],
        change_prob=0.5,
        cond_pool=400,
        n_train=5,
        n_val=1,
        n_test=1,
        seed=0,
    )
    for w1, w2 in zip(s.info["mixing"]["t"], s2.info["mixing"]["t"]):
        np.testing.assert_array_equal(w1, w2)
    blocks = latent_blocks(s.as_numpy("test"), s.info)
    assert blocks["s_inv"].shape == (10, 3) and "tilde_s_3" in blocks and "tilde_s_5" not in blocks


def test_misalignment_causal_dependence_correlates_semantics():
    x = make_misalignment(
        semantics_n=4, modality_n=0, causal_dependence=True, cond_pool=200, n_train=5000, n_val=1, n_test=1, seed=1
    ).as_numpy("train")
    corr = np.corrcoef(x["s"].T)
    assert np.max(np.abs(corr - np.eye(4))) > 0.1


@pytest.mark.parametrize(
    "fn,kwargs,match",
    [
        (make_symile_xor, dict(p_hat=1.5), "p_hat"),
        (make_symile_xor, dict(d_v=0), "d_v"),
        (make_symile_xor, dict(num_modalities=2), "num_modalities"),
        (make_symile_xor, dict(n_train=0), "n_train"),
        (make_symile_xor, dict(seed=-1), "seed"),
        (make_confu_xor, dict(embed_dim=2, d=3), "embed_dim"),
        (make_confu_xor, dict(noise_std=0.1), "noise_std"),
        (make_fragility, dict(p_misaligned=0.5, p_weak=0.4, p_missing=0.2), "<= 1"),
        (make_fragility, dict(unreliable=("z",)), "unreliable"),
        (make_fragility, dict(dim=2, n_bits=1, embed_mode="redundant"), "dim"),
        (make_fragility, dict(a_rule="and"), "a_rule"),
        (make_fragility, dict(embed_mode="other"), "embed_mode"),
        (make_misalignment, dict(selected=[10]), "selected"),
        (make_misalignment, dict(selected=[]), "selected"),
        (make_misalignment, dict(selected=[0], perturbed=[0]), "invariant"),
        (make_misalignment, dict(change_prob=2.0), "change_prob"),
    ],
)
def test_bad_parameters_raise(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(**kwargs)


def test_binary_candidates_rejects_huge_sets():
    with pytest.raises(ValueError, match="candidates"):
        binary_candidates(30)


@pytest.mark.parametrize("p_hat", [0.2, 0.5, 0.8])
def test_symile_xor_reference_accuracies_match_simulated_decision_rules(p_hat):
    # bayes_top1: argmax of the joint posterior; per_bit_posterior_top1: argmax of the product of
    # per-bit posteriors, ties at random. Both checked by simulating the rule on fresh samples.
    from tf_mmcl.data.synthetic.symile_xor import bayes_top1, per_bit_posterior_top1

    d_v = 4
    x = make_symile_xor(d_v=d_v, p_hat=p_hat, n_train=60000, n_val=1, n_test=1, seed=3).as_numpy("train")
    a, b, c = (x[m].astype(bool) for m in "abc")
    rng = np.random.default_rng(0)
    # Joint posterior: two hypotheses, a = c (weight 1 - p_hat) and a = c XOR b (weight p_hat).
    guess = np.logical_xor(c, b) if p_hat > 0.5 else c
    np.testing.assert_allclose(np.mean((guess == a).all(1)), bayes_top1(d_v, p_hat), atol=0.01)
    # Per-bit posterior of a_j = not c_j is p_hat where b_j = 1, 0 where b_j = 0.
    p_flip = np.where(b, p_hat, 0.0)
    flip = np.where(p_flip == 0.5, rng.random(p_flip.shape) < 0.5, p_flip > 0.5)
    per_bit = np.logical_xor(c, flip)
    np.testing.assert_allclose(np.mean((per_bit == a).all(1)), per_bit_posterior_top1(d_v, p_hat), atol=0.01)
    if p_hat == 0.5:
        assert per_bit_posterior_top1(d_v, p_hat) < bayes_top1(d_v, p_hat) - 0.2
