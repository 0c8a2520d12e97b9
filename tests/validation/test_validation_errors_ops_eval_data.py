"""tf_mmcl.ops, tf_mmcl.evaluation and tf_mmcl.data refuse bad input: no broadcasting, no trivial
metrics, no silently empty pipelines, errors that name the argument."""

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl import data, evaluation, ops

_RNG = np.random.default_rng(0)
Q = (lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(_RNG.normal(size=(5, 4))).astype("float32")


@pytest.mark.parametrize(
    "fn,match",
    [
        (lambda: ops.mip_scores([Q, Q[:1]], Q), "row counts differ"),
        (lambda: ops.mip([Q, Q[:1]]), "row counts differ"),
        (lambda: ops.gram_volume_matrix(Q, [Q, Q[:1]]), "row counts differ"),
        (lambda: ops.triangle_area_matrix(Q, Q, Q[:1]), "row counts differ"),
        (lambda: ops.dot_scores(Q, np.ones((3, 5), "float32")), "widths differ"),
        (lambda: ops.mip_scores([Q], np.ones((3, 5), "float32")), "widths differ"),
        (lambda: ops.dot_scores(Q[0], Q), r"must be a \(rows, d\) matrix"),
        (lambda: ops.symmetric_infonce_from_embeddings(Q, Q[:3], 10.0), "batch sizes differ"),
        (lambda: ops.symmetric_infonce_from_embeddings(Q, Q, -1.0), "logit_scale"),
        (lambda: ops.mean_symmetric_infonce_over_pairs(Q[None], Q[None, :3], 10.0), "same"),
        (lambda: ops.shuffled_negative_logits(Q, [Q], np.zeros((1, 5), "float32")), "integer"),
        (lambda: ops.shuffled_negative_logits(Q, [Q], np.zeros((2, 5), "int32")), r"shape \(len\(others\), N\)"),
        (lambda: ops.streamed_logsumexp(Q, [Q[:3]]), "same"),
        (lambda: ops.triangle_area_matrix(Q, Q, Q, squared=False, eps=-1), "eps"),
    ],
)
def test_ops_value_errors(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


@pytest.mark.parametrize(
    "fn",
    [
        lambda: ops.mip_scores([Q.astype("int32")], Q),
        lambda: ops.dot_scores(Q, Q.astype(bool)),
        lambda: ops.mip([np.array([["a"]])]),
    ],
)
def test_ops_dtype_errors(fn):
    with pytest.raises(TypeError, match="dtype|float"):
        fn()


def test_mip_scores_dynamic_rows_in_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, 4])] * 3)
    def f(a, b, c):
        return ops.mip_scores([a, b], c)

    with pytest.raises(tf.errors.InvalidArgumentError, match="different number of rows"):
        f(Q, Q[:1], Q)


@pytest.mark.parametrize(
    "call",
    [
        lambda: evaluation.retrieval_metrics(np.eye(4), np.arange(4), ks=(1, 5, 10)),
        lambda: evaluation.retrieve([Q], Q[:4], np.arange(5) % 4, ks=(1, 4)),
        lambda: evaluation.zero_shot_classification(Q, Q[:2], np.zeros(5, int), ks=(1, 2)),
    ],
)
def test_recall_at_k_beyond_the_candidates(call):
    with pytest.raises(ValueError, match="number of candidates"):
        call()


def test_default_ks_keep_what_discriminates():
    assert set(evaluation.retrieval_metrics(np.eye(4), np.arange(4))) == {"top1", "mrr"}
    assert set(evaluation.retrieval_metrics(np.eye(8), np.arange(8))) == {"top1", "recall@5", "mrr"}
    with pytest.raises(ValueError, match="at least 2 candidates"):
        evaluation.retrieval_metrics(np.ones((3, 1)), np.zeros(3, int))


@pytest.mark.parametrize("ks", [(0,), (-1,), (1.5,), ("5",), "5", (True,)])
def test_bad_ks(ks):
    with pytest.raises(ValueError, match="ks must"):
        evaluation.retrieval_metrics(np.eye(8), np.arange(8), ks=ks)


def test_linear_probe_labels_must_match_rows():
    x = _RNG.normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="test_labels must be"):
        evaluation.linear_probe(x, y, x[:6], [1])
    with pytest.raises(ValueError, match="labels must be"):
        evaluation.LogisticRegressionProbe().fit(x, y).score(x[:6], [1])


def test_make_pipeline_that_would_yield_no_batch():
    ds = data.from_numpy({"a": np.zeros((10, 2), "float32")})
    with pytest.raises(ValueError, match="yields 0 batches"):
        data.make_pipeline(ds, 64, shuffle=True)
    assert len(list(data.make_pipeline(ds, 64, shuffle=False))) == 1  # keeps the partial batch
    with pytest.raises(ValueError, match="empty"):
        data.make_pipeline(ds.take(0), 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"shuffle": "false"}, "shuffle must be True or False"),
        ({"drop_remainder": 1}, "drop_remainder must be True or False"),
        ({"seed": 1.5}, "seed must be an int"),
        ({"batch_size": 2.0}, "batch_size must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"shuffle_buffer": -3}, "shuffle_buffer"),
    ],
)
def test_make_pipeline_arguments(kwargs, match):
    ds = data.from_numpy({"a": np.zeros((10, 2), "float32")})
    kwargs = dict({"batch_size": 4}, **kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        data.make_pipeline(ds, **kwargs)


def test_from_tfrecord_names_the_mismatched_feature(tmp_path):
    path = str(tmp_path / "x.tfrecord")
    spec = data.write_tfrecord(path, {"a": np.zeros((3, 2), "float32"), "label": np.arange(3, dtype="int64")})
    bad = dict(spec, label=tf.TensorSpec([], tf.int32))
    with pytest.raises(ValueError, match="feature 'label' is stored as int64 but feature_spec says int32"):
        data.from_tfrecord(path, bad)
    with pytest.raises(ValueError, match="feature 'a' has per-example shape"):
        data.from_tfrecord(path, dict(spec, a=tf.TensorSpec([3], tf.float32)))
    with pytest.raises(ValueError, match="lacks"):
        data.from_tfrecord(path, dict(spec, b=tf.TensorSpec([2], tf.float32)))
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.from_tfrecord(str(tmp_path / "missing.tfrecord"), spec)
    assert len(list(data.from_tfrecord(path, spec))) == 3
