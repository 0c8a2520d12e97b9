"""tfds builder ``confu_xor``: the ConFu XOR benchmark."""

from tf_mmcl.datasets.confu_xor.confu_xor_dataset_builder import Builder

__all__ = ["Builder"]
