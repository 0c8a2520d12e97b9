"""tfds builder ``fragility``: the fragility benchmark (misaligned / weak / missing modalities)."""

from tf_mmcl.datasets.fragility.fragility_dataset_builder import Builder

__all__ = ["Builder"]
