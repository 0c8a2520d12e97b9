"""Keras layers of tf_mmcl: modality encoders, projection / normalisation / scale heads, the
ConFu fusion head and the Gated Symile contrastive gate.

One layer per module: ``mlp_encoder``, ``image_encoder``, ``audio_encoder``, ``text_encoder``
(with ``transformer_block``), ``backbone``, ``heads``, ``fusion``, ``gate``. Argument and shape
checks shared by them are in :mod:`tf_mmcl.layers.validation`, sublayer helpers in
:mod:`tf_mmcl.layers.sublayers`. Every encoder maps a batch to un-normalised float features
``(N, D)`` in the layer's compute dtype and honours Keras dtype policies (``mixed_float16`` /
``mixed_bfloat16``: float32 variables, half-precision compute).

Every class is registered with ``keras.saving.register_keras_serializable(package="tf_mmcl")``,
so importing this package is enough for ``keras.models.load_model`` to find them.
"""

from tf_mmcl.layers.audio_encoder import AudioEncoder
from tf_mmcl.layers.backbone import BackboneEncoder
from tf_mmcl.layers.fusion import FusionHead
from tf_mmcl.layers.gate import ContrastiveGate
from tf_mmcl.layers.heads import L2Normalize, LogitScale, ProjectionHead
from tf_mmcl.layers.image_encoder import ImageEncoder
from tf_mmcl.layers.mlp_encoder import MLPEncoder
from tf_mmcl.layers.text_encoder import TextEncoder
from tf_mmcl.layers.transformer_block import TransformerEncoderBlock

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
