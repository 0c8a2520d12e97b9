"""Shared by every part: the cells, the modes, the inputs both frameworks time, FLOP counts.

Standard library only at import time (numpy inside the functions): the reference interpreter
(torch, no TensorFlow) imports this package too.
"""

from __future__ import annotations

import json
import os
import sys

# (loss, M): the loss cells of the time table.
LOSS_CELLS = (("n_squared", 3), ("n_squared_joint", 3), ("n", 3), ("n", 4), ("clip", 3))
MODES = ("eager", "function", "xla")
# K training steps per call (a tf.while_loop over K different batches inside one tf.function), as
# ``model.fit(steps_per_execution=K)`` runs them: TF's fixed per-call cost is paid once per K steps.
LOOP_MODES = ("function_loop", "xla_loop")
ALL_MODES = MODES + LOOP_MODES
LOGIT_SCALE = 1.0 / 0.07
# Set (to "1") by --verbose; worker processes inherit it.
VERBOSE_ENV = "BENCHMARK_VERBOSE"


def progress(rec):
    """One measured record on stderr, when verbose."""
    if os.environ.get(VERBOSE_ENV):
        sys.stderr.write("  " + json.dumps({k: v for k, v in rec.items() if k != "samples_s"}) + "\n")
        sys.stderr.flush()


def make_reps(n, d, m, seed=0):
    """M (N, d) float32 L2-normalised Gaussian embeddings, identical on both sides."""
    import numpy as np

    rng = np.random.default_rng(seed + 1000 * n + d + 7 * m)
    out = []
    for _ in range(m):
        x = rng.normal(size=(n, d))
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32"))
    return out


def make_xor_data(num_batches, batch, bits, seed=0):
    """Synthetic XOR triples: a, b uniform random bits, c = a XOR b; float32 {0, 1}."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, size=(num_batches, batch, bits))
    b = rng.integers(0, 2, size=(num_batches, batch, bits))
    return [x.astype("float32") for x in (a, b, np.bitwise_xor(a, b))]


def objective_flops(loss, n, d, m):
    """Matmul FLOPs of forward + backward as the reference computes the objective.

    ``n_squared``: per anchor a (N, d) x (d, N^(M-1)) logit matmul forward and two such
    products backward: 6 M N^M d (18 N^3 d for M = 3). ``n``: 6 M N^2 d. CLIP: 6 N^2 d per pair.
    """
    if loss.startswith("n_squared"):
        return 6.0 * m * n**m * d
    if loss == "n":
        return 6.0 * m * n**2 * d
    return 6.0 * (m * (m - 1) // 2) * n**2 * d


def executed_flops(loss, n, d, m):
    """Matmul FLOPs our implementation executes (the streamed kernels recompute in the backward)."""
    if loss in ("n_squared", "n_squared_joint"):
        # symile_loss calls the joint kernel: one logit pass forward, recompute + two products backward
        return 8.0 * n**m * d
    return objective_flops(loss, n, d, m)
