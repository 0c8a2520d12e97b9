"""tfds builder ``symile_xor``: the Symile binary XOR benchmark."""

from tf_mmcl.datasets.symile_xor.symile_xor_dataset_builder import Builder

__all__ = ["Builder"]
