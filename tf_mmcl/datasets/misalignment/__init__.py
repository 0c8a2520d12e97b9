"""tfds builder ``misalignment``: the Negate-or-Embrace misalignment latent-variable model."""

from tf_mmcl.datasets.misalignment.misalignment_dataset_builder import Builder

__all__ = ["Builder"]
