"""``CandidateIndex``: one modality's candidates embedded once, searched by a trained model."""

from __future__ import annotations

import io
import json
import math
import os
import uuid

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_mmcl.keys import mask_modality
from tf_mmcl.ops import topk
from tf_mmcl.retrieval import backends as backends_lib

__all__ = ["CandidateIndex"]

_FORMAT = "tf_mmcl.CandidateIndex/1"
# Largest (rows x candidates) score block materialised while re-scoring (floats).
_RESCORE_BUDGET = 1 << 22


def _as_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


class CandidateIndex:
    """Top-k retrieval of one modality's candidates for raw queries, by the model's own score.

    Build with :meth:`build`; :meth:`search` returns the same top-k as ranking
    ``model.score(queries, modality, candidates)`` row by row (scores included, logit scale
    applied), without the (queries x candidates) matrix:

    * objectives whose score reduces to one query vector (CLIP, Symile, ConFu; GRAM /
      TRIANGLE 1->1; see :meth:`tf_mmcl.objectives.Objective.reduce_queries`) run one maximum-inner-product
      search;
    * the others (GRAM / TRIANGLE with 2+ queries, Gated Symile) take a shortlist from a
      proxy vector and re-score it with the model's own score. The shortlist depth is chosen
      by :meth:`calibrate` for a target recall of the exact top-k (measured, in
      :attr:`calibration`); a search of a query set never calibrated calibrates on (up to
      ``calibration_queries`` of) its own rows first.

    Args:
        model: the trained :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
        modality: the candidate modality.
        embeddings: (C, D) float32 candidate embeddings (``model.embed``).
        ids: (C,) ids (ints or strings); default ``arange(C)``.
        backend: ``"exact"`` (default; blocked TF matmul with streaming top-k) or
            ``"faiss_flat"`` / ``"faiss_hnsw"`` / ``"faiss_ivfpq"`` (needs the ``faiss`` extra).
        backend_options: options of the backend (see :mod:`tf_mmcl.retrieval.backends`), e.g.
            ``{"dtype": "bfloat16"}`` for the exact backend.
        target_recall: recall of the exact top-k the shortlist must reach on the calibration
            queries (default 1.0: every calibration query's exact top-k is inside it).
        shortlist_margin: the calibrated depth is multiplied by this (default 2) for queries
            beyond the calibration sample.

    Example:
        >>> import numpy as np, tf_mmcl
        >>> model = tf_mmcl.models.MultimodalContrastiveModel(
        ...     {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in "abc"},
        ...     embedding_dim=4, objective="symile")
        >>> x = {m: np.random.rand(50, 3).astype("float32") for m in "abc"}
        >>> _ = model(x)
        >>> index = tf_mmcl.retrieval.CandidateIndex.build(model, "c", x["c"], verbose=0)
        >>> scores, ids = index.search({"a": x["a"][:2], "b": x["b"][:2]}, k=5)
        >>> scores.shape, ids.shape
        ((2, 5), (2, 5))
    """

    def __init__(
        self,
        model,
        modality,
        embeddings,
        ids=None,
        backend="exact",
        backend_options=None,
        target_recall=1.0,
        shortlist_margin=2.0,
        calibration_queries=256,
        _backend_state=None,
    ):
        _check_model(model)
        model._check_modality(modality, "candidate modality")
        emb = np.asarray(embeddings, np.float32)
        if emb.ndim != 2 or emb.shape[1] != model.embedding_dim:
            raise ValueError(f"embeddings must be (C, {model.embedding_dim}), got shape {emb.shape}.")
        if emb.shape[0] < 1:
            raise ValueError("A CandidateIndex needs at least one candidate.")
        if not np.all(np.isfinite(emb)):
            raise ValueError("embeddings contain NaN or inf; check the model and the candidates.")
        if ids is None:
            ids = np.arange(emb.shape[0], dtype=np.int64)
        ids = np.asarray(ids)
        if ids.shape != (emb.shape[0],):
            raise ValueError(f"ids must be a vector of {emb.shape[0]} ids (one per candidate), got shape {ids.shape}.")
        if ids.dtype.kind not in "iuUSO":
            raise ValueError(f"ids must be integers or strings, got dtype {ids.dtype}.")
        if ids.dtype.kind in "SO":
            ids = ids.astype(str)
        if not 0.0 < float(target_recall) <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}.")
        if float(shortlist_margin) < 1.0:
            raise ValueError(f"shortlist_margin must be >= 1, got {shortlist_margin!r}.")
        self.model = model
        self.modality = modality
        self.embeddings = emb
        self.ids = ids
        self.backend_name = backend
        self.backend_options = dict(backend_options or {})
        self.backend = backends_lib.make_backend(backend, emb, self.backend_options, state=_backend_state)
        self.target_recall = float(target_recall)
        self.shortlist_margin = float(shortlist_margin)
        self.calibration_queries = int(calibration_queries)
        self.calibration = {}
        self.backend_recall = None
        if not isinstance(self.backend, backends_lib.ExactBackend):
            self.backend_recall = self.measure_backend_recall()

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, model, modality, candidates, ids=None, batch_size=1024, verbose=1, **kwargs):
        """Embeds ``candidates`` with ``model.embed(modality, ...)`` in batches and indexes them.

        Args:
            model: a built :class:`~tf_mmcl.models.MultimodalContrastiveModel`.
            modality: the candidate modality.
            candidates: raw inputs (C, ...) of that modality (array / tensor), or a
                ``tf.data.Dataset`` of them: batched or unbatched tensors, or dicts holding the
                modality (other keys ignored).
            ids: optional (C,) ids returned by :meth:`search` (default: row positions).
            batch_size: rows per embedding call (also used to batch an unbatched dataset).
            verbose: 1 shows a progress bar.
            **kwargs: the constructor's options (``backend``, ``backend_options``, ...).

        Returns:
            CandidateIndex.
        """
        _check_model(model)
        model._check_modality(modality, "candidate modality")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        embed = _embed_fn(model, modality)
        chunks = []
        if isinstance(candidates, tf.data.Dataset):
            ds = _batched_dataset(model, modality, candidates, batch_size)
            card = int(ds.cardinality())
            bar = keras.utils.Progbar(card if card > 0 else None, verbose=verbose, unit_name="batch")
            for i, batch in enumerate(ds):
                chunks.append(embed(batch).numpy())
                bar.update(i + 1)
        else:
            data = candidates
            n = int(data.shape[0]) if hasattr(data, "shape") else len(data)
            bar = keras.utils.Progbar(n, verbose=verbose, unit_name="candidate")
            for start in range(0, n, batch_size):
                chunks.append(embed(tf.convert_to_tensor(data[start : start + batch_size])).numpy())
                bar.update(min(n, start + batch_size))
        if not chunks:
            raise ValueError("candidates is empty: nothing to index.")
        return cls(model, modality, np.concatenate(chunks), ids=ids, **kwargs)

    @property
    def num_candidates(self):
        return int(self.embeddings.shape[0])

    def __len__(self):
        return self.num_candidates

    # ------------------------------------------------------------------ search
    def search(self, queries, k=10, query_masks=None, batch_size=256):
        """Top-k candidates for each row of raw queries.

        Args:
            queries: dict query modality -> raw inputs (B, ...), as ``model.score`` takes
                them (modalities left out are missing; optional ``"<m>_mask"`` keys or
                ``query_masks`` mark missing rows).
            k: how many candidates per row (<= the number of candidates).
            query_masks: optional dict modality -> bool (B,) presence.
            batch_size: query rows per step.

        Returns:
            (scores (B, k) float32 descending, the model's score with its logit scale;
            ids (B, k) of the candidates, row positions unless ``ids`` were given).
        """
        values, masks, names, b = self._split_queries(queries, query_masks)
        k = self._check_k(k)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        objective = self.model.objective  # reduces the queries to one vector (exactly or as a proxy)
        exact = objective.reduces_exactly(self.model, names)
        key = self._key(names)
        if not exact and key not in self.calibration:
            rows = min(b, self.calibration_queries)
            self.calibrate(
                {n: v[:rows] for n, v in values.items()}, k=k, query_masks={n: m[:rows] for n, m in masks.items()}
            )
        scores, positions = [], []
        for start in range(0, b, batch_size):
            sl = slice(start, start + batch_size)
            emb, fused = self._encode({n: v[sl] for n, v in values.items()})
            m = {n: tf.constant(v[sl]) for n, v in masks.items()}
            vec = objective.reduce_queries(self.model, self.modality, emb, fused, m)
            if exact:
                s, p = self._search_reduced(vec, k)
            else:
                depth = self._shortlist_depth(key, k)
                _, cand = self._backend_search(vec, depth)
                s, p = self._rescore(emb, fused, m, cand, k)
            scores.append(s)
            positions.append(p)
        return np.concatenate(scores).astype(np.float32), self.ids[np.concatenate(positions)]

    def calibrate(self, queries, k=10, target_recall=None, query_masks=None):
        """Chooses the shortlist depth of a non-reducible query set for a target recall.

        Computes the exact top-k of ``queries`` (every candidate scored by the model, in
        blocks) and where each lands in the proxy ranking; the depth is the smallest one that
        reaches ``target_recall`` of those top-k entries, times ``shortlist_margin`` (at least
        ``4 k``, at most every candidate). The result (depth, measured recall at that depth on
        these queries, counts) goes into :attr:`calibration` under the query modalities.

        Returns:
            dict: the calibration record.
        """
        values, masks, names, b = self._split_queries(queries, query_masks)
        k = self._check_k(k)
        target = self.target_recall if target_recall is None else float(target_recall)
        if not 0.0 < target <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}.")
        objective = self.model.objective
        emb, fused = self._encode(values)
        m = {n: tf.constant(v) for n, v in masks.items()}
        c = self.num_candidates
        probe = min(c, max(4096, 64 * k))
        _, proxy = self._backend_search(objective.reduce_queries(self.model, self.modality, emb, fused, m), probe)
        _, exact_pos = self._exhaustive(emb, fused, m, k)
        ranks = np.full(exact_pos.shape, np.inf)
        for row in range(exact_pos.shape[0]):
            where = {int(p): r for r, p in enumerate(proxy[row])}
            ranks[row] = [where.get(int(p), np.inf) for p in exact_pos[row]]
        flat = np.sort(ranks.ravel())
        need = int(math.ceil(target * flat.size))
        needed_rank = flat[need - 1] if need else 0.0
        if np.isfinite(needed_rank):
            depth = int(math.ceil((needed_rank + 1) * self.shortlist_margin))
            depth = min(c, max(depth, 4 * k))
        else:
            depth = c
        recall = 1.0 if depth >= c else float(np.mean(ranks < depth))
        record = {
            "query_modalities": list(names),
            "k": k,
            "shortlist": depth,
            "recall": recall,
            "target_recall": target,
            "calibration_queries": int(b),
            "candidates": c,
            "backend": self.backend_name,
        }
        self.calibration[self._key(names)] = record
        logging.info(
            "CandidateIndex(%s): shortlist %d of %d for queries %s, recall@%d %.4f on %d calibration queries.",
            self.modality,
            depth,
            c,
            names,
            k,
            recall,
            b,
        )
        return record

    def measure_backend_recall(self, num_queries=256, k=10, seed=0):
        """Recall@k of the backend against exact search, on stored embeddings as queries.

        The queries are ``num_queries`` candidate embeddings (seeded sample) with Gaussian
        noise of scale 0.1 / sqrt(D), re-normalised. Stored in :attr:`backend_recall`.
        """
        c = self.num_candidates
        k = min(int(k), c)
        rng = np.random.default_rng(seed)
        rows = rng.choice(c, size=min(num_queries, c), replace=False)
        q = self.embeddings[rows] + rng.normal(
            0.0, 0.1 / math.sqrt(self.embeddings.shape[1]), (len(rows), self.embeddings.shape[1])
        ).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-12
        exact = backends_lib.ExactBackend(self.embeddings).search(q, k)[1]
        approx = self.backend.search(q, k)[1]
        hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact))
        recall = hits / float(exact.size)
        logging.info(
            "CandidateIndex(%s): backend %s recall@%d %.4f against exact search.",
            self.modality,
            self.backend_name,
            k,
            recall,
        )
        self.backend_recall = {"k": k, "queries": len(rows), "recall": recall}
        return self.backend_recall

    def ranks(self, queries, targets, query_masks=None, batch_size=256, block_size=16384):
        """Exact 0-based rank of each row's right candidate among all candidates, streamed.

        ``rank[i] = #{j != t_i : score(i, j) >= score(i, t_i)}`` (ties count against the right
        candidate, as :func:`tf_mmcl.evaluation.target_ranks`), with the model's own score,
        computed over candidate blocks: memory ~ ``batch_size x block_size``, never the
        (queries x candidates) matrix. Two passes per query batch (the right candidate's score
        comes from the same block computation that is counted).

        Args:
            queries: as for :meth:`search`.
            targets: (B,) int row positions of the right candidates.
            query_masks: as for :meth:`search`.

        Returns:
            (B,) int64 ranks.
        """
        values, masks, names, b = self._split_queries(queries, query_masks)
        t = np.asarray(targets)
        if t.shape != (b,) or t.dtype.kind not in "iu":
            raise ValueError(f"targets must be {b} int row positions (one per query row), got {t.dtype} {t.shape}.")
        c = self.num_candidates
        if b and (t.min() < 0 or t.max() >= c):
            raise ValueError(f"targets must be row positions in [0, {c}); got values in [{t.min()}, {t.max()}].")
        objective = self.model.objective  # reduces the queries to one vector (exactly or as a proxy)
        exact = objective.reduces_exactly(self.model, names)
        out = np.zeros(b, np.int64)
        for start in range(0, b, batch_size):
            sl = slice(start, start + batch_size)
            emb, fused = self._encode({n: v[sl] for n, v in values.items()})
            m = {n: tf.constant(v[sl]) for n, v in masks.items()}
            tb = t[sl]
            rows = np.arange(len(tb))
            if exact:
                vec = tf.constant(
                    _as_numpy(objective.reduce_queries(self.model, self.modality, emb, fused, m))
                    * np.float32(self._scale())
                )

                def block_scores(lo, hi, vec=vec):
                    return tf.matmul(vec, tf.constant(self.embeddings[lo:hi]), transpose_b=True).numpy()
            else:

                def block_scores(lo, hi, emb=emb, fused=fused, m=m):
                    return self._model_scores(emb, fused, m, self.embeddings[lo:hi])

            right = np.zeros(len(tb), np.float32)
            for lo in range(0, c, block_size):
                hi = min(c, lo + block_size)
                inside = (tb >= lo) & (tb < hi)
                if inside.any():
                    right[inside] = block_scores(lo, hi)[rows[inside], tb[inside] - lo]
            count = np.zeros(len(tb), np.int64)
            for lo in range(0, c, block_size):
                hi = min(c, lo + block_size)
                count += (block_scores(lo, hi) >= right[:, None]).sum(axis=1)
            out[sl] = count - 1  # the right candidate counts itself once
        return out

    def evaluate(self, queries, targets, ks=(1, 5, 10), query_masks=None, batch_size=256):
        """Recall@k and MRR of ``queries`` against their ``targets`` over every indexed candidate.

        Returns:
            dict as :func:`tf_mmcl.evaluation.metrics_from_ranks` (``top1``, ``recall@k``, ``mrr``, ...).
        """
        from tf_mmcl import evaluation

        return evaluation.metrics_from_ranks(self.ranks(queries, targets, query_masks, batch_size), ks=ks)

    # ------------------------------------------------------------------ internals
    def _check_k(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}.")
        if k > self.num_candidates:
            raise ValueError(
                f"k={k} exceeds the {self.num_candidates} indexed candidates; pass k <= {self.num_candidates}."
            )
        return int(k)

    @staticmethod
    def _key(names):
        return "+".join(names)

    def _split_queries(self, queries, query_masks):
        model = self.model
        if not isinstance(queries, dict) or not queries:
            raise ValueError("queries must be a non-empty dict modality -> raw inputs (B, ...).")
        masks = {mask_modality(k): v for k, v in queries.items() if mask_modality(k) is not None}
        values = {k: v for k, v in queries.items() if mask_modality(k) is None}
        for n, v in (query_masks or {}).items():
            masks[n] = v
        bad = sorted(set(values) - set(model.modalities))
        if bad:
            raise ValueError(f"Unknown query modality(ies) {bad}; expected among {model.modalities}.")
        if self.modality in values:
            raise ValueError(f"The candidate modality {self.modality!r} cannot also be a query.")
        if not values:
            raise ValueError("queries holds no query modality.")
        bad = sorted(set(masks) - set(values))
        if bad:
            raise ValueError(f"Masks given for modality(ies) {bad} that are not among the queries {sorted(values)}.")
        names = [n for n in model.modalities if n in values]
        values = {n: _as_numpy(values[n]) for n in names}
        rows = {n: v.shape[0] for n, v in values.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"Every query modality needs the same number of rows, got {rows}.")
        b = next(iter(rows.values()))
        if b == 0:
            raise ValueError("queries have no rows; pass at least one query row.")
        out_masks = {}
        for n, v in masks.items():
            v = _as_numpy(v)
            if v.shape != (b,) or v.dtype != np.bool_:
                raise ValueError(f"The mask of {n!r} must be a bool vector of {b} rows, got {v.dtype} {v.shape}.")
            out_masks[n] = v
        return values, out_masks, names, b

    def _encode(self, values):
        model = self.model
        features = model._features({n: tf.convert_to_tensor(v) for n, v in values.items()}, training=False)
        return model._embed_features(features, training=False), model._fused(features, training=False)

    def _scale(self):
        return float(self.model.logit_scale.value())

    def _backend_search(self, vectors, k):
        return self.backend.search(_as_numpy(vectors), min(int(k), self.num_candidates))

    def _search_reduced(self, vectors, k):
        vec = _as_numpy(vectors).astype(np.float32) * np.float32(self._scale())
        if isinstance(self.backend, backends_lib.ExactBackend) and self.backend.dtype == "float32":
            return self.backend.search(vec, k)
        # Approximate or reduced-precision backends choose the candidates; the scores (and the
        # order) are the exact float32 inner products of what they return.
        depth = min(self.num_candidates, 2 * k)
        _, pos = self.backend.search(vec, depth)
        valid = pos >= 0
        pos = np.where(valid, pos, 0)
        s = np.einsum("bd,bkd->bk", vec, self.embeddings[pos])
        s = np.where(valid, s, -np.inf)
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(s, order, 1).astype(np.float32), np.take_along_axis(pos, order, 1)

    def _shortlist_depth(self, key, k):
        return max(int(self.calibration[key]["shortlist"]), min(self.num_candidates, 4 * k))

    def _model_scores(self, emb, fused, masks, candidates):
        return _as_numpy(
            self.model.score_embeddings(
                emb, self.modality, tf.constant(candidates), fused_embeddings=fused or None, query_masks=masks or None
            )
        ) * np.float32(self._scale())

    def _rescore(self, emb, fused, masks, shortlist, k):
        """Exact top-k of each row's shortlist by the model's own score."""
        b, depth = shortlist.shape
        rows = max(1, b)
        while rows > 1 and rows * min(self.num_candidates, rows * depth) > _RESCORE_BUDGET:
            rows //= 2
        out_s, out_p = [], []
        for start in range(0, b, rows):
            sl = slice(start, start + rows)
            pos = shortlist[sl]
            valid = pos >= 0
            pos = np.where(valid, pos, pos.max(initial=0))
            union = np.unique(pos)
            scores = self._model_scores(
                {n: e[sl] for n, e in emb.items()},
                {n: f[sl] for n, f in fused.items()},
                {n: v[sl] for n, v in masks.items()},
                self.embeddings[union],
            )
            s = np.take_along_axis(scores, np.searchsorted(union, pos), 1)
            s = np.where(valid, s, -np.inf)
            # Ties in candidate order (lower position first), as ranking the full score matrix.
            order = np.lexsort((pos, -s), axis=1)[:, :k]
            out_s.append(np.take_along_axis(s, order, 1))
            out_p.append(np.take_along_axis(pos, order, 1))
        return np.concatenate(out_s), np.concatenate(out_p)

    def _exhaustive(self, emb, fused, masks, k, block=8192):
        """Exact top-k by the model's own score over every candidate, in candidate blocks."""
        b = next(iter(emb.values())).shape[0]
        block = max(1, min(block, _RESCORE_BUDGET // max(1, b)))
        best_s = best_p = None
        for start in range(0, self.num_candidates, block):
            s = tf.constant(self._model_scores(emb, fused, masks, self.embeddings[start : start + block]))
            kk = min(k, int(s.shape[1]))
            v, i = tf.math.top_k(s, kk)
            v, i = v.numpy(), i.numpy().astype(np.int64) + start
            if best_s is None:
                best_s, best_p = v, i
            else:
                v2, i2 = topk.merge_top_k(
                    tf.constant(best_s),
                    tf.constant(best_p),
                    tf.constant(v),
                    tf.constant(i),
                    min(k, best_s.shape[1] + kk),
                )
                best_s, best_p = v2.numpy(), i2.numpy()
        return best_s, best_p

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Writes the index to ``path`` (one ``.npz``), atomically (temp file + rename).

        Holds the embeddings, ids, backend (a FAISS index serialised), calibration and the
        model's objective / modalities / width (checked on :meth:`load`); not the model.
        """
        path = os.fspath(path)
        meta = {
            "format": _FORMAT,
            "modality": self.modality,
            "objective": self.model.objective.name,
            "modalities": list(self.model.modalities),
            "embedding_dim": self.model.embedding_dim,
            "backend": self.backend_name,
            "backend_options": self.backend_options,
            "target_recall": self.target_recall,
            "shortlist_margin": self.shortlist_margin,
            "calibration_queries": self.calibration_queries,
            "calibration": self.calibration,
            "backend_recall": self.backend_recall,
        }
        arrays = {
            "embeddings": self.embeddings,
            "ids": self.ids,
            "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
        }
        for name, value in self.backend.state().items():
            arrays[f"backend_{name}"] = np.asarray(value)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
        try:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            with open(tmp, "wb") as f:
                f.write(buffer.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def load(cls, path, model):
        """Reads an index written by :meth:`save` for ``model`` (same objective, modalities, width)."""
        _check_model(model)
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No CandidateIndex file at {path}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (ValueError, OSError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a readable CandidateIndex file ({e}).") from e
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path} has format {meta.get('format')!r}, expected {_FORMAT!r}.")
        for key, want in (
            ("objective", model.objective.name),
            ("modalities", list(model.modalities)),
            ("embedding_dim", model.embedding_dim),
        ):
            if meta[key] != want:
                raise ValueError(f"The index at {path} was built for {key}={meta[key]!r}, the model has {want!r}.")
        state = {k[len("backend_") :]: v for k, v in arrays.items() if k.startswith("backend_")}
        index = cls(
            model,
            meta["modality"],
            arrays["embeddings"],
            ids=arrays["ids"],
            backend=meta["backend"],
            backend_options=meta["backend_options"],
            target_recall=meta["target_recall"],
            shortlist_margin=meta["shortlist_margin"],
            calibration_queries=meta["calibration_queries"],
            _backend_state=state or None,
        )
        index.calibration = meta["calibration"]
        return index


def _check_model(model):
    from tf_mmcl.models.contrastive import MultimodalContrastiveModel

    if not isinstance(model, MultimodalContrastiveModel):
        raise ValueError(f"model must be a tf_mmcl MultimodalContrastiveModel, got {type(model).__name__}.")
    if getattr(model, "_modality_shapes", None) is None:
        raise ValueError("The model is not built: call it once on a batch (or fit / load it) first.")


def _embed_fn(model, modality):
    @tf.function(reduce_retracing=True)
    def embed(x):
        return tf.cast(model.embed(modality, x), tf.float32)

    return embed


def _batched_dataset(model, modality, ds, batch_size):
    spec = ds.element_spec
    if isinstance(spec, dict):
        if modality not in spec:
            raise ValueError(f"The candidate dataset's elements have keys {sorted(spec)}, not {modality!r}.")
        ds = ds.map(lambda e: e[modality])
        spec = spec[modality]
    if not isinstance(spec, tf.TensorSpec):
        raise ValueError(f"The candidate dataset must yield tensors or dicts of tensors, got {spec!r}.")
    rank = len(model._modality_shapes[modality])
    if spec.shape.rank == rank - 1:
        return ds.batch(batch_size)
    if spec.shape.rank != rank:
        raise ValueError(
            f"The candidate dataset yields rank-{spec.shape.rank} elements; the model's "
            f"{modality!r} input has rank {rank} (batched) or {rank - 1} (one example)."
        )
    return ds
