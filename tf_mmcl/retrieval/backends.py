"""Search backends over stored candidate embeddings: exact blocked TF search, optional FAISS.

A backend answers ``search(vectors (B, D) float32, k) -> (scores (B, k) float32,
positions (B, k) int64)`` by maximum inner product; positions are rows of the stored
embeddings. :class:`~tf_mmcl.retrieval.CandidateIndex` re-scores whatever an approximate
backend returns with the exact inner product (or the model's own score), so approximate
backends only decide *which* candidates come back.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_mmcl.ops import topk

__all__ = ["ExactBackend", "FaissBackend", "BACKENDS", "FAISS_KINDS", "make_backend"]

FAISS_KINDS = ("flat", "hnsw", "ivfpq")


class ExactBackend:
    """Exact MIPS by :func:`tf_mmcl.ops.blocked_top_k` (blocked matmul + streaming top-k).

    Args:
        embeddings: (C, D) float32 array.
        dtype: ``"float32"`` or ``"bfloat16"`` storage (bfloat16 halves memory; scores are
            accumulated in float32 from the bfloat16-rounded values).
        block_size, group_size: see :func:`tf_mmcl.ops.blocked_top_k`.
        query_batch: query rows per call of the compiled search.
    """

    kind = "exact"
    approximate = False

    def __init__(
        self,
        embeddings,
        dtype="float32",
        block_size=topk.DEFAULT_BLOCK_SIZE,
        group_size=topk.DEFAULT_GROUP_SIZE,
        query_batch=256,
    ):
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}.")
        self.dtype = dtype
        self.block_size = int(block_size)
        self.group_size = int(group_size)
        self.query_batch = int(query_batch)
        emb = tf.convert_to_tensor(np.asarray(embeddings, np.float32))
        self.variable = tf.Variable(tf.cast(emb, dtype), trainable=False, name="candidate_embeddings")
        self.num_candidates, self.dim = (int(x) for x in emb.shape)
        self._fns = {}

    def _fn(self, k):
        if k not in self._fns:
            var = self.variable

            @tf.function(input_signature=[tf.TensorSpec((None, self.dim), tf.float32)])
            def search(q):
                return topk.blocked_top_k(q, var, k, block_size=self.block_size, group_size=self.group_size)

            self._fns[k] = search
        return self._fns[k]

    def search(self, vectors, k):
        vectors = np.asarray(vectors, np.float32)
        fn = self._fn(int(k))
        scores, pos = [], []
        for start in range(0, len(vectors), self.query_batch):
            s, p = fn(tf.constant(vectors[start : start + self.query_batch]))
            scores.append(s.numpy())
            pos.append(p.numpy().astype(np.int64))
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(pos)

    def config(self):
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "block_size": self.block_size,
            "group_size": self.group_size,
            "query_batch": self.query_batch,
        }

    def state(self):
        return {}


def _import_faiss():
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            "The FAISS backend needs faiss-cpu: pip install 'tf-mmcl[faiss]' (or pip install faiss-cpu)."
        ) from e
    return faiss


class FaissBackend:
    """Approximate (or flat) MIPS with FAISS: ``kind`` = ``"flat"``, ``"hnsw"`` or ``"ivfpq"``.

    Args:
        embeddings: (C, D) float32 array.
        kind: ``"flat"`` (``IndexFlatIP``, exact), ``"hnsw"`` (``IndexHNSWFlat``, inner
            product; ``hnsw_m``, ``ef_construction``, ``ef_search``) or ``"ivfpq"``
            (``IndexIVFPQ``; ``nlist`` (default ~sqrt(C)), ``pq_m`` sub-quantisers of 8 bits,
            ``nprobe``; wrapped in ``IndexRefineFlat`` with ``k_factor`` for exact re-ranking).
        threads: OpenMP threads (None: FAISS' default).
        seed: seed of the k-means training sample.
        serialized: a previously serialised index (from :meth:`state`) instead of building.
    """

    approximate = True

    def __init__(
        self,
        embeddings,
        kind="hnsw",
        hnsw_m=32,
        ef_construction=200,
        ef_search=128,
        nlist=None,
        pq_m=None,
        nprobe=16,
        k_factor=4,
        threads=None,
        seed=0,
        serialized=None,
    ):
        faiss = _import_faiss()
        if kind not in FAISS_KINDS:
            raise ValueError(f"faiss kind must be one of {FAISS_KINDS}, got {kind!r}.")
        emb = np.ascontiguousarray(np.asarray(embeddings, np.float32))
        self.num_candidates, self.dim = emb.shape
        self.kind = kind
        self.approximate = kind != "flat"
        if threads is not None:
            faiss.omp_set_num_threads(int(threads))
        self.params = {
            "hnsw_m": int(hnsw_m),
            "ef_construction": int(ef_construction),
            "ef_search": int(ef_search),
            "nlist": nlist,
            "pq_m": pq_m,
            "nprobe": int(nprobe),
            "k_factor": float(k_factor),
            "threads": threads,
            "seed": int(seed),
        }
        if serialized is not None:
            self.index = faiss.deserialize_index(np.asarray(serialized, np.uint8))
        else:
            self.index = self._build(faiss, emb)
        self._configure(faiss)

    def _build(self, faiss, emb):
        c, d = emb.shape
        p = self.params
        if self.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, p["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p["ef_construction"]
        else:
            nlist = p["nlist"] or max(1, min(int(round(np.sqrt(c))), c // 39 or 1))
            pq_m = p["pq_m"] or next(m for m in (16, 8, 4, 2, 1) if d % m == 0)
            if d % pq_m:
                raise ValueError(f"pq_m={pq_m} must divide the embedding width {d}.")
            p["nlist"], p["pq_m"] = int(nlist), int(pq_m)
            quantizer = faiss.IndexFlatIP(d)
            ivf = faiss.IndexIVFPQ(quantizer, d, int(nlist), int(pq_m), 8, faiss.METRIC_INNER_PRODUCT)
            # IndexRefineFlat must wrap the index before train/add (FAISS requires equal counts).
            index = faiss.IndexRefineFlat(ivf)
            index.own_fields = True
            ivf.this.disown()
            quantizer.this.disown()
            rng = np.random.default_rng(p["seed"])
            sample = emb if c <= 100_000 else emb[rng.choice(c, 100_000, replace=False)]
            index.train(sample)
        index.add(emb)
        return index

    def _configure(self, faiss):
        p = self.params
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = p["ef_search"]
        elif self.kind == "ivfpq":
            faiss.extract_index_ivf(self.index.base_index).nprobe = p["nprobe"]
            self.index.k_factor = p["k_factor"]

    def search(self, vectors, k):
        k = int(k)
        vectors = np.ascontiguousarray(np.asarray(vectors, np.float32))
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.params["ef_search"], k)
        scores, pos = self.index.search(vectors, k)
        return scores.astype(np.float32), pos.astype(np.int64)

    def config(self):
        return {"kind": self.kind, **self.params}

    def state(self):
        return {"faiss_index": _import_faiss().serialize_index(self.index)}


BACKENDS = ("exact",) + tuple(f"faiss_{k}" for k in FAISS_KINDS)


def make_backend(name, embeddings, options=None, state=None):
    """Backend ``name`` (one of :data:`BACKENDS`) over ``embeddings`` with ``options``."""
    options = dict(options or {})
    options.pop("kind", None)
    if name == "exact":
        return ExactBackend(embeddings, **options)
    if name.startswith("faiss_") and name[len("faiss_") :] in FAISS_KINDS:
        serialized = None if state is None else state.get("faiss_index")
        return FaissBackend(embeddings, kind=name[len("faiss_") :], serialized=serialized, **options)
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}.")
