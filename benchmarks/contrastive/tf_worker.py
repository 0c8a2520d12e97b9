"""The TensorFlow side: tf_mmcl's loss steps in every mode, timed, measured and trained.

Each public function is one worker task (``task`` a JSON dict; see ``protocol.WORKERS``).
TensorFlow is imported inside the functions, so the package stays importable without it.
"""

from __future__ import annotations

import math
import os
import time

from benchmarks.contrastive.common import LOGIT_SCALE, LOOP_MODES, make_reps, make_xor_data, progress
from benchmarks.contrastive.timing import CellTimer, peak_memory_of, time_cells, time_fn


def _tf_setup(threads, device):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError:  # runtime already initialised (in-process use)
            pass
    if device == "gpu" and not tf.config.list_physical_devices("GPU"):
        raise RuntimeError("--device=gpu but TensorFlow sees no GPU (install tensorflow[and-cuda]).")
    return tf


def _tf_device_name(device):
    return "/GPU:0" if device == "gpu" else "/CPU:0"


def _tf_loss_fn(loss, compute_dtype=None):
    import keras

    from tf_mmcl.losses import clip_loss, symile_loss
    from tf_mmcl.ops import mip
    from tf_mmcl.ops.symile_logits import joint_streamed_logsumexps

    if loss == "n":
        gen = keras.random.SeedGenerator(0)
        return lambda reps, s: symile_loss(reps, s, "n", seed=gen)
    if loss == "n_squared":
        return lambda reps, s: symile_loss(reps, s, "n_squared")
    if loss == "n_squared_joint":

        def joint(reps, s):
            lses = joint_streamed_logsumexps(reps, s, compute_dtype=compute_dtype)
            positive = s * mip(reps)
            import tensorflow as tf

            return tf.add_n([tf.reduce_mean(lse - positive) for lse in lses]) / len(reps)

        return joint
    if loss == "clip":
        return lambda reps, s: clip_loss(reps, s)
    raise ValueError(f"unknown loss {loss!r}")


def _tf_step(tf, loss, mode, compute_dtype=None):
    loss_fn = _tf_loss_fn(loss, compute_dtype)

    def step(scale, *reps):
        with tf.GradientTape() as tape:
            tape.watch([scale, *reps])
            value = loss_fn(list(reps), scale)
        return value, tape.gradient(value, [scale, *reps])

    if mode == "eager":
        return step
    if mode in LOOP_MODES:

        def steps(scale, stacked):
            # stacked: (K, M, N, d), K different batches. Every step's gradients are written out
            # (as the single-call step returns them), so no step's work can be pruned or shared.
            # parallel_iterations=1: in training, step i + 1 reads the weights step i updates, so
            # steps never overlap; here they are independent, and TF's default would run up to 10
            # of them at once (XLA runs loop iterations in order anyway).
            k = tf.shape(stacked)[0]

            def body(i, total, grads):
                value, g = step(scale, *tf.unstack(stacked[i], num=stacked.shape[1]))
                return i + 1, total + value, grads.write(i, tf.concat([tf.reshape(x, [-1]) for x in g], 0))

            _, total, grads = tf.while_loop(
                lambda i, *_: i < k,
                body,
                (tf.constant(0), tf.constant(0.0), tf.TensorArray(tf.float32, size=k)),
                parallel_iterations=1,
            )
            return total / tf.cast(k, tf.float32), [grads.stack()]

        return tf.function(steps, jit_compile=(mode == "xla_loop"))
    return tf.function(step, jit_compile=(mode == "xla"))


def _tf_call(tf, step, args, read_back=None):
    """One step; returns the loss value once every output is computed.

    On the CPU with TF's default synchronous execution the call returns only after the whole
    function (gradients included) ran, so, like the reference's harness (``backward()``, then the
    loss value), only the loss is read back; copying the gradients out as well cost ~3 % of a
    0.5 ms step. On a GPU, or with asynchronous execution, the call can return before the
    kernels finish: then every gradient is read back, which waits for them.
    """
    value, grads = step(*args)
    if read_back is None:
        read_back = _must_read_back(tf)
    if read_back:
        for g in grads:
            g.numpy()
    return float(value)


def _must_read_back(tf):
    on_cpu = not any(d.device_type == "GPU" for d in tf.config.get_visible_devices())
    return not (on_cpu and tf.config.experimental.get_synchronous_execution())


def tf_cell_timer(task):
    """A :class:`CellTimer` over tf_mmcl steps (the device and threads from ``task``)."""
    tf = _tf_setup(task.get("threads"), task.get("device", "cpu"))
    import numpy as np

    device = _tf_device_name(task.get("device", "cpu"))

    def load(cell):
        loss, m, n, d, mode = cell["loss"], cell["m"], cell["n"], cell["d"], cell["mode"]
        rec = dict(cell, impl="tf_mmcl")
        with tf.device(device):
            step = _tf_step(tf, loss, mode, cell.get("compute_dtype"))
            if mode in LOOP_MODES:
                k = int(cell["steps_per_call"])
                # Batch 0 is the single-call cells' batch; the others differ (seeds 1..K-1).
                stacked = np.stack([np.stack(make_reps(n, d, m, seed=i)) for i in range(k)])
                args = [tf.constant(LOGIT_SCALE, tf.float32), tf.constant(stacked)]
            else:
                k = 1
                rec.pop("steps_per_call", None)
                args = [tf.constant(LOGIT_SCALE, tf.float32)] + [tf.constant(r) for r in make_reps(n, d, m)]

        read_back = task.get("device", "cpu") != "cpu" or _must_read_back(tf)

        def call():
            with tf.device(device):
                return _tf_call(tf, step, args, read_back)

        return call, k, rec

    return CellTimer(load)


def tf_time_cells(task):
    return time_cells(tf_cell_timer(task), task, "tf_mmcl")


def tf_memory_cell(task):
    tf = _tf_setup(task.get("threads"), task.get("device", "cpu"))
    loss, m, n, d, mode = task["loss"], task["m"], task["n"], task["d"], task["mode"]
    rec = {"loss": loss, "m": m, "n": n, "d": d, "mode": mode, "impl": "tf_mmcl"}
    with tf.device(_tf_device_name(task.get("device", "cpu"))):
        args = [tf.constant(LOGIT_SCALE, tf.float32)] + [tf.constant(r) for r in make_reps(n, d, m)]
        step = _tf_step(tf, loss, mode)
        _tf_call(tf, step, args)  # warm-up: compile, allocate pools
        if task.get("device") == "gpu":
            tf.config.experimental.reset_memory_stats("GPU:0")
            _tf_call(tf, step, args)
            rec["peak_bytes"] = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            rec["method"] = "tf.config.experimental.get_memory_info('GPU:0')['peak'] (all live GPU buffers)"
        else:
            rec["peak_bytes"], rec["method"] = peak_memory_of(lambda: _tf_call(tf, step, args))
    return rec


def tf_matmul_rate(task):
    """FLOP/s of one square matmul per FLOP count (XLA-compiled, float32 or bfloat16 operands)."""
    tf = _tf_setup(task.get("threads"), task.get("device", "cpu"))
    out = []
    with tf.device(_tf_device_name(task.get("device", "cpu"))):
        for flops in task["flops"]:
            size = max(8, int(round((flops / 2.0) ** (1.0 / 3.0))))
            for dtype in task.get("dtypes", ["float32"]):
                a = tf.random.normal((size, size))
                b = tf.random.normal((size, size))
                if dtype == "bfloat16":
                    f = tf.function(
                        lambda x, y: tf.matmul(
                            tf.cast(x, tf.bfloat16), tf.cast(y, tf.bfloat16), output_type=tf.float32
                        ),
                        jit_compile=True,
                    )
                else:
                    f = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
                t = time_fn(lambda: f(a, b).numpy(), task["repeats"], task["min_time"])
                out.append(
                    {
                        "flops_target": flops,
                        "size": size,
                        "dtype": dtype,
                        "flops": 2.0 * size**3,
                        "median_s": t["median_s"],
                        "min_s": t["min_s"],
                        "flop_per_s": 2.0 * size**3 / t["median_s"],
                    }
                )
                progress(out[-1])
    return out


def tf_xor_throughput(task):
    tf = _tf_setup(task.get("threads"), task.get("device", "cpu"))
    import keras

    from tf_mmcl.losses import symile_loss

    bits, dim, batch, steps = task["bits"], task["dim"], task["batch"], task["steps"]
    data = make_xor_data(task["num_batches"], batch, bits)
    out = []
    for mode in task["modes"]:
        keras.utils.set_random_seed(0)
        with tf.device(_tf_device_name(task.get("device", "cpu"))):
            encoders = [keras.layers.Dense(dim, use_bias=True) for _ in range(3)]
            for e in encoders:
                e.build((None, bits))
            log_scale = keras.Variable(math.log(LOGIT_SCALE), name="log_scale")
            variables = [v for e in encoders for v in e.trainable_variables] + [log_scale]
            opt = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01)
            opt.build(variables)
            seed = keras.random.SeedGenerator(0)

            def train_step(a, b, c):
                with tf.GradientTape() as tape:
                    reps = [tf.math.l2_normalize(e(x), axis=1) for e, x in zip(encoders, (a, b, c))]
                    if task["sampling"] == "n":
                        value = symile_loss(reps, tf.exp(log_scale.value), "n", seed=seed)
                    else:
                        value = symile_loss(reps, tf.exp(log_scale.value), "n_squared")
                grads = tape.gradient(value, [v.value for v in variables])
                opt.apply(grads, variables)
                return value

            fn = train_step if mode == "eager" else tf.function(train_step, jit_compile=(mode == "xla"))
            batches = [[tf.constant(x[i]) for x in data] for i in range(task["num_batches"])]
            rec = {
                "impl": "tf_mmcl",
                "mode": mode,
                "batch": batch,
                "bits": bits,
                "dim": dim,
                "sampling": task["sampling"],
            }
            try:
                for i in range(2):  # warm-up (compilation)
                    float(fn(*batches[i % len(batches)]))
                t0 = time.perf_counter()
                for i in range(steps):
                    value = fn(*batches[i % len(batches)])
                float(value)
                elapsed = time.perf_counter() - t0
                rec.update(
                    {
                        "steps": steps,
                        "seconds": elapsed,
                        "examples_per_s": steps * batch / elapsed,
                        "final_loss": float(value),
                    }
                )
            except Exception as e:  # noqa: BLE001
                rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            out.append(rec)
            progress(rec)
    return out
