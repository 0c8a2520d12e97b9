"""README.md as a new user runs it: every shell command and the Python snippet, on a fresh copy.

The repository's files (what a clone holds: tracked and not-ignored files) are copied into a
temporary directory and the README's ```bash blocks run there in order, as written, with
``python`` being this interpreter; the training commands get flags that shrink the data and
epochs (appended, so the README's own flags are all exercised). Install lines (venv, pip, make)
are not run here (the interpreter running the tests is the installed environment), but they
must name extras that exist. The ```python snippet runs as a script.
"""

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# Appended to every tools/train.py command: small splits, one epoch, a line per epoch.
SHRINK_TRAIN = [
    "--config.dataset.params.n_train=512",
    "--config.dataset.params.n_val=128",
    "--config.dataset.params.n_test=128",
    "--config.epochs=2",
    "--config.verbose=2",
]
# Lines of the bash blocks that set up the environment rather than use the project.
INSTALL_PREFIXES = ("python3 -m venv", "pip install", "make ")


def fenced_blocks(language):
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.S | re.M) if m.group(1) == language]


def commands():
    """Every command line of the README's bash blocks (continuations joined, comments dropped)."""
    out = []
    for block in fenced_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                out.append(line)
    return out


def test_readme_names_the_install_extras_that_exist():
    extras = configparser.ConfigParser()
    extras.read(ROOT / "setup.cfg")
    defined = set(extras["options.extras_require"])
    named = set()
    for block in fenced_blocks("bash"):  # comments included: "# or: pip install -e ".[gpu]""
        for spec in re.findall(r'"\S*\[([\w,]+)\]"', block):
            named.update(spec.split(","))
    assert {"cpu", "gpu"} <= named, named
    assert named <= defined, named - defined
    makefile = (ROOT / "Makefile").read_text()
    assert set(re.search(r"EXTRAS \?= (\S+)", makefile).group(1).split(",")) <= defined
    assert "python3 -m venv .venv && . .venv/bin/activate" in commands()


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The files a fresh clone holds, without build outputs or anything git ignores."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    dest = tmp_path_factory.mktemp("clone")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run(argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(cwd), OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_readme_commands_run_as_written_on_a_fresh_clone(clone):
    ran = []
    for line in commands():
        if line.startswith(INSTALL_PREFIXES):
            continue
        argv = shlex.split(line)
        assert argv[0] == "python" and argv[1].startswith("tools/"), f"README command not covered: {line}"
        argv[0] = sys.executable
        if argv[1] == "tools/train.py":
            argv += SHRINK_TRAIN
        proc = run(argv, clone)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        ran.append((argv[1], proc.stdout))
    tools = [tool for tool, _ in ran]
    assert tools == [
        "tools/train.py",
        "tools/train.py",
        "tools/evaluate.py",
        "tools/export.py",
        "tools/serving_request.py",
    ], tools
    outputs = dict(ran)
    assert "| b,c->a |" in outputs["tools/evaluate.py"]
    assert os.path.isfile(clone / "workdir" / "comparison.md")
    assert os.path.isfile(clone / "models" / "xor" / "1" / "saved_model.pb")
    served = outputs["tools/serving_request.py"]
    assert "logits: shape (8, 32) dtype float32" in served and "top-1 candidate per query" in served
    # Everything the commands wrote is git-ignored: a clone stays clean.
    tracked = {
        Path(n).parts[0]
        for n in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    }
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in clone.iterdir() if p.name not in tracked)
    ignored = subprocess.run(["git", "check-ignore", *written], cwd=ROOT, capture_output=True, text=True).stdout
    assert written and sorted(ignored.split()) == written, (written, ignored)


@pytest.mark.slow
def test_readme_python_snippet_runs_and_logs_a_meaningful_top1(clone):
    (snippet,) = fenced_blocks("python")
    script = clone / "readme_snippet.py"
    script.write_text(snippet + "\nassert logits.shape == (5, 8)\nprint('TOP1_A', history.history['top1_a'][-1])\n")
    proc = run([sys.executable, str(script)], clone)
    assert proc.returncode == 0, proc.stderr[-3000:]
    top1 = float(re.search(r"TOP1_A (\S+)", proc.stdout).group(1))
    assert top1 > 0.95, proc.stdout[-2000:]  # the README says ~1.0
