"""Compatibility module: the encoders now live one per module.

``from tf_mmcl.layers.encoders import MLPEncoder`` (and the other four names) keeps working;
new code imports from :mod:`tf_mmcl.layers`. The classes' registered names
(``"tf_mmcl>MLPEncoder"``, ...) are unchanged, so ``.keras`` files saved when the classes were
defined here still load.

Every encoder maps a batch to un-normalised float features ``(N, D)`` in the layer's compute
dtype; a :class:`~tf_mmcl.layers.ProjectionHead` and :class:`~tf_mmcl.layers.L2Normalize` turn
them into embeddings.
"""

from tf_mmcl.layers.audio_encoder import AudioEncoder
from tf_mmcl.layers.image_encoder import ImageEncoder
from tf_mmcl.layers.mlp_encoder import MLPEncoder
from tf_mmcl.layers.text_encoder import TextEncoder
from tf_mmcl.layers.transformer_block import TransformerEncoderBlock

__all__ = ["AudioEncoder", "ImageEncoder", "MLPEncoder", "TextEncoder", "TransformerEncoderBlock"]
