#!/usr/bin/env python
"""Retrieval benchmark: exact and approximate top-k search over 1e5..1e6 candidates, one run.

For every data kind (``random``: unit Gaussian rows; ``clustered``: 1,000 random unit centres,
points = centre + N(0, 0.075^2) per dimension re-normalised, queries = perturbed database
points, which is how trained embeddings look), candidate count C in ``--sizes`` and width d in
``--dims``, it times the same queries through:

* ``tf_blocked``: :func:`tf_mmcl.ops.blocked_top_k` (the library's exact search: blocked
  matmul + group-pruned streaming top-k, float32), the reference row of every ratio;
* ``tf_blocked_bf16``: the same with bfloat16 candidate storage (float32 accumulation);
* ``tf_matmul_topk``: ``tf.math.top_k(q @ C^T)`` over the whole score matrix (queries in
  batches of ``--naive_batch``);
* ``numpy``: ``q @ C^T`` + ``argpartition`` (exact numpy brute force);
* ``faiss_flat`` / ``faiss_hnsw`` / ``faiss_ivfpq`` (``IndexRefineFlat`` re-ranking) when
  faiss-cpu is installed; their build time is reported.

and reports queries/s (wall) and per CPU-second (the figure that holds on a shared machine),
recall@10 against the exact top-10, the speed ratio to ``tf_blocked``, the percentage of the
plain-matmul rate (the same blocked matmuls without the top-k, same FLOPs, per CPU-second),
the size of the largest score buffer the method holds (queries per call x candidates per
block; the whole catalogue for the unblocked ones), and the peak resident set above the value
before the timed call (sampled every 2 ms; allocator pools reused from earlier cells read as 0).

Usage::

    python tools/benchmark_retrieval.py --output_md=retrieval.md [--sizes=100000,1000000]
        [--dims=64,128,256] [--data=random,clustered] [--num_queries=1000] [--methods=...]

The defaults ran in about eleven minutes on 2 loaded CPU cores (peak RSS 9.5 GB): HNSW / IVF-PQ only up to
``--max_ann_size`` candidates and at ``--ann_dims`` (their builds take minutes beyond), and the
slow exact baselines on ``--slow_queries`` queries at C > 1e5.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:  # FAISS first: both orders work, this one is what the probe measured.
    import faiss  # noqa: F401
except ImportError:  # pragma: no cover - optional extra
    faiss = None

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_mmcl.ops import topk  # noqa: E402

ALL_METHODS = ("tf_blocked", "tf_blocked_bf16", "tf_matmul_topk", "numpy", "faiss_flat", "faiss_hnsw", "faiss_ivfpq")
_SIZES = flags.DEFINE_list("sizes", ["100000", "1000000"], "Candidate counts C.")
_DIMS = flags.DEFINE_list("dims", ["64", "128", "256"], "Embedding widths d.")
_DATA = flags.DEFINE_list("data", ["random", "clustered"], "Data kinds: random, clustered.")
_METHODS = flags.DEFINE_list("methods", list(ALL_METHODS), f"Methods, among {ALL_METHODS}.")
_NUM_QUERIES = flags.DEFINE_integer(
    "num_queries", 1000, "Queries per cell (at C = 1e5; scaled down by C / 1e5 for larger C, at least --min_queries)."
)
_MIN_QUERIES = flags.DEFINE_integer("min_queries", 256, "Fewest queries per cell.")
_K = flags.DEFINE_integer("k", 10, "Top-k (recall@k is measured).")
_QUERY_BATCH = flags.DEFINE_integer("query_batch", 256, "Query rows per search call (TF methods).")
_NAIVE_BATCH = flags.DEFINE_integer("naive_batch", 64, "Query rows per tf_matmul_topk / numpy call.")
_MAX_ANN = flags.DEFINE_integer("max_ann_size", 100000, "Largest C for faiss_hnsw / faiss_ivfpq.")
_ANN_DIMS = flags.DEFINE_list(
    "ann_dims", ["128"], "Widths d at which faiss_hnsw / faiss_ivfpq run (their builds dominate the run time)."
)
_SLOW_QUERIES = flags.DEFINE_integer(
    "slow_queries",
    64,
    "Queries for the slow exact baselines (numpy, "
    "tf_matmul_topk, faiss_flat) when C > 1e5; per-query rates are unaffected.",
)
_MAX_NUMPY = flags.DEFINE_integer("max_numpy_size", 1000000, "Largest C for numpy / tf_matmul_topk.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed runs per cell (best is kept; after one warm-up call).")
_SEED = flags.DEFINE_integer("seed", 0, "Data seed.")
_OUT_JSON = flags.DEFINE_string("output_json", None, "Write every number here.")
_OUT_MD = flags.DEFINE_string("output_md", None, "Write the Markdown tables here.")


# ------------------------------------------------------------------------------------ data
def make_data(kind, c, d, nq, rng):
    if kind == "random":
        cand = rng.standard_normal((c, d), dtype=np.float32)
        q = rng.standard_normal((nq, d), dtype=np.float32)
    elif kind == "clustered":
        centres = rng.standard_normal((1000, d), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        cand = centres[rng.integers(0, 1000, c)]
        cand += rng.normal(0.0, 0.075, (c, d)).astype(np.float32)
        q = cand[rng.integers(0, c, nq)] + rng.normal(0.0, 0.075, (nq, d)).astype(np.float32)
    else:
        raise app.UsageError(f"Unknown --data kind {kind!r}; use random or clustered.")
    cand /= np.linalg.norm(cand, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(cand), np.ascontiguousarray(q)


# ------------------------------------------------------------------------------------ timing
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class PeakRSS:
    """Peak resident set above the value at entry, sampled every 2 ms on a thread."""

    def __enter__(self):
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.extra = self.peak - self.base


def timed(fn, repeats):
    """(best wall s, its CPU s, peak extra bytes, result); one untimed warm-up call first."""
    fn()
    best = None
    for _ in range(repeats):
        with PeakRSS() as mem:
            c0, t0 = time.process_time(), time.perf_counter()
            result = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu, mem.extra, result)
    return best


# ------------------------------------------------------------------------------------ methods
def tf_blocked(cand, q, k, dtype="float32"):
    var = tf.Variable(tf.cast(cand, dtype), trainable=False)

    @tf.function(input_signature=[tf.TensorSpec((None, cand.shape[1]), tf.float32)])
    def search(x):
        return topk.blocked_top_k(x, var, k)

    def run():
        out = [
            search(tf.constant(q[i : i + _QUERY_BATCH.value]))[1].numpy() for i in range(0, len(q), _QUERY_BATCH.value)
        ]
        return np.concatenate(out)

    return run


def tf_matmul_rate(cand, q):
    """The same blocked matmuls as tf_blocked, without the top-k: the plain-matmul rate."""
    var = tf.Variable(cand, trainable=False)
    block = min(topk.DEFAULT_BLOCK_SIZE, cand.shape[0])
    nb, d = cand.shape[0] // block, cand.shape[1]

    @tf.function(input_signature=[tf.TensorSpec((None, d), tf.float32)])
    def matmuls(x):
        def body(i, acc):
            s = tf.matmul(x, tf.slice(var, [i * block, 0], [block, d]), transpose_b=True)
            return i + 1, acc + s[0, 0]

        return tf.while_loop(lambda i, a: i < nb, body, (0, 0.0))[1]

    def run():
        for i in range(0, len(q), _QUERY_BATCH.value):
            matmuls(tf.constant(q[i : i + _QUERY_BATCH.value])).numpy()
        return nb * block

    return run


def tf_matmul_topk(cand, q, k):
    var = tf.Variable(cand, trainable=False)

    @tf.function(input_signature=[tf.TensorSpec((None, cand.shape[1]), tf.float32)])
    def search(x):
        return tf.math.top_k(tf.matmul(x, var, transpose_b=True), k)[1]

    def run():
        return np.concatenate(
            [search(tf.constant(q[i : i + _NAIVE_BATCH.value])).numpy() for i in range(0, len(q), _NAIVE_BATCH.value)]
        )

    return run


def numpy_brute(cand, q, k):
    def run():
        out = []
        for i in range(0, len(q), _NAIVE_BATCH.value):
            s = q[i : i + _NAIVE_BATCH.value] @ cand.T
            part = np.argpartition(-s, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(s, part, 1), axis=1)
            out.append(np.take_along_axis(part, order, 1))
        return np.concatenate(out)

    return run


def faiss_index(kind, cand):
    d = cand.shape[1]
    t0 = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
    else:
        nlist = int(np.sqrt(cand.shape[0]))
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, 16, 8, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexRefineFlat(ivf)
        index.train(cand[: min(len(cand), 20_000)])
    index.add(cand)
    build = time.perf_counter() - t0
    if kind == "hnsw":
        index.hnsw.efSearch = 128
    elif kind == "ivfpq":
        faiss.extract_index_ivf(index.base_index).nprobe = 32
        index.k_factor = 10
    return index, build


def recall(found, truth):
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k].tolist()) & set(b.tolist())) / k for a, b in zip(found, truth)]))


# ------------------------------------------------------------------------------------ run
def run_cell(kind, c, d, methods, rng):
    nq = max(_MIN_QUERIES.value, int(_NUM_QUERIES.value * min(1.0, 1e5 / c)))
    cand, q = make_data(kind, c, d, nq, rng)
    k = _K.value
    truth = tf_blocked(cand, q, k)()  # exact (tested against top_k of the full matrix)
    q_slow = q if c <= 100_000 else q[: min(nq, _SLOW_QUERIES.value)]
    mm = timed(tf_matmul_rate(cand, q), _REPEATS.value)
    mm_rate = 2.0 * nq * mm[3] * d / mm[1]  # FLOP per CPU-second of the blocked matmuls
    rows = []
    for method in methods:
        build = 0.0
        if method.startswith("faiss_"):
            if faiss is None:
                continue
            if method in ("faiss_hnsw", "faiss_ivfpq") and (c > _MAX_ANN.value or str(d) not in _ANN_DIMS.value):
                continue
            index, build = faiss_index(method[len("faiss_") :], cand)
            qm = q_slow if method == "faiss_flat" else q
            fn = lambda index=index, qm=qm: index.search(qm, k)[1]  # noqa: E731
        elif method in ("numpy", "tf_matmul_topk") and c > _MAX_NUMPY.value:
            continue
        elif method == "tf_blocked":
            fn = tf_blocked(cand, q, k)
        elif method == "tf_blocked_bf16":
            fn = tf_blocked(cand, q, k, "bfloat16")
        elif method == "tf_matmul_topk":
            fn = tf_matmul_topk(cand, q_slow, k)
        elif method == "numpy":
            fn = numpy_brute(cand, q_slow, k)
        else:
            raise app.UsageError(f"Unknown method {method!r}; expected among {ALL_METHODS}.")
        wall, cpu, mem, found = timed(fn, _REPEATS.value)
        nq_m = len(found)
        if method.startswith("tf_blocked"):
            buffer = _QUERY_BATCH.value * min(c, topk.DEFAULT_BLOCK_SIZE) * 4
        elif method in ("tf_matmul_topk", "numpy"):
            buffer = _NAIVE_BATCH.value * c * 4
        else:
            buffer = len(q) * k * 12
        flops = 2.0 * nq_m * c * d
        rows.append(
            {
                "data": kind,
                "C": c,
                "d": d,
                "method": method,
                "queries": nq_m,
                "score_buffer_mb": buffer / 2**20,
                "qps_wall": nq_m / wall,
                "q_per_cpu_s": nq_m / cpu,
                "recall": recall(found, truth[:nq_m]),
                "matmul_pct": 100.0 * (flops / cpu) / mm_rate,
                "peak_mb": mem / 2**20,
                "build_s": build,
            }
        )
        print(
            f"{kind:9s} C={c:>8d} d={d:3d} {method:16s} {nq_m / wall:9.0f} q/s {nq_m / cpu:9.0f} q/CPU-s "
            f"recall {rows[-1]['recall']:.4f} {rows[-1]['matmul_pct']:5.1f}% matmul "
            f"+{rows[-1]['peak_mb']:.0f} MB build {build:.1f}s",
            flush=True,
        )
    ref = next((r for r in rows if r["method"] == "tf_blocked"), None)
    for r in rows:
        r["ratio_cpu"] = r["q_per_cpu_s"] / ref["q_per_cpu_s"] if ref else None
        r["matmul_gflops_per_cpu_s"] = mm_rate / 1e9
    return rows


def _pct(row):
    # Only the exact methods do the catalogue's FLOPs; an ANN's "rate" would be meaningless.
    if row["method"].startswith("faiss_") and row["method"] != "faiss_flat":
        return "–"
    return f"{row['matmul_pct']:.0f}"


def markdown(rows, meta):
    lines = [
        f"Machine: {meta['machine']}; load average at start {meta['load']}; "
        f"TF {meta['tf']}, faiss {meta['faiss']}; k = {meta['k']}.",
        "",
        "| data | C | d | method | queries | q/s (wall) | q/CPU-s | × tf_blocked (CPU) | recall@10 "
        "| % matmul rate | score buffer MB | peak RSS +MB | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['C']:,} | {r['d']} | {r['method']} | {r['queries']} | {r['qps_wall']:,.0f} | "
            f"{r['q_per_cpu_s']:,.0f} | {r['ratio_cpu']:.2f} | {r['recall']:.4f} | "
            f"{_pct(r)} | {r['score_buffer_mb']:.0f} | {r['peak_mb']:.0f} | {r['build_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    bad = sorted(set(_METHODS.value) - set(ALL_METHODS))
    if bad:
        raise app.UsageError(f"Unknown --methods {bad}; expected among {ALL_METHODS}.")
    if faiss is not None:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
    meta = {
        "machine": f"{os.cpu_count()} CPU cores",
        "load": os.getloadavg()[0],
        "tf": tf.__version__,
        "faiss": getattr(faiss, "__version__", None),
        "k": _K.value,
        "argv": sys.argv,
    }
    rng = np.random.default_rng(_SEED.value)
    rows = []
    for kind in _DATA.value:
        for c in (int(float(s)) for s in _SIZES.value):
            for d in (int(s) for s in _DIMS.value):
                rows += run_cell(kind, c, d, _METHODS.value, rng)
    meta["load_end"] = os.getloadavg()[0]
    table = markdown(rows, meta)
    print(table)
    if _OUT_MD.value:
        with open(_OUT_MD.value, "w") as f:
            f.write(table)
    if _OUT_JSON.value:
        with open(_OUT_JSON.value, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
