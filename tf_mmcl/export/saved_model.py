"""SavedModel export of a :class:`~tf_mmcl.models.MultimodalContrastiveModel` for TF Serving.

:func:`export_for_serving` writes the TF Serving layout ``<base_dir>/<name>/<version>/`` with
retrieval signatures (embed every modality, embed one modality, score queries against
precomputed candidate embeddings, gate weights) whose input and output names are stable and
documented in :data:`SIGNATURE_CONTRACT`. The graph holds only core TensorFlow ops: a stock
``tensorflow_model_server`` (or ``tf.saved_model.load`` in a process that never imports
``tf_mmcl``) serves it.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import uuid

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "CANDIDATE_EMBEDDINGS",
    "SIGNATURE_CONTRACT",
    "WARMUP_FILE",
    "export_for_serving",
    "query_subsets",
    "serving_input_specs",
    "signature_name",
    "signature_names",
]

CANDIDATE_EMBEDDINGS = "candidate_embeddings"
"""Input name of the precomputed candidate embeddings ``(C, D)`` in every ``score_*`` signature."""

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
"""Warm-up requests (TFRecord of ``PredictionLog``) TF Serving replays when it loads a version."""

SIGNATURE_CONTRACT = """\
serving_default        in: <m> (N_m, ...) for every modality m
                       out: <m>_embedding (N_m, D) float32, L2-normalised
embed_<m>              in: <m> (N, ...)          out: embedding (N, D) float32
score_<c>              in: every modality but c, raw (B, ...), and candidate_embeddings (C, D)
                       out: logits (B, C) float32, the model's own similarity times its scale
score_<c>_from_<q...>  same, with the query modalities q (model order, joined by '_') only;
                       the others are treated as missing (only when more than one query
                       modality exists and partial_queries=True)
gate_weights           (gated_symile only) in: <m> (N, ...) for every modality
                       out: <t>_gate_weights (N, M) float32 per target t, modality order
retrieve_<c>           (only with index=) in: every modality but c, raw (B, ...)
                       out: scores (B, k) float32 descending, ids (B, k) int64 or string
retrieve_<c>_from_<q...>  same with the query modalities q only
"""

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_VERSION_RE = re.compile(r"^[0-9]+$")


# ---------------------------------------------------------------------------------- specs
def _encoder_input_dtype(encoder):
    dtype = getattr(encoder, "input_dtype", None)
    if dtype is not None:
        return keras.backend.standardize_dtype(dtype)
    from tf_mmcl.layers.text_encoder import TextEncoder

    if isinstance(encoder, (TextEncoder, keras.layers.Embedding)):
        return "int32"
    # Keras autocasts floating inputs to the layer's compute dtype (float16 under mixed
    # precision), so clients always send float32.
    return "float32"


def serving_input_specs(model, input_shapes=None, input_dtypes=None):
    """The ``tf.TensorSpec`` of each modality's raw input in the exported signatures.

    Shapes are the ones the model recorded when it was built, with a dynamic batch dimension;
    dtypes follow the encoders: ``int32`` token ids for a ``TextEncoder``, ``float32`` for
    everything else (waveforms included).

    Args:
        model: a built :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
        input_shapes: optional dict modality -> per-example shape (without the batch
            dimension; ``None`` entries are dynamic) overriding the recorded one, e.g.
            ``{"text": (None,)}`` to accept token sequences of any length.
        input_dtypes: optional dict modality -> dtype overriding the encoder's.

    Returns:
        dict modality -> ``tf.TensorSpec`` named after the modality.

    Raises:
        ValueError: if the model is not built or an override names an unknown modality.

    Example:
        >>> import numpy as np, tf_mmcl
        >>> model = tf_mmcl.models.MultimodalContrastiveModel(
        ...     {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "ab"},
        ...     embedding_dim=4, objective="clip")
        >>> _ = model({m: np.zeros((2, 3), "float32") for m in "ab"})
        >>> serving_input_specs(model)["a"]
        TensorSpec(shape=(None, 3), dtype=tf.float32, name='a')
    """
    shapes = getattr(model, "_modality_shapes", None)
    if shapes is None:
        raise ValueError(
            "The model is not built: call it once on a batch (or fit it) before "
            "exporting, so that the input shape of every modality is known."
        )
    input_shapes = dict(input_shapes or {})
    input_dtypes = dict(input_dtypes or {})
    for what, overrides in (("input_shapes", input_shapes), ("input_dtypes", input_dtypes)):
        unknown = sorted(set(overrides) - set(model.modalities))
        if unknown:
            raise ValueError(
                f"{what} names unknown modality(ies) {unknown}; the model's modalities are {model.modalities}."
            )
    specs = {}
    for m in model.modalities:
        if m in input_shapes:
            shape = (None,) + tuple(input_shapes[m])
        else:
            shape = (None,) + tuple(shapes[m][1:])
        dtype = input_dtypes.get(m) or _encoder_input_dtype(model.encoders[m])
        specs[m] = tf.TensorSpec(shape, tf.as_dtype(dtype), name=m)
    return specs


def query_subsets(model, candidate, partial_queries):
    """The query-modality tuples that get a signature for ``candidate``.

    All other modalities; with ``partial_queries`` also every non-empty subset of them, largest
    first.
    """
    others = [m for m in model.modalities if m != candidate]
    if not partial_queries:
        return [tuple(others)]
    subsets = []
    for k in range(len(others), 0, -1):
        subsets.extend(itertools.combinations(others, k))
    return subsets


def signature_name(model, candidate, queries, kind="score"):
    """``<kind>_<candidate>`` for every other modality as queries, else ``..._from_<q...>``."""
    others = [m for m in model.modalities if m != candidate]
    if list(queries) == others:
        return f"{kind}_{candidate}"
    return f"{kind}_{candidate}_from_{'_'.join(queries)}"


def _score_name(model, candidate, queries):
    return signature_name(model, candidate, queries, "score")


def signature_names(model, partial_queries=True):
    """Names of the signatures :func:`export_for_serving` writes for ``model``, in order.

    Args:
        model: a :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
        partial_queries: include the ``score_<c>_from_<q...>`` signatures.

    Returns:
        list of str.

    Example:
        >>> import tf_mmcl
        >>> model = tf_mmcl.models.MultimodalContrastiveModel(
        ...     {m: tf_mmcl.layers.MLPEncoder() for m in "abc"}, embedding_dim=4)
        >>> signature_names(model)[:5]
        ['serving_default', 'embed_a', 'embed_b', 'embed_c', 'score_a']
        >>> [n for n in signature_names(model) if n.startswith("score_c")]
        ['score_c', 'score_c_from_a', 'score_c_from_b']
    """
    names = ["serving_default"] + [f"embed_{m}" for m in model.modalities]
    for c in model.modalities:
        names += [_score_name(model, c, q) for q in query_subsets(model, c, partial_queries)]
    names += list(model.objective.export_endpoints(model))  # e.g. Gated Symile's "gate_weights"
    return names


def _check_model(model):
    from tf_mmcl.models.contrastive import MultimodalContrastiveModel

    if not isinstance(model, MultimodalContrastiveModel):
        raise ValueError(
            f"export_for_serving takes a tf_mmcl.models.MultimodalContrastiveModel, got {type(model).__name__}."
        )
    for m in model.modalities:
        if not _NAME_RE.match(m):
            raise ValueError(
                f"Modality name {m!r} cannot be a serving input name: use letters, "
                "digits and '_', starting with a letter."
            )
        if m == CANDIDATE_EMBEDDINGS:
            raise ValueError(
                f"Modality name {m!r} clashes with the '{CANDIDATE_EMBEDDINGS}' "
                "input of the score signatures; rename the modality."
            )


# ---------------------------------------------------------------------------------- archive
def _float32(x):
    return tf.cast(x, tf.float32)


def _build_archive(model, specs, partial_queries, indexes=None, retrieve_k=10):
    archive = keras.export.ExportArchive()
    # The model is deliberately not `track`ed: tracking makes TF trace Keras' default
    # signature of the model with float inputs for every modality, which fails for int token
    # ids. The endpoints' variables are saved anyway; `add_variable_collection` exposes them.
    modalities = list(model.modalities)

    def embed_all(inputs):
        return {f"{m}_embedding": _float32(model.embed(m, inputs[m])) for m in modalities}

    archive.add_endpoint("serving_default", embed_all, input_signature=[{m: specs[m] for m in modalities}])

    for m in modalities:

        def embed_one(inputs, m=m):
            return {"embedding": _float32(model.embed(m, inputs[m]))}

        archive.add_endpoint(f"embed_{m}", embed_one, input_signature=[{m: specs[m]}])

    cand_spec = tf.TensorSpec((None, model.embedding_dim), tf.float32, name=CANDIDATE_EMBEDDINGS)
    for c in modalities:
        for queries in query_subsets(model, c, partial_queries):

            def score(inputs, c=c, queries=queries):
                logits = model.score_candidate_embeddings(
                    {q: inputs[q] for q in queries}, c, inputs[CANDIDATE_EMBEDDINGS]
                )
                return {"logits": _float32(logits)}

            signature = {q: specs[q] for q in queries}
            signature[CANDIDATE_EMBEDDINGS] = cand_spec
            archive.add_endpoint(_score_name(model, c, queries), score, input_signature=[signature])

    # The objective's own endpoints (Gated Symile: "gate_weights"), over every modality's embedding.
    # The endpoint function closes over `outputs_of` instead of taking it as a default argument:
    # a default argument that is a Python function becomes part of the traced signature, which
    # SavedModel cannot encode.
    def objective_endpoint_for(outputs_of):
        def objective_endpoint(inputs):
            embeddings = {m: model.embed(m, inputs[m]) for m in modalities}
            return {k: _float32(v) for k, v in outputs_of(embeddings).items()}

        return objective_endpoint

    for endpoint, outputs_of in model.objective.export_endpoints(model).items():
        archive.add_endpoint(
            endpoint, objective_endpoint_for(outputs_of), input_signature=[{m: specs[m] for m in modalities}]
        )
    if indexes:
        from tf_mmcl.export import retrieval_signatures

        retrieval_signatures.add_retrieval_endpoints(archive, model, specs, indexes, retrieve_k, partial_queries)
    archive.add_variable_collection("variables", list(model.variables))
    return archive


# ---------------------------------------------------------------------------------- warm-up
def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, payload):
    """A length-delimited protobuf field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _warmup_record(model_name, signature_name, inputs):
    """Serialised ``tensorflow.serving.PredictionLog`` holding one ``PredictRequest``.

    Encoded by hand (the field numbers of ``prediction_log.proto`` / ``predict.proto`` /
    ``model.proto``) so that exporting does not need ``tensorflow-serving-api``.
    """
    model_spec = _field(1, model_name.encode()) + _field(3, signature_name.encode())
    request = _field(1, model_spec)  # PredictRequest.model_spec
    for key in sorted(inputs):  # PredictRequest.inputs map
        tensor = tf.make_tensor_proto(inputs[key]).SerializeToString()
        request += _field(2, _field(1, key.encode()) + _field(2, tensor))
    predict_log = _field(1, request)  # PredictLog.request
    return _field(6, predict_log)  # PredictionLog.predict_log


def _example_input(spec, rows=1):
    shape = [rows] + [1 if d is None else d for d in spec.shape[1:]]
    return np.zeros(shape, spec.dtype.as_numpy_dtype)


def _write_warmup(path, model, specs, name, partial_queries, indexes=None):
    cand = np.zeros((1, model.embedding_dim), np.float32)
    cand[:, 0] = 1.0
    records = []
    for sig in signature_names(model, partial_queries):
        if sig.startswith("embed_"):
            m = sig[len("embed_") :]
            inputs = {m: _example_input(specs[m])}
        elif sig.startswith("score_"):
            queries = _signature_queries(model, sig, partial_queries)
            inputs = {q: _example_input(specs[q]) for q in queries}
            inputs[CANDIDATE_EMBEDDINGS] = cand
        else:
            inputs = {m: _example_input(specs[m]) for m in model.modalities}
        records.append(_warmup_record(name, sig, inputs))
    if indexes:
        from tf_mmcl.export import retrieval_signatures

        for c in indexes:
            for queries in retrieval_signatures.retrieval_query_subsets(model, c, partial_queries):
                sig = retrieval_signatures.retrieval_signature_name(model, c, queries)
                records.append(_warmup_record(name, sig, {q: _example_input(specs[q]) for q in queries}))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


def _signature_queries(model, signature, partial_queries):
    for c in model.modalities:
        for queries in query_subsets(model, c, partial_queries):
            if _score_name(model, c, queries) == signature:
                return queries
    raise ValueError(f"No score signature named {signature!r}.")  # pragma: no cover


# ---------------------------------------------------------------------------------- layout
def _existing_versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if _VERSION_RE.match(d))


def export_for_serving(
    model,
    base_dir,
    name,
    version=None,
    *,
    overwrite=False,
    partial_queries=True,
    input_shapes=None,
    input_dtypes=None,
    warmup=True,
    index=None,
    retrieve_k=10,
):
    """Exports ``model`` as a SavedModel in the TF Serving layout, atomically.

    Writes ``<base_dir>/<name>/<version>/`` (``saved_model.pb``, ``variables/``, and
    ``assets.extra/tf_serving_warmup_requests``). The SavedModel is first written to a hidden
    temporary directory next to it and then renamed into place, so a server polling
    ``<base_dir>/<name>`` never sees a half-written version.

    Signatures (all with method ``tensorflow/serving/predict`` and dict outputs), for
    modalities ``m`` and candidate modality ``c``:

    * ``serving_default``: inputs ``<m>`` for every modality -> ``<m>_embedding`` (N, D).
    * ``embed_<m>``: input ``<m>`` -> ``embedding`` (N, D), preprocessing (e.g. waveform ->
      log-mel) included.
    * ``score_<c>``: every other modality raw plus ``candidate_embeddings`` (C, D) ->
      ``logits`` (B, C), by the model's own similarity
      (:meth:`~tf_mmcl.models.MultimodalContrastiveModel.score_candidate_embeddings`: MIP for
      Symile, fused pair for ConFu, gated for Gated Symile, ``-volume``/``-area`` for
      GRAM/TRIANGLE, sum of cosines for CLIP).
    * ``score_<c>_from_<q1>_<q2>...``: the same with a strict subset of query modalities (the
      others count as missing), e.g. ``score_c_from_a`` for 1->1 retrieval in a 3-modality
      model. Only with ``partial_queries=True``.
    * ``gate_weights`` (Gated Symile only): every modality -> ``<t>_gate_weights`` (N, M).

    Inputs have the shapes recorded when the model was built (batch dimension dynamic) and
    dtypes of :func:`serving_input_specs`; a wrong shape or dtype is rejected with a message
    naming the input.

    Args:
        model: a built :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
        base_dir: directory holding one sub-directory per served model (TF Serving's
            ``model_base_path`` is ``<base_dir>/<name>``).
        name: model name (TF Serving's ``MODEL_NAME``): letters, digits, ``_``, ``-``, ``.``.
        version: int >= 1, or ``None`` for one more than the highest existing version (1 if
            none).
        overwrite: replace an existing ``version`` (otherwise ``FileExistsError``).
        partial_queries: also write the ``score_<c>_from_<q...>`` signatures.
        input_shapes: optional per-example shape overrides, see :func:`serving_input_specs`.
        input_dtypes: optional dtype overrides, see :func:`serving_input_specs`.
        warmup: write ``assets.extra/tf_serving_warmup_requests`` (one all-zeros request with
            a batch of 1 per signature).
        index: optional :class:`~tf_mmcl.retrieval.CandidateIndex` (or a list, one per
            candidate modality) to bake in: adds ``retrieve_<c>`` (and, with
            ``partial_queries``, ``retrieve_<c>_from_<q...>``) signatures taking raw queries
            and returning ``scores`` (B, k) and ``ids`` (B, k): the exact top-k by the model's
            own score over the index's candidates (core TF ops; see
            :mod:`tf_mmcl.export.retrieval_signatures`).
        retrieve_k: k of the ``retrieve_*`` signatures (capped at the number of candidates).

    Returns:
        str, the path of the version directory.

    Raises:
        ValueError: for a model that is not a built ``MultimodalContrastiveModel``, modality
            names unusable as input names, or a bad ``name`` / ``version``.
        FileExistsError: if the version exists and ``overwrite`` is False.

    Example:
        >>> import tempfile, numpy as np, tensorflow as tf, tf_mmcl
        >>> model = tf_mmcl.models.MultimodalContrastiveModel(
        ...     {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,)) for m in "abc"},
        ...     embedding_dim=4, objective="symile")
        >>> x = {m: np.random.rand(5, 3).astype("float32") for m in "abc"}
        >>> _ = model(x)
        >>> path = export_for_serving(model, tempfile.mkdtemp(), "retrieval")
        >>> path.endswith("/retrieval/1")
        True
        >>> served = tf.saved_model.load(path)
        >>> cands = served.signatures["embed_c"](c=x["c"])["embedding"]
        >>> served.signatures["score_c"](a=x["a"], b=x["b"],
        ...                              candidate_embeddings=cands)["logits"].shape
        TensorShape([5, 5])
    """
    _check_model(model)
    name = str(name)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", name):
        raise ValueError(
            f"Model name {name!r} must be letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (it is a directory and a URL part)."
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be an int >= 1 or None, got {version!r}.")
    specs = serving_input_specs(model, input_shapes, input_dtypes)
    indexes = None
    if index is not None:
        from tf_mmcl.export import retrieval_signatures

        indexes = retrieval_signatures.check_indexes(model, index)
        if isinstance(retrieve_k, bool) or not isinstance(retrieve_k, int) or retrieve_k < 1:
            raise ValueError(f"retrieve_k must be an int >= 1, got {retrieve_k!r}.")

    model_dir = os.path.join(os.fspath(base_dir), name)
    os.makedirs(model_dir, exist_ok=True)
    if version is not None and not overwrite and os.path.exists(os.path.join(model_dir, str(version))):
        raise FileExistsError(
            f"Version {version} of model {name!r} already exists at "
            f"{os.path.join(model_dir, str(version))}; pass overwrite=True "
            "to replace it, or another version."
        )

    tmp = os.path.join(model_dir, f".tmp-export-{uuid.uuid4().hex}")
    try:
        archive = _build_archive(model, specs, partial_queries, indexes, retrieve_k)
        archive.write_out(tmp, verbose=False)
        if warmup:
            _write_warmup(os.path.join(tmp, WARMUP_FILE), model, specs, name, partial_queries, indexes)
        return _move_into_place(tmp, model_dir, version, overwrite)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp, model_dir, version, overwrite):
    """Renames ``tmp`` to ``<model_dir>/<version>``; picks the next free version if None."""
    auto = version is None
    for _ in range(100):
        if auto:
            existing = _existing_versions(model_dir)
            version = (existing[-1] + 1) if existing else 1
        target = os.path.join(model_dir, str(version))
        if os.path.lexists(target):
            if auto:
                continue  # pragma: no cover - another writer took it between listing and here
            if not overwrite:
                raise FileExistsError(
                    f"Version {version} already exists at {target}; pass "
                    "overwrite=True to replace it, or another version."
                )
            trash = os.path.join(model_dir, f".tmp-replaced-{uuid.uuid4().hex}")
            os.rename(target, trash)
            try:
                os.rename(tmp, target)
            except OSError:
                os.rename(trash, target)
                raise
            shutil.rmtree(trash, ignore_errors=True)
            return target
        try:
            # rename() onto a missing path is atomic; onto a non-empty directory (a concurrent
            # writer that picked the same number) it fails instead of replacing it.
            os.rename(tmp, target)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if auto:
                continue
            raise FileExistsError(
                f"Version {version} already exists at {target}; pass overwrite=True to replace it, or another version."
            ) from None
        return target
    raise RuntimeError(f"Could not find a free version number in {model_dir}.")  # pragma: no cover
