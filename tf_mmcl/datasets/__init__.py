"""tensorflow-datasets builders of the synthetic benchmarks; importing this registers them.

Registered names (each with ``default``, ``tiny`` and dataset-specific configs):
``symile_xor``, ``confu_xor``, ``fragility``, ``misalignment``. The data are generated in
process, so ``tfds.load("symile_xor/tiny", data_dir=...)`` works offline.

Example:
    >>> import tempfile, tensorflow_datasets as tfds, tf_mmcl.datasets  # doctest: +SKIP
    >>> b = tfds.builder("fragility/tiny", data_dir=tempfile.mkdtemp())  # doctest: +SKIP
    >>> b.download_and_prepare(); ds = b.as_dataset(split="train")  # doctest: +SKIP
"""

from tf_mmcl.datasets._synthetic_builder import TFDS_SPLITS, SyntheticBuilder, SyntheticConfig
from tf_mmcl.datasets.confu_xor import Builder as ConfuXor
from tf_mmcl.datasets.fragility import Builder as Fragility
from tf_mmcl.datasets.m3_digits import Builder as M3Digits  # noqa: F401 (registers m3_digits)
from tf_mmcl.datasets.misalignment import Builder as Misalignment
from tf_mmcl.datasets.symile_xor import Builder as SymileXor

BUILDERS = {b.name: b for b in (SymileXor, ConfuXor, Fragility, Misalignment)}

__all__ = [
    "BUILDERS",
    "ConfuXor",
    "Fragility",
    "Misalignment",
    "SymileXor",
    "SyntheticBuilder",
    "SyntheticConfig",
    "TFDS_SPLITS",
]
