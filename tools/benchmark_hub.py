#!/usr/bin/env python
"""Throughput of the real-encoder path on this machine, with randomly initialised backbones.

    python tools/benchmark_hub.py [--size base] [--examples 32] [--loop_examples 8]

Per backbone (ViT-B/16 at 224x224, Whisper-base's encoder on 3000x80 log-mels):

* feature extraction with ``tf_mmcl.hub.features.extract_features`` (batched, one compiled
  function, sharded TFRecords written) against the same ``BackboneEncoder`` called eagerly on
  one example at a time in a plain Python loop (examples/s each, and the ratio);

and for the pair of them as a two-modality CLIP model:

* head-only training steps on cached features (``tf_mmcl.hub.heads.head_model``) against
  training on raw inputs through the frozen backbones (examples/s each, and the ratio).

Warm-up (tracing) is excluded from every timing. ``--size tiny`` runs the tiny test sizes (a
smoke test). Prints a Markdown table and writes ``--output`` (JSON) if given.
"""

import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_SIZE = flags.DEFINE_enum("size", "base", ["base", "tiny"], "Backbone sizes.")
_EXAMPLES = flags.DEFINE_integer("examples", 32, "Examples per batched extraction.")
_LOOP = flags.DEFINE_integer("loop_examples", 8, "Examples through the plain Python loop.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Batch size (extraction and training).")
_STEPS = flags.DEFINE_integer("train_steps", 2, "Timed raw-input training steps.")
_HEAD_STEPS = flags.DEFINE_integer("head_steps", 200, "Timed head-only training steps.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the results here (JSON).")


def _inputs(kind, encoder, n, rng):
    if kind == "image":
        shape = encoder.backbone.input_shape[1:]
        return rng.uniform(size=(n,) + tuple(shape)).astype("float32")
    frames = 2 * next(l.sequence_length for l in encoder.backbone.layers if type(l).__name__ == "PositionEmbedding")
    mels = encoder.backbone.input_shape[-1]
    return rng.normal(size=(n, frames, mels)).astype("float32")


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_mmcl.hub import features as fl
    from tf_mmcl.hub import random_backbone
    from tf_mmcl.hub.heads import head_model
    from tf_mmcl.layers import BackboneEncoder
    from tf_mmcl.models import MultimodalContrastiveModel

    rng = np.random.default_rng(0)
    size = _SIZE.value
    specs = {
        "image": ("vit", "ViT-B/16" if size == "base" else "ViT tiny"),
        "audio": ("whisper", "Whisper-base encoder" if size == "base" else "Whisper tiny"),
    }
    encoders, data, rows = {}, {}, []
    tmp = tempfile.mkdtemp(prefix="bench_hub_")
    for m, (arch, label) in specs.items():
        enc = BackboneEncoder(random_backbone(arch, size), trainable_blocks=0, name=f"enc_{m}")
        encoders[m] = enc
        data[m] = _inputs(m, enc, _EXAMPLES.value, rng)
        # Plain loop: one eager call per example (after one warm-up call).
        enc(data[m][:1])
        start = time.perf_counter()
        for i in range(_LOOP.value):
            enc(data[m][i : i + 1]).numpy()
        loop_eps = _LOOP.value / (time.perf_counter() - start)
        # Batched extraction (warm-up run on one batch into a throwaway directory first).
        ds = tf.data.Dataset.from_tensor_slices({m: data[m]})
        fl.extract_features(
            {m: enc},
            ds.take(_BATCH.value),
            os.path.join(tmp, f"warm_{m}"),
            batch_size=_BATCH.value,
            shard_size=_BATCH.value,
            progress=False,
        )
        start = time.perf_counter()
        fl.extract_features(
            {m: enc},
            ds,
            os.path.join(tmp, f"feat_{m}"),
            batch_size=_BATCH.value,
            shard_size=_BATCH.value * 4,
            progress=False,
        )
        batched_eps = _EXAMPLES.value / (time.perf_counter() - start)
        rows.append(
            {
                "what": f"extract {label}",
                "baseline": "plain Python loop, batch 1, eager",
                "baseline_eps": loop_eps,
                "ours_eps": batched_eps,
                "ratio": batched_eps / loop_eps,
            }
        )
        print(rows[-1], flush=True)

    # Head-only training on cached features vs raw-input training through frozen backbones.
    keras.utils.set_random_seed(0)
    n = _EXAMPLES.value
    raw = MultimodalContrastiveModel(dict(encoders), embedding_dim=64, objective="clip")
    raw.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = {m: data[m][: _BATCH.value] for m in specs}
    raw.train_on_batch(batch)  # warm-up
    start = time.perf_counter()
    for _ in range(_STEPS.value):
        raw.train_on_batch(batch)
    raw_eps = _STEPS.value * _BATCH.value / (time.perf_counter() - start)
    feats = {m: np.asarray(encoders[m](data[m][: _BATCH.value])) for m in specs}
    manifest = {"encoders": {m: {"feature_dim": int(f.shape[-1])} for m, f in feats.items()}, "keep_keys": []}
    heads = head_model(manifest, embedding_dim=64, objective="clip")
    heads.compile(optimizer=keras.optimizers.Adam(1e-3))
    heads.train_on_batch(feats)
    start = time.perf_counter()
    for _ in range(_HEAD_STEPS.value):
        heads.train_on_batch(feats)
    head_eps = _HEAD_STEPS.value * _BATCH.value / (time.perf_counter() - start)
    rows.append(
        {
            "what": "train CLIP heads (image+audio)",
            "baseline": "raw inputs through the frozen backbones",
            "baseline_eps": raw_eps,
            "ours_eps": head_eps,
            "ratio": head_eps / raw_eps,
        }
    )
    print(rows[-1], flush=True)
    del n

    print(f"\n| {size} sizes, batch {_BATCH.value} | baseline | baseline ex/s | ours ex/s | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['baseline']} | {r['baseline_eps']:.2f} | {r['ours_eps']:.2f} | {r['ratio']:.1f}x |")
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            json.dump({"size": size, "batch_size": _BATCH.value, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    sys.exit(app.run(main, flags_parser=_cli.flags_parser("benchmark_hub.py")))
