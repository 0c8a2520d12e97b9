"""The command line: ``python tools/benchmark.py [flags]`` (or ``python -m benchmarks.contrastive``).

``main`` measures (or reads ``--from_json``), writes ``--output_json``, ``--output_md`` and
``--plot``; with ``--worker`` it is a worker process instead (:mod:`benchmarks.contrastive.protocol`).
"""

from __future__ import annotations

import argparse
import json
import os

import benchmarks.contrastive as _package
from benchmarks.contrastive.common import LOOP_MODES, LOSS_CELLS, MODES
from benchmarks.contrastive.protocol import worker_main
from benchmarks.contrastive.report import summarise, write_markdown, write_plot

DEFAULT_REFERENCE_PYTHON = "/tmp/refvenv/bin/python"
DEFAULT_GATED_SYMILE_REPO = "/tmp/gs"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=_package.__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    strs = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--sizes", type=ints, default=[64, 128, 256, 512], help="batch sizes N")
    p.add_argument("--dims", type=ints, default=[64, 256], help="embedding sizes d")
    p.add_argument(
        "--losses",
        type=strs,
        default=[f"{l}:{m}" for l, m in LOSS_CELLS],
        help="loss:M cells, e.g. n_squared:3,n:4,clip:3",
    )
    p.add_argument("--modes", type=strs, default=list(MODES), help="tf_mmcl modes: eager,function,xla")
    p.add_argument(
        "--loop_modes",
        type=strs,
        default=list(LOOP_MODES),
        help="tf_mmcl modes running --steps_per_call steps per call: function_loop,xla_loop",
    )
    p.add_argument(
        "--steps_per_call",
        type=int,
        default=16,
        help="steps per call of the loop modes (model.fit's steps_per_execution)",
    )
    p.add_argument(
        "--loop_losses",
        type=strs,
        default=["n", "clip"],
        help="losses timed in the loop modes (the short steps, where TF's per-call cost shows)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds of the time table (--samples interleaved samples per cell and round; medians "
        "reported), and timed repeats of the matmul and bfloat16 cells",
    )
    p.add_argument("--min_time", type=float, default=0.05, help="seconds per sample (short calls loop)")
    p.add_argument(
        "--samples", type=int, default=3, help="interleaved samples per cell, implementation and round (time table)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=0.2,
        help="seconds of untimed calls after the first call of a cell (steady state)",
    )
    p.add_argument("--long_call", type=float, default=1.0, help="calls this long (seconds) get one sample per round")
    p.add_argument(
        "--large_n",
        type=ints,
        default=[1024],
        help="extra N for n_squared (d = max(--dims)), where the reference runs out of memory/time",
    )
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
    p.add_argument(
        "--bf16",
        dest="bf16",
        action="store_true",
        default=True,
        help="measure bfloat16 matmuls in the joint kernel (default on)",
    )
    p.add_argument("--no_bf16", dest="bf16", action="store_false")
    p.add_argument("--reference_python", default=os.environ.get("REFERENCE_PYTHON", DEFAULT_REFERENCE_PYTHON))
    p.add_argument(
        "--gated_symile_repo",
        default=DEFAULT_GATED_SYMILE_REPO,
        help="checkout holding the Gated Symile authors' losses/clip.py (reference CLIP)",
    )
    p.add_argument("--skip_reference", action="store_true")
    p.add_argument("--reference_timeout", type=float, default=300.0, help="seconds per reference cell group")
    p.add_argument(
        "--reference_memory_limit_gb",
        type=float,
        default=10.0,
        help="address-space cap of the reference subprocesses (keeps a shared machine alive)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads, both frameworks")
    p.add_argument("--in_process", action="store_true", help="run the TF side in this process (tests)")
    p.add_argument("--output_json", default=None)
    p.add_argument("--output_md", default=None, help="e.g. docs/benchmarks.md")
    p.add_argument("--plot", default=None, help="e.g. docs/plots/benchmark_time_vs_n.png")
    p.add_argument("--gpu_json", default=None, help="JSON of a --device=gpu run: adds the GPU column")
    p.add_argument(
        "--from_json",
        default=None,
        help="regenerate --output_md / --plot from a previous --output_json instead of measuring",
    )
    p.add_argument(
        "--shared_machine",
        default="auto",
        choices=["auto", "yes", "no"],
        help="say in the doc that other jobs ran (auto: from the load average)",
    )
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


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker, json.loads(args.task))
        return None
    if args.from_json:
        with open(args.from_json) as f:
            res = json.load(f)
    else:
        from benchmarks.contrastive.run import run_benchmark

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
