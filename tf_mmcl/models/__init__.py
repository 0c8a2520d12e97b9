"""Keras models: the multimodal contrastive model trained with ``model.fit``."""

from tf_mmcl.models.contrastive import OBJECTIVES, MultimodalContrastiveModel

__all__ = ["MultimodalContrastiveModel", "OBJECTIVES"]
