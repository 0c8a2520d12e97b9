#!/usr/bin/env python
"""Benchmark tf_mmcl's contrastive objectives against the reference implementations, same machine, one run.

``python tools/benchmark.py [flags]`` (``--help`` lists them); the harness is the
:mod:`benchmarks.contrastive` package at the top of the repository (CLI, measurement plan,
worker protocol, timing, the TensorFlow and torch workers, report), whose docstring says what
is measured and how.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.contrastive.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
