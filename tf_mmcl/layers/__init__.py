"""Keras layers of tf_mmcl: modality encoders, projection / normalisation / scale heads, the
ConFu fusion head and the Gated Symile contrastive gate.

Every class is registered with ``keras.saving.register_keras_serializable(package="tf_mmcl")``,
so importing this package is enough for ``keras.models.load_model`` to find them.
"""

from tf_mmcl.layers.backbone import BackboneEncoder
from tf_mmcl.layers.encoders import (
    AudioEncoder,
    ImageEncoder,
    MLPEncoder,
    TextEncoder,
    TransformerEncoderBlock,
)
from tf_mmcl.layers.fusion import FusionHead
from tf_mmcl.layers.heads import L2Normalize, LogitScale, ProjectionHead

__all__ = [
    "AudioEncoder",
    "BackboneEncoder",
    "ContrastiveGate",
    "FusionHead",
    "ImageEncoder",
    "L2Normalize",
    "LogitScale",
    "MLPEncoder",
    "ProjectionHead",
    "TextEncoder",
    "TransformerEncoderBlock",
]

from tf_mmcl.layers.gate import ContrastiveGate  # noqa: E402
