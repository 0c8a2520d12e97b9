"""Similarity math: one source of truth for losses, evaluation and serving."""

from tf_mmcl.ops.checks import check_representations
from tf_mmcl.ops.infonce import mean_symmetric_infonce_over_pairs, symmetric_infonce_from_embeddings
from tf_mmcl.ops.lp_distance import lp_distance_matrix
from tf_mmcl.ops.similarity import (
    dot_scores,
    gram_volume_matrix,
    mip,
    mip_scores,
    triangle_area_matrix,
)
from tf_mmcl.ops.symile_logits import shuffled_negative_logits, shuffled_negative_logsumexp, streamed_logsumexp
from tf_mmcl.ops.topk import block_top_k, blocked_top_k, merge_top_k, streaming_top_k

__all__ = [
    "block_top_k",
    "blocked_top_k",
    "merge_top_k",
    "streaming_top_k",
    "check_representations",
    "dot_scores",
    "gram_volume_matrix",
    "lp_distance_matrix",
    "mip",
    "mean_symmetric_infonce_over_pairs",
    "mip_scores",
    "shuffled_negative_logits",
    "shuffled_negative_logsumexp",
    "streamed_logsumexp",
    "symmetric_infonce_from_embeddings",
    "triangle_area_matrix",
]
