"""Retrieval scored two ways: the exact instance, and any candidate of the right class.

Symile-M3's task retrieves the **image** from (text, audio). On ``m3_digits`` the pair fixes the
digit, not the scan, so the benchmark reports both candidate sets: *by scan* (the example's own
scan among the split's distinct scans; capped by how many scans share a digit) and *by digit
class* (right when the best-scoring candidate of the right class beats every candidate of the
other classes).
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.evaluation.retrieval import metrics_from_ranks, target_ranks

__all__ = ["distinct_candidates", "class_ranks", "instance_and_class_metrics"]


def distinct_candidates(ids):
    """Distinct candidates of a split whose items repeat (a scan reused by several examples).

    Args:
        ids: (N,) int ids of each example's item (e.g. ``image_id``).

    Returns:
        ``(rows, targets)``: ``rows`` (C,) the first example holding each distinct id (embed
        those as the candidates) and ``targets`` (N,) each example's candidate index.

    Example:
        >>> rows, targets = distinct_candidates([7, 3, 7, 5])
        >>> rows.tolist(), targets.tolist()
        ([1, 3, 0], [2, 0, 2, 1])
    """
    ids = np.asarray(ids).reshape(-1)
    _, rows, targets = np.unique(ids, return_index=True, return_inverse=True)
    return rows.astype(np.int64), targets.reshape(-1).astype(np.int64)


def class_ranks(scores, query_classes, candidate_classes) -> np.ndarray:
    """0-based class rank per query: candidates of *other* classes scoring at least as high as
    the best candidate of the query's class (ties count against it).

    Args:
        scores: (B, C) scores, higher = better.
        query_classes: (B,) class of each query.
        candidate_classes: (C,) class of each candidate.

    Returns:
        (B,) int64 ranks.

    Raises:
        ValueError: on shape mismatches, non-finite scores, or a query whose class has no candidate.

    Example:
        >>> class_ranks(np.array([[0.1, 0.9, 0.5]]), [0], [0, 1, 0]).tolist()
        [1]
    """
    s = np.asarray(scores.numpy() if hasattr(scores, "numpy") else scores, np.float64)
    q = np.asarray(query_classes).reshape(-1)
    c = np.asarray(candidate_classes).reshape(-1)
    if s.ndim != 2 or s.shape != (q.size, c.size):
        raise ValueError(
            f"scores must be (len(query_classes), len(candidate_classes)) = ({q.size}, {c.size}), got shape {s.shape}."
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or Inf.")
    same = q[:, None] == c[None, :]
    if not np.all(same.any(axis=1)):
        missing = sorted(set(q[~same.any(axis=1)].tolist()))
        raise ValueError(
            f"No candidate of class(es) {missing}: class retrieval needs every query's class among the candidates."
        )
    best_right = np.where(same, s, -np.inf).max(axis=1, keepdims=True)
    return ((s >= best_right) & ~same).sum(axis=1).astype(np.int64)


def instance_and_class_metrics(scores, targets, query_classes, candidate_classes, ks=(1, 5, 10)) -> dict:
    """``{"by_instance": metrics, "by_class": metrics}`` (top-1, Recall@k, MRR) for one score matrix.

    Example:
        >>> s = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.9]])
        >>> m = instance_and_class_metrics(s, [1, 2], [4, 6], [4, 4, 6], ks=(1,))
        >>> m["by_instance"]["top1"], m["by_class"]["top1"]
        (0.5, 1.0)
    """
    return {
        "by_instance": metrics_from_ranks(target_ranks(scores, targets), ks),
        "by_class": metrics_from_ranks(class_ranks(scores, query_classes, candidate_classes), ks),
    }
