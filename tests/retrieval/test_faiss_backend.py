"""FAISS backends behind CandidateIndex: recall measured on build, exact scores, save/load."""

import numpy as np
import pytest

from tests.retrieval.helpers import model_top_k, tiny_model
from tf_mmcl.retrieval import CandidateIndex

faiss = pytest.importorskip("faiss")


@pytest.mark.parametrize(
    "backend,options",
    [
        ("faiss_flat", {}),
        ("faiss_hnsw", {"hnsw_m": 8}),
        ("faiss_ivfpq", {"nlist": 4, "pq_m": 4, "nprobe": 4, "k_factor": 8}),
    ],
)
def test_faiss_backends(backend, options, tmp_path):
    model, x = tiny_model("symile", n=300)
    index = CandidateIndex.build(
        model, "c", x["c"], verbose=0, backend=backend, backend_options=dict(options, threads=1)
    )
    assert 0.0 <= index.backend_recall["recall"] <= 1.0
    queries = {"a": x["a"][:20], "b": x["b"][:20]}
    scores, ids = index.search(queries, k=5)
    full = np.asarray(model.score(queries, "c", x["c"]))
    # whatever the backend returns carries the model's exact score, sorted
    np.testing.assert_allclose(scores, np.take_along_axis(full, ids, 1), rtol=1e-5, atol=1e-4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    _, ref = model_top_k(model, queries, "c", x["c"], 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, ref)])
    if backend == "faiss_flat":
        assert index.backend_recall["recall"] >= 0.99 and recall >= 0.99  # float ties only
    else:
        assert recall > 0.5
    loaded = CandidateIndex.load(index.save(tmp_path / "f.npz"), model)
    s2, i2 = loaded.search(queries, k=5)
    np.testing.assert_array_equal(i2, ids)


def test_faiss_shortlist_for_a_non_reducible_objective():
    model, x = tiny_model("gated_symile", n=120)
    index = CandidateIndex.build(model, "c", x["c"], verbose=0, backend="faiss_hnsw", backend_options={"threads": 1})
    queries = {"a": x["a"][:10], "b": x["b"][:10]}
    scores, ids = index.search(queries, k=4)
    ref_s, ref_i = model_top_k(model, queries, "c", x["c"], 4)
    np.testing.assert_array_equal(ids, ref_i)  # calibrated on these rows: recall 1
    assert index.calibration["a+b"]["recall"] == 1.0
