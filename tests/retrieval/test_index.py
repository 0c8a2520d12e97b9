"""CandidateIndex.search equals ranking model.score exhaustively, for every objective."""

import numpy as np
import pytest
import tensorflow as tf

import tf_mmcl
from tests.retrieval.helpers import MODALITIES, assert_exact_top_k, model_top_k, tiny_model
from tf_mmcl.retrieval import CandidateIndex

OBJECTIVES = tf_mmcl.objectives.BUILTIN


def _query_sets(target):
    others = [m for m in MODALITIES if m != target]
    return [tuple(others), (others[0],), (others[1],)]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_search_matches_exhaustive_scoring(objective):
    model, x = tiny_model(objective)
    for target in ("c", "a"):
        index = CandidateIndex.build(model, target, x[target], batch_size=16, verbose=0)
        for names in _query_sets(target):
            queries = {n: x[n][:12] for n in names}
            scores, ids = index.search(queries, k=7)
            assert_exact_top_k(model, queries, target, x[target], scores, ids)
            _, ref_i = model_top_k(model, queries, target, x[target], 7)
            assert np.mean(ids == ref_i) > 0.9, (objective, names, target)


def test_lp_clip_is_searched_by_shortlist_and_matches_the_model():
    # -||q - c||_p^p is not an inner product: the query sum only proposes a shortlist.
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in MODALITIES},
        embedding_dim=8,
        objective="clip",
        similarity="lp",
        normalize=False,
    )
    x = {m: np.random.default_rng(1).normal(size=(40, 5)).astype("float32") for m in MODALITIES}
    model(x)
    assert not model.objective.reduces_exactly(model, ["a"])
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    for names in (("a",), ("a", "b")):
        queries = {n: x[n][:12] for n in names}
        scores, ids = index.search(queries, k=5)
        assert_exact_top_k(model, queries, "c", x["c"], scores, ids)


@pytest.mark.parametrize("objective", ["clip", "symile", "confu", "gated_symile"])
def test_missing_query_rows_follow_the_model(objective):
    model, x = tiny_model(objective)
    masks = {
        "a": np.array([True, False, True, True, False, True]),
        "b": np.array([True, True, False, True, True, False]),
    }
    queries = {n: x[n][:6] for n in ("a", "b")}
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    scores, ids = index.search(queries, k=5, query_masks=masks)
    assert_exact_top_k(model, queries, "c", x["c"], scores, ids, query_masks=masks)
    # the same masks as "<m>_mask" keys
    s2, i2 = index.search(dict(queries, a_mask=masks["a"], b_mask=masks["b"]), k=5)
    np.testing.assert_array_equal(i2, ids)


def test_ids_dataset_build_and_save_load(tmp_path):
    model, x = tiny_model("symile")
    names = np.array([f"item{i}" for i in range(40)])
    ds = tf.data.Dataset.from_tensor_slices({"c": x["c"], "label": np.arange(40)})
    index = CandidateIndex.build(model, "c", ds, ids=names, batch_size=16, verbose=0)
    np.testing.assert_allclose(index.embeddings, model.embed("c", x["c"]).numpy(), atol=1e-6)
    queries = {"a": x["a"][:5], "b": x["b"][:5]}
    scores, ids = index.search(queries, k=3)
    _, ref = model_top_k(model, queries, "c", x["c"], 3)
    np.testing.assert_array_equal(ids, names[ref])
    path = index.save(tmp_path / "idx.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx.npz"]  # no temp file left
    loaded = CandidateIndex.load(path, model)
    s2, i2 = loaded.search(queries, k=3)
    np.testing.assert_array_equal(i2, ids)
    np.testing.assert_allclose(s2, scores)
    other, _ = tiny_model("clip")
    with pytest.raises(ValueError, match="objective"):
        CandidateIndex.load(path, other)


def test_calibration_is_reported_and_saved(tmp_path):
    model, x = tiny_model("gram", n=60)
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    record = index.calibrate({"a": x["a"], "b": x["b"]}, k=3, target_recall=0.9)
    assert record["shortlist"] >= 12 and 0.9 <= record["recall"] <= 1.0
    assert index.calibration["a+b"] == record
    loaded = CandidateIndex.load(index.save(tmp_path / "g.npz"), model)
    assert loaded.calibration["a+b"]["shortlist"] == record["shortlist"]


def test_bfloat16_storage_gives_exact_float32_scores():
    model, x = tiny_model("clip")
    index = CandidateIndex.build(model, "c", x["c"], verbose=0, backend_options={"dtype": "bfloat16"})
    queries = {"a": x["a"], "b": x["b"]}
    scores, ids = index.search(queries, k=5)
    ref_s, ref_i = model_top_k(model, queries, "c", x["c"], 5)
    np.testing.assert_allclose(
        scores, np.take_along_axis(np.asarray(model.score(queries, "c", x["c"])), ids, 1), rtol=1e-5, atol=1e-4
    )
    assert np.mean(ids == ref_i) > 0.9


def test_bad_inputs_are_clear_errors():
    model, x = tiny_model("symile")
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    with pytest.raises(ValueError, match="k=41 exceeds"):
        index.search({"a": x["a"]}, k=41)
    with pytest.raises(ValueError, match="candidate modality 'c' cannot also be a query"):
        index.search({"c": x["c"]}, k=1)
    with pytest.raises(ValueError, match="Unknown query modality"):
        index.search({"z": x["a"]}, k=1)
    with pytest.raises(ValueError, match="queries have no rows"):
        index.search({"a": x["a"][:0]}, k=1)
    with pytest.raises(ValueError, match="same number of rows"):
        index.search({"a": x["a"][:3], "b": x["b"][:4]}, k=1)
    with pytest.raises(ValueError, match="ids must be a vector of 40"):
        CandidateIndex(model, "c", index.embeddings, ids=np.arange(3))
    with pytest.raises(ValueError, match="embeddings must be"):
        CandidateIndex(model, "c", np.zeros((4, 3), "float32"))


def test_confu_lam0_follows_the_model():
    model, x = tiny_model("confu", lam=0.0)
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    scores, ids = index.search({"a": x["a"][:4]}, k=3)
    _, ref = model_top_k(model, {"a": x["a"][:4]}, "c", x["c"], 3)
    np.testing.assert_array_equal(ids, ref)
    try:
        model.score({"a": x["a"][:4], "b": x["b"][:4]}, "c", x["c"])
    except ValueError:  # the model has no 2->1 score at lam=0: the index says the same
        with pytest.raises(ValueError, match="fused"):
            index.search({"a": x["a"][:4], "b": x["b"][:4]}, k=3)
    else:  # the model learned a 2->1 score at lam=0: the index follows it
        s, i = index.search({"a": x["a"][:4], "b": x["b"][:4]}, k=3)
        _, ref = model_top_k(model, {"a": x["a"][:4], "b": x["b"][:4]}, "c", x["c"], 3)
        np.testing.assert_array_equal(i, ref)


def test_core_works_without_faiss(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    model, x = tiny_model("clip")
    index = CandidateIndex.build(model, "c", x["c"], verbose=0)
    assert index.search({"a": x["a"][:2]}, k=2)[1].shape == (2, 2)
    with pytest.raises(ImportError, match=r"tf-mmcl\[faiss\]"):
        CandidateIndex.build(model, "c", x["c"], verbose=0, backend="faiss_hnsw")
