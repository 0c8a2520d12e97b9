"""tools/benchmark_gate.py at a tiny size: both steps are timed and their ratio is reported."""

import argparse

import pytest

from tools import benchmark_gate


def test_tiny_run_reports_both_steps_and_their_ratio():
    args = argparse.Namespace(
        batch_size=16,
        input_dim=8,
        embedding_dim=8,
        key_dim=4,
        num_negatives=15,
        gate_type="softmax",
        warmup=1,
        repeats=1,
        jit_compile=False,
        seed=0,
        json=True,
    )
    result = benchmark_gate.measure(args)
    assert result["symile_ms"] > 0 and result["gated_ms"] > 0
    assert result["ratio"] == pytest.approx(result["gated_ms"] / result["symile_ms"], rel=0.05, abs=0.02)
    assert result["settings"]["batch_size"] == 16


def test_bad_sizes_are_named():
    with pytest.raises(SystemExit):
        benchmark_gate.main(["--batch_size=0"])
