"""The measurement plan: which tasks run where, in what order (time table, memory, roofline,
bfloat16, XOR throughput), and the results dict the report is written from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.contrastive.common import LOOP_MODES, VERBOSE_ENV, objective_flops
from benchmarks.contrastive.protocol import Runner, interleaved_rounds, merge_rounds
from benchmarks.contrastive.timing import machine_info


def reference_available(args):
    """(available, message)."""
    if args.skip_reference:
        return False, "reference skipped (--skip_reference)"
    py = args.reference_python
    if not py or not os.path.exists(py):
        return False, (
            f"reference python {py!r} not found: reporting tf_mmcl numbers only (create it with "
            "`python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 "
            "symile==0.1.0 numpy`, then pass --reference_python=/tmp/refvenv/bin/python)"
        )
    try:
        proc = subprocess.run([py, "-c", "import torch, symile, numpy"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"reference python {py!r} unusable ({e}): reporting tf_mmcl numbers only"
    if proc.returncode:
        return False, (
            f"reference python {py!r} cannot import torch, symile and numpy "
            f"({proc.stderr.strip().splitlines()[-1:]}): reporting tf_mmcl numbers only"
        )
    return True, f"reference: {py}"


def _loss_cells(args):
    cells = []
    for spec in args.losses:
        loss, _, m = spec.partition(":")
        cells.append((loss, int(m or 3)))
    return cells


def run_benchmark(args):
    """Measures everything ``args`` (:func:`benchmarks.contrastive.cli.parse_args`) asks for."""
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"  # this process's and the workers' progress lines
    runner = Runner(args)
    res = {
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k not in ("worker", "task")},
        "notes": [],
    }
    ref_ok, ref_msg = reference_available(args)
    res["reference"] = {"available": ref_ok, "message": ref_msg}
    if not ref_ok and not args.skip_reference:
        print(f"[benchmark] {ref_msg}", file=sys.stderr)
    ref_task = {
        "gated_symile_repo": args.gated_symile_repo,
        "memory_limit_bytes": int(args.reference_memory_limit_gb * 2**30),
    }
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
    large = [
        {"loss": loss, "m": m, "n": n, "d": max(args.dims), "repeats": args.large_repeats, "large": True}
        for n in args.large_n
        for loss, m in _loss_cells(args)
        if loss.startswith("n_squared")
    ]

    def covers(mode):
        def f(cell):
            if mode in LOOP_MODES:
                return (
                    dict(cell, mode=mode, steps_per_call=args.steps_per_call)
                    if cell["loss"] in args.loop_losses
                    else None
                )
            return dict(cell, mode=mode)

        return f

    participants = [("tf", mode, {}, covers(mode)) for mode in list(args.modes) + list(args.loop_modes)]
    if ref_ok:  # n_squared_joint is the same objective as n_squared on the reference side
        participants.insert(
            0, ("torch", "torch", ref_task, lambda c: None if c["loss"] == "n_squared_joint" else dict(c))
        )
    measured = interleaved_rounds(
        runner, participants, cells, max(1, args.repeats), args.samples, args.long_call, args.reference_timeout, say
    )
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
                out = runner.run(
                    "tf", {"task": "memory", "loss": loss, "m": 3, "n": n, "d": d, "mode": args.memory_mode}
                )
                mem.append(out if "peak_bytes" in out else dict(out, loss=loss, m=3, n=n, d=d, impl="tf_mmcl"))
            if ref_ok:
                say(f"memory reference N={n}")
                out = runner.run(
                    "torch",
                    dict(ref_task, task="memory", loss="n_squared", m=3, n=n, d=d),
                    timeout=args.reference_timeout,
                )
                mem.append(out if "peak_bytes" in out else dict(out, loss="n_squared", m=3, n=n, d=d, impl="reference"))
        res["memory"] = mem

    # 3. roofline: matmul rates at the objective's FLOPs
    if not args.skip_roofline:
        n, d = args.roofline_n, args.roofline_d
        flops = objective_flops("n_squared", n, d, 3)
        say("matmul roofline")
        res["matmul"] = {
            "tf_mmcl": runner.run(
                "tf",
                {
                    "task": "matmul",
                    "flops": [flops],
                    "repeats": args.repeats,
                    "dtypes": ["float32", "bfloat16"] if args.bf16 else ["float32"],
                },
            )
        }
        if ref_ok:
            res["matmul"]["reference"] = runner.run(
                "torch", dict(ref_task, task="matmul", flops=[flops], repeats=args.repeats), timeout=600
            )

    # 4. bfloat16 joint kernel
    if args.bf16 and "xla" in args.modes:
        bcells = [
            {
                "loss": "n_squared_joint",
                "m": 3,
                "n": n,
                "d": max(args.dims),
                "repeats": args.repeats,
                "mode": "xla",
                "compute_dtype": "bfloat16",
            }
            for n in args.sizes
        ]
        say("bfloat16 joint kernel")
        out = runner.run("tf", {"task": "time", "cells": bcells})
        res["bf16"] = out if isinstance(out, list) else [dict(c, **out) for c in bcells]

    # 5. XOR throughput
    if not args.skip_xor:
        xtask = {
            "task": "xor",
            "bits": args.xor_bits,
            "dim": args.xor_dim,
            "batch": args.xor_batch,
            "steps": args.xor_steps,
            "num_batches": 4,
            "sampling": args.xor_sampling,
            "modes": args.xor_modes,
        }
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


def _tf_versions(runner, args):
    if args.in_process:
        import keras
        import tensorflow as tf

        return {"tensorflow": tf.__version__, "keras": keras.__version__}
    code = (
        "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'; import json, tensorflow as tf, keras; "
        "print(json.dumps({'tensorflow': tf.__version__, 'keras': keras.__version__, "
        "'gpus': [d.name for d in tf.config.list_physical_devices('GPU')]}))"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=runner.env)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}
