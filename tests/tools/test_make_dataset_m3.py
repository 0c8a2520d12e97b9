"""`tools/make_dataset.py m3_digits` builds the dataset (from the cached clips, offline)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the tool in a subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_make_dataset_builds_m3_digits_from_cached_clips(tmp_path):
    clips = os.path.join(REPO, "tests", "datasets", "data", "m3_digits_clips")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "make_dataset.py"),
            "m3_digits/tiny",
            f"--data_dir={tmp_path}",
            f"--clip_source={clips}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Prepared m3_digits/tiny" in proc.stdout
    assert "'train': 40" in proc.stdout
    assert os.path.isdir(tmp_path / "m3_digits" / "tiny")
