"""export_for_serving(index=...): retrieve_* signatures give search()'s ids in a TF-only process."""

import json
import os

import numpy as np
import pytest

from tests.export import export_utils as eu
from tests.retrieval.helpers import assert_exact_top_k, tiny_model
from tf_mmcl import export
from tf_mmcl.retrieval import CandidateIndex

CASES = {o: (o, {}) for o in ("clip", "symile", "confu", "gram", "triangle", "gated_symile")}
SUBSETS = {"retrieve_c": ("a", "b"), "retrieve_c_from_a": ("a",), "retrieve_c_from_b": ("b",)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    work = tmp_path_factory.mktemp("calls")
    cases, jobs = {}, []
    for key, (objective, options) in CASES.items():
        # Not eu.mlp_model: its 4-unit ReLU encoders collapse to near-equal scores (float ties).
        model, x = tiny_model(objective, n=60)
        ids = np.arange(1000, 1060) if key != "symile" else np.array([f"doc{i}" for i in range(60)])
        index = CandidateIndex.build(model, "c", x["c"], ids=ids, verbose=0)
        path = export.export_for_serving(model, str(base), key, index=index, retrieve_k=6)
        calls = {}
        for sig, names in SUBSETS.items():
            calls[sig] = str(work / f"{key}-{sig}.npz")
            np.savez(calls[sig], **{n: x[n][:9] for n in names})
        cases[key] = (model, index, x, path)
        jobs.append({"dir": path, "calls": calls})
    report = eu.run_clean_process(jobs, str(work))
    return cases, report


@pytest.mark.parametrize("key", list(CASES))
def test_retrieve_signatures_match_search_and_exhaustive_scoring(exported, key):
    cases, report = exported
    model, index, x, path = cases[key]
    result = report["models"][path]
    assert report["tf_mmcl_loaded"] == []
    assert result["unregistered_ops"] == []
    for sig, names in SUBSETS.items():
        assert sig in result["signatures"]
        got = dict(np.load(result["outputs"][sig], allow_pickle=True))
        queries = {n: x[n][:9] for n in names}
        scores, ids = index.search(queries, k=6)
        served_ids = got["ids"]
        if served_ids.dtype == object:
            served_ids = served_ids.astype(str)
        # The same ids as search() (up to the order of float-equal scores) ...
        assert np.mean(served_ids == ids) > 0.9, (key, sig)
        # ... and an exact top-k of the exhaustive score, as search()'s.
        row_of = {v: i for i, v in enumerate(index.ids.tolist())}
        for got_ids, got_scores in ((served_ids, got["scores"]), (ids, scores)):
            positions = np.vectorize(row_of.__getitem__)(got_ids)
            assert_exact_top_k(model, queries, "c", x["c"], got_scores, positions)


def test_warmup_and_signature_checks(exported, tmp_path):
    cases, _ = exported
    model, index, x, path = cases["symile"]
    assert os.path.exists(os.path.join(path, export.WARMUP_FILE))
    other = eu.mlp_model("clip", "abc")
    with pytest.raises(ValueError, match="objective"):
        export.export_for_serving(other, str(tmp_path), "bad", index=index)
    with pytest.raises(ValueError, match="retrieve_k"):
        export.export_for_serving(model, str(tmp_path), "bad", index=index, retrieve_k=0)
