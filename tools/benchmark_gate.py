"""Training-step time of Gated Symile against Symile, same model and batch, in one process.

Defaults are the Gated Symile authors' synthetic setting (TillmannRheude/gated_symile,
``config/config_synthetic.yaml`` + ``config/encoders/synthetic_xnor.yaml`` +
``config/modelname/symile.yaml``): three modalities of 128 input dims, MLP encoders
128 -> 256 -> 256 -> 256 and a 256-d projection head (one linear layer more than
theirs, in both objectives' models alike), 256-d embeddings, batch 128, the gate's key width 256 and
``pair_num_negatives`` 512 (clamped to batch - 1 = 127 sampled negatives per row, as their loss
does), Symile with ``"n"`` negatives. Both objectives are trained with the same optimizer
(AdamW) through ``model.train_step`` inside one ``tf.function``; each objective's step is timed
``--repeats`` times after ``--warmup`` calls, interleaved (Symile, gated, Symile, ...), and the
medians are printed in ms with their ratio. Usage::

    PYTHONPATH=$PWD OPENBLAS_NUM_THREADS=1 python tools/benchmark_gate.py
    python tools/benchmark_gate.py --batch_size=64 --repeats=5 --jit_compile
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _build(objective, args, options):
    import keras

    from tf_mmcl.layers import MLPEncoder
    from tf_mmcl.models import MultimodalContrastiveModel

    keras.utils.set_random_seed(args.seed)
    encoders = {
        m: MLPEncoder(
            hidden_units=(args.embedding_dim, args.embedding_dim), output_dim=args.embedding_dim, name=f"encoder_{m}"
        )
        for m in ("a", "b", "c")
    }
    model = MultimodalContrastiveModel(encoders, embedding_dim=args.embedding_dim, objective=objective, **options)
    model.in_batch_metrics = False
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3))
    return model


def measure(args):
    """Returns {"symile_ms", "gated_ms", "ratio", "settings"} for the parsed ``args``."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(args.seed)
    batch = {
        m: tf.constant(rng.normal(size=(args.batch_size, args.input_dim)).astype("float32")) for m in ("a", "b", "c")
    }
    gated_options = {
        "key_dim": args.key_dim,
        "num_negatives": args.num_negatives or None,
        "seed": args.seed,
        "gate_type": args.gate_type,
    }
    models = {
        "symile": _build("symile", args, {"negative_sampling": "n"}),
        "gated_symile": _build("gated_symile", args, gated_options),
    }
    steps = {}
    for name, model in models.items():
        model(batch)  # build
        fn = tf.function(model.train_step, jit_compile=bool(args.jit_compile))
        steps[name] = fn
        for _ in range(args.warmup):
            float(fn(batch)["loss"])
    times = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            float(fn(batch)["loss"])
            times[name].append(1000.0 * (time.perf_counter() - start))
    symile = statistics.median(times["symile"])
    gated = statistics.median(times["gated_symile"])
    return {
        "symile_ms": round(symile, 2),
        "gated_ms": round(gated, 2),
        "ratio": round(gated / symile, 2),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--input_dim", type=int, default=128)
    parser.add_argument("--embedding_dim", type=int, default=256)
    parser.add_argument("--key_dim", type=int, default=256)
    parser.add_argument(
        "--num_negatives",
        type=int,
        default=127,
        help="sampled negatives per row of the gated 'pair' loss; 0: every batch row",
    )
    parser.add_argument("--gate_type", default="sigmoid", choices=("softmax", "sigmoid"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    for name in ("batch_size", "input_dim", "embedding_dim", "key_dim", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}.")
    if args.num_negatives < 0 or args.warmup < 0:
        parser.error("--num_negatives and --warmup must be >= 0.")
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Symile step       {result['symile_ms']:8.1f} ms (median of {args.repeats})")
        print(f"Gated Symile step {result['gated_ms']:8.1f} ms (median of {args.repeats})")
        print(f"ratio gated / Symile: {result['ratio']:.2f}")
    return result


if __name__ == "__main__":
    main()
