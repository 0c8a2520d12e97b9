#!/usr/bin/env python
"""Build (and optionally send) TF Serving requests for a model exported by ``tf_mmcl.export``.

Reads the signatures of an exported version directory (``saved_model.pb`` only; neither
``tf_mmcl`` nor the variables are loaded), checks and casts the given inputs against the chosen
signature, and writes:

* a REST body for ``POST /v1/models/<name>[/versions/<v>]:predict`` in the row form
  (``{"signature_name": ..., "instances": [{input: row, ...}, ...]}``, every input sharing
  dimension 0) or the columnar form (``{"signature_name": ..., "inputs": {input: tensor}}``,
  dimensions may differ, as for ``score_*`` with C candidates and B queries);
* a gRPC ``tensorflow.serving.PredictRequest`` (needs ``tensorflow-serving-api``; on a
  ``tensorflow-cpu`` install use ``pip install --no-deps tensorflow-serving-api==2.21.0``).

Usage::

    python tools/serving_request.py models/retrieval/1 --model_name retrieval \\
        --signature score_c --input a=a.npy --input b=b.npy \\
        --input candidate_embeddings=cands.npy \\
        --form inputs --rest_out body.json --grpc_out request.pb \\
        [--rest_url http://localhost:8501] [--grpc_target localhost:8500] [--out_npz out.npz]

For a model exported with a candidate index (``export_for_serving(..., index=index)``) the
``retrieve_*`` signatures take the raw queries only and answer ``scores`` and ``ids``::

    python tools/serving_request.py models/retrieval/1 --signature retrieve_c \\
        --input a=a.npy --input b=b.npy --grpc_target localhost:8500 --out_npz top.npz

``--rest_url`` / ``--grpc_target`` send the request to a running server, ``--local`` runs the
signature in this process (TensorFlow, no server); each prints (and with ``--out_npz`` saves) the
outputs. An input may come from a ``.npz``: ``NAME=FILE.npz`` takes its array ``NAME``
(``tools/export.py`` writes ``<name>_candidates.npz`` and ``<name>_examples.npz`` for this).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

__all__ = [
    "load_input",
    "parse_predict_response",
    "parse_rest_response",
    "predict_request",
    "prepare_inputs",
    "read_signatures",
    "rest_body",
    "run_local",
    "send_grpc",
    "send_rest",
]

_SERVING_API_HINT = (
    "tensorflow-serving-api is not installed. On a tensorflow-cpu install run "
    "`pip install --no-deps tensorflow-serving-api==2.21.0` (its own "
    "dependencies would pull in the full tensorflow wheel)."
)


def _serving_apis():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as e:  # pragma: no cover - exercised where the package is missing
        raise ImportError(_SERVING_API_HINT) from e
    return predict_pb2, prediction_service_pb2_grpc


def read_signatures(model_dir, tags=("serve",)):
    """Signatures of a SavedModel version directory, read from ``saved_model.pb``.

    Args:
        model_dir: the version directory (``<base>/<name>/<version>``).
        tags: the MetaGraph's tag set.

    Returns:
        dict signature name -> ``{"method_name": str, "inputs": {key: (np.dtype, shape)},
        "outputs": {key: (np.dtype, shape)}}`` with ``None`` for dynamic dimensions.

    Example:
        >>> sigs = read_signatures("models/retrieval/1")  # doctest: +SKIP
        >>> sigs["embed_a"]["inputs"]  # doctest: +SKIP
        {'a': (dtype('float32'), (None, 3))}
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(os.fspath(model_dir), "saved_model.pb")
    if not os.path.isfile(path):
        raise ValueError(
            f"No saved_model.pb in {model_dir!r}: pass a version directory such as <base_dir>/<name>/<version>."
        )
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            break
    else:
        raise ValueError(f"No MetaGraph with tags {list(tags)} in {path}.")

    def describe(infos):
        out = {}
        for key, info in infos.items():
            dtype = np.dtype(tf.dtypes.as_dtype(info.dtype).as_numpy_dtype)
            shape = (
                None
                if info.tensor_shape.unknown_rank
                else tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
            )
            out[key] = (dtype, shape)
        return out

    return {
        name: {"method_name": sig.method_name, "inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}
        for name, sig in meta_graph.signature_def.items()
        if not name.startswith("__")
    }


def prepare_inputs(signatures, signature_name, inputs):
    """Checks ``inputs`` against a signature and casts them to its dtypes.

    Args:
        signatures: the result of :func:`read_signatures`.
        signature_name: e.g. ``"score_c"``.
        inputs: dict input name -> array-like.

    Returns:
        dict input name -> ``np.ndarray`` of the signature's dtype.

    Raises:
        ValueError: unknown signature, missing or unknown inputs, a wrong rank or fixed
            dimension, or values that do not fit the dtype (e.g. floats for int token ids);
            the message names the input.
    """
    if signature_name not in signatures:
        raise ValueError(f"Unknown signature {signature_name!r}; the model has {sorted(signatures)}.")
    spec = signatures[signature_name]["inputs"]
    missing = sorted(set(spec) - set(inputs))
    unknown = sorted(set(inputs) - set(spec))
    if missing or unknown:
        raise ValueError(
            f"Signature {signature_name!r} takes inputs {sorted(spec)}; missing {missing}, unknown {unknown}."
        )
    out = {}
    for key, (dtype, shape) in spec.items():
        value = np.asarray(inputs[key])
        if shape is not None:
            if value.ndim != len(shape) or any(d is not None and d != v for d, v in zip(shape, value.shape)):
                shown = tuple(-1 if d is None else d for d in shape)
                raise ValueError(
                    f"Input {key!r} of signature {signature_name!r} must have shape "
                    f"{shown} (-1: any), got {value.shape}."
                )
        if np.issubdtype(dtype, np.integer) and not np.issubdtype(value.dtype, np.integer):
            raise ValueError(
                f"Input {key!r} of signature {signature_name!r} must be {dtype.name}, got {value.dtype.name}."
            )
        out[key] = value.astype(dtype, copy=False)
    return out


def rest_body(inputs, signature_name, form="instances"):
    """The JSON body (a dict) of a TF Serving REST ``:predict`` request.

    Args:
        inputs: dict input name -> array (already prepared, see :func:`prepare_inputs`).
        signature_name: the signature to call.
        form: ``"instances"`` (row form: one object per example, all inputs must share
            dimension 0) or ``"inputs"`` (columnar form: one tensor per input).

    Returns:
        dict, ready for ``json.dumps``.

    Example:
        >>> body = rest_body({"a": np.zeros((2, 3), "float32")}, "embed_a")
        >>> body["signature_name"], len(body["instances"]), sorted(body["instances"][0])
        ('embed_a', 2, ['a'])
        >>> rest_body({"a": np.zeros((2, 3), "float32")}, "embed_a", form="inputs")["inputs"]["a"]
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    if not arrays:
        raise ValueError("No inputs given.")
    if form == "inputs":
        return {"signature_name": signature_name, "inputs": {k: v.tolist() for k, v in arrays.items()}}
    if form != "instances":
        raise ValueError(f"form must be 'instances' or 'inputs', got {form!r}.")
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(
            f"The 'instances' (row) form needs every input to share dimension 0, "
            f"got {sizes}; use form='inputs' (columnar) instead."
        )
    n = next(iter(sizes.values()))
    return {
        "signature_name": signature_name,
        "instances": [{k: v[i].tolist() for k, v in arrays.items()} for i in range(n)],
    }


def parse_rest_response(response, output_names=None):
    """Arrays from a REST ``:predict`` response (dict or JSON text).

    Args:
        response: the decoded JSON (``{"predictions": ...}`` for the row form or
            ``{"outputs": ...}`` for the columnar form).
        output_names: the signature's output names; needed to name the value when the server
            drops the name of a signature's single output.

    Returns:
        dict output name -> ``np.ndarray``.
    """
    if isinstance(response, (str, bytes)):
        response = json.loads(response)
    if "error" in response:
        raise ValueError(f"TF Serving returned an error: {response['error']}")
    names = list(output_names or [])
    if "outputs" in response:
        outputs = response["outputs"]
        if isinstance(outputs, dict):
            return {k: np.asarray(v) for k, v in outputs.items()}
        if len(names) != 1:
            raise ValueError("The response holds one unnamed output: pass its name in output_names.")
        return {names[0]: np.asarray(outputs)}
    if "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
        if len(names) != 1:
            raise ValueError("The response holds one unnamed output: pass its name in output_names.")
        return {names[0]: np.asarray(rows)}
    raise ValueError(f"Not a predict response: keys {sorted(response)}.")


def predict_request(model_name, signature_name, inputs, version=None):
    """A gRPC ``tensorflow.serving.PredictRequest``.

    Args:
        model_name: the served model's name (TF Serving's ``MODEL_NAME``).
        signature_name: the signature to call.
        inputs: dict input name -> array (see :func:`prepare_inputs`).
        version: optional int, a specific version (default: the one the server serves).

    Returns:
        ``predict_pb2.PredictRequest``.
    """
    import tensorflow as tf

    predict_pb2, _ = _serving_apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def parse_predict_response(response):
    """dict output name -> ``np.ndarray`` from a gRPC ``PredictResponse``."""
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def send_grpc(target, request, timeout=10.0):
    """Sends a ``PredictRequest`` to ``target`` (``host:port``); returns the outputs."""
    import grpc

    _, service = _serving_apis()
    with grpc.insecure_channel(target) as channel:
        response = service.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    return parse_predict_response(response)


def send_rest(url, model_name, body, output_names=None, version=None, timeout=10.0):
    """POSTs ``body`` to ``<url>/v1/models/<model_name>[/versions/<v>]:predict``; returns outputs."""
    import urllib.request

    path = f"/v1/models/{model_name}" + (f"/versions/{int(version)}" if version is not None else "")
    request = urllib.request.Request(
        url.rstrip("/") + path + ":predict",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return parse_rest_response(response.read(), output_names)


def run_local(model_dir, signature_name, inputs):
    """Runs a signature of the SavedModel in this process (TensorFlow, no server); returns outputs."""
    import tensorflow as tf

    signature = tf.saved_model.load(os.fspath(model_dir)).signatures[signature_name]
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def load_input(spec):
    """One ``--input`` value: ``NAME=FILE.npy``, ``NAME=FILE.npz`` (its array ``NAME``) or
    ``NAME=FILE.npz:KEY``; returns ``(NAME, array)``.

    ``tools/export.py`` writes ``<name>_candidates.npz`` (``candidate_embeddings``, ...) and
    ``<name>_examples.npz`` (a few test rows of every modality), so both serve directly:
    ``--input b=models/xor_examples.npz --input candidate_embeddings=models/xor_candidates.npz``.

    Raises:
        ValueError: for a malformed spec, a missing file or an array the ``.npz`` lacks.
    """
    if "=" not in spec:
        raise ValueError(f"--input takes NAME=FILE.npy (or NAME=FILE.npz[:KEY]), got {spec!r}.")
    name, path = spec.split("=", 1)
    key = None
    if ".npz:" in path:
        path, key = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise ValueError(f"--input {name}: no file {path!r}.")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"--input {name}: {path!r} is not a .npy/.npz file ({e}).") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            key = key or name
            if key not in data.files:
                raise ValueError(
                    f"--input {name}: {path!r} holds the arrays {sorted(data.files)}, not {key!r}; "
                    f"pick one with --input {name}={path}:<array>."
                )
            return name, data[key]
    return name, data


def _summary(v):
    return np.array2string(np.asarray(v), precision=3, suppress_small=True, threshold=64, edgeitems=4)


def _print_outputs(outputs, where):
    print(f"Outputs ({where}):")
    for k, v in sorted(outputs.items()):
        print(f"  {k}: shape {v.shape} dtype {v.dtype}")
        print("    " + _summary(v).replace("\n", "\n    "))
        if k == "logits" and v.ndim == 2:
            print(f"  top-1 candidate per query: {np.argmax(v, axis=1).tolist()}")


def _fail(message):
    sys.exit(f"serving_request.py: error: {' '.join(str(message).split())}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="exported version directory <base>/<name>/<version>")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=FILE.npy|FILE.npz[:KEY]",
        help="one per signature input; a .npz gives its array NAME (or KEY)",
    )
    parser.add_argument("--model_name", help="served name (default: the parent directory's)")
    parser.add_argument("--version", type=int, help="request this version explicitly")
    parser.add_argument("--form", choices=("instances", "inputs"), default="inputs")
    parser.add_argument("--rest_out", help="write the REST JSON body here")
    parser.add_argument("--grpc_out", help="write the serialised PredictRequest here")
    parser.add_argument("--rest_url", help="send over REST, e.g. http://localhost:8501")
    parser.add_argument("--grpc_target", help="send over gRPC, e.g. localhost:8500")
    parser.add_argument(
        "--local",
        action="store_true",
        help="run the signature in this process with TensorFlow (no server) and print the outputs",
    )
    parser.add_argument("--out_npz", help="save the outputs of a sent (or --local) request here")
    args = parser.parse_args(argv)

    model_dir = os.path.abspath(args.model_dir)
    model_name = args.model_name or os.path.basename(os.path.dirname(model_dir))
    try:
        given = dict(load_input(spec) for spec in args.input)
        signatures = read_signatures(model_dir)
        inputs = prepare_inputs(signatures, args.signature, given)
        output_names = sorted(signatures[args.signature]["outputs"])
        body = rest_body(inputs, args.signature, form=args.form)
    except ValueError as e:
        _fail(e)
    shapes = ", ".join(f"{k} {v.shape}" for k, v in inputs.items())
    print(f"Request for signature {args.signature!r} of model {model_name!r} ({model_dir}): {shapes}")
    if args.rest_out:
        with open(args.rest_out, "w") as f:
            json.dump(body, f)
        print(f"  REST body ({args.form} form) {os.path.abspath(args.rest_out)}")
    request = None
    if args.grpc_out or args.grpc_target:
        try:
            request = predict_request(model_name, args.signature, inputs, version=args.version)
        except ImportError as e:
            _fail(e)
        if args.grpc_out:
            with open(args.grpc_out, "wb") as f:
                f.write(request.SerializeToString())
            print(f"  gRPC PredictRequest {os.path.abspath(args.grpc_out)}")
    outputs = None
    if args.local:
        outputs = run_local(model_dir, args.signature, inputs)
        _print_outputs(outputs, "run locally")
    if args.rest_url:
        import urllib.error

        try:
            outputs = send_rest(args.rest_url, model_name, body, output_names, version=args.version)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            _fail(
                f"TF Serving at {args.rest_url} answered HTTP {e.code}: {detail} (is the model served as "
                f"MODEL_NAME={model_name}? --model_name sets the name)"
            )
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            _fail(
                f"cannot reach TF Serving at {args.rest_url} ({reason}); start it (docs/serving.md: docker run "
                f"-p 8501:8501 -v <export_dir>/{model_name}:/models/{model_name} -e MODEL_NAME={model_name} "
                "tensorflow/serving) or pass --local to run the model in this process instead."
            )
        _print_outputs(outputs, f"REST {args.rest_url}")
    if args.grpc_target:
        import grpc

        try:
            outputs = send_grpc(args.grpc_target, request)
        except grpc.RpcError as e:
            _fail(
                f"gRPC request to {args.grpc_target} failed: {e.code().name}: {e.details()} (start TF Serving "
                "with -p 8500:8500, see docs/serving.md, or pass --local)"
            )
        _print_outputs(outputs, f"gRPC {args.grpc_target}")
    if outputs is not None and args.out_npz:
        np.savez(args.out_npz, **outputs)
        print(f"  outputs saved to {os.path.abspath(args.out_npz)}")
    if outputs is None and not (args.rest_out or args.grpc_out):
        print(
            "Nothing sent or written: add --local (run here), --rest_url / --grpc_target (a server), "
            "or --rest_out / --grpc_out (save the request)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
