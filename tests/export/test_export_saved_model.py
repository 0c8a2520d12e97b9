"""export_for_serving: TF Serving layout, signatures checked in a TensorFlow-only process, op set,
saved_model_cli show/run, input errors, warm-up records."""

import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tests.export import export_utils as eu
from tf_mmcl import export
from tf_mmcl.export import saved_model as sm

# (objective, options, modalities, partial_queries)
CASES = {
    "symile": ("symile", {}, "abc", True),
    "confu": ("confu", {"fusion_dropout": 0.0}, "abc", True),
    "gated_symile": ("gated_symile", {"key_dim": 4}, "abc", True),
    "clip": ("clip", {}, "ab", True),
    "triangle": ("triangle", {}, "abc", False),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported, called in one TensorFlow-only subprocess; Keras references."""
    base = tmp_path_factory.mktemp("models")
    work = tmp_path_factory.mktemp("calls")
    cases, jobs = {}, []
    for key, (objective, options, mods, partial) in CASES.items():
        model = eu.mlp_model(objective, mods, **options)
        path = export.export_for_serving(model, str(base), key, partial_queries=partial)
        cases[key] = (model, path, eu.mlp_inputs(mods), partial)
    model = eu.audio_text_model()
    path = export.export_for_serving(model, str(base), "audio_text")
    cases["audio_text"] = (model, path, eu.audio_text_inputs(), True)
    refs = {}
    for key, (model, path, x, partial) in cases.items():
        refs[key] = eu.keras_reference(model, x, export.signature_names(model, partial))
        calls = {}
        for sig, (inputs, _) in refs[key].items():
            calls[sig] = str(work / f"{key}-{sig}.npz")
            np.savez(calls[sig], **inputs)
        jobs.append({"dir": path, "calls": calls})
    report = eu.run_clean_process(jobs, str(work))
    return cases, refs, report


@pytest.mark.parametrize("key", list(CASES) + ["audio_text"])
@pytest.mark.slow
def test_tensorflow_only_process_reproduces_every_signature(exported, key):
    cases, refs, report = exported
    model, path, _, partial = cases[key]
    assert report["tf_mmcl_loaded"] == []
    result = report["models"][path]
    assert result["signatures"] == sorted(export.signature_names(model, partial))
    assert set(result["outputs"]) == set(refs[key])
    for sig, (_, expected) in refs[key].items():
        got = dict(np.load(result["outputs"][sig]))
        assert set(got) == set(expected), sig
        for name, value in expected.items():
            assert got[name].dtype == np.float32, (sig, name)
            np.testing.assert_allclose(got[name], value, atol=2e-5, rtol=1e-5, err_msg=f"{sig}/{name}")


def test_signature_names_follow_the_contract():
    model = eu.mlp_model("gated_symile", "abc", key_dim=4)
    names = export.signature_names(model)
    assert names == [
        "serving_default",
        "embed_a",
        "embed_b",
        "embed_c",
        "score_a",
        "score_a_from_b",
        "score_a_from_c",
        "score_b",
        "score_b_from_a",
        "score_b_from_c",
        "score_c",
        "score_c_from_a",
        "score_c_from_b",
        "gate_weights",
    ]
    assert export.signature_names(model, partial_queries=False) == [
        "serving_default",
        "embed_a",
        "embed_b",
        "embed_c",
        "score_a",
        "score_b",
        "score_c",
        "gate_weights",
    ]
    assert "gate_weights" not in export.signature_names(eu.mlp_model("symile", "abc"))


@pytest.mark.slow
def test_partial_query_scores_differ_from_full_ones(exported):
    # The 1->1 signature really drops a query modality: for Symile, MIP vs cosine.
    cases, refs, _ = exported
    full = refs["symile"]["score_c"][1]["logits"]
    one = refs["symile"]["score_c_from_a"][1]["logits"]
    assert not np.allclose(full, one)


@pytest.mark.slow
def test_graph_has_only_core_ops_and_preprocessing_inside(exported):
    cases, _, report = exported
    for key, (_, path, _, _) in cases.items():
        assert report["models"][path]["unregistered_ops"] == [], key
    ops = set(report["models"][cases["audio_text"][1]]["ops"])
    # waveform -> STFT -> mel -> log is in the graph; token ids go through an embedding gather.
    assert {"RFFT", "ComplexAbs", "Log"} <= ops
    assert "Conv2D" in ops and ops & {"ResourceGather", "GatherV2"}
    assert "RFFT" not in report["models"][cases["symile"][1]]["ops"]


def test_input_specs_follow_encoders():
    specs = export.serving_input_specs(eu.audio_text_model())
    assert specs["audio"] == tf.TensorSpec((None, 800), tf.float32, name="audio")
    assert specs["text"] == tf.TensorSpec((None, 6), tf.int32, name="text")
    assert specs["meta"] == tf.TensorSpec((None, 3), tf.float32, name="meta")
    specs = export.serving_input_specs(eu.audio_text_model(), input_shapes={"text": (None,)})
    assert specs["text"].shape.as_list() == [None, None]
    with pytest.raises(ValueError, match=r"unknown modality.*'video'"):
        export.serving_input_specs(eu.audio_text_model(), input_dtypes={"video": "float32"})


@pytest.mark.slow
def test_saved_model_cli_show_lists_signatures_method_and_ops(exported):
    cases, _, _ = exported
    model, path, _, _ = cases["gated_symile"]
    out = subprocess.run(
        [eu.saved_model_cli(), "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    listed = re.findall(r"signature_def\['([^']+)'\]", out)
    assert set(export.signature_names(model)) <= set(listed)
    assert out.count("Method name is: tensorflow/serving/predict") >= len(export.signature_names(model))
    block = out[out.index("signature_def['score_c']") :]
    block = block[: block.index("Method name")]
    assert re.search(r"inputs\['candidate_embeddings'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, 4\)", block)
    assert re.search(r"inputs\['a'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, 3\)", block)
    assert re.search(r"outputs\['logits'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, -1\)", block)
    ops_line = re.search(r"contains the following ops: \{(.*)\}", out).group(1)
    listed_ops = {o.strip().strip("'") for o in ops_line.split(",")}
    assert "StatefulPartitionedCall" in listed_ops
    assert not [o for o in listed_ops if tf.raw_ops.__dict__.get(o) is None], listed_ops


@pytest.mark.slow
def test_saved_model_cli_run_with_npy_inputs(exported, tmp_path):
    cases, refs, _ = exported
    _, path, _, _ = cases["confu"]
    inputs, expected = refs["confu"]["score_c"]
    for k, v in inputs.items():
        np.save(tmp_path / f"{k}.npy", v)
    spec = ";".join(f"{k}={tmp_path / k}.npy" for k in inputs)
    outdir = tmp_path / "out"
    subprocess.run(
        [
            eu.saved_model_cli(),
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "score_c",
            "--inputs",
            spec,
            "--outdir",
            str(outdir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    np.testing.assert_allclose(np.load(outdir / "logits.npy"), expected["logits"], atol=2e-5)

    # Wrong width for 'a' through the Session / SignatureDef path: the error names the input.
    np.save(tmp_path / "a.npy", inputs["a"][:, :2])
    proc = subprocess.run(
        [
            eu.saved_model_cli(),
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "score_c",
            "--inputs",
            spec,
            "--outdir",
            str(tmp_path / "out2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert re.search(r"Cannot feed value of shape \(5, 2\) for Tensor '?score_c_a:0", proc.stderr), proc.stderr[-2000:]


@pytest.mark.parametrize(
    "name,value,pattern",
    [
        ("a", lambda x: x["a"][:, :2], r"shape=\(5, 2\).*name='a'\).*shape=\(None, 3\)"),
        ("a", lambda x: tf.constant(x["a"], tf.float64), r".*dtype=tf.float64, name='a'\)"),
        ("candidate_embeddings", lambda x: x["c"], r"shape=\(5, 3\).*name='candidate_embeddings'\)"),
    ],
)
@pytest.mark.slow
def test_wrong_shape_or_dtype_names_the_input(exported, name, value, pattern):
    cases, _, _ = exported
    _, path, x, _ = cases["symile"]
    loaded = tf.saved_model.load(path)
    inputs = {"a": x["a"], "b": x["b"], "candidate_embeddings": np.eye(5, 4, dtype="float32")}
    loaded.signatures["score_c"](**inputs)  # the right inputs work
    inputs[name] = value(x)
    with pytest.raises((TypeError, ValueError)) as info:
        loaded.signatures["score_c"](**inputs)
    message = str(info.value)
    assert re.search(r"Can not cast TensorSpec\(" + pattern, message.split("Received args")[0]), message[:500]


@pytest.mark.slow
def test_single_input_signatures_check_shape_by_name_and_dtype(exported):
    cases, _, _ = exported
    _, path, x, _ = cases["audio_text"]
    loaded = tf.saved_model.load(path)
    with pytest.raises((TypeError, ValueError), match=r"shape=\(5, 5\).*name='text'"):
        loaded.signatures["embed_text"](text=x["text"][:, :5])
    # TensorFlow binds a lone input positionally when its dtype is wrong: the error gives the
    # expected dtype (the signature has one input, so it is unambiguous) instead of the name.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected to be a int32 tensor"):
        loaded.signatures["embed_text"](text=tf.constant(x["text"], tf.float32))


@pytest.mark.slow
def test_warmup_requests_cover_every_signature_and_run(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    cases, _, _ = exported
    model, path, _, partial = cases["gated_symile"]
    records = list(tf.data.TFRecordDataset(os.path.join(path, export.WARMUP_FILE)))
    loaded = tf.saved_model.load(path)
    seen = []
    for raw in records:
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "gated_symile"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(np.all(np.isfinite(v.numpy())) for v in outputs.values())
        seen.append(request.model_spec.signature_name)
    assert seen == export.signature_names(model, partial)


# ------------------------------------------------------------------------------- layout
@pytest.fixture(scope="module")
def clip_model():
    return eu.mlp_model("clip", "ab")


def test_versions_increment_and_are_never_overwritten(clip_model, tmp_path):
    first = export.export_for_serving(clip_model, tmp_path, "m", warmup=False)
    assert first == os.path.join(str(tmp_path), "m", "1")
    os.makedirs(tmp_path / "m" / "7" / "variables")
    second = export.export_for_serving(clip_model, tmp_path, "m", partial_queries=False, warmup=False)
    assert second == os.path.join(str(tmp_path), "m", "8")
    with pytest.raises(FileExistsError, match=r"Version 7 of model 'm' already exists"):
        export.export_for_serving(clip_model, tmp_path, "m", version=7)
    assert os.listdir(tmp_path / "m" / "7") == ["variables"]
    replaced = export.export_for_serving(clip_model, tmp_path, "m", version=7, overwrite=True, warmup=False)
    assert os.path.isfile(os.path.join(replaced, "saved_model.pb"))
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "7", "8"]  # no temporary directory left
    assert export.export_for_serving(clip_model, tmp_path, "other", version=3, warmup=False).endswith(
        os.path.join("other", "3")
    )


def test_failed_export_leaves_nothing_behind(clip_model, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sm, "_write_warmup", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_for_serving(clip_model, tmp_path, "m")
    assert os.listdir(tmp_path / "m") == []


def test_bad_arguments_raise_clear_errors(clip_model, tmp_path):
    import tf_mmcl

    with pytest.raises(ValueError, match=r"version must be an int >= 1"):
        export.export_for_serving(clip_model, tmp_path, "m", version=0)
    with pytest.raises(ValueError, match=r"Model name 'a/b'"):
        export.export_for_serving(clip_model, tmp_path, "a/b")
    with pytest.raises(ValueError, match=r"MultimodalContrastiveModel, got Sequential"):
        export.export_for_serving(tf.keras.Sequential(), tmp_path, "m")
    unbuilt = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder() for m in "ab"}, embedding_dim=4, objective="clip"
    )
    with pytest.raises(ValueError, match=r"not built"):
        export.export_for_serving(unbuilt, tmp_path, "m")
    odd = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder() for m in ("a", "b-c")}, embedding_dim=4, objective="clip"
    )
    with pytest.raises(ValueError, match=r"Modality name 'b-c' cannot be a serving input name"):
        export.export_for_serving(odd, tmp_path, "m")
    assert not os.path.exists(tmp_path / "m") or os.listdir(tmp_path / "m") == []
