#!/usr/bin/env python
"""Step time of ``model.fit`` with and without the divergence guard (``tf_mmcl.training.fit``).

``python tools/guard_overhead.py [--objectives=symile,gated_symile] [--rounds=5] [--steps=100]``

For each objective, the XOR benchmark model of ``configs/benchmark.py:symile_xor,<objective>`` trains on
its benchmark data in ``--rounds`` interleaved pairs of ``fit`` calls (guard on, guard off), each
``--steps`` steps. A call's step time is the time from its 10th to its last
``on_train_batch_end`` over the steps in between (tracing left out), both wall time and the
process's CPU time (all threads; robust to other processes on a shared machine). Prints the
median over rounds of each mode and their ratios (guarded / unguarded), as reported in
docs/benchmarks.md.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_OBJECTIVES = flags.DEFINE_list(
    "objectives", ["symile", "gated_symile"], "Objectives (configs/benchmark.py:symile_xor,<x>)."
)
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Interleaved (guard on, guard off) pairs of fit calls.")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per fit call.")
_JIT = flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
_WARMUP = 10
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _measure(objective, rounds, steps, jit_compile):
    import time

    import keras
    import numpy as np

    from tf_mmcl import training

    config = training.load_config_file(os.path.join(_REPO, "configs", "benchmark.py") + f":symile_xor,{objective}")
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
            self.stamps.append((time.perf_counter(), time.process_time()))

    times = {(check, clock): [] for check in (True, False) for clock in (0, 1)}
    for r in range(rounds):
        for check in (True, False):
            timer = Timer()
            training.fit(
                model,
                data,
                batch_size=int(config.batch_size),
                epochs=1,
                steps_per_epoch=steps,
                seed=r,
                check_finite=check,
                callbacks=[timer],
            )
            first, last = timer.stamps[_WARMUP], timer.stamps[-1]
            for clock in (0, 1):
                times[(check, clock)].append((last[clock] - first[clock]) / (len(timer.stamps) - 1 - _WARMUP))
    return {key: float(np.median(v)) for key, v in times.items()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print("| objective | wall ms/step on / off | ratio | CPU ms/step on / off | ratio |")
    print("|---|---|---|---|---|")
    for objective in _OBJECTIVES.value:
        t = _measure(objective, _ROUNDS.value, _STEPS.value, _JIT.value)
        print(
            f"| {objective}{' (XLA)' if _JIT.value else ''} | {t[(True, 0)] * 1e3:.2f} / {t[(False, 0)] * 1e3:.2f} "
            f"| {t[(True, 0)] / t[(False, 0)]:.3f} | {t[(True, 1)] * 1e3:.2f} / {t[(False, 1)] * 1e3:.2f} "
            f"| {t[(True, 1)] / t[(False, 1)]:.3f} |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
