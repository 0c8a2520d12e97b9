"""Retrieval and zero-shot classification metrics over embeddings.

Scores come from :mod:`tf_mmcl.ops` (default :func:`tf_mmcl.ops.mip_scores`: the dot product
for one query modality, the multilinear inner product for (M-1)->1) or from any callable with
the same contract ``score_fn(queries: list[(b, d)], candidates: (c, d)) -> (b, c)``, e.g. a
ConFu fusion head followed by :func:`tf_mmcl.ops.dot_scores`, or a gated score.

Ranks are computed in blocks of queries (and optionally of candidates), so no N x N score
matrix is held at once. Ties count against the right candidate: its rank is the number of
*other* candidates scoring at least as high, so a constant scorer gets top-1 = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tf_mmcl import ops as mm_ops

__all__ = [
    "target_ranks",
    "metrics_from_ranks",
    "retrieval_metrics",
    "retrieve",
    "retrieve_all_directions",
    "zero_shot_classification",
    "metrics_by_group",
]


DEFAULT_KS = (1, 5, 10)


def _check_ks(ks):
    if ks is None:
        ks = DEFAULT_KS
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    if not isinstance(ks, (list, tuple, np.ndarray)):
        raise ValueError(f"ks must be a tuple of positive integers (Recall@k cut-offs), got {ks!r}.")
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one cut-off.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"ks must be positive integers, got {ks!r}.")
    return ks


def resolve_ks(ks, num_candidates):
    """The Recall@k cut-offs that can discriminate among ``num_candidates`` candidates.

    Recall@k with ``k >= C`` is 1.0 whatever the scores. ``ks=None`` (the default of the
    functions here) means ``(1, 5, 10)`` restricted to ``k < C``; explicit ``ks`` holding such a
    ``k`` are an error. Fewer than 2 candidates cannot be ranked at all.

    Example:
        >>> resolve_ks(None, 4), resolve_ks((1, 2), 4)
        ((1,), (1, 2))
    """
    c = int(num_candidates)
    if c < 2:
        raise ValueError(f"retrieval needs at least 2 candidates to rank, got {c}: every metric would be 1.0.")
    if ks is None:
        return tuple(k for k in DEFAULT_KS if k < c)
    ks = _check_ks(ks)
    trivial = [k for k in ks if k >= c]
    if trivial:
        raise ValueError(
            f"ks {trivial} are >= the number of candidates ({c}): Recall@k would be 1.0 whatever "
            f"the scores; use cut-offs below {c} (or ks=None for the defaults that fit)."
        )
    return ks


def _check_targets(targets, b, c):
    t = np.asarray(targets)
    if t.ndim != 1:
        raise ValueError(f"targets must be a 1-D array of candidate indices, got shape {t.shape}.")
    if t.shape[0] != b:
        raise ValueError(f"targets has {t.shape[0]} entries but there are {b} queries.")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        if not np.all(np.equal(np.mod(t, 1), 0)):
            raise ValueError("targets must be integer candidate indices.")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= c):
        raise ValueError(f"targets must index the {c} candidates: got values in [{t.min()}, {t.max()}].")
    return t


def _to_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def target_ranks(scores, targets) -> np.ndarray:
    """0-based rank of the right candidate per row; ties count against it.

    ``rank[i] = #{j != t_i : scores[i, j] >= scores[i, t_i]}``.

    Args:
        scores: (B, C) scores, higher = better.
        targets: (B,) index of the right candidate per row.

    Returns:
        (B,) int64 ranks.

    Example:
        >>> import numpy as np
        >>> target_ranks(np.array([[3., 1., 2.], [1., 1., 0.]]), [0, 1]).tolist()
        [0, 1]
    """
    s = _to_numpy(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be (B, C), got shape {s.shape}.")
    t = _check_targets(targets, s.shape[0], s.shape[1])
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or Inf.")
    right = s[np.arange(s.shape[0]), t][:, None]
    return (s >= right).sum(axis=1).astype(np.int64) - 1


def metrics_from_ranks(ranks, ks=(1, 5, 10)) -> dict:
    """Top-1, Recall@k and MRR from 0-based ranks.

    Returns ``{"top1", "recall@k" for every k in ks other than 1, "mrr"}`` as floats.

    Example:
        >>> metrics_from_ranks([0, 1, 4], ks=(1, 2))
        {'top1': 0.3333333333333333, 'recall@2': 0.6666666666666666, 'mrr': 0.5666666666666667}
    """
    ks = _check_ks(ks)
    r = np.asarray(ranks, np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {r.shape}.")
    out = {"top1": float(np.mean(r < 1))}
    for k in ks:
        if k != 1:
            out[f"recall@{k}"] = float(np.mean(r < k))
    out["mrr"] = float(np.mean(1.0 / (r + 1.0)))
    return out


def retrieval_metrics(scores, targets, ks=None) -> dict:
    """Retrieval metrics for a score matrix: ``{"top1", "recall@5", "recall@10", "mrr"}``.

    Args:
        scores: (B, C) scores of every candidate for every query row (higher = better).
        targets: (B,) index of the right candidate per row.
        ks: Recall@k cut-offs (k = 1 is reported as ``"top1"``), each below the number of
            candidates C (see :func:`resolve_ks`); ``None``: ``(1, 5, 10)`` restricted to k < C.

    Returns:
        Dict of floats. Ties count against the right candidate.

    Example:
        >>> import numpy as np
        >>> retrieval_metrics(np.array([[0.9, 0.1], [0.5, 0.5]]), [0, 0], ks=(1,))
        {'top1': 0.5, 'mrr': 0.75}
    """
    ranks = target_ranks(scores, targets)
    return metrics_from_ranks(ranks, resolve_ks(ks, np.shape(_to_numpy(scores))[1]))


def _as_query_list(queries):
    if isinstance(queries, Mapping):
        queries = list(queries.values())
    if not isinstance(queries, (list, tuple)):
        queries = [queries]
    if not queries:
        raise ValueError("retrieve needs at least one query modality.")
    qs = []
    for q in queries:
        q = _to_numpy(q)
        if q.ndim != 2:
            raise ValueError(f"each query must be (B, d), got shape {q.shape}.")
        qs.append(q)
    b = qs[0].shape[0]
    if any(q.shape[0] != b for q in qs):
        raise ValueError(f"query modalities have different numbers of rows: {[q.shape[0] for q in qs]}.")
    return qs


def _check_block(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}.")
    return int(value)


def _score_block(score_fn, qblock, cands, expected):
    s = _to_numpy(score_fn(qblock, cands))
    if s.shape != expected:
        raise ValueError(f"score_fn returned shape {s.shape}, expected {expected}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("score_fn returned NaN or Inf scores.")
    return s


def retrieve(
    queries,
    candidates,
    targets,
    score_fn: Callable | None = None,
    ks=None,
    batch_size: int = 1024,
    candidate_batch_size: int | None = None,
    return_ranks: bool = False,
):
    """Retrieval of the right candidate for each query tuple, computed in blocks.

    Scores ``score_fn(query_block, candidates)`` for ``batch_size`` query rows at a time, so the
    largest score array is (batch_size, C). With ``candidate_batch_size`` the candidate axis is
    streamed too (largest array (batch_size, candidate_batch_size)): a first pass finds the right
    candidate's score, a second counts the candidates scoring at least as high. The result equals
    :func:`retrieval_metrics` on the full score matrix.

    Args:
        queries: the query modalities, a list (or dict) of (B, d) arrays, or one (B, d) array.
        candidates: (C, d) candidate embeddings of the target modality.
        targets: (B,) index of each query's right candidate.
        score_fn: ``(list of (b, d), (c, d)) -> (b, c)``; default :func:`tf_mmcl.ops.mip_scores`.
        ks: Recall@k cut-offs, each below C (``None``: ``(1, 5, 10)`` restricted to k < C; see
            :func:`resolve_ks`).
        batch_size: query rows per block.
        candidate_batch_size: candidates per block (None: all at once).
        return_ranks: also return the (B,) ranks.

    Returns:
        The metrics dict, or ``(metrics, ranks)`` with ``return_ranks=True``.

    Example:
        >>> import numpy as np
        >>> e = np.eye(4, dtype="float32")
        >>> retrieve([e], e, np.arange(4), batch_size=3, candidate_batch_size=2)["top1"]
        1.0
    """
    ks = None if ks is None else _check_ks(ks)
    score_fn = mm_ops.mip_scores if score_fn is None else score_fn
    if not callable(score_fn):
        raise ValueError("score_fn must be callable.")
    batch_size = _check_block("batch_size", batch_size)
    if batch_size is None:
        raise ValueError("batch_size must be a positive integer.")
    candidate_batch_size = _check_block("candidate_batch_size", candidate_batch_size)
    qs = _as_query_list(queries)
    cands = _to_numpy(candidates)
    if cands.ndim != 2:
        raise ValueError(f"candidates must be (C, d), got shape {cands.shape}.")
    b, c = qs[0].shape[0], cands.shape[0]
    if b == 0 or c == 0:
        raise ValueError(f"retrieve needs at least one query and one candidate, got B={b}, C={c}.")
    ks = resolve_ks(ks, c)
    t = _check_targets(targets, b, c)
    ranks = np.empty(b, np.int64)
    for start in range(0, b, batch_size):
        stop = min(start + batch_size, b)
        qb = [q[start:stop] for q in qs]
        tb = t[start:stop]
        rows = np.arange(stop - start)
        if candidate_batch_size is None or candidate_batch_size >= c:
            s = _score_block(score_fn, qb, cands, (stop - start, c))
            ranks[start:stop] = (s >= s[rows, tb][:, None]).sum(axis=1) - 1
            continue
        right = np.empty(stop - start, np.float64)
        chunks = [(cs, min(cs + candidate_batch_size, c)) for cs in range(0, c, candidate_batch_size)]
        for cs, ce in chunks:
            inside = (tb >= cs) & (tb < ce)
            if inside.any():
                s = _score_block(score_fn, qb, cands[cs:ce], (stop - start, ce - cs))
                right[inside] = s[rows[inside], tb[inside] - cs]
        count = np.zeros(stop - start, np.int64)
        for cs, ce in chunks:
            s = _score_block(score_fn, qb, cands[cs:ce], (stop - start, ce - cs))
            count += (s >= right[:, None]).sum(axis=1)
        ranks[start:stop] = count - 1
    metrics = metrics_from_ranks(ranks, ks)
    return (metrics, ranks) if return_ranks else metrics


def _direction_name(query_names, target):
    return f"{','.join(query_names)}->{target}"


def retrieve_all_directions(
    embeddings: Mapping[str, np.ndarray],
    score_fn=None,
    ks=None,
    batch_size: int = 1024,
    candidate_batch_size: int | None = None,
    directions: str | Sequence = "all",
) -> dict:
    """Retrieval in every direction among aligned embeddings: 1->1 and (M-1)->1.

    Row i of every modality belongs to example i; for target modality m the candidate set is
    all N rows of m and the right candidate of query row i is row i.

    Args:
        embeddings: ``{modality: (N, d)}`` aligned embeddings (M >= 2).
        score_fn: a scoring callable (see :func:`retrieve`), or a dict mapping a direction name
            (``"b,c->a"``) to one; default :func:`tf_mmcl.ops.mip_scores`.
        ks, batch_size, candidate_batch_size: as :func:`retrieve`.
        directions: ``"all"``, ``"1to1"``, ``"m-1to1"``, or an explicit list of
            ``(query_names, target)`` pairs.

    Returns:
        ``{"b->a": metrics, ..., "b,c->a": metrics, ...}``.

    Example:
        >>> import numpy as np
        >>> e = np.eye(3, dtype="float32")
        >>> sorted(retrieve_all_directions({"a": e, "b": e}))
        ['a->b', 'b->a']
    """
    if not isinstance(embeddings, Mapping) or len(embeddings) < 2:
        raise ValueError("retrieve_all_directions needs a dict of at least two modalities' embeddings.")
    names = list(embeddings)
    n = {k: _to_numpy(v).shape[0] for k, v in embeddings.items()}
    if len(set(n.values())) != 1:
        raise ValueError(f"embeddings must be aligned (same N); got {n}.")
    if isinstance(directions, str):
        pairs = []
        if directions not in ("all", "1to1", "m-1to1"):
            raise ValueError(f"directions must be 'all', '1to1', 'm-1to1' or a list, got {directions!r}.")
        for target in names:
            others = [m for m in names if m != target]
            if directions in ("all", "1to1"):
                pairs.extend(([q], target) for q in others)
            if directions in ("all", "m-1to1") and len(others) > 1:
                pairs.append((others, target))
    else:
        pairs = []
        for item in directions:
            qn, target = item
            qn = [qn] if isinstance(qn, str) else list(qn)
            for m in qn + [target]:
                if m not in embeddings:
                    raise ValueError(f"direction {item!r} names an unknown modality {m!r}.")
            if target in qn:
                raise ValueError(f"direction {item!r}: the target cannot also be a query.")
            pairs.append((qn, target))
    out = {}
    targets = np.arange(next(iter(n.values())))
    for qn, target in pairs:
        name = _direction_name(qn, target)
        fn = score_fn.get(name) if isinstance(score_fn, Mapping) else score_fn
        if isinstance(score_fn, Mapping) and fn is None:
            raise ValueError(f"score_fn dict has no entry for direction {name!r}.")
        out[name] = retrieve(
            [embeddings[q] for q in qn],
            embeddings[target],
            targets,
            score_fn=fn,
            ks=ks,
            batch_size=batch_size,
            candidate_batch_size=candidate_batch_size,
        )
    return out


def zero_shot_classification(
    queries, class_embeddings, labels, score_fn=None, ks=None, batch_size: int = 1024, return_predictions: bool = False
):
    """Zero-shot classification: the candidates are the class embeddings, the targets the labels.

    Args:
        queries: the query modalities, as in :func:`retrieve`.
        class_embeddings: (K, d) one embedding per class (e.g. the embedded label set, or all
            2^d codes of the XOR benchmarks).
        labels: (B,) true class indices.
        score_fn, ks, batch_size: as :func:`retrieve` (``ks=None``: ``(1, 5, 10)`` below K).
        return_predictions: also return the (B,) argmax predictions (first index on ties).

    Returns:
        The retrieval metrics plus ``"accuracy"`` (= top-1), or ``(metrics, predictions)``.

    Example:
        >>> import numpy as np
        >>> classes = np.eye(3, dtype="float32")
        >>> zero_shot_classification(classes[[2, 0]], classes, [2, 1], ks=(1,))["accuracy"]
        0.5
    """
    score_fn = mm_ops.mip_scores if score_fn is None else score_fn
    metrics, ranks = retrieve(
        queries, class_embeddings, labels, score_fn=score_fn, ks=ks, batch_size=batch_size, return_ranks=True
    )
    metrics["accuracy"] = metrics["top1"]
    if not return_predictions:
        return metrics
    qs = _as_query_list(queries)
    cands = _to_numpy(class_embeddings)
    preds = np.concatenate(
        [
            np.argmax(_to_numpy(score_fn([q[s : s + batch_size] for q in qs], cands)), axis=1)
            for s in range(0, qs[0].shape[0], batch_size)
        ]
    )
    return metrics, preds


def metrics_by_group(ranks, groups, ks=(1, 5, 10), names: Sequence[str] | None = None) -> dict:
    """Retrieval metrics broken down by a per-example group id (e.g. the corruption kind).

    Args:
        ranks: (B,) ranks from :func:`retrieve` (``return_ranks=True``) or :func:`target_ranks`.
        groups: (B,) integer group per example.
        ks: Recall@k cut-offs.
        names: optional names for group ids 0..K-1 (e.g. ``CORRUPTION_KINDS``).

    Returns:
        ``{group (name or id): metrics dict with an added "count"}``, plus ``"all"``.

    Example:
        >>> metrics_by_group([0, 3, 0], [0, 1, 1], ks=(1,), names=["clean", "weak"])["weak"]["top1"]
        0.5
    """
    ranks = np.asarray(ranks)
    groups = np.asarray(groups)
    if ranks.shape != groups.shape or ranks.ndim != 1:
        raise ValueError(f"ranks and groups must be 1-D of the same length, got {ranks.shape} and {groups.shape}.")
    out = {}
    for g in np.unique(groups):
        sel = groups == g
        key = names[int(g)] if names is not None and 0 <= int(g) < len(names) else int(g)
        out[key] = dict(metrics_from_ranks(ranks[sel], ks), count=int(sel.sum()))
    out["all"] = dict(metrics_from_ranks(ranks, ks), count=int(ranks.size))
    return out
