"""Pipelines: sources, seeded shuffling, batching, preprocessing, errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.data import (
    GaussianNoise,
    ModalityDropout,
    MultimodalSplits,
    from_numpy,
    from_tfrecord,
    make_pipeline,
    write_tfrecord,
)


def _arrays(n=20):
    rng = np.random.default_rng(0)
    return {
        "a": rng.normal(size=(n, 3)).astype("float32"),
        "tok": np.arange(n, dtype="int64")[:, None],
        "a_mask": np.ones(n, bool),
    }


def _collect(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def test_from_numpy_dtypes_and_values():
    ds = from_numpy(_arrays())
    assert ds.element_spec["a"].dtype == tf.float32
    assert ds.element_spec["tok"].dtype == tf.int32
    assert ds.element_spec["a_mask"].dtype == tf.bool
    np.testing.assert_array_equal(np.stack([e["a"] for e in ds.as_numpy_iterator()]), _arrays()["a"])


def test_pipeline_deterministic_per_seed_and_drop_remainder():
    ds = from_numpy(_arrays())
    one = _collect(make_pipeline(ds, 6, seed=7))
    two = _collect(make_pipeline(ds, 6, seed=7))
    other = _collect(make_pipeline(ds, 6, seed=8))
    assert len(one) == 3  # 20 // 6, remainder dropped for training
    for b1, b2 in zip(one, two):
        for k in b1:
            np.testing.assert_array_equal(b1[k], b2[k])
    assert any(not np.array_equal(b1["tok"], b2["tok"]) for b1, b2 in zip(one, other))
    # Shuffled, but a permutation of the inputs, with rows kept together.
    seen = np.concatenate([b["tok"][:, 0] for b in one])
    assert len(set(seen)) == 18 and not np.array_equal(seen, np.arange(18))
    for b in one:
        np.testing.assert_array_equal(b["a"], _arrays()["a"][b["tok"][:, 0]])


def test_pipeline_eval_mode_keeps_order_and_remainder():
    batches = _collect(make_pipeline(from_numpy(_arrays()), 6, shuffle=False))
    assert [len(b["tok"]) for b in batches] == [6, 6, 6, 2]
    np.testing.assert_array_equal(np.concatenate([b["tok"][:, 0] for b in batches]), np.arange(20))


def test_pipeline_preprocess_and_corruptions_are_seeded():
    ds = from_numpy(_arrays())
    pre = {"a": lambda x: 2.0 * x}
    corr = [GaussianNoise("a", 0.0), ModalityDropout("a", 0.5)]
    b1 = _collect(make_pipeline(ds, 10, shuffle=False, preprocess=pre))
    np.testing.assert_allclose(b1[0]["a"], 2.0 * _arrays()["a"][:10])
    c1 = _collect(make_pipeline(ds, 10, shuffle=False, corruptions=corr, seed=1))
    c2 = _collect(make_pipeline(ds, 10, shuffle=False, corruptions=corr, seed=1))
    c3 = _collect(make_pipeline(ds, 10, shuffle=False, corruptions=corr, seed=2))
    for x, y in zip(c1, c2):
        np.testing.assert_array_equal(x["a"], y["a"])
        np.testing.assert_array_equal(x["a_mask"], y["a_mask"])
    assert not np.array_equal(c1[0]["a"], c3[0]["a"])
    # Different batches get different noise draws.
    assert not np.array_equal(c1[0]["a_mask"], c1[1]["a_mask"]) or not np.allclose(c1[0]["a"] - 0, c1[1]["a"] - 0)


def test_tfrecord_round_trip(tmp_path):
    arrays = _arrays(7)
    path = os.path.join(tmp_path, "x.tfrecord")
    spec = write_tfrecord(path, arrays)
    rows = list(from_tfrecord(path, spec).as_numpy_iterator())
    assert len(rows) == 7
    for k, v in arrays.items():
        np.testing.assert_array_equal(np.stack([r[k] for r in rows]), v)
    batches = _collect(make_pipeline(from_tfrecord([path], spec), 3, seed=0))
    assert len(batches) == 2 and batches[0]["a"].shape == (3, 3)


def test_multimodal_splits_access():
    splits = {s: _arrays(4 + i) for i, s in enumerate(("train", "val", "test"))}
    ms = MultimodalSplits(splits, ["a"], {"k": 1})
    assert ms.num_examples("test") == 6 and ms.info == {"k": 1}
    assert int(ms.val.cardinality()) == 5
    with pytest.raises(ValueError, match="Unknown split"):
        ms.as_numpy("dev")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: from_numpy({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}), "same number of examples"),
        (lambda: from_numpy({}), "non-empty"),
        (lambda: from_numpy({"a": np.float32(1.0)}), "leading example axis"),
        (lambda: make_pipeline(from_numpy(_arrays()), 0), "batch_size"),
        (lambda: make_pipeline(from_numpy(_arrays()), 2, preprocess={"zz": abs}), "preprocess"),
        (lambda: make_pipeline([1, 2], 2), "tf.data.Dataset"),
        (lambda: make_pipeline(tf.data.Dataset.range(3), 2), "dicts"),
        (lambda: MultimodalSplits({"train": _arrays()}, ["a"]), "missing"),
        (lambda: MultimodalSplits({s: _arrays() for s in ("train", "val", "test")}, ["zz"]), "lacks"),
        (lambda: from_tfrecord([], {"a": tf.TensorSpec([2], tf.float32)}), "at least one file"),
        (lambda: from_tfrecord("x", {"a": 1}), "TensorSpec"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
