"""Whole-split retrieval metrics through :class:`~tf_mmcl.retrieval.CandidateIndex`.

Every test example's matching row is ranked among *all* rows of the split (not in-batch), for
every direction (1->1 and (M-1)->1), with exact streamed ranks: memory stays bounded by the
query batch times the candidate block, so splits far larger than a dense (N x N) score matrix
are fine.
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.keys import mask_key
from tf_mmcl.retrieval.index import CandidateIndex

__all__ = ["evaluate_split_with_index"]


def evaluate_split_with_index(model, arrays, ks=(1, 5, 10), batch_size=256, verbose=0):
    """Recall@k and MRR of every direction, each row's own candidate among the whole split.

    Args:
        model: a trained :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
        arrays: dict modality -> (N, ...) aligned raw inputs (optional ``"<m>_mask"`` presence).
        ks: Recall@k cut-offs.
        batch_size: query rows (and embedding rows) per step.
        verbose: 1 shows the indexing progress bars.

    Returns:
        ``{"task", "num_examples", "num_candidates", "chance", "split", "directions":
        {"b->a": metrics, "b,c->a": metrics, ...}}`` (metrics of
        :func:`tf_mmcl.evaluation.metrics_from_ranks`).

    Example:
        >>> import numpy as np, tf_mmcl
        >>> model = tf_mmcl.models.MultimodalContrastiveModel(
        ...     {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in "ab"}, embedding_dim=4)
        >>> x = {m: np.random.rand(20, 3).astype("float32") for m in "ab"}
        >>> _ = model(x)
        >>> sorted(evaluate_split_with_index(model, x, ks=(1, 5))["directions"])
        ['a->b', 'b->a']
    """
    missing = [m for m in model.modalities if m not in arrays]
    if missing:
        raise ValueError(f"arrays lacks the model's modalities {missing}.")
    n = int(np.asarray(arrays[model.modalities[0]]).shape[0])
    directions = {}
    for target in model.modalities:
        index = CandidateIndex.build(model, target, arrays[target], batch_size=max(batch_size, 1024), verbose=verbose)
        others = [m for m in model.modalities if m != target]
        for qs in [[q] for q in others] + ([others] if len(others) > 1 else []):
            queries = {q: arrays[q] for q in qs}
            masks = {q: np.asarray(arrays[mask_key(q)], bool) for q in qs if mask_key(q) in arrays}
            if model.objective.absent_query_value is None and len(qs) > 1:
                masks = {}  # the score needs every query (GRAM, TRIANGLE); masked rows are ranked as given
            directions[f"{','.join(qs)}->{target}"] = index.evaluate(
                queries, np.arange(n), ks=ks, query_masks=masks or None, batch_size=batch_size
            )
    return {
        "task": "retrieval of the matching row among the whole split (CandidateIndex, exact ranks)",
        "num_examples": n,
        "num_candidates": n,
        "chance": 1.0 / n,
        "split": "test",
        "directions": directions,
    }
