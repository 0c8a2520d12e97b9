"""Comments, docstrings and defaults state requirements and carry no machine-local paths.

A comment that cites a tracker entry ("the issue", "issue 22") instead of the requirement loses
its meaning once the entry is closed; a default such as ``/tmp/refvenv`` or a path under
``/work`` or ``/root`` works on one machine only.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCANNED = ("tf_mmcl", "tools", "configs", "reproductions", "docs", "README.md")
# Written by the reproduction runner, with relative paths; not edited by hand.
GENERATED = {"docs/results.md"}
PATTERNS = {
    "cites the tracker instead of the requirement": re.compile(r"\bthe issue\b|\bissue #?\d+", re.IGNORECASE),
    "machine-local path": re.compile(r"(?<![\w.~-])/(?:work|root|home|tmp)/"),
}


def _files():
    for name in SCANNED:
        path = ROOT / name
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in paths:
            rel = p.relative_to(ROOT).as_posix()
            if p.is_file() and p.suffix in {".py", ".md", ".txt", ".cfg"} and rel not in GENERATED:
                yield rel, p


def _findings(text):
    for lineno, line in enumerate(text.splitlines(), 1):
        for what, pattern in PATTERNS.items():
            if pattern.search(line):
                yield f"{lineno}: {what}: {line.strip()}"


@pytest.mark.parametrize(
    "pattern,line",
    [
        ("cites the tracker instead of the requirement", "# Tolerance of the issue."),
        ("cites the tracker instead of the requirement", "run side by side (issue 22)"),
        ("machine-local path", 'DEFAULT = "/tmp/refvenv/bin/python"'),
        ("machine-local path", "git -C /work/.mirror/x archive HEAD"),
    ],
)
def test_patterns_catch_examples(pattern, line):
    assert PATTERNS[pattern].search(line)


@pytest.mark.parametrize("line", ["see `workdir/tfds`", "an issued token", "tf_mmcl/data/tmp/x", "~/tmp/x"])
def test_patterns_leave_other_text_alone(line):
    assert not any(p.search(line) for p in PATTERNS.values())


def test_no_tracker_citations_or_machine_local_paths():
    found = {}
    for rel, path in _files():
        lines = list(_findings(path.read_text(encoding="utf-8", errors="replace")))
        if lines:
            found[rel] = lines
    assert not found, found
