"""Interleaved A/B of the CLIP loss kernels in one process (docs/benchmarks.md, "CLIP" section).

Kernels, all M = 3, forward + backward w.r.t. the embeddings and the logit scale:

* ``autodiff``: ``symmetric_infonce(scale * dot_scores(a, b))`` per pair, differentiated by TF
  (the library's CLIP before the closed-form kernel);
* ``per pair``: :func:`tf_mmcl.ops.symmetric_infonce_from_embeddings` per pair (what ``clip_loss``
  runs inside ``tf.function`` / XLA);
* ``batched``: :func:`tf_mmcl.ops.mean_symmetric_infonce_over_pairs` over the stacked pairs (what
  ``clip_loss`` runs eagerly).

Each (N, d, mode) cell times the three kernels in turn, ``--repeats`` times, and prints the
medians as a Markdown table. Usage::

    python tools/benchmark_clip_kernels.py                  # the doc's sizes
    python tools/benchmark_clip_kernels.py --sizes=64x64 --repeats=3
    python tools/benchmark_clip_kernels.py --floor    # TF's per-call cost at N = d = 64

``--floor`` times, with the same inputs and outputs as the loss step: a ``tf.function`` that
returns trivial values (plain and XLA), the library's CLIP step under XLA, and that step called
through its traced concrete function (no per-call signature matching).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

tf = symmetric_infonce = dot_scores = mean_symmetric_infonce_over_pairs = symmetric_infonce_from_embeddings = None


def _import_tensorflow():
    """TensorFlow and the kernels, imported once the flags are parsed (--help needs neither)."""
    global tf, symmetric_infonce, dot_scores, mean_symmetric_infonce_over_pairs, symmetric_infonce_from_embeddings
    import tensorflow

    from tf_mmcl import losses, ops

    tf = tensorflow
    symmetric_infonce = losses.symmetric_infonce
    dot_scores, mean_symmetric_infonce_over_pairs = ops.dot_scores, ops.mean_symmetric_infonce_over_pairs
    symmetric_infonce_from_embeddings = ops.symmetric_infonce_from_embeddings


LOGIT_SCALE = 1.0 / 0.07


def _pairs(reps):
    return list(itertools.combinations(range(len(reps)), 2))


def autodiff(reps, scale):
    pairs = _pairs(reps)
    return tf.add_n([symmetric_infonce(scale * dot_scores(reps[i], reps[j])) for i, j in pairs]) / len(pairs)


def per_pair(reps, scale):
    pairs = _pairs(reps)
    return tf.add_n([symmetric_infonce_from_embeddings(reps[i], reps[j], scale) for i, j in pairs]) / len(pairs)


def batched(reps, scale):
    pairs = _pairs(reps)
    return mean_symmetric_infonce_over_pairs(
        tf.stack([reps[i] for i, _ in pairs]), tf.stack([reps[j] for _, j in pairs]), scale
    )


KERNELS = {"autodiff (before)": autodiff, "closed form, per pair": per_pair, "closed form, batched": batched}


def _step(fn, mode):
    def step(scale, *reps):
        with tf.GradientTape() as tape:
            tape.watch([scale, *reps])
            value = fn(list(reps), scale)
        return value, tape.gradient(value, [scale, *reps])

    return step if mode == "eager" else tf.function(step, jit_compile=(mode == "xla"))


def _call(step, args):
    value, grads = step(*args)
    for g in grads:
        g.numpy()
    return float(value)


def _interleaved_medians(steps, args, repeats, loops):
    """Median seconds per call of each step, the steps timed in turn (so drift hits all alike)."""
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, s in steps.items():
            t0 = time.perf_counter()
            for _ in range(loops):
                _call(s, args)
            times[name].append((time.perf_counter() - t0) / loops)
    return {name: statistics.median(v) for name, v in times.items()}


def run(sizes, modes=("eager", "function", "xla"), repeats=15, inner=20, seed=0):
    """Returns rows ``(n, d, mode, {kernel: median seconds})``; checks the kernels agree first."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, d in sizes:
        reps = [rng.normal(size=(n, d)).astype(np.float32) for _ in range(3)]
        reps = [tf.constant(r / np.linalg.norm(r, axis=1, keepdims=True)) for r in reps]
        args = [tf.constant(LOGIT_SCALE, tf.float32)] + reps
        for mode in modes:
            steps = {name: _step(fn, mode) for name, fn in KERNELS.items()}
            values = [_call(s, args) for s in steps.values()]  # warm-up (tracing, compilation)
            if max(values) - min(values) > 1e-4 * max(1.0, abs(values[0])):
                raise AssertionError(f"kernels disagree at N={n}, d={d}, {mode}: {values}")
            loops = max(1, inner // 6) if mode == "eager" else inner
            rows.append((n, d, mode, _interleaved_medians(steps, args, repeats, loops)))
    return rows


def dispatch_floor(n=64, d=64, repeats=15, inner=50, seed=0):
    """Median seconds per call: trivial steps vs the CLIP step, polymorphic vs concrete call."""
    rng = np.random.default_rng(seed)
    reps = [tf.constant(rng.normal(size=(n, d)).astype(np.float32)) for _ in range(3)]
    args = [tf.constant(LOGIT_SCALE, tf.float32)] + reps

    def trivial(scale, *reps):
        return scale * 2.0, [scale] + [r * 2.0 for r in reps]

    clip_xla = _step(per_pair, "xla")
    steps = {
        "trivial step, tf.function": tf.function(trivial),
        "trivial step, XLA": tf.function(trivial, jit_compile=True),
        "CLIP step, XLA": clip_xla,
        "CLIP step, XLA, concrete function": clip_xla.get_concrete_function(*args),
    }
    for s in steps.values():
        _call(s, args)
    return _interleaved_medians(steps, args, repeats, inner)


def to_markdown(rows):
    lines = ["| N | d | mode | " + " | ".join(KERNELS) + " |", "|---|---|---|" + "---|" * len(KERNELS)]
    for n, d, mode, t in rows:
        lines.append(f"| {n} | {d} | {mode} | " + " | ".join(f"{1e3 * t[k]:.3f} ms" for k in KERNELS) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="64x64,128x64,256x64,64x256,128x256,256x256", help="Comma-separated NxD cells."
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--inner", type=int, default=20, help="Calls per timed repeat (graph modes).")
    parser.add_argument("--floor", action="store_true", help="Time the per-call floor at N = d = 64 instead.")
    args = parser.parse_args(argv)
    try:
        sizes = [tuple(int(v) for v in cell.lower().split("x")) for cell in args.sizes.split(",")]
        if any(len(c) != 2 or min(c) < 2 for c in sizes):
            raise ValueError
    except ValueError:
        parser.error(f"--sizes must look like 64x64,128x256 (N >= 2, d >= 2), got {args.sizes!r}")
    _import_tensorflow()
    if args.floor:
        floor = dispatch_floor(repeats=args.repeats, inner=args.inner)
        print("| call (N = d = 64, M = 3) | time |\n|---|---|")
        print("\n".join(f"| {name} | {1e3 * t:.3f} ms |" for name, t in floor.items()))
        return
    print(to_markdown(run(sizes, repeats=args.repeats, inner=args.inner)))


if __name__ == "__main__":
    main()
