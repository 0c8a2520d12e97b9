"""tools/serving_request.py: REST bodies (instances / inputs) and gRPC PredictRequests, checked
against the exported signatures and a PredictionService shim driven by the real client stub."""

import importlib.util
import json
import os
from concurrent import futures

import numpy as np
import pytest
import tensorflow as tf

from tests.export import export_utils as eu
from tf_mmcl import export

_TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "serving_request.py")
_spec = importlib.util.spec_from_file_location("serving_request", _TOOL)
sr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sr)


def _serving_api():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError:
        pytest.fail(
            "tensorflow-serving-api is required by these tests: pip install --no-deps tensorflow-serving-api==2.21.0"
        )
    return predict_pb2, prediction_service_pb2_grpc


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model = eu.mlp_model("symile", "abc")
    path = export.export_for_serving(model, str(tmp_path_factory.mktemp("models")), "retrieval", warmup=False)
    return model, path, tf.saved_model.load(path), sr.read_signatures(path)


def _tf_serving_rest(loaded, body):
    """TF Serving's documented REST conversion: row or columnar in, predictions/outputs out."""
    sig = loaded.signatures[body["signature_name"]]
    if "instances" in body:
        keys = body["instances"][0].keys()
        inputs = {k: [row[k] for row in body["instances"]] for k in keys}
    else:
        inputs = body["inputs"]
    dtypes = {k: s.dtype for k, s in sig.structured_input_signature[1].items()}
    out = sig(**{k: tf.constant(v, dtypes[k]) for k, v in inputs.items()})
    if "instances" in body:
        n = len(body["instances"])
        return json.dumps({"predictions": [{k: v.numpy()[i].tolist() for k, v in out.items()} for i in range(n)]})
    return json.dumps({"outputs": {k: v.numpy().tolist() for k, v in out.items()}})


def test_read_signatures_matches_the_export(served):
    model, _, _, sigs = served
    assert set(sigs) == set(export.signature_names(model))
    assert all(s["method_name"] == "tensorflow/serving/predict" for s in sigs.values())
    assert sigs["score_c"]["inputs"] == {
        "a": (np.dtype("float32"), (None, 3)),
        "b": (np.dtype("float32"), (None, 3)),
        "candidate_embeddings": (np.dtype("float32"), (None, 4)),
    }
    assert sigs["serving_default"]["outputs"]["c_embedding"] == (np.dtype("float32"), (None, 4))


@pytest.mark.parametrize("form", ["instances", "inputs"])
def test_rest_bodies_round_trip_through_the_signatures(served, form):
    model, _, loaded, sigs = served
    x = eu.mlp_inputs("abc", seed=3)
    body = sr.rest_body(sr.prepare_inputs(sigs, "serving_default", x), "serving_default", form)
    text = json.dumps(body)
    assert json.loads(text)["signature_name"] == "serving_default"
    if form == "instances":
        assert len(body["instances"]) == 5 and set(body["instances"][0]) == {"a", "b", "c"}
        assert len(body["instances"][0]["a"]) == 3
    else:
        assert np.asarray(body["inputs"]["b"]).shape == (5, 3)
    out = sr.parse_rest_response(_tf_serving_rest(loaded, json.loads(text)))
    for m in "abc":
        np.testing.assert_allclose(out[f"{m}_embedding"], model.embed(m, x[m]).numpy(), atol=1e-5)


def test_rest_score_needs_the_columnar_form_when_sizes_differ(served):
    model, _, loaded, sigs = served
    x = eu.mlp_inputs("abc", seed=4)
    cands = model.embed("c", eu.mlp_inputs("c", seed=5, n=7)["c"]).numpy()
    inputs = sr.prepare_inputs(sigs, "score_c", {"a": x["a"], "b": x["b"], "candidate_embeddings": cands})
    with pytest.raises(ValueError, match=r"share dimension 0.*form='inputs'"):
        sr.rest_body(inputs, "score_c", "instances")
    body = sr.rest_body(inputs, "score_c", "inputs")
    out = sr.parse_rest_response(_tf_serving_rest(loaded, body))
    expected = model.score_candidate_embeddings({"a": x["a"], "b": x["b"]}, "c", cands).numpy()
    assert out["logits"].shape == (5, 7)
    np.testing.assert_allclose(out["logits"], expected, atol=1e-5)
    # A server drops the name of a single output in the columnar form.
    bare = json.dumps({"outputs": out["logits"].tolist()})
    np.testing.assert_allclose(sr.parse_rest_response(bare, ["logits"])["logits"], out["logits"])


def test_prepare_inputs_names_the_bad_input(served):
    _, _, _, sigs = served
    x = eu.mlp_inputs("abc")
    with pytest.raises(ValueError, match=r"Input 'a' of signature 'embed_a' must have shape \(-1, 3\)"):
        sr.prepare_inputs(sigs, "embed_a", {"a": x["a"][:, :2]})
    with pytest.raises(ValueError, match=r"missing \['candidate_embeddings'\], unknown \['c'\]"):
        sr.prepare_inputs(sigs, "score_c", {"a": x["a"], "b": x["b"], "c": x["c"]})
    with pytest.raises(ValueError, match=r"Unknown signature 'score_d'"):
        sr.prepare_inputs(sigs, "score_d", {})
    cast = sr.prepare_inputs(sigs, "embed_a", {"a": x["a"].astype("float64")})
    assert cast["a"].dtype == np.float32


def _servicer(name, version, loaded):
    """A minimal PredictionService over tf.saved_model.load, as TF Serving answers Predict."""
    _, service = _serving_api()

    class Servicer(service.PredictionServiceServicer):
        def __init__(self):
            self.name, self.version, self.loaded = name, version, loaded

        Predict = _predict

    return Servicer()


def _predict(self, request, context):
    import grpc

    predict_pb2, _ = _serving_api()
    if request.model_spec.name != self.name:
        context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}")
    sig = self.loaded.signatures[request.model_spec.signature_name or "serving_default"]
    out = sig(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    response.model_spec.name = self.name
    response.model_spec.version.value = self.version
    response.model_spec.signature_name = request.model_spec.signature_name
    for k, v in out.items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
    return response


@pytest.fixture(scope="module")
def grpc_server(served):
    import grpc

    _, service = _serving_api()
    _, path, loaded, _ = served
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = _servicer("retrieval", int(os.path.basename(path)), loaded)
    service.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.mark.parametrize("signature,queries", [("score_c_from_a", "a"), ("score_c", "ab")])
def test_grpc_retrieval_one_and_two_to_one(served, grpc_server, signature, queries):
    model, _, _, sigs = served
    x = eu.mlp_inputs("abc", seed=6)
    candidates = eu.mlp_inputs("c", seed=7, n=8)["c"]
    cands = sr.send_grpc(
        grpc_server, sr.predict_request("retrieval", "embed_c", sr.prepare_inputs(sigs, "embed_c", {"c": candidates}))
    )["embedding"]
    inputs = {q: x[q] for q in queries}
    inputs["candidate_embeddings"] = cands
    request = sr.predict_request("retrieval", signature, sr.prepare_inputs(sigs, signature, inputs), version=1)
    assert request.model_spec.version.value == 1 and set(request.inputs) == set(inputs)
    logits = sr.send_grpc(grpc_server, request)["logits"]
    expected = model.score({q: x[q] for q in queries}, "c", candidates).numpy()
    assert logits.shape == (5, 8)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_cli_writes_bodies_and_sends_over_grpc(served, grpc_server, tmp_path):
    predict_pb2, _ = _serving_api()
    model, path, _, _ = served
    x = eu.mlp_inputs("abc", seed=8)
    for k in "ab":
        np.save(tmp_path / f"{k}.npy", x[k])
    cands = model.embed("c", x["c"]).numpy().astype("float64")  # the tool casts to float32
    np.save(tmp_path / "cands.npy", cands)
    args = [
        path,
        "--signature",
        "score_c",
        "--input",
        f"a={tmp_path / 'a.npy'}",
        "--input",
        f"b={tmp_path / 'b.npy'}",
        "--input",
        f"candidate_embeddings={tmp_path / 'cands.npy'}",
        "--form",
        "instances",
        "--rest_out",
        str(tmp_path / "body.json"),
        "--grpc_out",
        str(tmp_path / "req.pb"),
        "--grpc_target",
        grpc_server,
        "--out_npz",
        str(tmp_path / "out.npz"),
    ]
    assert sr.main(args) == 0
    body = json.load(open(tmp_path / "body.json"))
    assert body["signature_name"] == "score_c" and len(body["instances"]) == 5
    assert set(body["instances"][0]) == {"a", "b", "candidate_embeddings"}
    request = predict_pb2.PredictRequest.FromString(open(tmp_path / "req.pb", "rb").read())
    assert request.model_spec.name == "retrieval"  # taken from the directory layout
    assert request.inputs["candidate_embeddings"].dtype == tf.float32.as_datatype_enum
    expected = model.score({"a": x["a"], "b": x["b"]}, "c", x["c"]).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["logits"], expected, atol=1e-5)
