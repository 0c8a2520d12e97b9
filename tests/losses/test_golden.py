"""Our objectives against golden values from the reference implementations.

``tests/golden/reference_losses.npz`` is written by ``tools/make_golden.py``, which runs the
reference code (the ``symile`` package, the Gated Symile authors' CLIP/GRAM/TRIANGLE, the ConFu
authors' ``pairwise_contrastive_loss``) in float64 on float32 inputs and records the loss and its
gradients w.r.t. every embedding and the logit scale. Here every case is recomputed with tf_mmcl
in float32 under a ``GradientTape``.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.losses import clip_loss, confu_loss, gram_loss, symile_loss, triangle_loss
from tf_mmcl.ops import triangle_area_matrix

GOLDEN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "reference_losses.npz")
RTOL = 1e-5
ATOL = 1e-5

with np.load(GOLDEN_PATH) as _data:
    GOLDEN = {key: _data[key] for key in _data.files}
CASES = [str(c) for c in GOLDEN["cases"]]
TRIANGLE_CASES = [c for c in CASES if json.loads(str(GOLDEN[f"{c}__meta"]))["method"] == "triangle"]
SYMILE_N_CASES = [c for c in CASES if "permutations" in {k.split("__", 1)[1] for k in GOLDEN if k.startswith(c + "__")}]


def _get(case, key):
    return GOLDEN[f"{case}__{key}"]


def _has(case, key):
    return f"{case}__{key}" in GOLDEN


def _meta(case):
    return json.loads(str(_get(case, "meta")))


def _reps(case):
    m = _meta(case)["num_modalities"]
    return [tf.constant(_get(case, f"rep{k}")) for k in range(m)]


def _fused(case):
    return [tf.constant(_get(case, f"fused{k}")) for k in range(3)]


def _ours(case, reps, scale, fused=None, permutations=None):
    meta = _meta(case)
    method, kwargs = meta["method"], meta["kwargs"]
    if method == "symile":
        if permutations is None and _has(case, "permutations"):
            permutations = _get(case, "permutations")
        # The reference takes raw vectors; the "_unnormalized" cases test exactly that.
        return symile_loss(
            reps,
            scale,
            kwargs["negative_sampling"],
            permutations=permutations,
            check_unit_norm="unnormalized" not in case,
        )
    if method == "clip":
        return clip_loss(reps, scale)
    if method == "gram":
        return gram_loss(reps, scale)
    if method == "triangle":
        return triangle_loss(reps, scale, squared=kwargs["squared"])
    if method == "confu":
        return confu_loss(reps, fused, logit_scale=scale, lam=kwargs["lam"])
    raise AssertionError(f"unknown method {method!r} in the golden file")


def _loss_and_grads(case):
    reps = _reps(case)
    scale = tf.Variable(float(_get(case, "logit_scale")), dtype=tf.float32)
    fused = _fused(case) if _meta(case)["method"] == "confu" else []
    with tf.GradientTape() as tape:
        tape.watch(reps + fused)
        loss = _ours(case, reps, scale, fused=fused or None)
    grads = tape.gradient(loss, reps + fused + [scale])
    grads = [np.zeros(t.shape) if g is None else g.numpy() for g, t in zip(grads, reps + fused + [scale])]
    return float(loss), grads[: len(reps)], grads[len(reps) : -1], grads[-1]


def test_golden_file_is_complete():
    assert len(CASES) >= 17
    methods = {_meta(c)["method"] for c in CASES}
    assert methods == {"symile", "clip", "gram", "triangle", "confu"}
    assert {
        (_meta(c)["kwargs"].get("negative_sampling"), _meta(c)["num_modalities"])
        for c in CASES
        if _meta(c)["method"] == "symile"
    } >= {("n", 3), ("n", 4), ("n_squared", 3), ("n_squared", 4)}
    assert {_meta(c)["kwargs"]["lam"] for c in CASES if _meta(c)["method"] == "confu"} == {0.0, 0.5, 1.0}
    assert os.path.getsize(GOLDEN_PATH) < 300 * 1024


@pytest.mark.parametrize("case", CASES)
def test_loss_and_gradients_match_reference(case):
    loss, rep_grads, fused_grads, scale_grad = _loss_and_grads(case)
    np.testing.assert_allclose(loss, _get(case, "loss"), rtol=RTOL, atol=ATOL, err_msg=f"{case}: loss")
    for k, g in enumerate(rep_grads):
        np.testing.assert_allclose(
            g, _get(case, f"grad_rep{k}"), rtol=RTOL, atol=ATOL, err_msg=f"{case}: d loss / d rep{k}"
        )
    for k, g in enumerate(fused_grads):
        np.testing.assert_allclose(
            g, _get(case, f"grad_fused{k}"), rtol=RTOL, atol=ATOL, err_msg=f"{case}: d loss / d fused{k}"
        )
    np.testing.assert_allclose(
        scale_grad, _get(case, "grad_logit_scale"), rtol=RTOL, atol=ATOL, err_msg=f"{case}: d loss / d logit_scale"
    )


@pytest.mark.parametrize("case", SYMILE_N_CASES)
def test_symile_n_golden_depends_on_the_permutations(case):
    """The "n" golden is only a check of our permutation layout if other permutations differ."""
    perms = _get(case, "permutations")
    assert perms.shape == (
        _meta(case)["num_modalities"],
        _meta(case)["num_modalities"] - 1,
        _get(case, "rep0").shape[0],
    )
    other = np.ascontiguousarray(perms[:, ::-1, :])  # swap which modality gets which permutation
    loss = float(_ours(case, _reps(case), float(_get(case, "logit_scale")), permutations=other))
    assert abs(loss - float(_get(case, "loss"))) > 1e-3


@pytest.mark.parametrize("case", TRIANGLE_CASES)
def test_triangle_matches_naive_reference_not_efficient_one(case):
    """Documents a bug in the reference's ``compute_triangle_area_matrix_efficient``.

    For the triangle (a_i, b_j, c_j), ``(a_i - b_j).(a_i - c_j)`` needs ``b_j . c_j``; the
    efficient function uses ``(mod_b @ mod_c.T)[i, j] = b_i . c_j``. Its positives (i = j) are
    right and its negatives are not, so the reference ``triangle(...)`` loss differs from the
    same loss on its own naive ``compute_triangle_area_matrix``. We follow the geometry: our
    loss equals the naive one (``test_loss_and_gradients_match_reference``) and not theirs.
    """
    reps = _reps(case)
    squared = _meta(case)["kwargs"]["squared"]
    a, b, c = (r.numpy().astype(np.float64) for r in reps)
    naive, efficient = _get(case, "area_naive"), _get(case, "area_efficient")

    ours_area = triangle_area_matrix(*reps, squared=squared).numpy()
    np.testing.assert_allclose(ours_area, naive, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.diag(efficient), np.diag(naive), rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(efficient - naive)) > 1e-2

    def area(bc):
        a2 = np.sum(a * a, 1)[:, None]
        b2, c2 = np.sum(b * b, 1)[None, :], np.sum(c * c, 1)[None, :]
        ab, ac = a @ b.T, a @ c.T
        det = np.maximum((a2 + b2 - 2 * ab) * (a2 + c2 - 2 * ac) - (a2 - ab - ac + bc) ** 2, 0.0)
        return 0.5 * det if squared else 0.5 * np.sqrt(det + 1e-8)

    np.testing.assert_allclose(efficient, area(b @ c.T), rtol=1e-9, atol=1e-9)  # b_i . c_j
    np.testing.assert_allclose(naive, area(np.sum(b * c, 1)[None, :]), rtol=1e-9, atol=1e-9)  # b_j . c_j

    loss = float(triangle_loss(reps, float(_get(case, "logit_scale")), squared=squared))
    np.testing.assert_allclose(loss, _get(case, "loss"), rtol=RTOL, atol=ATOL)
    assert abs(loss - float(_get(case, "loss_efficient"))) > 1e-2
    assert np.max(np.abs(_get(case, "grad_efficient_rep0") - _get(case, "grad_rep0"))) > 1e-3
