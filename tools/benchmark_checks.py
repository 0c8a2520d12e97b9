#!/usr/bin/env python
"""Cost of the run-time input checks on the benchmark's training step (``docs/benchmarks.md``).

``python tools/benchmark_checks.py [--n 256] [--d 256] [--rounds 7] [--losses clip,n_squared,n]``

For each loss and mode (``tf.function``, XLA) it traces the benchmark's step (forward +
gradients w.r.t. every embedding and the logit scale, M = 3, L2-normalised Gaussian
embeddings, logit scale 1/0.07) twice: as the library runs it ("checked": unit-norm and
finiteness of every row, logit scale > 0, run-time batch sizes; one ``tf.debugging.Assert`` per
checked tensor, or the NaN poison under XLA) and with every run-time check removed at trace
time ("unchecked": ``tf_mmcl.ops.checks.PendingChecks.require`` made a no-op; the trace-time checks
cost nothing at run time). The two are timed interleaved (a sample of one, then of the other,
the first alternating between rounds); each sample is the median per-call time of a few calls.
Prints the median times and the ratio checked / unchecked (1.00 = free).
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_N = flags.DEFINE_integer("n", 256, "Batch size N.")
_D = flags.DEFINE_integer("d", 256, "Embedding width d.")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved rounds (samples per variant).")
_CALLS = flags.DEFINE_integer("calls", 5, "Calls per sample (its median is the sample).")
_LOSSES = flags.DEFINE_list("losses", ["clip", "n_squared", "n"], "Losses: clip, n_squared, n.")
_MODES = flags.DEFINE_list("modes", ["graph", "xla"], "Modes: graph (tf.function), xla (jit_compile=True).")


def _loss_fn(name):
    import keras

    from tf_mmcl.losses import clip_loss, symile_loss

    if name == "clip":
        return lambda reps, s: clip_loss(reps, s)
    if name == "n_squared":
        return lambda reps, s: symile_loss(reps, s, "n_squared")
    if name == "n":
        gen = keras.random.SeedGenerator(0)
        return lambda reps, s: symile_loss(reps, s, "n", seed=gen)
    raise app.UsageError(f"unknown loss {name!r}")


def _step(tf, name, mode, checked):
    from tf_mmcl.ops import checks

    loss_fn = _loss_fn(name)

    def step(scale, *reps):
        with tf.GradientTape() as tape:
            tape.watch([scale, *reps])
            value = loss_fn(list(reps), scale)
        return value, tape.gradient(value, [scale, *reps])

    fn = tf.function(step, jit_compile=(mode == "xla"))
    original = checks.PendingChecks.require

    @tf.autograph.experimental.do_not_convert
    def skip(self, *unused_args, **unused_kwargs):
        return None

    def trace(*args):
        if not checked:
            checks.PendingChecks.require = skip
        try:
            return fn.get_concrete_function(*args)
        finally:
            checks.PendingChecks.require = original

    return trace


def _sample(fn, args, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        value, _ = fn(*args)
        float(value)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    reps = []
    for _ in range(3):
        x = rng.normal(size=(_N.value, _D.value)).astype("float32")
        reps.append(tf.constant(x / np.linalg.norm(x, axis=1, keepdims=True)))
    args = (tf.constant(1.0 / 0.07),) + tuple(reps)
    print(
        f"N = {_N.value}, d = {_D.value}, M = 3; {_ROUNDS.value} interleaved rounds x {_CALLS.value} calls; "
        f"{tf.config.list_physical_devices()[-1].device_type}"
    )
    print(f"{'loss':10s} {'mode':6s} {'checked ms':>11s} {'unchecked ms':>13s} {'ratio':>6s}")
    for name in _LOSSES.value:
        for mode in _MODES.value:
            fns = {v: _step(tf, name, mode, v)(*args) for v in (True, False)}
            for fn in fns.values():  # warm-up: compilation, first-call costs
                for _ in range(2):
                    fn(*args)
            samples = {True: [], False: []}
            for r in range(_ROUNDS.value):
                order = (True, False) if r % 2 == 0 else (False, True)
                for v in order:
                    samples[v].append(_sample(fns[v], args, _CALLS.value))
            on, off = statistics.median(samples[True]) * 1e3, statistics.median(samples[False]) * 1e3
            print(f"{name:10s} {mode:6s} {on:11.3f} {off:13.3f} {on / off:6.3f}", flush=True)


if __name__ == "__main__":
    app.run(main)
