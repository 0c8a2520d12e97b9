"""Contrastive objectives: each a function over a list of embeddings and a Keras ``Loss``
over a dict keyed by modality."""

from tf_mmcl.losses.base import (
    LOGIT_SCALE_KEY,
    ContrastiveLoss,
    diagonal_cross_entropy,
    fused_key,
    symmetric_infonce,
)
from tf_mmcl.losses.clip import CLIPLoss, clip_loss
from tf_mmcl.losses.confu import ConFuLoss, confu_loss, confu_pairs
from tf_mmcl.losses.gated import GatedSymileLoss, gated_symile_loss
from tf_mmcl.losses.gram import GRAMLoss, gram_loss
from tf_mmcl.losses.lp_clip import lp_clip_loss
from tf_mmcl.losses.symile import SymileLoss, symile_loss
from tf_mmcl.losses.triangle import TriangleLoss, triangle_loss

__all__ = [
    "LOGIT_SCALE_KEY",
    "CLIPLoss",
    "ConFuLoss",
    "ContrastiveLoss",
    "GRAMLoss",
    "GatedSymileLoss",
    "SymileLoss",
    "TriangleLoss",
    "clip_loss",
    "confu_loss",
    "confu_pairs",
    "diagonal_cross_entropy",
    "fused_key",
    "gated_symile_loss",
    "gram_loss",
    "lp_clip_loss",
    "symile_loss",
    "symmetric_infonce",
    "triangle_loss",
]
