"""Top-k retrieval over large candidate sets: :class:`CandidateIndex`, query reductions, backends.

``CandidateIndex.build(model, modality, candidates)`` embeds one modality's candidates once;
``index.search(queries, k)`` returns the model's own top-k for raw queries (1->1 and (M-1)->1,
missing modalities included) without the (queries x candidates) matrix. See docs/retrieval.md.
"""

from tf_mmcl.retrieval.backends import BACKENDS, ExactBackend, FaissBackend
from tf_mmcl.retrieval.evaluation import evaluate_split_with_index
from tf_mmcl.retrieval.index import CandidateIndex
from tf_mmcl.retrieval.reduction import REDUCTIONS, QueryReduction, reduction_for

__all__ = [
    "BACKENDS",
    "CandidateIndex",
    "ExactBackend",
    "FaissBackend",
    "QueryReduction",
    "REDUCTIONS",
    "evaluate_split_with_index",
    "reduction_for",
]
