"""The worker protocol: how the orchestrator runs tasks in worker processes and times them.

A worker is ``python -m benchmarks.contrastive --worker=tf|torch --task=JSON``: it runs one
task (a function of :data:`WORKERS`) and prints its result as one line, ``RESULT_MARK`` + JSON.
The task ``serve`` (the time table) answers one JSON command per line on stdin instead
(prepare a cell, take a sample, quit): :func:`serve`. On the orchestrator's side
:class:`Runner` starts workers (TF under this interpreter, torch under ``--reference_python``),
:class:`ServedWorker` / :class:`InProcessWorker` speak the serve protocol, and
:func:`interleaved_rounds` alternates samples between live workers; :func:`merge_rounds` takes
the medians over rounds. Standard library only at import time.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.contrastive import tf_worker, torch_worker
from benchmarks.contrastive.common import progress
from benchmarks.contrastive.timing import finish_record

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULT_MARK = "BENCHMARK_RESULT "


def emit(result):
    """A worker's result: one line on stdout that the orchestrator finds by its mark."""
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


WORKERS = {
    "tf": {
        "time": tf_worker.tf_time_cells,
        "memory": tf_worker.tf_memory_cell,
        "matmul": tf_worker.tf_matmul_rate,
        "xor": tf_worker.tf_xor_throughput,
    },
    "torch": {
        "time": torch_worker.torch_time_cells,
        "memory": torch_worker.torch_memory_cell,
        "matmul": torch_worker.torch_matmul_rate,
        "xor": torch_worker.torch_xor_throughput,
        "versions": torch_worker.torch_versions,
    },
}
TIMERS = {"tf": tf_worker.tf_cell_timer, "torch": torch_worker.torch_cell_timer}


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
    """Runs one task in this (worker) process and prints its result (:func:`emit`)."""
    if kind == "tf" and REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    if task.get("memory_limit_bytes"):
        import resource

        lim = int(task["memory_limit_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    if task["task"] == "serve":
        serve(TIMERS[kind](task), task, sys.stdin, emit)
        return
    emit(WORKERS[kind][task["task"]](task))


class Runner:
    """Runs worker tasks: TF in a subprocess of this interpreter (or in-process), torch in the
    reference interpreter. Each call is one task; a failed or timed-out one returns an error."""

    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ)
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.env["PYTHONPATH"] = REPO_ROOT + os.pathsep + self.env.get("PYTHONPATH", "")

    def _task(self, task):
        return dict(
            task,
            threads=self.args.threads,
            device=self.args.device,
            min_time=self.args.min_time,
            warmup_s=self.args.warmup,
        )

    def _command(self, kind, task):
        python = sys.executable if kind == "tf" else self.args.reference_python
        cmd = [python, "-m", "benchmarks.contrastive", f"--worker={kind}", "--task=" + json.dumps(task)]
        env = dict(self.env)
        if task["task"] == "memory":
            # Freed large buffers return to the OS on both sides, so RSS deltas mean the same thing.
            # Memory runs only: a pinned mmap threshold makes every large allocation fault in fresh
            # pages, which slows allocation-heavy code (the reference most) and would skew timings.
            env["MALLOC_MMAP_THRESHOLD_"] = "131072"
        return cmd, env

    def failure(self, kind, returncode, tail):
        """The error record of a worker that exited without a result."""
        if returncode < 0 or any(
            "MemoryError" in t or "can't allocate" in t or "bad_alloc" in t or "out of memory" in t.lower()
            for t in tail
        ):
            return {
                "error": "out of memory"
                + (f" (limit {self.args.reference_memory_limit_gb} GiB)" if kind == "torch" else "")
                + f": {' | '.join(tail)[:300]}"
            }
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
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
        except subprocess.TimeoutExpired:
            return {"error": f"timeout after {timeout} s"}
        if getattr(self.args, "verbose", False):
            sys.stderr.write(proc.stderr[-3000:] if proc.returncode else "")
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK) :])
        return self.failure(kind, proc.returncode, (proc.stderr or proc.stdout).strip().splitlines()[-3:])

    def served(self, kind, task):
        """A worker in "serve" mode (in this process for TF with ``--in_process``)."""
        task = self._task(dict(task, task="serve"))
        if kind == "tf" and self.args.in_process:
            return InProcessWorker(tf_worker.tf_cell_timer(task), task)
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
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, env=env, cwd=REPO_ROOT
        )
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
                    return json.loads(text[len(RESULT_MARK) :])
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
                    progress(rec)
                if say:
                    say(
                        f"round {r + 1}/{rounds}: {cell['loss']} M={cell['m']} N={cell['n']} d={cell['d']}: "
                        + ", ".join(
                            f"{rec.get('mode')} {rec['median_s'] * 1e3:.3g} ms"
                            if "median_s" in rec
                            else f"{rec.get('mode')} failed"
                            for _, rec, _ in live
                        )
                    )
        finally:
            for worker in workers:
                worker.close()
    return records


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
