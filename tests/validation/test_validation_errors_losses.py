"""Every objective refuses bad input in eager mode, inside tf.function and under XLA.

One test per class of bad input, parametrised over objectives and modes (see ``_modes``).
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.validation._modes import MODES, assert_rejected, run
from tf_mmcl.losses import (
    CLIPLoss,
    SymileLoss,
    clip_loss,
    confu_loss,
    gram_loss,
    symile_loss,
    triangle_loss,
)

N, D = 6, 4
_RNG = np.random.default_rng(0)
R = [
    (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(_RNG.normal(size=(N, D))).astype("float32")
    for _ in range(3)
]

OBJECTIVES = {
    "clip": lambda reps, s, **kw: clip_loss(reps, s, **kw),
    "symile_n": lambda reps, s, **kw: symile_loss(reps, s, "n", seed=0, **kw),
    "symile_n_squared": lambda reps, s, **kw: symile_loss(reps, s, "n_squared", **kw),
    "gram": lambda reps, s, **kw: gram_loss(reps, s, **kw),
    "triangle": lambda reps, s, **kw: triangle_loss(reps, s, **kw),
    "confu": lambda reps, s, **kw: confu_loss(reps, reps, s, **kw),
}


# The graph/XLA cases use two objectives with different code paths (XLA compiles are slow);
# the trace-time checks are shared by all objectives and tested eagerly for each.
GRAPH_OBJECTIVES = ["clip", "symile_n_squared"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("objective", GRAPH_OBJECTIVES)
def test_valid_input_passes_everywhere(objective, mode):
    value = run(mode, lambda a, b, c: OBJECTIVES[objective]([a, b, c], 10.0), *R)
    assert np.isfinite(value)


@pytest.mark.parametrize("scale", [0.0, -5.0, np.nan, np.inf])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_logit_scale_not_positive_finite(objective, scale):
    # As a number: refused when traced, in every mode.
    with pytest.raises(ValueError, match="logit_scale"):
        OBJECTIVES[objective](R, scale)
    with pytest.raises(ValueError, match="logit_scale"):
        OBJECTIVES[objective](R, tf.constant(scale))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale", [0.0, -5.0, np.nan])
@pytest.mark.parametrize("objective", GRAPH_OBJECTIVES)
def test_logit_scale_tensor_in_graphs(objective, scale, mode):
    # As a tensor (e.g. a model's scale): a run-time check.
    assert_rejected(
        mode,
        lambda a, b, c, s: OBJECTIVES[objective]([a, b, c], s),
        *R,
        np.float32(scale),
        match="logit_scale",
        dynamic=False,
    )


@pytest.mark.parametrize("factor", [10.0, 1.2, 1e15])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_unnormalised_embeddings_eager(objective, factor):
    with pytest.raises(ValueError, match="L2-normalised"):
        OBJECTIVES[objective]([R[0] * factor, R[1], R[2]], 10.0)


@pytest.mark.parametrize("mode", ["graph", "xla"])
@pytest.mark.parametrize("objective", GRAPH_OBJECTIVES)
@pytest.mark.parametrize("factor", [10.0, 1e15])
def test_unnormalised_embeddings(objective, factor, mode):
    assert_rejected(
        mode, lambda a, b, c: OBJECTIVES[objective]([a, b, c], 10.0), R[0] * factor, R[1], R[2], match="L2-normalised"
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("objective", GRAPH_OBJECTIVES)
def test_non_finite_embeddings(objective, bad, mode):
    x = R[1].copy()
    x[2, 1] = bad
    assert_rejected(
        mode, lambda a, b, c: OBJECTIVES[objective]([a, b, c], 10.0), R[0], x, R[2], match="non-finite|finite"
    )


def test_unit_norm_tolerance_and_zero_rows():
    # Within 0.05 on the squared norm passes (half-precision rounding); zero rows (L2Normalize
    # of an all-zero input) pass; 1.05 on the norm (1.1025 squared) does not.
    ok = R[0] * np.sqrt(1.04)
    ok[0] = 0.0
    assert np.isfinite(float(clip_loss([ok, R[1]], 10.0)))
    with pytest.raises(ValueError, match="L2-normalised"):
        clip_loss([R[0] * 1.05, R[1]], 10.0)
    # The documented opt-out for deliberately raw vectors.
    assert np.isfinite(float(symile_loss([R[0] * 3, R[1], R[2]], 1.0, "n_squared", check_unit_norm=False)))


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_non_float_embeddings(objective, dtype):
    with pytest.raises(TypeError, match=f"dtype {dtype}"):
        OBJECTIVES[objective]([(R[0] * 10).astype(dtype), R[1], R[2]], 10.0)


def test_string_embeddings():
    with pytest.raises(TypeError, match="float"):
        clip_loss([np.array([["a"] * D] * N), R[1]], 10.0)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_mask_of_wrong_length_eager(objective):
    with pytest.raises(ValueError, match="masks\\[0\\] has 5 entries but the batch has 6 rows"):
        OBJECTIVES[objective](R, 10.0, masks=[np.ones(N - 1, bool), None, None])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("objective", GRAPH_OBJECTIVES)
def test_mask_of_wrong_length(objective, mode):
    # XLA knows the lengths when it compiles and refuses the shapes there ("Incompatible shapes").
    assert_rejected(
        mode,
        lambda a, b, c, m: OBJECTIVES[objective]([a, b, c], 10.0, masks=[m, None, None]),
        *R,
        np.ones(N - 1, bool),
        match=None if mode == "xla" else "mask.*(entries|length)",
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_float_mask(objective, dtype):
    with pytest.raises(TypeError, match="presence mask must be bool"):
        OBJECTIVES[objective](R, 10.0, masks=[np.full(N, 0.3, dtype), None, None])


@pytest.mark.parametrize("mode", MODES)
def test_integer_mask_must_be_0_or_1(mode):
    assert_rejected(
        mode,
        lambda a, b, m: clip_loss([a, b], 10.0, masks=[m, None]),
        R[0],
        R[1],
        np.full(N, 2, "int32"),
        match="0 and 1",
    )
    # 0/1 integers (tf_mmcl.distribute ships masks as int32) are fine.
    mask = np.array([1, 0] * (N // 2), "int32")
    np.testing.assert_allclose(
        run(mode, lambda a, b, m: clip_loss([a, b], 10.0, masks=[m, None]), R[0], R[1], mask),
        float(clip_loss([R[0], R[1]], 10.0, masks=[mask.astype(bool), None])),
        rtol=1e-5,
    )


def test_masks_not_a_list_of_one_per_modality():
    with pytest.raises(ValueError, match="one per modality"):
        clip_loss(R, 10.0, masks=[np.ones(N, bool)])
    with pytest.raises(ValueError, match="one per modality"):
        clip_loss(R, 10.0, masks=np.ones(N, bool))


def test_unmasked_rows_are_exempt_from_the_norm_check():
    x = R[0].copy()
    x[:2] = 7.0  # garbage in absent rows
    mask = np.array([False, False] + [True] * (N - 2))
    assert np.isfinite(float(clip_loss([x, R[1]], 10.0, masks=[mask, None])))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("perms", [np.zeros((3, 2, N), "int32")])
def test_symile_permutations_not_permutations(perms, mode):
    assert_rejected(
        mode,
        lambda a, b, c, p: symile_loss([a, b, c], 10.0, "n", permutations=p),
        *R,
        perms.astype("int32"),
        match="permutation",
        dynamic=False,
    )


@pytest.mark.parametrize("eps", [-1, 0.0, np.nan, "1e-8", True])
def test_eps_must_be_positive(eps):
    with pytest.raises((ValueError, TypeError), match="eps"):
        triangle_loss(R, 10.0, squared=False, eps=eps)
    with pytest.raises((ValueError, TypeError), match="eps"):
        gram_loss(R, 10.0, eps=eps)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"squared": "false"}, "squared must be True or False"),
        ({"check_finite": "no"}, "check_finite must be True or False"),
        ({"logit_scale": "14"}, "logit_scale must be a number"),
        ({"logit_scale": -1.0}, "logit_scale must be a finite number > 0"),
        ({"eps": -1.0}, "eps must be a finite number > 0"),
    ],
)
def test_keras_loss_constructor_flags(kwargs, match):
    from tf_mmcl.losses import TriangleLoss

    with pytest.raises((ValueError, TypeError), match=match):
        TriangleLoss(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"block_size": -1, "negative_sampling": "n_squared"}, "block_size"),
        ({"block_size": 2.5, "negative_sampling": "n_squared"}, "block_size"),
        ({"seed": "0"}, "seed must be an int"),
        ({"negative_sampling": "N"}, "negative_sampling"),
    ],
)
def test_symile_loss_constructor(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SymileLoss(**kwargs)


@pytest.mark.parametrize("lam", [-0.1, 1.5, "0.5", None])
def test_confu_lam(lam):
    with pytest.raises((ValueError, TypeError), match="lam"):
        confu_loss(R, R, 10.0, lam=lam)


@pytest.mark.parametrize("mode", MODES)
def test_keras_loss_scale_in_y_pred(mode):
    def fn(a, b, s):
        return CLIPLoss()(None, {"a": a, "b": b, "logit_scale": s})

    assert_rejected(mode, fn, R[0], R[1], np.float32(-5.0), match="logit_scale", dynamic=False)
    with pytest.raises(ValueError, match="logit_scale"):
        SymileLoss()(None, {"a": R[0], "b": R[1], "c": R[2], "logit_scale": -5.0})


def test_confu_fused_of_wrong_shape():
    with pytest.raises(ValueError, match="batch sizes differ"):
        confu_loss(R, [R[0], R[1], R[2][:3]], 10.0)
    with pytest.raises(ValueError, match="L2-normalised"):
        confu_loss(R, [R[0], R[1], R[2] * 3], 10.0)
