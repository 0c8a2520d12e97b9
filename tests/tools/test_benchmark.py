"""Keeps the benchmark harness (benchmarks/contrastive, run by tools/benchmark.py) working: a tiny
run of its main function (no timing asserts) and its parts one by one."""

import json
import os

import pytest

from benchmarks.contrastive import cli, common, protocol, report, run, tf_worker

TINY = [
    "--sizes=8",
    "--dims=4",
    "--repeats=2",
    "--samples=2",
    "--warmup=0",
    "--min_time=0",
    "--large_n=",
    "--xor_batch=8",
    "--xor_bits=4",
    "--xor_dim=4",
    "--xor_steps=2",
    "--xor_modes=function",
    "--roofline_n=8",
    "--roofline_d=4",
    "--in_process",
    "--losses=n_squared:3,n_squared_joint:3,n:3,clip:3",
    "--memory_mode=function",
]


@pytest.mark.slow
def test_tiny_run_writes_json_markdown_and_plot(tmp_path):
    out_json, out_md, plot = tmp_path / "b.json", tmp_path / "b.md", tmp_path / "plots" / "b.png"
    res = cli.main(
        TINY
        + [
            "--skip_reference",
            "--modes=eager,xla",
            "--loop_modes=xla_loop",
            "--steps_per_call=3",
            f"--output_json={out_json}",
            f"--output_md={out_md}",
            f"--plot={plot}",
        ]
    )
    data = json.loads(out_json.read_text())
    assert data["reference"]["available"] is False
    cells = {(t["loss"], t["m"], t["mode"]) for t in data["timings"]}
    for loss, m in [("n_squared", 3), ("n_squared_joint", 3), ("n", 3), ("clip", 3)]:
        for mode in ("eager", "xla"):
            assert (loss, m, mode) in cells
    # The loop mode times only the short-step losses, per step (the call's time / K).
    assert {(t["loss"], t["m"]) for t in data["timings"] if t["mode"] == "xla_loop"} == {("n", 3), ("clip", 3)}
    for t in data["timings"]:
        assert "error" not in t, t
        # Time-table cells: 2 rounds x 2 interleaved samples; the bf16 cells are not in the table.
        assert t["median_s"] > 0 and len(t["samples_s"]) == 4 and t["n"] == 8 and t["d"] == 4
        if t["mode"] == "xla_loop":
            assert t["steps_per_call"] == 3 and t["per_call_s"] == pytest.approx(3 * t["median_s"])
    # Same objective, two kernels: same loss value.
    vals = {(t["loss"], t["mode"]): t["loss_value"] for t in data["timings"]}
    assert abs(vals[("n_squared", "xla")] - vals[("n_squared_joint", "xla")]) < 1e-4
    assert {m["loss"] for m in data["memory"]} == {"n_squared", "n_squared_joint"}
    assert all(m["peak_bytes"] >= 0 for m in data["memory"])
    assert {m["dtype"] for m in data["matmul"]["tf_mmcl"]} == {"float32", "bfloat16"}
    assert data["bf16"][0]["compute_dtype"] == "bfloat16" and "median_s" in data["bf16"][0]
    assert data["xor"][0]["examples_per_s"] > 0
    md = out_md.read_text()
    for heading in (
        "## Machine and method",
        "## Loss forward + backward time",
        "## Peak memory",
        "## Roofline",
        "## bfloat16",
        "## XOR training throughput",
    ):
        assert heading in md
    assert "| n_squared_joint | 3 | 4 | 8 |" in md
    assert "tf_mmcl xla, 3 steps/call" in md and "Loop modes (`3 steps/call`" in md
    assert plot.exists() and plot.stat().st_size > 0
    assert res["summary"] == {}  # no reference, no ratios


def test_missing_reference_python_degrades_with_a_message(tmp_path, capsys):
    args = cli.parse_args(["--reference_python", str(tmp_path / "no" / "python")])
    ok, msg = run.reference_available(args)
    assert not ok and "not found" in msg and "tf_mmcl numbers only" in msg


def test_markdown_ratios_from_synthetic_results():
    """The report's ratio arithmetic, on made-up numbers (reference twice as slow)."""
    args = cli.parse_args([])
    timings = []
    for impl, mode, t in [("reference", "torch", 0.2), ("tf_mmcl", "xla", 0.1)]:
        timings.append(
            {
                "impl": impl,
                "mode": mode,
                "loss": "n_squared",
                "m": 3,
                "n": 256,
                "d": 256,
                "median_s": t,
                "loss_value": 1.0,
            }
        )
    res = {
        "machine": {"cpu_count": 2, "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0]},
        "config": vars(args),
        "reference": {"available": True},
        "timings": timings,
    }
    md = report.write_markdown(res, None)
    assert "| n_squared | 3 | 256 | 256 | 200 ms | 100 ms | 2.00x |" in md
    assert report.summarise(res)["n_squared_speedup_256_256"] == pytest.approx(2.0)
    assert common.objective_flops("n_squared", 256, 256, 3) == 18 * 256**3 * 256


@pytest.mark.parametrize("loss", ["clip", "n"])
@pytest.mark.parametrize("mode", ["function_loop", "xla_loop"])
def test_loop_mode_runs_each_batch_as_the_single_step_does(loss, mode):
    """K steps in one call compute, batch by batch, the single-call step's loss and gradients."""
    import numpy as np
    import tensorflow as tf

    k, m, n, d = 3, 3, 6, 4
    batches = [common.make_reps(n, d, m, seed=i) for i in range(k)]
    scale = tf.constant(common.LOGIT_SCALE)
    looped = tf_worker._tf_step(tf, loss, mode)
    mean_loss, (flat,) = looped(scale, tf.constant(np.stack([np.stack(b) for b in batches])))
    assert flat.shape == (k, 1 + m * n * d)  # every step's gradients (scale, then each modality) come out
    single = tf_worker._tf_step(tf, loss, "function")
    values = []
    for i, reps in enumerate(batches):
        value, grads = single(scale, *[tf.constant(r) for r in reps])
        values.append(float(value))
        expected = np.concatenate([np.reshape(g.numpy(), [-1]) for g in grads])
        if loss == "clip":  # deterministic; "n" draws its negatives from a seed generator each step
            np.testing.assert_allclose(flat[i].numpy(), expected, rtol=1e-4, atol=1e-6)
        else:
            assert np.all(np.isfinite(flat[i].numpy())) and np.any(flat[i].numpy() != 0)
    if loss == "clip":
        assert float(mean_loss) == pytest.approx(np.mean(values), rel=1e-5)
    else:
        assert np.isfinite(float(mean_loss))
    # Steps run one after another, as training steps do (TF's default would overlap up to 10).
    graph = looped.get_concrete_function(scale, tf.TensorSpec([k, m, n, d], tf.float32)).graph
    loops = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
    assert loops and all(op.get_attr("parallel_iterations") == 1 for op in loops)


def test_targets_report_one_call_and_loop_modes_separately():
    args = cli.parse_args(["--steps_per_call=8"])
    timings = []
    for n in (64, 128):
        for impl, mode, t in [("reference", "torch", 1.0), ("tf_mmcl", "xla", 1.25), ("tf_mmcl", "xla_loop", 0.5)]:
            timings.append(
                {
                    "impl": impl,
                    "mode": mode,
                    "loss": "clip",
                    "m": 3,
                    "n": n,
                    "d": 64,
                    "median_s": t * n / 64,
                    "loss_value": 1.0,
                }
            )
    res = {
        "machine": {"cpu_count": 2, "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0]},
        "config": vars(args),
        "reference": {"available": True},
        "timings": timings,
    }
    md = report.write_markdown(res, None)
    assert "| clip | 3 | 64 | 64 | 1 s | 1.25 s | 500 ms | 0.80x | 2.00x |" in md
    assert (
        "| clip (M = 3), one call per step: >= the reference's speed in every cell (best mode per cell) | "
        "worst cell 0.80x"
        in md
        and md.count("| no |") == 1
    )
    assert (
        "| clip (M = 3), 8 steps per call: >= the reference's speed in every cell (best mode per cell) | "
        "worst cell 2.00x" in md
    )
    assert "speed-up xla, 8 steps/call" in md


def test_rounds_merge_into_medians_and_keep_errors():
    base = {"impl": "tf_mmcl", "mode": "xla", "loss": "clip", "m": 3, "n": 8, "d": 4}
    recs = [dict(base, median_s=t, min_s=t, samples_s=[t], loss_value=1.0) for t in (3.0, 1.0, 2.0)]
    recs += [dict(base, n=16, error="RuntimeError: boom"), dict(base, n=16, error="RuntimeError: boom")]
    recs += [dict(base, n=32, error="MemoryError: x"), dict(base, n=32, median_s=5.0, min_s=5.0, samples_s=[5.0])]
    loop = dict(base, mode="xla_loop", steps_per_call=4)
    recs += [dict(loop, median_s=t, min_s=t, samples_s=[t], per_call_s=4 * t) for t in (1.0, 3.0)]
    merged = {(r["mode"], r["n"]): r for r in protocol.merge_rounds(recs)}
    assert merged[("xla", 8)]["median_s"] == 2.0 and merged[("xla", 8)]["samples_s"] == [3.0, 1.0, 2.0]
    assert merged[("xla", 8)]["min_s"] == 1.0 and merged[("xla", 8)]["rounds"] == 3
    assert "median_s" not in merged[("xla", 16)] and merged[("xla", 16)]["error"].startswith("RuntimeError")
    assert merged[("xla", 32)]["median_s"] == 5.0 and merged[("xla", 32)]["failed_rounds"] == 1
    assert merged[("xla_loop", 8)]["median_s"] == 2.0 and merged[("xla_loop", 8)]["per_call_s"] == 8.0


def test_bad_modes_and_steps_per_call_are_errors():
    with pytest.raises(SystemExit):
        cli.parse_args(["--loop_modes=xla"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--modes=jit"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--steps_per_call=1"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--samples=0"])


class _FakeWorker:
    """Answers the serve protocol from a script; logs every command into a shared list."""

    def __init__(self, name, log, call_s=0.01, fail_prepare=(), fail_sample_after=None):
        self.name, self.log, self.call_s = name, log, call_s
        self.fail_prepare, self.fail_sample_after, self.samples = fail_prepare, fail_sample_after, 0
        self.cell_n = None

    def ask(self, cmd, timeout):
        if cmd["op"] == "prepare":
            self.cell_n = cmd["cell"]["n"]
        self.log.append((self.name, cmd["op"], self.cell_n))
        if cmd["op"] == "prepare":
            if cmd["cell"]["n"] in self.fail_prepare:
                return {"error": "RuntimeError: no"}
            return dict(
                cmd["cell"],
                impl="reference" if self.name == "torch" else "tf_mmcl",
                inner=3,
                mode=cmd["cell"].get("mode", "torch"),
                call_s=self.call_s,
                loss_value=1.0,
            )
        self.samples += 1
        if self.fail_sample_after is not None and self.samples > self.fail_sample_after:
            return {"error": "timeout after 1 s"}
        return {"s": self.call_s}

    def close(self):
        self.log.append((self.name, "close", None))
        self.cell_n = None


class _FakeRunner:
    def __init__(self, workers):
        self.workers = workers

    def served(self, kind, task):
        return self.workers[task["name"]]


def test_interleaved_rounds_alternate_samples_and_keep_errors():
    log = []
    workers = {
        "torch": _FakeWorker("torch", log),
        "fn": _FakeWorker("fn", log, fail_prepare=(16,)),
        "loop": _FakeWorker("loop", log, call_s=2.0),
    }
    parts = [
        ("torch", "torch", {"name": "torch"}, dict),
        ("tf", "function", {"name": "fn"}, lambda c: dict(c, mode="function")),
        (
            "tf",
            "xla_loop",
            {"name": "loop"},
            lambda c: dict(c, mode="xla_loop", steps_per_call=4) if c["n"] == 8 else None,
        ),
    ]
    cells = [{"loss": "clip", "m": 3, "n": 8, "d": 4}, {"loss": "clip", "m": 3, "n": 16, "d": 4}]
    recs = protocol.interleaved_rounds(
        _FakeRunner(workers), parts, cells, rounds=2, samples=3, long_call=1.0, timeout=5.0
    )
    round1 = log[: log.index(("torch", "close", None))]
    # Cell 1: all prepare, then turns; the 2 s loop worker takes one sample only; each turn starts
    # with the next participant.
    assert round1[:3] == [("torch", "prepare", 8), ("fn", "prepare", 8), ("loop", "prepare", 8)]
    turns = [("torch", "fn", "loop"), ("fn", "torch"), ("torch", "fn")]  # loop: done after turn 1
    assert round1[3:10] == [(w, "sample", 8) for turn in turns for w in turn]
    # Cell 2: the function worker fails to prepare; the loop mode does not cover it.
    assert ("loop", "prepare", 16) not in log and ("fn", "sample", 16) not in log
    # Round 2 runs the participants in reverse order: the reference prepares last.
    round2 = log[log.index(("torch", "close", None)) + 3 :]
    assert [w for w, op, n in round2[:3]] == ["loop", "fn", "torch"]
    merged = {(r["mode"], r["n"]): r for r in protocol.merge_rounds(recs)}
    assert len(merged[("torch", 8)]["samples_s"]) == 6 and merged[("xla_loop", 8)]["samples_s"] == [2.0, 2.0]
    assert merged[("xla_loop", 8)]["per_call_s"] == 8.0
    assert merged[("function", 16)]["error"] == "RuntimeError: no" and merged[("torch", 16)]["median_s"] == 0.01


def test_interleaved_rounds_keep_the_samples_taken_before_a_failure():
    log = []
    workers = {"torch": _FakeWorker("torch", log, fail_sample_after=1), "fn": _FakeWorker("fn", log)}
    parts = [("torch", "torch", {"name": "torch"}, dict), ("tf", "function", {"name": "fn"}, dict)]
    recs = protocol.interleaved_rounds(
        _FakeRunner(workers),
        parts,
        [{"loss": "n", "m": 3, "n": 8, "d": 4}],
        rounds=1,
        samples=3,
        long_call=1.0,
        timeout=5.0,
    )
    by_impl = {r["impl"]: r for r in recs}
    assert by_impl["reference"]["samples_s"] == [0.01] and "error" not in by_impl["reference"]
    assert len(by_impl["tf_mmcl"]["samples_s"]) == 3
    # After its failure the reference is asked for no more samples.
    assert [op for w, op, _ in log if w == "torch"].count("sample") == 2


@pytest.mark.slow
def test_served_worker_subprocess_prepares_samples_and_survives_a_bad_cell():
    """The real protocol: a TF worker process, a good cell, a bad one, another good one."""
    runner = protocol.Runner(cli.parse_args(["--warmup=0", "--min_time=0", "--threads=1"]))
    worker = runner.served("tf", {})
    try:
        cell = {"loss": "clip", "m": 3, "n": 8, "d": 4, "mode": "function"}
        rec = worker.ask({"op": "prepare", "cell": cell}, timeout=120)
        assert "error" not in rec, rec
        assert rec["inner"] >= 1 and rec["warmup_calls"] >= 1 and rec["loss_value"] > 0
        assert worker.ask({"op": "sample", "inner": 2}, timeout=60)["s"] > 0
        bad = worker.ask({"op": "prepare", "cell": dict(cell, loss="nope")}, timeout=60)
        assert "unknown loss" in bad["error"]
        again = worker.ask({"op": "prepare", "cell": dict(cell, mode="function_loop", steps_per_call=2)}, timeout=120)
        assert "error" not in again and again["steps_per_call"] == 2
        assert worker.ask({"op": "sample", "inner": 1}, timeout=60)["s"] > 0
    finally:
        worker.close()
    assert worker.proc is None


@pytest.mark.parametrize("m,n,d,block", [(2, 5, 3, None), (3, 6, 4, None), (3, 7, 3, 3), (4, 4, 3, None), (4, 5, 2, 7)])
def test_joint_kernel_matches_per_anchor_streamed_values_and_gradients(m, n, d, block):
    """The benchmark's n_squared_joint row is the same objective: values and gradients agree with
    ``streamed_logsumexp`` per anchor (itself checked against naive enumeration in tests/losses)."""
    import numpy as np
    import tensorflow as tf

    from tf_mmcl.ops.symile_logits import joint_streamed_logsumexps, streamed_logsumexp

    rng = np.random.default_rng(m * 10 + n)
    reps = [tf.constant(rng.normal(size=(n, d)).astype("float32")) for _ in range(m)]
    ups = [tf.constant(rng.normal(size=(n,)).astype("float32")) for _ in range(m)]
    scale = tf.constant(2.5)
    with tf.GradientTape() as t1:
        t1.watch(reps + [scale])
        joint = joint_streamed_logsumexps(reps, scale, block_size=block)
        lj = tf.add_n([tf.reduce_sum(a * u) for a, u in zip(joint, ups)])
    with tf.GradientTape() as t2:
        t2.watch(reps + [scale])
        per = [streamed_logsumexp(scale * reps[a], [r for k, r in enumerate(reps) if k != a]) for a in range(m)]
        lp = tf.add_n([tf.reduce_sum(a * u) for a, u in zip(per, ups)])
    for a, b in zip(joint, per):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(t1.gradient(lj, reps + [scale]), t2.gradient(lp, reps + [scale])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cpu_steps_read_back_the_loss_only_and_agree_with_a_full_read_back():
    """On the CPU with synchronous execution the call returns with every output computed."""
    import tensorflow as tf

    assert tf.config.experimental.get_synchronous_execution() and not tf_worker._must_read_back(tf)
    step = tf_worker._tf_step(tf, "clip", "function")
    args = [tf.constant(common.LOGIT_SCALE)] + [tf.constant(r) for r in common.make_reps(8, 4, 3)]
    assert tf_worker._tf_call(tf, step, args, read_back=False) == tf_worker._tf_call(tf, step, args, read_back=True)


def test_the_tools_entry_point_rewrites_a_report_from_json_without_tensorflow(tmp_path):
    """`python tools/benchmark.py` is a thin entry point: same flags, same report, from any directory."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = cli.parse_args([])
    timings = [
        {"impl": impl, "mode": mode, "loss": "n_squared", "m": 3, "n": 256, "d": 256, "median_s": t, "loss_value": 1.0}
        for impl, mode, t in [("reference", "torch", 0.2), ("tf_mmcl", "xla", 0.1)]
    ]
    res = {
        "machine": {"cpu_count": 2, "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0]},
        "config": vars(args),
        "reference": {"available": True},
        "timings": timings,
    }
    (tmp_path / "r.json").write_text(json.dumps(res))
    code = (
        "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
        "print('TENSORFLOW_IMPORTED', 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"{root}/tools/benchmark.py", "--from_json", "r.json", "--output_md", "out.md"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TENSORFLOW_IMPORTED False" in proc.stdout
    assert (tmp_path / "out.md").read_text() == report.write_markdown(res, None)
