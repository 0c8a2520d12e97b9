"""Bad input raises a clear error naming the problem; never a silently wrong loss."""

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.losses import clip_loss, confu_loss, gram_loss, symile_loss, triangle_loss

R = np.eye(3, dtype="float32")[[0, 1, 2, 0]]  # unit rows, as the objectives require
ALL = [
    lambda r: clip_loss(r, 2.0),
    lambda r: symile_loss(r, 2.0, "n"),
    lambda r: symile_loss(r, 2.0, "n_squared"),
    lambda r: gram_loss(r, 2.0),
]


@pytest.mark.parametrize("fn", ALL)
def test_fewer_than_two_modalities(fn):
    with pytest.raises(ValueError, match="at least 2 modalities"):
        fn([R])


@pytest.mark.parametrize("fn", ALL)
def test_batch_smaller_than_two(fn):
    with pytest.raises(ValueError, match="at least 2 rows"):
        fn([R[:1], R[:1], R[:1]])


@pytest.mark.parametrize("fn", ALL)
def test_mismatched_batch(fn):
    with pytest.raises(ValueError, match="batch sizes differ"):
        fn([R, R[:3], R])


@pytest.mark.parametrize("fn", ALL)
def test_mismatched_width(fn):
    with pytest.raises(ValueError, match="widths differ"):
        fn([R, np.eye(4, 5, dtype="float32"), R])


@pytest.mark.parametrize("fn", ALL)
def test_wrong_rank(fn):
    with pytest.raises(ValueError, match="rank 2"):
        fn([R, R[None], R])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("fn", ALL)
def test_non_finite_values_in_eager(fn, bad):
    x = R.copy()
    x[1, 2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        fn([R, x, R])


def test_non_finite_values_in_tf_function_when_asked():
    spec = tf.TensorSpec([4, 3], tf.float32)

    @tf.function(input_signature=[spec])
    def f(x):
        return clip_loss([x, x, x], 2.0, check_finite=True)

    x = R.copy()
    x[0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        f(x)


def test_dynamic_batch_mismatch_in_tf_function():
    spec = tf.TensorSpec([None, 3], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def f(a, b):
        return symile_loss([a, b], 2.0, "n_squared")

    with pytest.raises(tf.errors.InvalidArgumentError, match="batch size"):
        f(R, R[:3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch size must be >= 2"):
        f(R[:1], R[:1])


def test_unknown_negative_sampling():
    with pytest.raises(ValueError, match="negative_sampling"):
        symile_loss([R, R, R], 2.0, "n_cubed")


@pytest.mark.parametrize(
    "perms,match",
    [
        (np.zeros((3, 2, 3), "int32"), r"shape \(M, M-1, N\)"),
        (np.zeros((3, 2), "int32"), r"shape \(M, M-1, N\)"),
        (np.zeros((3, 2, 4), "int32"), "permutation of range"),
        (np.zeros((3, 2, 4), "float32"), "integer"),
    ],
)
def test_bad_permutations(perms, match):
    with pytest.raises(ValueError, match=match):
        symile_loss([R, R, R], 2.0, "n", permutations=perms)


def test_permutations_only_for_n():
    with pytest.raises(ValueError, match="only apply"):
        symile_loss([R, R, R], 2.0, "n_squared", permutations=np.tile(np.arange(4), (3, 2, 1)))


def test_triangle_needs_exactly_three():
    with pytest.raises(ValueError, match="at most 3"):
        triangle_loss([R] * 4, 2.0)
    with pytest.raises(ValueError, match="at least 3"):
        triangle_loss([R] * 2, 2.0)


def test_confu_errors():
    with pytest.raises(ValueError, match="at least 3"):
        confu_loss([R, R], [R], 2.0)
    with pytest.raises(ValueError, match="fused-pair embeddings"):
        confu_loss([R, R, R], None, 2.0, lam=0.5)
    with pytest.raises(ValueError, match="hold 3 embeddings"):
        confu_loss([R, R, R], [R, R], 2.0)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        confu_loss([R, R, R], [R, R, R], 2.0, lam=1.5)
    with pytest.raises(ValueError, match="widths differ"):
        confu_loss([R, R, R], [R, R, np.eye(4, 5, dtype="float32")], 2.0)


def test_non_scalar_logit_scale():
    with pytest.raises(ValueError, match="logit_scale must be a scalar"):
        clip_loss([R, R], np.ones((2, 2), "float32"))


def test_dict_instead_of_list():
    with pytest.raises(TypeError, match="list or tuple"):
        clip_loss({"a": R, "b": R}, 2.0)
