"""Tiny randomly initialised keras-hub presets the hub tests save themselves, and the model
over them (Symile-M3's trio at toy size: CLIP-style image, Whisper audio, XLM-R text)."""

import os
import subprocess
import sys

import numpy as np

N = 8
IMAGE = (32, 32, 3)
FRAMES, MELS = 64, 16
TOKENS = 6


def make_presets(root):
    """Saves tiny vit / clip_vision / bert / xlm_roberta / distil_bert / whisper presets."""
    from tf_mmcl.hub import save_random_preset

    paths = {}
    for i, arch in enumerate(("vit", "clip_vision", "bert", "xlm_roberta", "distil_bert", "whisper")):
        paths[arch] = save_random_preset(os.path.join(root, arch), arch, seed=i)
    return paths


def trio_inputs(n=N, seed=0, padding_id=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 100, size=(n, TOKENS)).astype("int32")
    lengths = rng.integers(2, TOKENS + 1, size=n)
    ids[np.arange(TOKENS)[None, :] >= lengths[:, None]] = padding_id
    return {
        "image": rng.uniform(size=(n,) + IMAGE).astype("float32"),
        "audio": rng.normal(size=(n, FRAMES, MELS)).astype("float32"),
        "text": ids,
    }


def run_tf_only(script, *args, timeout=300):
    """Runs ``script`` in a fresh interpreter (no PYTHONPATH tricks needed: it imports only TF)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# Loads a SavedModel in a process that imports TensorFlow only, calls serving_default on the
# saved inputs, and reports which packages got imported.
TF_ONLY_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
inputs = dict(np.load(sys.argv[2]))
sig = loaded.signatures["serving_default"]
out = sig(**{k: tf.constant(v) for k, v in inputs.items()})
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
specs = {k: v.dtype.name for k, v in sig.structured_input_signature[1].items()}
imported = {m.split(".")[0] for m in sys.modules} & {"tf_mmcl", "keras_hub", "tensorflow_text"}
print(json.dumps({"imported": sorted(imported), "input_dtypes": specs}))
"""
