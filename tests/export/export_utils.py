"""Tiny models and Keras reference outputs shared by the export tests."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import tf_mmcl
from tf_mmcl.export import CANDIDATE_EMBEDDINGS

BATCH = 5
SMALL_AUDIO = dict(
    sample_rate=8000, frame_length=200, frame_step=80, fft_length=256, num_mel_bins=16, filters=(4,), output_dim=4
)


def mlp_model(objective, modalities="abc", **options):
    """A built model with tiny MLP encoders on (N, 3) inputs."""
    keras.utils.set_random_seed(0)
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(4,), output_dim=4) for m in modalities},
        embedding_dim=4,
        objective=objective,
        **options,
    )
    model(mlp_inputs(modalities, seed=99))
    return model


def mlp_inputs(modalities="abc", seed=0, n=BATCH):
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, 3)).astype("float32") for m in modalities}


def audio_text_model():
    """Waveform (N, 800) audio + int token ids (N, 6) text + an MLP modality, Symile."""
    keras.utils.set_random_seed(0)
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {
            "audio": tf_mmcl.layers.AudioEncoder(input_type="waveform", **SMALL_AUDIO),
            "text": tf_mmcl.layers.TextEncoder(vocab_size=20, embed_dim=8, num_heads=2, ff_dim=8, max_length=6),
            "meta": tf_mmcl.layers.MLPEncoder(hidden_units=(4,)),
        },
        embedding_dim=4,
        objective="symile",
    )
    model(audio_text_inputs(seed=99))
    return model


def audio_text_inputs(seed=0, n=BATCH):
    rng = np.random.default_rng(seed)
    t = np.arange(800) / 8000.0
    freqs = rng.uniform(200, 3000, size=(n, 1))
    return {
        "audio": np.sin(2 * np.pi * freqs * t).astype("float32"),
        "text": rng.integers(0, 20, size=(n, 6)).astype("int32"),
        "meta": rng.normal(size=(n, 3)).astype("float32"),
    }


def keras_reference(model, x, signatures):
    """Per signature: (inputs, expected outputs) computed with the Keras model itself."""
    emb = {m: model.embed(m, x[m]).numpy() for m in model.modalities}
    out = {}
    for sig in signatures:
        if sig == "serving_default":
            full = model(x)
            out[sig] = (dict(x), {f"{m}_embedding": np.asarray(full[m]) for m in model.modalities})
        elif sig.startswith("embed_"):
            m = sig[len("embed_") :]
            out[sig] = ({m: x[m]}, {"embedding": emb[m]})
        elif sig.startswith("score_"):
            rest = sig[len("score_") :]
            if "_from_" in rest:
                c, qs = rest.split("_from_")
                queries = qs.split("_")
            else:
                c, queries = rest, [m for m in model.modalities if m != rest]
            # Raw candidates through model.score: the signature gets their Keras embeddings.
            logits = model.score({q: x[q] for q in queries}, c, x[c]).numpy()
            inputs = {q: x[q] for q in queries}
            inputs[CANDIDATE_EMBEDDINGS] = emb[c]
            out[sig] = (inputs, {"logits": logits})
        elif sig == "gate_weights":
            w = model.gate.gate_weights({m: emb[m] for m in model.modalities})
            out[sig] = (dict(x), {f"{t}_gate_weights": np.asarray(v) for t, v in w.items()})
        else:
            raise AssertionError(f"unexpected signature {sig}")
    return out


# Runs in a fresh interpreter that imports only TensorFlow: loads each version directory, calls
# the listed signatures, and lists the op types of the MetaGraph (graph + function library)
# that the plain TensorFlow op registry does not know.
CLEAN_PROCESS_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

jobs = json.load(open(sys.argv[1]))
report = {"tf_mmcl_loaded": [m for m in sys.modules if m.split(".")[0] == "tf_mmcl"], "models": {}}
for job in jobs:
    loaded = tf.saved_model.load(job["dir"])
    outputs = {}
    for sig, npz in job["calls"].items():
        inputs = dict(np.load(npz))
        result = loaded.signatures[sig](**{k: tf.constant(v) for k, v in inputs.items()})
        path = npz[:-4] + ".out.npz"
        np.savez(path, **{k: v.numpy() for k, v in result.items()})
        outputs[sig] = path
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(job["dir"] + "/saved_model.pb", "rb").read())
    graph = proto.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node}
    for f in graph.library.function:
        ops |= {n.op for n in f.node_def}
    report["models"][job["dir"]] = {
        "signatures": sorted(loaded.signatures),
        "outputs": outputs,
        "ops": sorted(ops),
        "unregistered_ops": sorted(o for o in ops if op_def_registry.get(o) is None),
        "function_names": [f.signature.name for f in graph.library.function],
    }
report["tf_mmcl_loaded"] += [m for m in sys.modules if m.split(".")[0] == "tf_mmcl"]
json.dump(report, open(sys.argv[2], "w"))
"""


def run_clean_process(jobs, workdir):
    """Runs CLEAN_PROCESS_SCRIPT on jobs [{"dir": ..., "calls": {sig: npz}}]; returns its report."""
    script = os.path.join(workdir, "clean_load.py")
    with open(script, "w") as f:
        f.write(CLEAN_PROCESS_SCRIPT)
    jobs_path, report_path = os.path.join(workdir, "jobs.json"), os.path.join(workdir, "report.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    proc = subprocess.run(
        [sys.executable, script, jobs_path, report_path],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(report_path) as f:
        return json.load(f)


def saved_model_cli():
    """Path of the saved_model_cli script installed next to this interpreter."""
    path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    assert os.path.exists(path), f"saved_model_cli not found next to {sys.executable}"
    return path
