"""tools/reference_gated_xnor.py: the authors' Synthetic-XNOR run, driven for a side-by-side.

The run itself needs torch and the authors' repository (not part of CI); here: its arguments,
its one-line errors and its atomic output.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "reference_gated_xnor.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("reference_gated_xnor", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60)


def test_methods_are_the_authors_configs():
    tool = load_tool()
    assert tool.METHODS["clip"] == ["modelname=clip"]
    assert tool.METHODS["gated"] == ["modelname=symile", "modelname.use_gate=true", "modelname.negative_sampling=pair"]
    args = tool.parse_args(["--repo=r", "--method=gated", "--seed=2", "--max_epochs=3"])
    assert (args.repo, args.method, args.seed, args.max_epochs, args.output) == ("r", "gated", 2, 3, None)
    args = tool.parse_args(["--repo=r", "--method=clip", "--set=encoders.n_samples=3000", "--set=patience=2"])
    assert args.set == ["encoders.n_samples=3000", "patience=2"]
    with pytest.raises(SystemExit):
        tool.parse_args(["--repo=r", "--method=gram"])


def test_errors_are_one_line_and_name_the_fix(tmp_path):
    proc = run_tool(f"--repo={tmp_path}", "--method=clip")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "error:" in x]
    has_torch = all(importlib.util.find_spec(m) for m in ("torch", "pytorch_lightning", "hydra", "schedulefree"))
    if has_torch:
        assert "is not a gated_symile checkout" in line and "config_synthetic.yaml" in line
    else:
        assert "this Python lacks" in line and "torch" in line and "pytorch_lightning" in line


def test_curve_is_written_atomically(tmp_path):
    tool = load_tool()
    path = tmp_path / "curve.json"
    tool._write_json(str(path), {"val_curve": [0.1, 0.2]})
    assert path.read_text().startswith("{") and [p.name for p in tmp_path.iterdir()] == ["curve.json"]
