"""export_for_serving(index=...): retrieve_* signatures give search()'s ids in a TF-only process."""

import os

import numpy as np
import pytest

from tests.export import export_utils as eu
from tests.retrieval.helpers import assert_exact_top_k, tiny_model
from tf_mmcl import export
from tf_mmcl.retrieval import CandidateIndex

pytestmark = pytest.mark.slow  # every test uses the export checked in a clean subprocess

CASES = {o: (o, {}) for o in ("clip", "symile", "confu", "gram", "triangle", "gated_symile")}
SUBSETS = {"retrieve_c": ("a", "b"), "retrieve_c_from_a": ("a",), "retrieve_c_from_b": ("b",)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    work = tmp_path_factory.mktemp("calls")
    cases, jobs = {}, []
    for key, (objective, _options) in CASES.items():
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


def test_serving_request_tool_round_trips_retrieve(exported, tmp_path):
    """REST body (TF Serving's row form) and gRPC PredictRequest through tools/serving_request.py."""
    from concurrent import futures

    import grpc
    import tensorflow as tf

    from tests.export import test_serving_request as tsr

    cases, _ = exported
    model, index, x, path = cases["gram"]
    sr = tsr.sr
    sigs = sr.read_signatures(path)
    assert set(sigs["retrieve_c"]["outputs"]) == {"scores", "ids"}
    assert sigs["retrieve_c"]["outputs"]["ids"][0] == np.int64
    queries = {"a": x["a"][:4], "b": x["b"][:4]}
    want_scores, want_ids = index.search(queries, k=6)
    loaded = tf.saved_model.load(path)
    body = sr.rest_body(sr.prepare_inputs(sigs, "retrieve_c", queries), "retrieve_c", form="instances")
    got = sr.parse_rest_response(tsr._tf_serving_rest(loaded, body))
    assert np.mean(got["ids"] == want_ids) > 0.9
    np.testing.assert_allclose(got["scores"], want_scores, rtol=1e-5, atol=1e-4)

    _, service = tsr._serving_api()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    service.add_PredictionServiceServicer_to_server(tsr._servicer("gram", 1, loaded), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        request = sr.predict_request(
            "gram", "retrieve_c_from_a", sr.prepare_inputs(sigs, "retrieve_c_from_a", {"a": x["a"][:4]})
        )
        out = sr.send_grpc(f"127.0.0.1:{port}", request)
    finally:
        server.stop(None)
    s1, i1 = index.search({"a": x["a"][:4]}, k=6)
    assert np.mean(out["ids"] == i1) > 0.9
    np.testing.assert_allclose(out["scores"], s1, rtol=1e-5, atol=1e-4)
