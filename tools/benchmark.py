"""Benchmark tf_mmcl's contrastive objectives against the reference implementations, same machine, one run.

Measured side by side:

* loss forward + backward time (gradients w.r.t. every embedding and the logit scale) of Symile
  ``"n"`` (M = 3 and 4), Symile ``"n_squared"`` (M = 3) and CLIP (M = 3), tf_mmcl in three modes
  (eager, ``tf.function``, ``tf.function(jit_compile=True)`` = XLA) against the reference
  ``symile`` package (torch) at N in ``--sizes``, d in ``--dims``. For ``"n_squared"`` two
  tf_mmcl rows: ``symile_loss`` as the library wires it (``n_squared``) and the same objective
  from the joint kernel ``tf_mmcl.ops.symile_logits.joint_streamed_logsumexps``
  (``n_squared_joint``: one shared pass over the logits for all anchors). CLIP's reference is
  the Gated Symile authors' ``losses.clip`` when ``--gated_symile_repo`` holds it (the
  ``symile`` package has no CLIP), else a minimal torch CLIP (labelled so in the output).
  For the short-step losses (``--loop_losses``, default ``n`` and CLIP) also the loop modes
  ``function_loop`` / ``xla_loop``: ``--steps_per_call`` (K) steps over K different batches in one
  call (a ``tf.while_loop``), as ``model.fit(steps_per_execution=K)`` runs training steps, reported
  per step; they show the loss without TF's fixed per-call cost, which the single-call modes pay
  every step;
* peak memory of one ``"n_squared"`` step, ours and the reference's, each in a fresh process
  (peak resident set size of the step over the resident set size just before it, after one
  warm-up step: ``/proc/self/clear_refs`` resets the high-water mark, ``VmHWM`` reads it; glibc's
  mmap threshold is pinned so that freed buffers leave the resident set on both sides);
* training throughput (examples/s) of the XOR benchmark model: one linear encoder per modality,
  L2 normalisation, a learned logit scale, AdamW, Symile loss, synthetic XOR data (a, b random
  bits, c = a XOR b), tf_mmcl (Keras) against a minimal torch loop with the reference loss;
* the roofline: the objective's FLOP/s against one square float32 matmul with the same FLOPs,
  same framework, same run;
* optional bfloat16 matmuls (float32 accumulation, logits and sums) in the joint kernel: speedup
  and relative loss error.

The torch side runs in a subprocess of ``--reference_python`` (a venv with torch and the
``symile`` package; our venv has no torch). Without it the tool says so and reports our numbers
only. Outputs: ``--output_json`` (all numbers), ``--output_md`` (ratio tables, machine, method)
and ``--plot`` (log-log time against N).

GPU column: ``tools/benchmark.py --device=gpu --skip_reference --output_json=gpu.json`` on a
machine with a GPU build of TensorFlow; then ``--gpu_json=gpu.json`` on the CPU run adds it (``--from_json=cpu.json`` rewrites the report
from a saved CPU run without measuring again).

This file is also the worker: ``--worker=tf|torch --task=JSON`` runs one task and prints its
result as the last line of JSON; the task ``serve`` (the time table) answers one JSON command per
line on stdin instead (prepare a cell, take a sample, quit). It imports only the standard library at module level so the
reference interpreter (no TensorFlow) can run it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_REFERENCE_PYTHON = "/tmp/refvenv/bin/python"
DEFAULT_GATED_SYMILE_REPO = "/tmp/gs"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (loss, M): the loss cells of the time table.
LOSS_CELLS = (("n_squared", 3), ("n_squared_joint", 3), ("n", 3), ("n", 4), ("clip", 3))
MODES = ("eager", "function", "xla")
# K training steps per call (a tf.while_loop over K different batches inside one tf.function), as
# ``model.fit(steps_per_execution=K)`` runs them: TF's fixed per-call cost is paid once per K steps.
LOOP_MODES = ("function_loop", "xla_loop")
ALL_MODES = MODES + LOOP_MODES
RESULT_MARK = "BENCHMARK_RESULT "
LOGIT_SCALE = 1.0 / 0.07


# ----------------------------------------------------------------------------- shared helpers

def make_reps(n, d, m, seed=0):
    """M (N, d) float32 L2-normalised Gaussian embeddings, identical on both sides."""
    import numpy as np
    rng = np.random.default_rng(seed + 1000 * n + d + 7 * m)
    out = []
    for _ in range(m):
        x = rng.normal(size=(n, d))
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32"))
    return out


def make_xor_data(num_batches, batch, bits, seed=0):
    """Synthetic XOR triples: a, b uniform random bits, c = a XOR b; float32 {0, 1}."""
    import numpy as np
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, size=(num_batches, batch, bits))
    b = rng.integers(0, 2, size=(num_batches, batch, bits))
    return [x.astype("float32") for x in (a, b, np.bitwise_xor(a, b))]


def objective_flops(loss, n, d, m):
    """Matmul FLOPs of forward + backward as the reference computes the objective.

    ``n_squared``: per anchor a (N, d) x (d, N^(M-1)) logit matmul forward and two such
    products backward: 6 M N^M d (18 N^3 d for M = 3). ``n``: 6 M N^2 d. CLIP: 6 N^2 d per pair.
    """
    if loss.startswith("n_squared"):
        return 6.0 * m * n ** m * d
    if loss == "n":
        return 6.0 * m * n ** 2 * d
    return 6.0 * (m * (m - 1) // 2) * n ** 2 * d


def executed_flops(loss, n, d, m):
    """Matmul FLOPs our implementation executes (the streamed kernels recompute in the backward)."""
    if loss in ("n_squared", "n_squared_joint"):
        # symile_loss calls the joint kernel: one logit pass forward, recompute + two products backward
        return 8.0 * n ** m * d
    return objective_flops(loss, n, d, m)


def _proc_status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_memory_of(fn):
    """Runs ``fn`` and returns (peak RSS during it minus RSS before it in bytes, method)."""
    gc.collect()
    try:
        before = _proc_status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        fn()
        peak = _proc_status_kib("VmHWM")
        return (peak - before) * 1024, "VmHWM after clear_refs minus VmRSS"
    except (OSError, KeyError):
        import resource
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, "ru_maxrss increase"


def time_fn(fn, repeats, min_time):
    """Per-call seconds of ``fn`` (the matmul roofline cells): :class:`CellTimer`'s warm-up and
    calibration, then ``repeats`` samples of about ``min_time`` each."""
    rec = timed_record(CellTimer(lambda _: (fn, 1, {})), {}, repeats, 0.0, min_time)
    rec.pop("loss_value")  # fn's output (a matrix), not a loss
    return rec


class CellTimer:
    """One prepared cell, timed sample by sample (the time table's unit of work).

    ``prepare`` makes the step, runs it once (tracing, XLA compilation), then keeps running it for
    ``warmup_s`` (at least one more call) so that samples see the steady state of a training run,
    not a process's first calls (allocator pools and thread pools still settling). The last
    warm-up call calibrates the loop: a sample runs ``inner`` calls and lasts about ``min_time``.
    ``sample`` returns seconds per training step (a loop mode's call time / its steps per call).
    """

    def __init__(self, load):
        self._load = load  # cell -> (call, steps per call, extra record fields)
        self._call = None

    def prepare(self, cell, warmup_s, min_time):
        self._call = None
        gc.collect()
        call, self._k, rec = self._load(cell)
        t0 = time.perf_counter()
        rec["loss_value"] = call()
        rec["first_call_s"] = time.perf_counter() - t0
        start, calls, last = time.perf_counter(), 0, 0.0
        while calls < 1 or time.perf_counter() - start < warmup_s:
            t0 = time.perf_counter()
            call()
            last = time.perf_counter() - t0
            calls += 1
        rec["warmup_calls"] = calls
        rec["inner"] = 1 if last >= min_time else max(1, int(min_time / max(last, 1e-6)))
        rec["call_s"] = last
        self._call = call
        return rec

    def sample(self, inner):
        t0 = time.perf_counter()
        for _ in range(inner):
            self._call()
        return (time.perf_counter() - t0) / inner / self._k


def timed_record(timer, cell, samples, warmup_s, min_time):
    """Prepare ``cell`` on ``timer`` and take ``samples`` samples: the "time" task's record."""
    rec = timer.prepare(cell, warmup_s, min_time)
    rec["samples_s"] = [timer.sample(rec["inner"]) for _ in range(samples)]
    return finish_record(rec)


def finish_record(rec):
    """Median and minimum over ``samples_s``, and the per-call time of a loop mode."""
    rec["median_s"] = statistics.median(rec["samples_s"])
    rec["min_s"] = min(rec["samples_s"])
    if rec.get("steps_per_call"):
        rec["per_call_s"] = rec["median_s"] * rec["steps_per_call"]
    return rec


def machine_info():
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["cpu_flags_of_interest"] = sorted(
            f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx512_vnni", "avx2", "fma")))
        info["amx"] = any(f.startswith("amx") for f in flags)
    except OSError:
        pass
    try:
        info["memory_gib"] = round(_proc_meminfo_kib("MemTotal") / 2 ** 20, 1)
    except (OSError, KeyError):
        pass
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def _proc_meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _emit(result):
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- TensorFlow side

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

            _, total, grads = tf.while_loop(lambda i, *_: i < k, body,
                                            (tf.constant(0), tf.constant(0.0), tf.TensorArray(tf.float32, size=k)),
                                            parallel_iterations=1)
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


def _time_cells(timer, task, impl, mode=None):
    out = []
    for cell in task["cells"]:
        try:
            rec = timed_record(timer, cell, cell["repeats"], task.get("warmup_s", 0.0), task["min_time"])
        except Exception as e:  # noqa: BLE001 - report, keep going
            rec = dict(cell, impl=impl, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            if mode:
                rec["mode"] = mode
        out.append(rec)
        _progress(rec)
    return out


def tf_time_cells(task):
    return _time_cells(tf_cell_timer(task), task, "tf_mmcl")


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
                    f = tf.function(lambda x, y: tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(y, tf.bfloat16),
                                                           output_type=tf.float32), jit_compile=True)
                else:
                    f = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=True)
                t = time_fn(lambda: f(a, b).numpy(), task["repeats"], task["min_time"])
                out.append({"flops_target": flops, "size": size, "dtype": dtype, "flops": 2.0 * size ** 3,
                            "median_s": t["median_s"], "min_s": t["min_s"],
                            "flop_per_s": 2.0 * size ** 3 / t["median_s"]})
                _progress(out[-1])
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
            rec = {"impl": "tf_mmcl", "mode": mode, "batch": batch, "bits": bits, "dim": dim,
                   "sampling": task["sampling"]}
            try:
                for i in range(2):  # warm-up (compilation)
                    float(fn(*batches[i % len(batches)]))
                t0 = time.perf_counter()
                for i in range(steps):
                    value = fn(*batches[i % len(batches)])
                float(value)
                elapsed = time.perf_counter() - t0
                rec.update({"steps": steps, "seconds": elapsed, "examples_per_s": steps * batch / elapsed,
                            "final_loss": float(value)})
            except Exception as e:  # noqa: BLE001
                rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            out.append(rec)
            _progress(rec)
    return out


# ----------------------------------------------------------------------------- torch side

def _torch_setup(task):
    import torch
    if task.get("threads"):
        torch.set_num_threads(task["threads"])
    return torch


def _torch_loss_fn(loss, gated_symile_repo):
    """(fn, source) for the reference loss; fn(reps, scale) -> scalar tensor."""
    import symile
    import torch
    import torch.nn.functional as F
    if loss in ("n", "n_squared", "n_squared_joint"):
        obj = symile.Symile("n_squared" if loss.startswith("n_squared") else "n")
        return obj, "symile.Symile (symile==%s)" % getattr(symile, "__version__", "?")
    if loss == "clip":
        if gated_symile_repo and os.path.isfile(os.path.join(gated_symile_repo, "losses", "clip.py")):
            sys.path.insert(0, gated_symile_repo)
            from losses.clip import clip as gs_clip

            def f(reps, s):
                if len(reps) != 3:
                    raise ValueError("the reference CLIP takes three modalities")
                return gs_clip(*reps, s)
            return f, "Gated Symile losses.clip"

        def minimal_clip(reps, s):  # pairwise symmetric InfoNCE, torch primitives only
            labels = torch.arange(reps[0].shape[0])
            terms = []
            for i in range(len(reps)):
                for j in range(i + 1, len(reps)):
                    logits = s * reps[i] @ reps[j].T
                    terms.append(0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)))
            return sum(terms) / len(terms)
        return minimal_clip, "minimal torch CLIP (no reference CLIP found)"
    raise ValueError(loss)


def _torch_step(torch, loss_fn, scale, reps):
    scale.grad = None
    for r in reps:
        r.grad = None
    value = loss_fn(reps, scale)
    value.backward()
    return float(value.detach())


def _torch_inputs(torch, n, d, m):
    reps = [torch.tensor(r).requires_grad_(True) for r in make_reps(n, d, m)]
    return torch.tensor(LOGIT_SCALE, dtype=torch.float32, requires_grad=True), reps


def torch_cell_timer(task):
    """A :class:`CellTimer` over the reference's steps."""
    torch = _torch_setup(task)

    def load(cell):
        rec = dict(cell, impl="reference", mode="torch")
        loss_fn, rec["source"] = _torch_loss_fn(cell["loss"], task.get("gated_symile_repo"))
        scale, reps = _torch_inputs(torch, cell["n"], cell["d"], cell["m"])
        return (lambda: _torch_step(torch, loss_fn, scale, reps)), 1, rec

    return CellTimer(load)


def torch_time_cells(task):
    return _time_cells(torch_cell_timer(task), task, "reference", "torch")


def torch_memory_cell(task):
    torch = _torch_setup(task)
    rec = {"loss": task["loss"], "m": task["m"], "n": task["n"], "d": task["d"], "mode": "torch", "impl": "reference"}
    loss_fn, rec["source"] = _torch_loss_fn(task["loss"], task.get("gated_symile_repo"))
    scale, reps = _torch_inputs(torch, task["n"], task["d"], task["m"])
    _torch_step(torch, loss_fn, scale, reps)  # warm-up, as on our side
    rec["peak_bytes"], rec["method"] = peak_memory_of(lambda: _torch_step(torch, loss_fn, scale, reps))
    return rec


def torch_matmul_rate(task):
    torch = _torch_setup(task)
    out = []
    for flops in task["flops"]:
        size = max(8, int(round((flops / 2.0) ** (1.0 / 3.0))))
        a, b = torch.randn(size, size), torch.randn(size, size)
        t = time_fn(lambda: a @ b, task["repeats"], task["min_time"])
        out.append({"flops_target": flops, "size": size, "dtype": "float32", "flops": 2.0 * size ** 3,
                    "median_s": t["median_s"], "min_s": t["min_s"], "flop_per_s": 2.0 * size ** 3 / t["median_s"]})
    return out


def torch_xor_throughput(task):
    torch = _torch_setup(task)
    import symile
    import torch.nn.functional as F
    torch.manual_seed(0)
    bits, dim, batch, steps = task["bits"], task["dim"], task["batch"], task["steps"]
    data = [torch.tensor(x) for x in make_xor_data(task["num_batches"], batch, bits)]
    encoders = torch.nn.ModuleList([torch.nn.Linear(bits, dim, bias=True) for _ in range(3)])
    log_scale = torch.nn.Parameter(torch.tensor(math.log(LOGIT_SCALE)))
    opt = torch.optim.AdamW(list(encoders.parameters()) + [log_scale], lr=1e-3, weight_decay=0.01)
    loss_obj = symile.Symile(task["sampling"])

    def step(i):
        opt.zero_grad(set_to_none=True)
        reps = [F.normalize(e(x[i % task["num_batches"]]), dim=1) for e, x in zip(encoders, data)]
        value = loss_obj(reps, log_scale.exp())
        value.backward()
        opt.step()
        return value

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        value = step(i)
    value = float(value.detach())
    elapsed = time.perf_counter() - t0
    return [{"impl": "reference", "mode": "torch", "batch": batch, "bits": bits, "dim": dim,
             "sampling": task["sampling"], "steps": steps, "seconds": elapsed,
             "examples_per_s": steps * batch / elapsed, "final_loss": value}]


def torch_versions(task):
    torch = _torch_setup(task)
    import symile
    return {"torch": torch.__version__, "symile": getattr(symile, "__version__", "?"),
            "torch_threads": torch.get_num_threads()}


WORKERS = {
    "tf": {"time": tf_time_cells, "memory": tf_memory_cell, "matmul": tf_matmul_rate, "xor": tf_xor_throughput},
    "torch": {"time": torch_time_cells, "memory": torch_memory_cell, "matmul": torch_matmul_rate,
              "xor": torch_xor_throughput, "versions": torch_versions},
}

_VERBOSE = [False]


def _progress(rec):
    if _VERBOSE[0] or os.environ.get("BENCHMARK_VERBOSE"):
        sys.stderr.write("  " + json.dumps({k: v for k, v in rec.items() if k != "samples_s"}) + "\n")
        sys.stderr.flush()


TIMERS = {"tf": tf_cell_timer, "torch": torch_cell_timer}


def serve(timer, task, lines, reply):
    """The "serve" task: prepare cells and take samples on request, one JSON command per line.

    Commands: ``{"op": "prepare", "cell": {...}}`` (replies with the cell's record, or its
    error), ``{"op": "sample", "inner": k}`` (replies ``{"s": seconds per step}``),
    ``{"op": "quit"}``. The orchestrator keeps one such worker per implementation and mode alive
    during a round and alternates samples between them (:func:`interleaved_rounds`).
    """
    for line in lines:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "prepare":
                reply(timer.prepare(cmd["cell"], task.get("warmup_s", 0.0), task["min_time"]))
            elif cmd["op"] == "sample":
                reply({"s": timer.sample(int(cmd["inner"]))})
            elif cmd["op"] == "quit":
                return
            else:
                reply({"error": f"unknown op {cmd['op']!r}"})
        except Exception as e:  # noqa: BLE001 - report, keep serving
            reply({"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"})


def worker_main(kind, task):
    if kind == "tf" and REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    if task.get("memory_limit_bytes"):
        import resource
        lim = int(task["memory_limit_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    if task["task"] == "serve":
        serve(TIMERS[kind](task), task, sys.stdin, _emit)
        return
    _emit(WORKERS[kind][task["task"]](task))


# ----------------------------------------------------------------------------- orchestration

class Runner:
    """Runs worker tasks: TF in a subprocess of this interpreter (or in-process), torch in the
    reference interpreter. Each call is one task; a failed or timed-out one returns an error."""

    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ)
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.env["PYTHONPATH"] = REPO_ROOT + os.pathsep + self.env.get("PYTHONPATH", "")

    def _task(self, task):
        return dict(task, threads=self.args.threads, device=self.args.device, min_time=self.args.min_time,
                    warmup_s=self.args.warmup)

    def _command(self, kind, task):
        python = sys.executable if kind == "tf" else self.args.reference_python
        cmd = [python, os.path.abspath(__file__), f"--worker={kind}", "--task=" + json.dumps(task)]
        env = dict(self.env)
        if task["task"] == "memory":
            # Freed large buffers return to the OS on both sides, so RSS deltas mean the same thing.
            # Memory runs only: a pinned mmap threshold makes every large allocation fault in fresh
            # pages, which slows allocation-heavy code (the reference most) and would skew timings.
            env["MALLOC_MMAP_THRESHOLD_"] = "131072"
        return cmd, env

    def failure(self, kind, returncode, tail):
        """The error record of a worker that exited without a result."""
        if returncode < 0 or any("MemoryError" in t or "can't allocate" in t or "bad_alloc" in t
                                 or "out of memory" in t.lower() for t in tail):
            return {"error": "out of memory" + (f" (limit {self.args.reference_memory_limit_gb} GiB)"
                                                if kind == "torch" else "") + f": {' | '.join(tail)[:300]}"}
        return {"error": f"worker exited {returncode}: {' | '.join(tail)[:300]}"}

    def run(self, kind, task, timeout=None):
        task = self._task(task)
        if kind == "tf" and self.args.in_process:
            try:
                return WORKERS["tf"][task["task"]](task)
            except Exception as e:  # noqa: BLE001
                return {"error": f"{type(e).__name__}: {e}"}
        cmd, env = self._command(kind, task)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd=REPO_ROOT)
        except subprocess.TimeoutExpired:
            return {"error": f"timeout after {timeout} s"}
        if _VERBOSE[0]:
            sys.stderr.write(proc.stderr[-3000:] if proc.returncode else "")
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK):])
        return self.failure(kind, proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-3:])

    def served(self, kind, task):
        """A worker in "serve" mode (in this process for TF with ``--in_process``)."""
        task = self._task(dict(task, task="serve"))
        if kind == "tf" and self.args.in_process:
            return InProcessWorker(tf_cell_timer(task), task)
        return ServedWorker(self, kind, task)


class InProcessWorker:
    """The "serve" protocol answered by a timer in this process (tests)."""

    def __init__(self, timer, task):
        self.timer, self.task = timer, task

    def ask(self, cmd, timeout=None):
        replies = []
        serve(self.timer, self.task, [json.dumps(cmd)], replies.append)
        return replies[0]

    def close(self):
        pass


class ServedWorker:
    """A worker process in "serve" mode: one JSON command per line in, one result line out.

    Started on the first command; a worker that dies or times out answers that command with an
    error and is started afresh by the next ``prepare``.
    """

    def __init__(self, runner, kind, task):
        self.runner, self.kind, self.task = runner, kind, task
        self.proc, self.err, self.buf = None, None, b""

    def _start(self):
        cmd, env = self.runner._command(self.kind, self.task)
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     env=env, cwd=REPO_ROOT)
        self.buf = b""

    def _died(self):
        code = self.proc.wait()
        self.err.seek(0)
        tail = self.err.read().decode(errors="replace").strip().splitlines()[-3:]
        self.close()
        return self.runner.failure(self.kind, code, tail)

    def ask(self, cmd, timeout):
        if self.proc is None:
            if cmd["op"] != "prepare":
                return {"error": "worker not running (it failed earlier in this cell)"}
            self._start()
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            return self._died()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:  # own line buffer: select() on a buffered reader can miss lines already read
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(RESULT_MARK):
                    return json.loads(text[len(RESULT_MARK):])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                return {"error": f"timeout after {timeout} s"}
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return self._died()
                self.buf += chunk

    def close(self):
        if self.proc is not None:
            try:
                if self.proc.poll() is None:
                    self.proc.stdin.write((json.dumps({"op": "quit"}) + "\n").encode())
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.err.close()
        self.proc = None


def interleaved_rounds(runner, participants, cells, rounds, samples, long_call, timeout, say=None):
    """The time table: per round, one live worker per participant, samples alternated per cell.

    ``participants``: ``(kind, mode, task, covers)`` with ``covers(cell)`` the participant's version
    of a cell, or None when it does not time it. In each round every participant gets a fresh
    worker; for each cell, every participant prepares (and warms up) its step, then they take turns,
    one sample each, ``samples`` times (once when a call lasts ``long_call`` seconds or more),
    starting with a different participant each turn. Load that drifts over seconds then hits all
    sides alike, within a cell; the rounds (the reference first in odd rounds and last in even
    ones) average over processes. Returns every round's records; :func:`merge_rounds` takes the
    medians.
    """
    records = []
    for r in range(rounds):
        order = participants if r % 2 == 0 else participants[::-1]
        workers = [runner.served(kind, task) for kind, _, task, _ in order]
        try:
            for cell in cells:
                live = []
                for (kind, mode, _, covers), worker in zip(order, workers):
                    c = covers(cell)
                    if c is None:
                        continue
                    rec = worker.ask({"op": "prepare", "cell": c}, timeout)
                    if "error" in rec:
                        impl = "reference" if kind == "torch" else "tf_mmcl"
                        records.append(dict(c, mode=mode, impl=impl, error=rec["error"]))
                        continue
                    rec["samples_s"] = []
                    live.append((worker, rec, 1 if rec["call_s"] >= long_call else samples))
                for turn in range(max((k for _, _, k in live), default=0)):
                    shift = turn % len(live)
                    for worker, rec, k in live[shift:] + live[:shift]:
                        if len(rec["samples_s"]) >= k or "error" in rec:
                            continue
                        out = worker.ask({"op": "sample", "inner": rec["inner"]}, timeout)
                        if "error" in out:
                            rec["error"] = out["error"]
                        else:
                            rec["samples_s"].append(out["s"])
                for _, rec, _ in live:
                    if rec["samples_s"]:
                        rec.pop("error", None)  # a later failure: the samples taken stand
                        finish_record(rec)
                    records.append(rec)
                    _progress(rec)
                if say:
                    say(f"round {r + 1}/{rounds}: {cell['loss']} M={cell['m']} N={cell['n']} d={cell['d']}: " + ", ".join(
                        f"{rec.get('mode')} {rec['median_s'] * 1e3:.3g} ms" if "median_s" in rec else
                        f"{rec.get('mode')} failed" for _, rec, _ in live))
        finally:
            for worker in workers:
                worker.close()
    return records


def reference_available(args):
    """(available, message)."""
    if args.skip_reference:
        return False, "reference skipped (--skip_reference)"
    py = args.reference_python
    if not py or not os.path.exists(py):
        return False, (f"reference python {py!r} not found: reporting tf_mmcl numbers only (create it with "
                       "`python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 "
                       "symile==0.1.0 numpy`, then pass --reference_python=/tmp/refvenv/bin/python)")
    try:
        proc = subprocess.run([py, "-c", "import torch, symile, numpy"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"reference python {py!r} unusable ({e}): reporting tf_mmcl numbers only"
    if proc.returncode:
        return False, (f"reference python {py!r} cannot import torch, symile and numpy "
                       f"({proc.stderr.strip().splitlines()[-1:]}): reporting tf_mmcl numbers only")
    return True, f"reference: {py}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    strs = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--sizes", type=ints, default=[64, 128, 256, 512], help="batch sizes N")
    p.add_argument("--dims", type=ints, default=[64, 256], help="embedding sizes d")
    p.add_argument("--losses", type=strs, default=[f"{l}:{m}" for l, m in LOSS_CELLS],
                   help="loss:M cells, e.g. n_squared:3,n:4,clip:3")
    p.add_argument("--modes", type=strs, default=list(MODES), help="tf_mmcl modes: eager,function,xla")
    p.add_argument("--loop_modes", type=strs, default=list(LOOP_MODES),
                   help="tf_mmcl modes running --steps_per_call steps per call: function_loop,xla_loop")
    p.add_argument("--steps_per_call", type=int, default=16,
                   help="steps per call of the loop modes (model.fit's steps_per_execution)")
    p.add_argument("--loop_losses", type=strs, default=["n", "clip"],
                   help="losses timed in the loop modes (the short steps, where TF's per-call cost shows)")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds of the time table (--samples interleaved samples per cell and round; medians "
                        "reported), and timed repeats of the matmul and bfloat16 cells")
    p.add_argument("--min_time", type=float, default=0.05, help="seconds per sample (short calls loop)")
    p.add_argument("--samples", type=int, default=3,
                   help="interleaved samples per cell, implementation and round (time table)")
    p.add_argument("--warmup", type=float, default=0.2,
                   help="seconds of untimed calls after the first call of a cell (steady state)")
    p.add_argument("--long_call", type=float, default=1.0,
                   help="calls this long (seconds) get one sample per round")
    p.add_argument("--large_n", type=ints, default=[1024],
                   help="extra N for n_squared (d = max(--dims)), where the reference runs out of memory/time")
    p.add_argument("--large_modes", type=strs, default=["xla"], help="tf_mmcl modes for --large_n")
    p.add_argument("--large_repeats", type=int, default=1, help="timed repeats of the --large_n cells")
    p.add_argument("--memory_sizes", type=ints, default=None, help="N for the memory table (default: --sizes)")
    p.add_argument("--memory_mode", default="xla", help="tf_mmcl mode of the memory table")
    p.add_argument("--memory_losses", type=strs, default=["n_squared", "n_squared_joint"])
    p.add_argument("--skip_memory", action="store_true")
    p.add_argument("--xor_batch", type=int, default=256)
    p.add_argument("--xor_bits", type=int, default=32, help="XOR input bits d_v")
    p.add_argument("--xor_dim", type=int, default=128, help="XOR representation size d_r")
    p.add_argument("--xor_steps", type=int, default=20)
    p.add_argument("--xor_sampling", default="n_squared", choices=["n", "n_squared"])
    p.add_argument("--xor_modes", type=strs, default=["function", "xla"])
    p.add_argument("--skip_xor", action="store_true")
    p.add_argument("--roofline_n", type=int, default=256)
    p.add_argument("--roofline_d", type=int, default=256)
    p.add_argument("--skip_roofline", action="store_true")
    p.add_argument("--bf16", dest="bf16", action="store_true", default=True,
                   help="measure bfloat16 matmuls in the joint kernel (default on)")
    p.add_argument("--no_bf16", dest="bf16", action="store_false")
    p.add_argument("--reference_python", default=os.environ.get("REFERENCE_PYTHON", DEFAULT_REFERENCE_PYTHON))
    p.add_argument("--gated_symile_repo", default=DEFAULT_GATED_SYMILE_REPO,
                   help="checkout holding the Gated Symile authors' losses/clip.py (reference CLIP)")
    p.add_argument("--skip_reference", action="store_true")
    p.add_argument("--reference_timeout", type=float, default=300.0, help="seconds per reference cell group")
    p.add_argument("--reference_memory_limit_gb", type=float, default=10.0,
                   help="address-space cap of the reference subprocesses (keeps a shared machine alive)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads, both frameworks")
    p.add_argument("--in_process", action="store_true", help="run the TF side in this process (tests)")
    p.add_argument("--output_json", default=None)
    p.add_argument("--output_md", default=None, help="e.g. docs/benchmarks.md")
    p.add_argument("--plot", default=None, help="e.g. docs/plots/benchmark_time_vs_n.png")
    p.add_argument("--gpu_json", default=None, help="JSON of a --device=gpu run: adds the GPU column")
    p.add_argument("--from_json", default=None,
                   help="regenerate --output_md / --plot from a previous --output_json instead of measuring")
    p.add_argument("--shared_machine", default="auto", choices=["auto", "yes", "no"],
                   help="say in the doc that other jobs ran (auto: from the load average)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--task", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "gpu":
        args.skip_reference = True
    bad = [m for m in args.modes if m not in MODES] + [m for m in args.loop_modes if m not in LOOP_MODES]
    if bad:
        p.error(f"unknown mode(s) {bad}: --modes takes {','.join(MODES)}; --loop_modes {','.join(LOOP_MODES)}")
    if args.steps_per_call < 2:
        p.error("--steps_per_call must be >= 2 (one step per call is what --modes measure)")
    if args.samples < 1 or args.warmup < 0 or args.min_time < 0:
        p.error("--samples must be >= 1, --warmup and --min_time >= 0")
    return args


def _loss_cells(args):
    cells = []
    for spec in args.losses:
        loss, _, m = spec.partition(":")
        cells.append((loss, int(m or 3)))
    return cells


def run_benchmark(args):
    _VERBOSE[0] = args.verbose
    runner = Runner(args)
    res = {"machine": machine_info(), "config": {k: v for k, v in vars(args).items() if k not in ("worker", "task")},
           "notes": []}
    ref_ok, ref_msg = reference_available(args)
    res["reference"] = {"available": ref_ok, "message": ref_msg}
    if not ref_ok and not args.skip_reference:
        print(f"[benchmark] {ref_msg}", file=sys.stderr)
    ref_task = {"gated_symile_repo": args.gated_symile_repo,
                "memory_limit_bytes": int(args.reference_memory_limit_gb * 2 ** 30)}
    if ref_ok:
        res["reference"].update(runner.run("torch", dict(ref_task, task="versions"), timeout=120))
    res["tf_versions"] = _tf_versions(runner, args)
    say = lambda s: print(f"[benchmark] {s}", file=sys.stderr, flush=True)  # noqa: E731

    # 1. time table: --repeats rounds of interleaved samples (see interleaved_rounds).
    cells = []
    for loss, m in _loss_cells(args):
        for d in args.dims:
            for n in args.sizes:
                cells.append({"loss": loss, "m": m, "n": n, "d": d})
    large = [{"loss": loss, "m": m, "n": n, "d": max(args.dims), "repeats": args.large_repeats,
              "large": True}
             for n in args.large_n for loss, m in _loss_cells(args) if loss.startswith("n_squared")]

    def covers(mode):
        def f(cell):
            if mode in LOOP_MODES:
                return dict(cell, mode=mode, steps_per_call=args.steps_per_call) if cell["loss"] in args.loop_losses else None
            return dict(cell, mode=mode)
        return f

    participants = [("tf", mode, {}, covers(mode)) for mode in list(args.modes) + list(args.loop_modes)]
    if ref_ok:  # n_squared_joint is the same objective as n_squared on the reference side
        participants.insert(0, ("torch", "torch", ref_task,
                                lambda c: None if c["loss"] == "n_squared_joint" else dict(c)))
    measured = interleaved_rounds(runner, participants, cells, max(1, args.repeats), args.samples,
                                  args.long_call, args.reference_timeout, say)
    timings = merge_rounds(measured)
    for mode in args.large_modes:
        for c in large:
            say(f"tf_mmcl {mode} large N={c['n']} {c['loss']}")
            out = runner.run("tf", {"task": "time", "cells": [dict(c, mode=mode)]})
            timings += out if isinstance(out, list) else [dict(c, mode=mode, impl="tf_mmcl", **out)]
    for c in large if ref_ok else ():
        if c["loss"] == "n_squared_joint":
            continue
        say(f"reference large N={c['n']}")  # its own subprocess: memory cap, timeout
        out = runner.run("torch", dict(ref_task, task="time", cells=[c]), timeout=args.reference_timeout)
        timings += out if isinstance(out, list) else [dict(c, mode="torch", impl="reference", **out)]
    res["timings"] = timings

    # 2. memory
    if not args.skip_memory:
        mem = []
        sizes = args.memory_sizes or sorted(set(args.sizes + list(args.large_n)))
        d = max(args.dims)
        for n in sizes:
            for loss in args.memory_losses:
                say(f"memory tf_mmcl {loss} N={n}")
                out = runner.run("tf", {"task": "memory", "loss": loss, "m": 3, "n": n, "d": d, "mode": args.memory_mode})
                mem.append(out if "peak_bytes" in out else dict(out, loss=loss, m=3, n=n, d=d, impl="tf_mmcl"))
            if ref_ok:
                say(f"memory reference N={n}")
                out = runner.run("torch", dict(ref_task, task="memory", loss="n_squared", m=3, n=n, d=d),
                                 timeout=args.reference_timeout)
                mem.append(out if "peak_bytes" in out else dict(out, loss="n_squared", m=3, n=n, d=d, impl="reference"))
        res["memory"] = mem

    # 3. roofline: matmul rates at the objective's FLOPs
    if not args.skip_roofline:
        n, d = args.roofline_n, args.roofline_d
        flops = objective_flops("n_squared", n, d, 3)
        say("matmul roofline")
        res["matmul"] = {"tf_mmcl": runner.run("tf", {"task": "matmul", "flops": [flops], "repeats": args.repeats,
                                                      "dtypes": ["float32", "bfloat16"] if args.bf16 else ["float32"]})}
        if ref_ok:
            res["matmul"]["reference"] = runner.run("torch", dict(ref_task, task="matmul", flops=[flops],
                                                                  repeats=args.repeats), timeout=600)

    # 4. bfloat16 joint kernel
    if args.bf16 and "xla" in args.modes:
        bcells = [{"loss": "n_squared_joint", "m": 3, "n": n, "d": max(args.dims), "repeats": args.repeats,
                   "mode": "xla", "compute_dtype": "bfloat16"} for n in args.sizes]
        say("bfloat16 joint kernel")
        out = runner.run("tf", {"task": "time", "cells": bcells})
        res["bf16"] = out if isinstance(out, list) else [dict(c, **out) for c in bcells]

    # 5. XOR throughput
    if not args.skip_xor:
        xtask = {"task": "xor", "bits": args.xor_bits, "dim": args.xor_dim, "batch": args.xor_batch,
                 "steps": args.xor_steps, "num_batches": 4, "sampling": args.xor_sampling, "modes": args.xor_modes}
        say("XOR training throughput")
        out = runner.run("tf", xtask)
        xor = out if isinstance(out, list) else [dict(out, impl="tf_mmcl")]
        if ref_ok:
            out = runner.run("torch", dict(ref_task, **xtask), timeout=args.reference_timeout)
            xor += out if isinstance(out, list) else [dict(out, impl="reference")]
        res["xor"] = xor

    try:
        res["machine"]["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    return res


def merge_rounds(records):
    """One record per cell from its per-round records: the median over the rounds' samples.

    A cell that failed in every round keeps its (first) error; one that failed in some rounds
    only is reported from the others, with ``failed_rounds`` saying how many.
    """
    by_cell = {}
    for rec in records:
        key = (rec.get("impl"), rec.get("mode"), rec.get("loss"), rec.get("m"), rec.get("n"), rec.get("d"))
        by_cell.setdefault(key, []).append(rec)
    merged = []
    for recs in by_cell.values():
        ok = [r for r in recs if "median_s" in r]
        if not ok:
            merged.append(recs[0])
            continue
        out = dict(ok[0])
        out["samples_s"] = [x for r in ok for x in r["samples_s"]]
        out["median_s"] = statistics.median(out["samples_s"])
        out["min_s"] = min(out["samples_s"])
        out["rounds"] = len(ok)
        if len(ok) < len(recs):
            out["failed_rounds"] = len(recs) - len(ok)
        if "per_call_s" in out:
            out["per_call_s"] = out["median_s"] * out["steps_per_call"]
        merged.append(out)
    return merged


def _tf_versions(runner, args):
    if args.in_process:
        import keras
        import tensorflow as tf
        return {"tensorflow": tf.__version__, "keras": keras.__version__}
    code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'; import json, tensorflow as tf, keras; "
            "print(json.dumps({'tensorflow': tf.__version__, 'keras': keras.__version__, "
            "'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=runner.env)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


# ----------------------------------------------------------------------------- reporting

def _mode_label(mode, steps_per_call=None):
    """Column label of a tf_mmcl mode: loop modes say how many steps one call runs."""
    if mode in LOOP_MODES:
        base = mode[: -len("_loop")]
        return f"{base}, {steps_per_call} steps/call" if steps_per_call else f"{base}, K steps/call"
    return mode


def _index(timings):
    idx = {}
    for t in timings:
        if "median_s" in t:
            idx[(t["impl"], t["mode"], t["loss"], t["m"], t["n"], t["d"])] = t
    return idx


def _fmt_s(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _ratio(ref, ours):
    if ref is None or ours is None:
        return None
    return ref / ours


def _fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def summarise(res, gpu=None):
    """Headline numbers (dict) from a results dict."""
    idx = _index(res.get("timings", []))
    s = {}
    ref = idx.get(("reference", "torch", "n_squared", 3, 256, 256))
    for loss in ("n_squared", "n_squared_joint"):
        best = [idx.get(("tf_mmcl", m, loss, 3, 256, 256)) for m in MODES]
        best = [b for b in best if b]
        if best and ref:
            b = min(best, key=lambda t: t["median_s"])
            s[f"{loss}_speedup_256_256"] = ref["median_s"] / b["median_s"]
            s[f"{loss}_best_mode"] = b["mode"]
    return s


def write_markdown(res, path, gpu=None):
    lines = []
    idx = _index(res.get("timings", []))
    gidx = _index(gpu.get("timings", [])) if gpu else {}
    m = res["machine"]
    shared = res["config"].get("shared_machine", "auto")
    load0, load1 = m.get("loadavg_start", [0, 0, 0]), m.get("loadavg_end", [0, 0, 0])
    is_shared = shared == "yes" or (shared == "auto" and max(load0[0], load1[0]) > 0.5 * (m.get("cpu_count") or 1) + 0.5)
    ref = res.get("reference", {})
    A = lines.append
    A("# Benchmarks: tf_mmcl against the reference implementations")
    A("")
    A("Generated by `tools/benchmark.py` (all numbers below come from one run; rerun it to refresh).")
    A("")
    A("## Machine and method")
    A("")
    A(f"* CPU: {m.get('cpu_model', '?')}, {m.get('cpu_count')} logical cores visible, "
      f"{m.get('memory_gib', '?')} GiB RAM; flags: {', '.join(m.get('cpu_flags_of_interest', []))} "
      f"({'AMX present' if m.get('amx') else 'no AMX: bfloat16 matmuls run on AVX512_BF16'}" 
      f"{'' if 'avx512_bf16' in m.get('cpu_flags_of_interest', []) or m.get('amx') else ', no native bfloat16'}).")
    A(f"* {m.get('platform')}; Python {m.get('python')}; TensorFlow {res.get('tf_versions', {}).get('tensorflow')}, "
      f"Keras {res.get('tf_versions', {}).get('keras')}; reference: "
      + (f"torch {ref.get('torch')} (CPU), symile {ref.get('symile')}, {ref.get('torch_threads')} threads."
         if ref.get("available") else f"not run ({ref.get('message')})."))
    A(f"* Threads: {res['config'].get('threads')} intra-op threads on both sides.")
    if is_shared:
        A(f"* **Shared machine**: other jobs ran during the measurements (load average {load0[0]:.1f} at the start, "
          f"{load1[0]:.1f} at the end, on {m.get('cpu_count')} cores). Absolute times are noisy; the "
          f"protocol (below) puts the reference and tf_mmcl side by side in time, but whole runs still differ: single cells "
          f"moved by up to 1.6x between runs of the same code (docs/benchmarks.md, run-to-run noise).")
    cfg = res["config"]
    if cfg.get("samples"):  # interleaved protocol
        A(f"* Time: forward + backward of the loss (gradients w.r.t. every embedding and the logit scale), "
          f"float32, L2-normalised Gaussian embeddings, logit scale 1/0.07. Measured in {cfg.get('repeats')} rounds "
          f"of interleaved samples: in each round one fresh worker process per implementation and mode stays alive; "
          f"for each cell every worker builds its step, runs it once (tracing, XLA compilation) and then for "
          f"{cfg.get('warmup')} s more (the steady state of a training run, not a process's first calls), and then the "
          f"workers take turns, one sample each ({cfg.get('min_time')} s of calls), {cfg.get('samples')} times per "
          f"round (once for calls of {cfg.get('long_call')} s or more), a different worker first each turn. Load "
          f"that drifts over seconds thus hits the reference and tf_mmcl alike; the rounds (reference first in odd "
          f"rounds, last in even ones) average over processes. A step ends when its gradients are computed: "
          f"torch's `backward()` and, on the CPU, TF's synchronous call return then; both harnesses read back "
          f"the loss value only. The table shows the median over all samples, per training step. Ratios are reference time / tf_mmcl time (> 1: tf_mmcl faster).")
    else:  # runs saved before the interleaved protocol
        A(f"* Time: forward + backward of the loss (gradients w.r.t. every embedding and the logit scale), "
          f"float32, L2-normalised Gaussian embeddings, logit scale 1/0.07. Measured in {cfg.get('repeats')} "
          f"rounds: each round times every cell once for the reference and for every tf_mmcl mode (a fresh process "
          f"per implementation and mode: one untimed warm-up call for tracing and XLA compilation, then one timed "
          f"repeat, short calls looped to last {cfg.get('min_time')} s), the reference first in odd rounds "
          f"and last in even ones, so that load drifting over a round hits both sides alike. The table shows the "
          f"median over the rounds, per call. Ratios are reference time / tf_mmcl time (> 1: tf_mmcl faster).")
    A("* tf_mmcl modes: eager; `tf.function`; `tf.function(jit_compile=True)` (XLA). Reference: the `symile` "
      "package's `Symile` for Symile, the Gated Symile authors' `losses.clip` for CLIP (the `symile` package has "
      "no CLIP), torch eager (its only mode).")
    k = res["config"].get("steps_per_call")
    if any(t.get("mode") in LOOP_MODES for t in res.get("timings", [])):
        A(f"* Loop modes (`{k} steps/call`, losses {', '.join(res['config'].get('loop_losses', []))}): one "
          f"`tf.function` (or XLA) call runs {k} forward + backward steps over {k} different batches, one after "
          f"another, in a `tf.while_loop` (`parallel_iterations=1`: training steps cannot overlap) and returns "
          f"every step's gradients; the cell is the call's time / {k}. This is how "
          f"`model.fit(steps_per_execution={k})` runs training steps: TensorFlow's fixed cost of a call (argument "
          f"matching, launching the function; about 0.25-0.35 ms here, `python tools/benchmark_clip_kernels.py "
          f"--floor`) is paid once per {k} steps. The reference is torch eager, which has no per-call cost to "
          f"amortise: its cell is the same single step.")
    A("* `n_squared` is `tf_mmcl.losses.symile_loss(..., \"n_squared\")` as the library wires it, which calls "
      "`tf_mmcl.ops.symile_logits.joint_streamed_logsumexps`: every anchor's log-sum-exp from one shared pass "
      "over the logits (all anchors' logits are entries of one tensor `s * MIP(x_i, y_j, z_k)`); "
      "`n_squared_joint` calls that kernel directly (the difference between the two rows is the loss's own "
      "overhead and run-to-run noise).")
    A("")

    # time tables
    A("## Loss forward + backward time")
    A("")
    cols = [mo for mo in ALL_MODES if any(k[1] == mo for k in idx)]
    spc = res["config"].get("steps_per_call")
    head = "| loss | M | d | N | reference | " + " | ".join(f"tf_mmcl {_mode_label(c, spc)}" for c in cols) + " | " + \
        " | ".join(f"speed-up {_mode_label(c, spc)}" for c in cols) + (" | GPU (XLA) | GPU speed-up" if gpu else "") + " |"
    A(head)
    A("|" + "---|" * (head.count("|") - 1))
    keys = sorted({(k[2], k[3], k[5], k[4]) for k in idx if k[0] == "tf_mmcl"},
                  key=lambda k: ([c[0] for c in LOSS_CELLS].index(k[0]) if k[0] in [c[0] for c in LOSS_CELLS] else 9,
                                 k[1], k[2], k[3]))
    for loss, mm, d, n in keys:
        rloss = "n_squared" if loss == "n_squared_joint" else loss
        r = idx.get(("reference", "torch", rloss, mm, n, d))
        rerr = next((t.get("error") for t in res.get("timings", []) if t["impl"] == "reference"
                     and t["loss"] == rloss and t["m"] == mm and t["n"] == n and t["d"] == d and "error" in t), None)
        rtxt = _fmt_s(r["median_s"]) if r else (f"fails: {rerr[:40]}" if rerr else "-")
        ours = [idx.get(("tf_mmcl", c, loss, mm, n, d)) for c in cols]
        row = f"| {loss} | {mm} | {d} | {n} | {rtxt} | " + " | ".join(_fmt_s(o["median_s"]) if o else "-" for o in ours)
        row += " | " + " | ".join(_fmt_ratio(_ratio(r["median_s"], o["median_s"]) if (r and o) else None) for o in ours)
        if gpu:
            g = gidx.get(("tf_mmcl", "xla", loss, mm, n, d))
            row += f" | {_fmt_s(g['median_s']) if g else '-'} | " + \
                _fmt_ratio(_ratio(r["median_s"], g["median_s"]) if (r and g) else None)
        A(row + " |")
    A("")

    # memory
    if res.get("memory"):
        A("## Peak memory of one `n_squared` step (M = 3)")
        A("")
        meth = next((x.get("method") for x in res["memory"] if x.get("method")), "?")
        A(f"Each configuration runs in a fresh process: build the inputs, one warm-up step (compilation, allocator "
          f"pools), then one measured step. Peak = `{meth}` (bytes the step added to the resident set at its peak, "
          f"over what the process held before it: framework, inputs, compiled code). glibc's mmap threshold is "
          f"pinned to 128 KiB on both sides so freed large buffers leave the resident set. tf_mmcl mode: "
          f"{res['config'].get('memory_mode')}. Reference subprocesses are capped at "
          f"{res['config'].get('reference_memory_limit_gb')} GiB of address space.")
        A("")
        A("| N | d | reference | tf_mmcl n_squared | tf_mmcl n_squared_joint | ours / reference (n_squared, joint) |")
        A("|---|---|---|---|---|---|")
        for n in sorted({x["n"] for x in res["memory"]}):
            def get(impl, loss):
                return next((x for x in res["memory"] if x["n"] == n and x["impl"] == impl and x["loss"] == loss), None)
            r, a, b = get("reference", "n_squared"), get("tf_mmcl", "n_squared"), get("tf_mmcl", "n_squared_joint")
            fm = lambda x: ("-" if x is None else (f"{x['peak_bytes'] / 2 ** 20:.1f} MiB" if "peak_bytes" in x  # noqa: E731
                                                   else f"fails: {x.get('error', '')[:40]}"))
            rat = lambda x: (f"{x['peak_bytes'] / r['peak_bytes']:.3f}" if (x and r and "peak_bytes" in x  # noqa: E731
                                                                              and "peak_bytes" in r) else "-")
            d = (a or b or r or {}).get("d", "?")
            A(f"| {n} | {d} | {fm(r)} | {fm(a)} | {fm(b)} | {rat(a)}, {rat(b)} |")
        A("")

    # roofline
    if res.get("matmul"):
        n, d = res["config"]["roofline_n"], res["config"]["roofline_d"]
        A(f"## Roofline at N = {n}, d = {d}, M = 3")
        A("")
        fl = objective_flops("n_squared", n, d, 3)
        A(f"The objective's FLOPs as the reference computes them: 18 N^3 d = {fl / 1e9:.1f} GFLOP (forward 6 N^3 d, "
          f"backward twice that). The plain matmul: one square float32 matmul with the same FLOPs, same framework, "
          f"same run (TF: XLA-compiled; torch: `a @ b`). *Effective* rate = objective FLOPs / time; *executed* rate "
          f"= matmul FLOPs the implementation really runs / time (the joint kernel behind both rows runs "
          f"8 N^3 d: it shares one logit tensor among the three anchors and recomputes it once in the "
          f"backward).")
        A("")
        A("| implementation | time | effective GFLOP/s | executed GFLOP/s | matmul GFLOP/s | effective / matmul | executed / matmul |")
        A("|---|---|---|---|---|---|---|")
        mt = res["matmul"].get("tf_mmcl")
        mt32 = next((x for x in mt if x.get("dtype") == "float32"), None) if isinstance(mt, list) else None
        mr = res["matmul"].get("reference")
        mr32 = mr[0] if isinstance(mr, list) and mr else None
        rows = [("reference (torch)", idx.get(("reference", "torch", "n_squared", 3, n, d)), "n_squared_ref", mr32)]
        for loss in ("n_squared", "n_squared_joint"):
            for mo in MODES:
                t = idx.get(("tf_mmcl", mo, loss, 3, n, d))
                if t:
                    rows.append((f"tf_mmcl {loss} ({mo})", t, loss, mt32))
        for name, t, loss, mref in rows:
            if not t:
                continue
            eff = fl / t["median_s"]
            exe = (objective_flops("n_squared", n, d, 3) if loss == "n_squared_ref" else executed_flops(loss, n, d, 3)) / t["median_s"]
            mrate = mref["flop_per_s"] if mref else None
            A(f"| {name} | {_fmt_s(t['median_s'])} | {eff / 1e9:.1f} | {exe / 1e9:.1f} | "
              f"{'-' if not mrate else f'{mrate / 1e9:.1f}'} | {'-' if not mrate else f'{100 * eff / mrate:.0f} %'} | "
              f"{'-' if not mrate else f'{100 * exe / mrate:.0f} %'} |")
        mt16 = next((x for x in mt if x.get("dtype") == "bfloat16"), None) if isinstance(mt, list) else None
        if mt16 and mt32:
            A("")
            A(f"Plain matmul, same FLOPs: TF/XLA float32 {mt32['flop_per_s'] / 1e9:.1f} GFLOP/s, bfloat16 operands "
              f"(float32 accumulation) {mt16['flop_per_s'] / 1e9:.1f} GFLOP/s"
              + (f"; torch float32 {mr32['flop_per_s'] / 1e9:.1f} GFLOP/s." if mr32 else "."))
        A("")

    # bf16
    if res.get("bf16"):
        A("## bfloat16 matmuls in the joint kernel (XLA)")
        A("")
        A("`joint_streamed_logsumexps(..., compute_dtype=\"bfloat16\")`: matmul operands rounded to bfloat16, "
          "float32 accumulation (XLA dot with a float32 result), float32 logits, exponentials and sums. "
          "Speed-up against the float32 joint kernel (XLA) of the time table; loss error relative to the float32 loss.")
        A("")
        A("| N | d | float32 | bfloat16 | speed-up | relative loss error |")
        A("|---|---|---|---|---|---|")
        for b in res["bf16"]:
            f32 = idx.get(("tf_mmcl", "xla", "n_squared_joint", 3, b["n"], b["d"]))
            if "median_s" not in b:
                A(f"| {b['n']} | {b['d']} | - | fails: {b.get('error', '')[:60]} | - | - |")
                continue
            err = abs(b["loss_value"] - f32["loss_value"]) / abs(f32["loss_value"]) if f32 else None
            A(f"| {b['n']} | {b['d']} | {_fmt_s(f32['median_s']) if f32 else '-'} | {_fmt_s(b['median_s'])} | "
              f"{_fmt_ratio(_ratio(f32['median_s'], b['median_s']) if f32 else None)} | "
              f"{'-' if err is None else f'{err:.1e}'} |")
        A("")

    # xor
    if res.get("xor"):
        A("## XOR training throughput")
        A("")
        x0 = res["xor"][0]
        A(f"Three linear encoders (d_v = {x0.get('bits')} -> d_r = {x0.get('dim')}, bias), L2 normalisation, learned "
          f"log logit scale (init log(1/0.07)), AdamW (lr 1e-3, weight decay 0.01), Symile `{x0.get('sampling')}` "
          f"loss, batch {x0.get('batch')}, synthetic XOR bits (a, b uniform, c = a XOR b) held in memory. tf_mmcl: "
          f"Keras layers and optimizer, `symile_loss`; reference: the same model as a minimal torch loop with "
          f"`symile.Symile`. Two warm-up steps, then {x0.get('steps')} timed steps.")
        A("")
        A("| implementation | examples/s | ratio to reference |")
        A("|---|---|---|")
        rx = next((x for x in res["xor"] if x["impl"] == "reference" and "examples_per_s" in x), None)
        for x in res["xor"]:
            name = "reference (torch)" if x["impl"] == "reference" else f"tf_mmcl ({x['mode']})"
            if "examples_per_s" not in x:
                A(f"| {name} | fails: {x.get('error', '')[:60]} | - |")
                continue
            A(f"| {name} | {x['examples_per_s']:.0f} | "
              f"{_fmt_ratio(x['examples_per_s'] / rx['examples_per_s'] if rx else None)} |")
        A("")

    if gpu:
        gm = gpu.get("machine", {})
        A(f"GPU column: `tools/benchmark.py --device=gpu` on {gpu.get('tf_versions', {}).get('gpus')} "
          f"({gm.get('cpu_model', '?')} host), TensorFlow {gpu.get('tf_versions', {}).get('tensorflow')}, XLA mode; "
          f"speed-up = CPU reference time / GPU time.")
        A("")
    _targets_section(res, A)
    for note in res.get("notes", []):
        A(f"* {note}")
    A("")
    A(END_MARK)
    text = "\n".join(lines).rstrip() + "\n"
    if path and os.path.exists(path):  # keep the hand-written part after the generated section
        with open(path) as f:
            old = f.read()
        tail = old.split(END_MARK, 1)[1] if END_MARK in old else ""
        if tail.strip():
            text = text + "\n" + tail.lstrip("\n")
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return text


END_MARK = "<!-- end of the generated section: text below this line is kept when the tool rewrites the file -->"


def _targets_section(res, A):
    """The issue's targets against this run's numbers."""
    idx = _index(res.get("timings", []))
    if not any(k[0] == "reference" for k in idx):
        return
    A("## Targets (float32)")
    A("")
    A("| target | measured | met |")
    A("|---|---|---|")
    ref = idx.get(("reference", "torch", "n_squared", 3, 256, 256))

    def best(loss, n, d, m=3, modes=MODES):
        c = [idx.get(("tf_mmcl", mo, loss, m, n, d)) for mo in modes]
        c = [x for x in c if x]
        return min(c, key=lambda t: t["median_s"]) if c else None

    mem = {(x["impl"], x["loss"], x["n"]): x for x in res.get("memory", []) if "peak_bytes" in x}
    mt = res.get("matmul", {}).get("tf_mmcl")
    mt32 = next((x for x in mt if x.get("dtype") == "float32"), None) if isinstance(mt, list) else None
    for loss in ("n_squared", "n_squared_joint"):
        b = best(loss, 256, 256)
        if ref and b:
            r = ref["median_s"] / b["median_s"]
            A(f"| {loss}: >= 1.5x the reference's speed at N = d = 256 | {r:.2f}x ({b['mode']}) | "
              f"{'yes' if r >= 1.5 else 'no'} |")
        rm, om = mem.get(("reference", "n_squared", 256)), mem.get(("tf_mmcl", loss, 256))
        if rm and om and rm["peak_bytes"] > 0:
            q = om["peak_bytes"] / rm["peak_bytes"]
            A(f"| {loss}: <= 1/10 of the reference's peak memory at N = d = 256 | {q:.3f} "
              f"({om['peak_bytes'] / 2 ** 20:.0f} / {rm['peak_bytes'] / 2 ** 20:.0f} MiB) | {'yes' if q <= 0.1 else 'no'} |")
        if b and mt32 and res["config"].get("roofline_n") == 256 and res["config"].get("roofline_d") == 256:
            eff = objective_flops("n_squared", 256, 256, 3) / b["median_s"] / mt32["flop_per_s"]
            exe = executed_flops(loss, 256, 256, 3) / b["median_s"] / mt32["flop_per_s"]
            A(f"| {loss}: >= 70 % of the matmul roofline | effective {100 * eff:.0f} %, executed {100 * exe:.0f} % | "
              f"{'yes' if eff >= 0.7 else 'no'} (effective){', yes' if exe >= 0.7 else ', no'} (executed) |")
    spc = res["config"].get("steps_per_call")
    for loss, m in (("n", 3), ("n", 4), ("clip", 3)):
        cells = [k for k in idx if k[0] == "reference" and k[2] == loss and k[3] == m]
        if not cells:
            continue
        for modes, how in ((MODES, "one call per step"), (LOOP_MODES, f"{spc} steps per call")):
            worst, worst_cell, per_mode = None, None, {mo: [] for mo in modes}
            for k in cells:
                b = best(loss, k[4], k[5], m, modes)
                if b:
                    r = idx[k]["median_s"] / b["median_s"]
                    if worst is None or r < worst:
                        worst, worst_cell = r, (k[4], k[5], b["mode"])
                for mo in modes:
                    o = idx.get(("tf_mmcl", mo, loss, m, k[4], k[5]))
                    if o:
                        per_mode[mo].append(idx[k]["median_s"] / o["median_s"])
            if worst is not None:
                modes_txt = ", ".join(f"{_mode_label(mo, spc)} {min(v):.2f}x" for mo, v in per_mode.items() if v)
                A(f"| {loss} (M = {m}), {how}: >= the reference's speed in every cell (best mode per cell) | "
                  f"worst cell {worst:.2f}x at N = {worst_cell[0]}, d = {worst_cell[1]} "
                  f"({_mode_label(worst_cell[2], spc)}); worst per mode: {modes_txt} | {'yes' if worst >= 1.0 else 'no'} |")
    for t in res.get("timings", []):
        if t.get("large") and t["impl"] == "tf_mmcl" and "median_s" in t:
            rr = next((x for x in res["timings"] if x.get("large") and x["impl"] == "reference"
                       and x["n"] == t["n"] and x["d"] == t["d"]), None)
            rtxt = "not run" if rr is None else (rr.get("error", "")[:60] if "error" in rr else _fmt_s(rr["median_s"]))
            A(f"| N = {t['n']} runs ({t['loss']}, d = {t['d']}, {t['mode']}) | {_fmt_s(t['median_s'])}; reference: {rtxt} | yes |")
    A("")


def write_plot(res, path, gpu=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    idx = _index(res.get("timings", []))
    gidx = _index(gpu.get("timings", [])) if gpu else {}
    panels = [c for c in _ordered_loss_cells(idx)]
    if not panels:
        return None
    ncol = min(3, len(panels))
    nrow = int(math.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol, 3.8 * nrow), squeeze=False)
    styles = {"reference": ("k", "o"), "eager": ("tab:orange", "s"), "function": ("tab:blue", "^"),
              "xla": ("tab:green", "D"), "gpu": ("tab:purple", "v"),
              "function_loop": ("tab:cyan", "<"), "xla_loop": ("tab:olive", ">")}
    for ax, (loss, mm) in zip(axes.flat, panels):
        for d, ls in zip(sorted({k[5] for k in idx}), ["--", "-", ":"]):
            series = [("reference", "torch", "n_squared" if loss == "n_squared_joint" else loss, idx)] + \
                [(mo, mo, loss, idx) for mo in ALL_MODES] + ([("gpu", "xla", loss, gidx)] if gpu else [])
            for label, mode, lk, source in series:
                impl = "reference" if label == "reference" else "tf_mmcl"
                pts = sorted((k[4], v["median_s"]) for k, v in source.items()
                             if k[0] == impl and k[1] == mode and k[2] == lk and k[3] == mm and k[5] == d)
                if not pts:
                    continue
                col, mk = styles[label]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, color=col, marker=mk, ms=4,
                        label=f"{'reference (torch)' if label == 'reference' else 'tf_mmcl ' + _mode_label(label, res['config'].get('steps_per_call'))} d={d}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (batch)")
        ax.set_ylabel("forward + backward time (s)")
        ax.set_title(f"{loss}, M = {mm}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ordered_loss_cells(idx):
    present = {(k[2], k[3]) for k in idx if k[0] == "tf_mmcl"}
    order = [c for c in LOSS_CELLS if c in present]
    return order + sorted(present - set(order))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker, json.loads(args.task))
        return None
    if args.from_json:
        with open(args.from_json) as f:
            res = json.load(f)
    else:
        res = run_benchmark(args)
    gpu = None
    if args.gpu_json:
        with open(args.gpu_json) as f:
            gpu = json.load(f)
    res["summary"] = summarise(res)
    if args.output_json and not args.from_json:
        os.makedirs(os.path.dirname(os.path.abspath(args.output_json)), exist_ok=True)
        with open(args.output_json, "w") as f:
            json.dump(res, f, indent=1)
    text = write_markdown(res, args.output_md, gpu)
    if args.plot:
        write_plot(res, args.plot, gpu)
    if not args.output_md:
        print(text)
    return res


if __name__ == "__main__":
    main()
