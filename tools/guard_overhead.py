#!/usr/bin/env python
"""Step time of ``model.fit`` with and without the divergence guard (``tf_mmcl.training.fit``).

``python tools/guard_overhead.py [--objectives=symile,gated_symile] [--rounds=5] [--steps=100]``

For each objective, the XOR benchmark model of ``configs/symile_xor_<objective>.py`` trains on
its benchmark data in ``--rounds`` interleaved pairs of ``fit`` calls (guard on, guard off), each
``--steps`` steps; a step's time is the wall time between consecutive ``on_train_batch_end``
calls (the first 10 steps of each call, tracing included, are left out). Prints the median step
time of each mode and their ratio (guarded / unguarded), as reported in docs/benchmarks.md.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_OBJECTIVES = flags.DEFINE_list("objectives", ["symile", "gated_symile"], "Objectives (configs/symile_xor_<x>.py).")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Interleaved (guard on, guard off) pairs of fit calls.")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per fit call.")
_JIT = flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
_WARMUP = 10


def _measure(objective, rounds, steps, jit_compile):
    import time

    import keras
    import numpy as np

    from tf_mmcl import training

    config = training.benchmark_config("symile_xor", objective)
    splits = training.build_dataset(config)
    data = training.train_inputs(splits.as_numpy("train"), splits.modalities)
    keras.utils.set_random_seed(0)
    model = training.build_model(config, splits.modalities)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate), jit_compile=jit_compile)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stamps = []

        def on_train_batch_end(self, batch, logs=None):
            self.stamps.append(time.perf_counter())

    times = {True: [], False: []}
    for r in range(rounds):
        for check in (True, False):
            timer = Timer()
            training.fit(model, data, batch_size=int(config.batch_size), epochs=1, steps_per_epoch=steps,
                         seed=r, check_finite=check, callbacks=[timer])
            times[check] += list(np.diff(timer.stamps[_WARMUP:]))
    on, off = float(np.median(times[True])), float(np.median(times[False]))
    return on, off


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print("| objective | step, guard on (ms) | step, guard off (ms) | ratio on/off |")
    print("|---|---|---|---|")
    for objective in _OBJECTIVES.value:
        on, off = _measure(objective, _ROUNDS.value, _STEPS.value, _JIT.value)
        print(f"| {objective}{' (XLA)' if _JIT.value else ''} | {on * 1e3:.2f} | {off * 1e3:.2f} | {on / off:.3f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
