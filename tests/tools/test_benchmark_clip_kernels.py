"""tools/benchmark_clip_kernels.py at a tiny size: the kernels agree and the table is written."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs the tool in a subprocess

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_prints_a_table():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark_clip_kernels.py"), "--sizes=8x4", "--repeats=1", "--inner=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 3  # header, rule, one row per mode
    assert all(" ms" in line for line in lines[2:])


def test_bad_sizes_are_a_clear_error():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark_clip_kernels.py"), "--sizes=8by4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--sizes must look like" in proc.stderr


def test_floor_mode_prints_the_four_calls():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark_clip_kernels.py"), "--floor", "--repeats=1", "--inner=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and " ms |" in line]
    assert len(rows) == 4 and "concrete function" in rows[-1]
