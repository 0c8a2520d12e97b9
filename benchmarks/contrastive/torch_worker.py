"""The reference side: the ``symile`` package (and the Gated Symile authors' CLIP) in torch.

Runs in the reference interpreter (``--reference_python``: torch, symile, numpy; no TensorFlow).
Each public function is one worker task (see ``protocol.WORKERS``).
"""

from __future__ import annotations

import math
import os
import sys
import time

from benchmarks.contrastive.common import LOGIT_SCALE, make_reps, make_xor_data
from benchmarks.contrastive.timing import CellTimer, peak_memory_of, time_cells, time_fn


def _torch_setup(task):
    import torch

    if task.get("threads"):
        torch.set_num_threads(task["threads"])
    return torch


def _torch_loss_fn(loss, gated_symile_repo):
    """(fn, source) for the reference loss; fn(reps, scale) -> scalar tensor."""
    import symile
    import torch
    import torch.nn.functional as F

    if loss in ("n", "n_squared", "n_squared_joint"):
        obj = symile.Symile("n_squared" if loss.startswith("n_squared") else "n")
        return obj, f"symile.Symile (symile=={getattr(symile, '__version__', '?')})"
    if loss == "clip":
        if gated_symile_repo and os.path.isfile(os.path.join(gated_symile_repo, "losses", "clip.py")):
            sys.path.insert(0, gated_symile_repo)
            from losses.clip import clip as gs_clip

            def f(reps, s):
                if len(reps) != 3:
                    raise ValueError("the reference CLIP takes three modalities")
                return gs_clip(*reps, s)

            return f, "Gated Symile losses.clip"

        def minimal_clip(reps, s):  # pairwise symmetric InfoNCE, torch primitives only
            labels = torch.arange(reps[0].shape[0])
            terms = []
            for i in range(len(reps)):
                for j in range(i + 1, len(reps)):
                    logits = s * reps[i] @ reps[j].T
                    terms.append(0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)))
            return sum(terms) / len(terms)

        return minimal_clip, "minimal torch CLIP (no reference CLIP found)"
    raise ValueError(loss)


def _torch_step(torch, loss_fn, scale, reps):
    scale.grad = None
    for r in reps:
        r.grad = None
    value = loss_fn(reps, scale)
    value.backward()
    return float(value.detach())


def _torch_inputs(torch, n, d, m):
    reps = [torch.tensor(r).requires_grad_(True) for r in make_reps(n, d, m)]
    return torch.tensor(LOGIT_SCALE, dtype=torch.float32, requires_grad=True), reps


def torch_cell_timer(task):
    """A :class:`CellTimer` over the reference's steps."""
    torch = _torch_setup(task)

    def load(cell):
        rec = dict(cell, impl="reference", mode="torch")
        loss_fn, rec["source"] = _torch_loss_fn(cell["loss"], task.get("gated_symile_repo"))
        scale, reps = _torch_inputs(torch, cell["n"], cell["d"], cell["m"])
        return (lambda: _torch_step(torch, loss_fn, scale, reps)), 1, rec

    return CellTimer(load)


def torch_time_cells(task):
    return time_cells(torch_cell_timer(task), task, "reference", "torch")


def torch_memory_cell(task):
    torch = _torch_setup(task)
    rec = {"loss": task["loss"], "m": task["m"], "n": task["n"], "d": task["d"], "mode": "torch", "impl": "reference"}
    loss_fn, rec["source"] = _torch_loss_fn(task["loss"], task.get("gated_symile_repo"))
    scale, reps = _torch_inputs(torch, task["n"], task["d"], task["m"])
    _torch_step(torch, loss_fn, scale, reps)  # warm-up, as on our side
    rec["peak_bytes"], rec["method"] = peak_memory_of(lambda: _torch_step(torch, loss_fn, scale, reps))
    return rec


def torch_matmul_rate(task):
    torch = _torch_setup(task)
    out = []
    for flops in task["flops"]:
        size = max(8, int(round((flops / 2.0) ** (1.0 / 3.0))))
        a, b = torch.randn(size, size), torch.randn(size, size)
        t = time_fn(lambda: a @ b, task["repeats"], task["min_time"])
        out.append(
            {
                "flops_target": flops,
                "size": size,
                "dtype": "float32",
                "flops": 2.0 * size**3,
                "median_s": t["median_s"],
                "min_s": t["min_s"],
                "flop_per_s": 2.0 * size**3 / t["median_s"],
            }
        )
    return out


def torch_xor_throughput(task):
    torch = _torch_setup(task)
    import symile
    import torch.nn.functional as F

    torch.manual_seed(0)
    bits, dim, batch, steps = task["bits"], task["dim"], task["batch"], task["steps"]
    data = [torch.tensor(x) for x in make_xor_data(task["num_batches"], batch, bits)]
    encoders = torch.nn.ModuleList([torch.nn.Linear(bits, dim, bias=True) for _ in range(3)])
    log_scale = torch.nn.Parameter(torch.tensor(math.log(LOGIT_SCALE)))
    opt = torch.optim.AdamW(list(encoders.parameters()) + [log_scale], lr=1e-3, weight_decay=0.01)
    loss_obj = symile.Symile(task["sampling"])

    def step(i):
        opt.zero_grad(set_to_none=True)
        reps = [F.normalize(e(x[i % task["num_batches"]]), dim=1) for e, x in zip(encoders, data)]
        value = loss_obj(reps, log_scale.exp())
        value.backward()
        opt.step()
        return value

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        value = step(i)
    value = float(value.detach())
    elapsed = time.perf_counter() - t0
    return [
        {
            "impl": "reference",
            "mode": "torch",
            "batch": batch,
            "bits": bits,
            "dim": dim,
            "sampling": task["sampling"],
            "steps": steps,
            "seconds": elapsed,
            "examples_per_s": steps * batch / elapsed,
            "final_loss": value,
        }
    ]


def torch_versions(task):
    torch = _torch_setup(task)
    import symile

    return {
        "torch": torch.__version__,
        "symile": getattr(symile, "__version__", "?"),
        "torch_threads": torch.get_num_threads(),
    }
