"""Randomly initialised keras-hub backbones, tiny or of real sizes, saved as local presets.

No download: the architecture comes from the keyword arguments below and the weights from the
initialisers. Tests build the ``"tiny"`` sizes; the benchmark builds ``"base"`` sizes
(ViT-B/16, Whisper-base's encoder) to measure throughput without pretrained weights.
"""

from __future__ import annotations

import os

import keras

from tf_mmcl.layers.backbone import require_keras_hub

__all__ = ["ARCHITECTURES", "random_backbone", "save_random_preset"]

ARCHITECTURES = {
    "vit": (
        "ViTBackbone",
        {
            "tiny": dict(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64),
            "base": dict(
                image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072
            ),
        },
    ),
    "clip_vision": (
        "CLIPVisionEncoder",
        {
            "tiny": dict(
                image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64
            ),
            "base": dict(
                image_shape=(224, 224, 3),
                patch_size=16,
                num_layers=12,
                num_heads=12,
                hidden_dim=768,
                intermediate_dim=3072,
            ),
        },
    ),
    "bert": (
        "BertBackbone",
        {
            "tiny": dict(
                vocabulary_size=100,
                num_layers=2,
                num_heads=2,
                hidden_dim=32,
                intermediate_dim=64,
                max_sequence_length=16,
            )
        },
    ),
    "xlm_roberta": (
        "XLMRobertaBackbone",
        {
            "tiny": dict(
                vocabulary_size=100,
                num_layers=2,
                num_heads=2,
                hidden_dim=32,
                intermediate_dim=64,
                max_sequence_length=16,
            ),
            "base": dict(
                vocabulary_size=250002,
                num_layers=12,
                num_heads=12,
                hidden_dim=768,
                intermediate_dim=3072,
                max_sequence_length=512,
            ),
        },
    ),
    "distil_bert": (
        "DistilBertBackbone",
        {
            "tiny": dict(
                vocabulary_size=100,
                num_layers=2,
                num_heads=2,
                hidden_dim=32,
                intermediate_dim=64,
                max_sequence_length=16,
            )
        },
    ),
    # Whisper-base's encoder: 6 layers, 8 heads, width 512, 80 mels, 3000 frames. The decoder
    # is built too (keras-hub has no encoder-only class) with a small vocabulary, since
    # BackboneEncoder drops it.
    "whisper": (
        "WhisperBackbone",
        {
            "tiny": dict(
                vocabulary_size=100,
                num_layers=2,
                num_heads=2,
                hidden_dim=32,
                intermediate_dim=64,
                num_mels=16,
                max_encoder_sequence_length=64,
                max_decoder_sequence_length=8,
            ),
            "base": dict(
                vocabulary_size=1000,
                num_layers=6,
                num_heads=8,
                hidden_dim=512,
                intermediate_dim=2048,
                num_mels=80,
                max_encoder_sequence_length=3000,
                max_decoder_sequence_length=32,
            ),
        },
    ),
}


def random_backbone(architecture, size="tiny", seed=0, **overrides):
    """A randomly initialised keras-hub backbone.

    Args:
        architecture: one of ``ARCHITECTURES`` (``"vit"``, ``"clip_vision"``, ``"bert"``,
            ``"xlm_roberta"``, ``"distil_bert"``, ``"whisper"``).
        size: ``"tiny"`` or ``"base"`` (where listed).
        seed: seed of the initialisers.
        **overrides: constructor arguments replacing the size's.

    Returns:
        the keras-hub ``Backbone``.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}.")
    cls_name, sizes = ARCHITECTURES[architecture]
    if size not in sizes:
        raise ValueError(f"size for {architecture!r} must be one of {sorted(sizes)}, got {size!r}.")
    keras_hub = require_keras_hub("random_backbone")
    keras.utils.set_random_seed(seed)
    return getattr(keras_hub.models, cls_name)(**dict(sizes[size], **overrides))


def save_random_preset(directory, architecture, size="tiny", seed=0, **overrides):
    """Saves :func:`random_backbone` as a local preset directory and returns its path.

    ``BackboneEncoder.from_preset(directory)`` then loads it with no network.
    """
    backbone = random_backbone(architecture, size, seed, **overrides)
    directory = os.fspath(directory)
    backbone.save_to_preset(directory)
    return directory
