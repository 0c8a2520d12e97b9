"""Benchmark harnesses of tf_mmcl (run from a clone; not part of the installed package).

* :mod:`benchmarks.contrastive`: the contrastive objectives against the reference
  implementations (time, memory, roofline, bfloat16, training throughput); ``tools/benchmark.py``.
"""
