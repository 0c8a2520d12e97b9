"""Real encoders for real modalities: keras-hub presets, cached features, head-only training.

* :mod:`tf_mmcl.hub.random_presets`: randomly initialised keras-hub backbones of real or tiny
  sizes, saved as local presets (tests, benchmarks, offline dry runs).
* :mod:`tf_mmcl.hub.features`: frozen encoders over a dataset -> sharded TFRecords of pooled
  features plus a manifest (resumable), and reading them back as a ``tf.data`` pipeline.
* :mod:`tf_mmcl.hub.heads`: head-only models over cached features and their composition with
  the backbones into a raw-input model for export.

The encoder layer itself is :class:`tf_mmcl.layers.BackboneEncoder`. keras-hub is imported
lazily (``make install-hub``); importing this package does not need it.
"""

from tf_mmcl.hub import features, finetune, heads
from tf_mmcl.hub.finetune import scale_backbone_learning_rate
from tf_mmcl.hub.heads import CachedFeatures, compose_with_encoders, head_model
from tf_mmcl.hub.random_presets import random_backbone, save_random_preset

__all__ = [
    "CachedFeatures",
    "compose_with_encoders",
    "features",
    "finetune",
    "head_model",
    "heads",
    "random_backbone",
    "save_random_preset",
    "scale_backbone_learning_rate",
]
