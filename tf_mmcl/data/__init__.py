"""Data: tf.data pipelines over modality dicts, corruption transforms, synthetic benchmarks.

Conventions: an example is a dict keyed by modality name (float32 features or int32 token
ids) with an optional boolean presence mask ``"<name>_mask"`` (True = present); other keys
(``"corruption"``, ``"label"``, latents) are for evaluation.
"""

from tf_mmcl.data import synthetic
from tf_mmcl.data.corruptions import GaussianNoise, Misalign, ModalityDropout, snr_db
from tf_mmcl.data.pipeline import (
    MASK_SUFFIX,
    SPLITS,
    MultimodalSplits,
    from_numpy,
    from_tfds,
    from_tfrecord,
    make_pipeline,
    mask_key,
    write_tfrecord,
)

__all__ = [
    "GaussianNoise",
    "MASK_SUFFIX",
    "Misalign",
    "ModalityDropout",
    "MultimodalSplits",
    "SPLITS",
    "from_numpy",
    "from_tfds",
    "from_tfrecord",
    "make_pipeline",
    "mask_key",
    "snr_db",
    "synthetic",
    "write_tfrecord",
]
