"""tools/benchmark_retrieval.py on a tiny grid: exact methods agree, the table is written."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the tool in a subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tiny_grid(tmp_path):
    methods = "tf_blocked,tf_blocked_bf16,tf_matmul_topk,numpy"
    try:
        import faiss  # noqa: F401

        methods += ",faiss_flat,faiss_hnsw"
    except ImportError:
        pass
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "benchmark_retrieval.py"),
            "--sizes=3000",
            "--dims=16",
            "--data=random,clustered",
            "--num_queries=40",
            "--min_queries=40",
            "--repeats=1",
            f"--methods={methods}",
            "--max_ann_size=3000",
            f"--output_md={tmp_path / 'r.md'}",
            f"--output_json={tmp_path / 'r.json'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.load(open(tmp_path / "r.json"))["rows"]
    assert {r["data"] for r in rows} == {"random", "clustered"}
    for r in rows:
        if r["method"] in ("tf_blocked", "tf_matmul_topk", "numpy", "faiss_flat"):
            assert r["recall"] == 1.0, r
        assert r["qps_wall"] > 0 and r["q_per_cpu_s"] > 0
    assert "| random | 3,000 | 16 | tf_blocked |" in open(tmp_path / "r.md").read()
