"""The installable package is the library only, and works installed (not editable) without plots.

``pip install .`` copies ``tf_mmcl/`` into site-packages: a module that reads files next to
the repository (``configs/``, ``reproductions/``) or imports matplotlib at import time works in
a clone and breaks for a user. The first test installs a copy of the package the way pip does
(into a target directory, from a copy of the sources so no build output lands in the clone) and
imports every module of it from another directory with matplotlib made unimportable.
"""

import ast
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tf_mmcl")
# Top-level folders of a clone that are not part of the installed library.
OUTSIDE = ("reproductions", "benchmarks", "configs", "tools", "tests")

_CHECK = textwrap.dedent(
    """
    import importlib, importlib.abc, json, os, pkgutil, sys, tempfile
    site = sys.argv[1]
    sys.path.insert(0, site)

    class NoPlotting(importlib.abc.MetaPathFinder):
        # A user without the `plot` extra: matplotlib cannot be imported.
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, NoPlotting())
    import tf_mmcl
    names = ["tf_mmcl"]
    for info in pkgutil.walk_packages(tf_mmcl.__path__, "tf_mmcl."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            importlib.import_module(info.name)
            names.append(info.name)
    import tensorflow_datasets as tfds
    from tf_mmcl import training
    builder = tfds.builder("symile_xor/tiny", data_dir=tempfile.mkdtemp())
    builder.download_and_prepare()
    rows = sum(1 for _ in builder.as_dataset(split="train"))
    try:
        training.plot_retrieval({"directions": {}, "chance": 0.1, "task": "t"}, os.devnull)
        plot_error = ""
    except ImportError as e:
        plot_error = str(e)
    print(json.dumps({
        "file": tf_mmcl.__file__, "modules": names, "rows": rows, "plot_error": plot_error,
        "plotting_available": training.plotting_available(),
        "matplotlib_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib"),
        "outside_loaded": sorted(m for m in sys.modules if m.split(".")[0] in OUTSIDE_NAMES),
    }))
""".replace("OUTSIDE_NAMES", repr(OUTSIDE))
)


def _source_copy(dest):
    """setup.py, setup.cfg, README.md and tf_mmcl/ (no caches): what `pip install .` reads."""
    os.makedirs(dest)
    for name in ("setup.py", "setup.cfg", "README.md"):
        shutil.copy(os.path.join(ROOT, name), dest)
    shutil.copytree(PACKAGE, os.path.join(dest, "tf_mmcl"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _package_files(root):
    out = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out.update(os.path.relpath(os.path.join(directory, f), root) for f in files if not f.endswith(".pyc"))
    return out


def test_installed_copy_is_the_library_only_and_imports_without_matplotlib(tmp_path):
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    _source_copy(str(src))
    elsewhere.mkdir()
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(elsewhere),
    )
    assert install.returncode == 0, install.stderr[-3000:]
    top = sorted(os.listdir(site))
    assert [t for t in top if not t.endswith(".dist-info")] == ["tf_mmcl"], top
    # Every file of the package (modules and any data file a module reads at run time) was installed.
    missing = _package_files(PACKAGE) - _package_files(str(site / "tf_mmcl"))
    assert not missing, f"not installed by `pip install .` (add them to setup.cfg package_data): {sorted(missing)}"

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1")
    script = tmp_path / "check.py"
    script.write_text(_CHECK)
    run = subprocess.run(
        [sys.executable, str(script), str(site)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(elsewhere),
        env=env,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    import json

    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["file"] == str(site / "tf_mmcl" / "__init__.py")
    assert out["matplotlib_loaded"] == [] and out["outside_loaded"] == []
    assert {"tf_mmcl.training", "tf_mmcl.datasets.symile_xor", "tf_mmcl.losses", "tf_mmcl.export"} <= set(
        out["modules"]
    )
    assert out["rows"] > 0  # a tfds builder of the installed copy generated its data
    assert out["plotting_available"] is False
    assert 'pip install "tf-mmcl[plot]"' in out["plot_error"]


def _modules():
    for directory, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(directory, f)
                with open(path, encoding="utf-8") as fh:
                    yield os.path.relpath(path, ROOT), ast.parse(fh.read())


def test_library_imports_nothing_outside_the_package_and_no_plotting_at_module_level():
    bad = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                roots = []
            bad += [f"{path}:{node.lineno} imports {r}" for r in roots if r in OUTSIDE]
            # Files next to a module are found from __file__: the installed copy has only tf_mmcl/.
            if isinstance(node, ast.Name) and node.id == "__file__":
                bad.append(f"{path}:{node.lineno} uses __file__ (read package data with importlib.resources)")
        for node in tree.body:  # module level: the `plot` extra is optional
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad += [
                f"{path}:{node.lineno} imports {n} at import time" for n in names if n.split(".")[0] == "matplotlib"
            ]
    assert not bad, bad


def test_plots_name_the_extra_when_matplotlib_is_missing(monkeypatch, tmp_path):
    from tf_mmcl.training import report

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r'pip install "tf-mmcl\[plot\]"'):
        report.plot_retrieval({"directions": {"a": {"top1": 0.5}}, "chance": 0.1, "task": "t"}, str(tmp_path / "p.png"))
    assert not (tmp_path / "p.png").exists()
