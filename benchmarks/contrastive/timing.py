"""Timing and memory: the cell timer (warm-up, calibration, samples), peak RSS, machine facts.

Framework-agnostic: a worker hands :class:`CellTimer` a ``load(cell) -> (call, steps per call,
record)`` function. Standard library only at import time.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time

from benchmarks.contrastive.common import progress


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
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["cpu_flags_of_interest"] = sorted(
            f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx512_vnni", "avx2", "fma"))
        )
        info["amx"] = any(f.startswith("amx") for f in flags)
    except OSError:
        pass
    try:
        info["memory_gib"] = round(_proc_meminfo_kib("MemTotal") / 2**20, 1)
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


def time_cells(timer, task, impl, mode=None):
    """The "time" task: every cell of ``task`` prepared and sampled in turn; a failing cell's record
    carries its error and the others still run."""
    out = []
    for cell in task["cells"]:
        try:
            rec = timed_record(timer, cell, cell["repeats"], task.get("warmup_s", 0.0), task["min_time"])
        except Exception as e:  # noqa: BLE001 - report, keep going
            rec = dict(cell, impl=impl, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            if mode:
                rec["mode"] = mode
        out.append(rec)
        progress(rec)
    return out
