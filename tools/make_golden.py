"""Write the golden fixtures of the contrastive objectives from the REFERENCE implementations.

This program imports and runs the reference code (PyTorch) and stores, for every case, the
inputs, the logit scale, the reference loss and the gradients of the loss w.r.t. every input
embedding and w.r.t. the logit scale. ``tests/losses/test_golden.py`` recomputes each case with
tf_mmcl and compares. No reference code is copied into tf_mmcl; this script only calls it.

References run:

* Symile: the ``symile`` package (``symile.Symile``), ``negative_sampling="n_squared"`` and
  ``"n"``. For ``"n"`` the reference draws its row permutations with ``torch.randperm``; the
  script replaces ``torch.randperm`` while the loss runs by a function that hands out fixed
  permutations in the order the reference draws them (anchor 0..M-1, then each non-anchor
  modality in index order) and stores them as ``permutations`` in tf_mmcl's (M, M-1, N) layout.
* CLIP, GRAM, TRIANGLE: the Gated Symile authors' ``losses.clip``, ``losses.gram``,
  ``losses.triangle`` (from a checkout given by ``--gated_symile_repo``). For TRIANGLE both their
  loss (``triangle(...)``, built on ``compute_triangle_area_matrix_efficient``) and the same
  symmetric InfoNCE built on their naive ``compute_triangle_area_matrix`` are recorded, plus both
  area matrices for anchor 0: the two differ (the efficient form uses ``b_i . c_j`` where the
  triangle (a_i, b_j, c_j) needs ``b_j . c_j``), and the script checks that numerically.
* ConFu: the authors' ``ConFu.pairwise_contrastive_loss`` (``src/modules/models/confu.py`` of a
  checkout given by ``--confu_repo``) on a minimal instance; ``pytorch_lightning`` is replaced by
  a stub module when it is not installed (only ``LightningModule`` is needed to define the class).
  The fused embeddings are inputs; the temperature is ``1 / logit_scale`` with the logit scale a
  leaf tensor, so its gradient is recorded too.

Precision: the float32 inputs are cast to float64 and every reference runs in float64 (GRAM's
reference takes its Gram determinant in float32 internally, whatever the input dtype), so the
golden values carry float64 accuracy except for that determinant.

Usage, with ``REF`` a directory outside the repository (the reference environment stays out of
it) and checkouts of github.com/TillmannRheude/gated_symile and github.com/estafons/confu::

    python3 -m venv "$REF/venv"
    "$REF/venv/bin/pip" install torch==2.13.0 symile==0.1.0 numpy
    mkdir -p "$REF/gs" "$REF/confu"
    git -C path/to/gated_symile archive HEAD losses | tar -x -C "$REF/gs"
    git -C path/to/confu archive HEAD src | tar -x -C "$REF/confu"
    "$REF/venv/bin/python" tools/make_golden.py --gated_symile_repo="$REF/gs" \
        --confu_repo="$REF/confu" --output=tests/golden/reference_losses.npz

Layout of the .npz: ``cases`` (names); per case ``<case>__meta`` (a JSON string: method,
kwargs, number of modalities, reference used) and arrays ``<case>__rep<k>``,
``<case>__logit_scale``, ``<case>__loss``, ``<case>__grad_rep<k>``, ``<case>__grad_logit_scale``,
and where they apply ``<case>__permutations``, ``<case>__fused<k>``, ``<case>__grad_fused<k>``,
``<case>__loss_efficient``, ``<case>__grad_efficient_rep<k>``,
``<case>__grad_efficient_logit_scale``, ``<case>__area_naive``, ``<case>__area_efficient``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import types

import numpy as np

# PyTorch lives in the reference venv only (see Usage); imported once the flags are parsed.
torch = F = DTYPE = None


def _import_torch():
    global torch, F, DTYPE
    try:
        import torch as _torch
        import torch.nn.functional as _functional
    except ImportError:
        sys.exit(
            "make_golden.py: error: PyTorch is not installed here; run this tool with the reference "
            "venv's python (python3 -m venv REF_VENV && REF_VENV/bin/pip install torch==2.13.0 "
            "symile==0.1.0 numpy; see the Usage in this file's docstring)."
        )
    torch, F, DTYPE = _torch, _functional, _torch.float64


def _inputs(seed, m, n, d, normalize=True, scale=1.0):
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(m):
        x = rng.normal(size=(n, d))
        if normalize:
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        reps.append((scale * x).astype(np.float32))
    return reps, rng


def _leaves(arrays):
    return [torch.tensor(a.astype(np.float64), dtype=DTYPE, requires_grad=True) for a in arrays]


def _scale_leaf(value):
    return torch.tensor(np.float64(np.float32(value)), dtype=DTYPE, requires_grad=True)


def _grads(loss, tensors):
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [np.zeros(tuple(t.shape)) if g is None else g.detach().numpy() for g, t in zip(grads, tensors)]


@contextlib.contextmanager
def _fixed_randperm(perms):
    """Replaces ``torch.randperm`` by a function that returns ``perms`` (M, M-1, N) in the
    order the Symile reference draws them; checks that every one is consumed exactly."""
    queue = [p for anchor in perms for p in anchor]
    original = torch.randperm
    calls = {"n": 0}

    def fake(n, *args, **kwargs):
        if calls["n"] >= len(queue):
            raise RuntimeError("reference drew more permutations than expected")
        p = queue[calls["n"]]
        if len(p) != n:
            raise RuntimeError(f"reference asked for randperm({n}), fixture has length {len(p)}")
        calls["n"] += 1
        return torch.tensor(p, dtype=torch.long)

    torch.randperm = fake
    try:
        yield
    finally:
        torch.randperm = original
    if calls["n"] != len(queue):
        raise RuntimeError(f"reference drew {calls['n']} permutations, expected {len(queue)}")


class Writer:
    def __init__(self):
        self.arrays = {}
        self.cases = []

    def case(self, name, meta, reps, logit_scale, loss, grads, grad_scale, **extra):
        if name in self.cases:
            raise ValueError(f"duplicate case {name}")
        self.cases.append(name)
        self.arrays[f"{name}__meta"] = np.array(json.dumps(meta))
        for k, r in enumerate(reps):
            self.arrays[f"{name}__rep{k}"] = np.asarray(r, np.float32)
            self.arrays[f"{name}__grad_rep{k}"] = np.asarray(grads[k], np.float64)
        self.arrays[f"{name}__logit_scale"] = np.float32(logit_scale)
        self.arrays[f"{name}__loss"] = np.float64(loss)
        self.arrays[f"{name}__grad_logit_scale"] = np.float64(grad_scale)
        for key, value in extra.items():
            self.arrays[f"{name}__{key}"] = np.asarray(value)
        print(f"{name:40s} loss={float(loss):.8f}")

    def save(self, path):
        self.arrays["cases"] = np.array(self.cases)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        np.savez_compressed(path, **self.arrays)
        print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(self.cases)} cases)")


# --------------------------------------------------------------------------------------------
# Symile (symile package)


def symile_cases(w, seed):
    import symile

    specs = [
        # name, negative_sampling, M, N, d, logit_scale, normalize
        ("symile_n_squared_m3", "n_squared", 3, 6, 5, 3.0, True),
        ("symile_n_squared_m4", "n_squared", 4, 4, 3, 3.0, True),
        ("symile_n_squared_m3_scale1_over_0.07", "n_squared", 3, 8, 8, 1.0 / 0.07, True),
        ("symile_n_squared_m3_unnormalized", "n_squared", 3, 5, 4, 1.5, False),
        ("symile_n_m3", "n", 3, 6, 5, 3.0, True),
        ("symile_n_m4", "n", 4, 5, 4, 3.0, True),
        ("symile_n_m3_unnormalized", "n", 3, 7, 4, 1.5, False),
    ]
    for i, (name, ns, m, n, d, scale, normalize) in enumerate(specs):
        arrays, rng = _inputs(seed + 100 + i, m, n, d, normalize=normalize, scale=1.0 if normalize else 0.8)
        reps = _leaves(arrays)
        s = _scale_leaf(scale)
        loss_fn = symile.Symile(negative_sampling=ns)
        extra = {}
        if ns == "n":
            perms = np.stack([np.stack([rng.permutation(n) for _ in range(m - 1)]) for _ in range(m)])
            perms = perms.astype(np.int32)
            with _fixed_randperm(perms.tolist()):
                loss = loss_fn(reps, s)
            extra["permutations"] = perms
        else:
            loss = loss_fn(reps, s)
        grads = _grads(loss, reps + [s])
        meta = {
            "method": "symile",
            "kwargs": {"negative_sampling": ns},
            "num_modalities": m,
            "reference": f"symile {symile.__version__} Symile(negative_sampling={ns!r})",
        }
        w.case(name, meta, arrays, np.float32(scale), loss.item(), grads[:-1], grads[-1], **extra)


# --------------------------------------------------------------------------------------------
# CLIP, GRAM, TRIANGLE (Gated Symile authors' code)


def _naive_triangle_loss(tri_mod, r_a, r_b, r_c, logit_scale, squared, eps):
    """Their ``triangle(...)`` with the area from their naive ``compute_triangle_area_matrix``."""

    def one(anchor, b, c):
        area = tri_mod.compute_triangle_area_matrix(anchor, b, c, squared=squared, eps=eps)
        logits = logit_scale * -area
        labels = torch.arange(logits.shape[0])
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))

    return (one(r_a, r_b, r_c) + one(r_b, r_a, r_c) + one(r_c, r_a, r_b)) / 3.0


def gated_symile_cases(w, seed, repo):
    sys.path.insert(0, os.path.abspath(repo))
    try:
        clip_mod = importlib.import_module("losses.clip")
        gram_mod = importlib.import_module("losses.gram")
        tri_mod = importlib.import_module("losses.triangle")
    finally:
        sys.path.pop(0)
    ref = "Gated Symile authors' losses/{}.py"

    specs = [
        ("clip_m3", "clip", 8, 6, 1.0 / 0.07, {}),
        ("clip_m3_scale3", "clip", 6, 5, 3.0, {}),
        ("gram_m3", "gram", 8, 6, 1.0 / 0.07, {}),
        ("gram_m3_scale3", "gram", 6, 5, 3.0, {}),
        ("triangle_m3", "triangle", 8, 6, 1.0 / 0.07, {"squared": True}),
        ("triangle_m3_scale3", "triangle", 6, 5, 3.0, {"squared": True}),
        ("triangle_m3_area", "triangle", 7, 5, 1.0 / 0.07, {"squared": False}),
    ]
    for i, (name, method, n, d, scale, kwargs) in enumerate(specs):
        arrays, _ = _inputs(seed + 200 + i, 3, n, d)
        reps = _leaves(arrays)
        s = _scale_leaf(scale)
        extra = {}
        if method == "clip":
            loss = clip_mod.clip(*reps, s)
            reference = ref.format("clip") + " clip(...)"
        elif method == "gram":
            loss = gram_mod.gram(*reps, s)
            reference = ref.format("gram") + " gram(...)"
        else:
            squared = kwargs["squared"]
            # Their loss: symmetric InfoNCE on compute_triangle_area_matrix_efficient.
            eff = tri_mod.triangle(*reps, s, squared=squared)
            eff_grads = _grads(eff, reps + [s])
            extra["loss_efficient"] = np.float64(eff.item())
            for k, g in enumerate(eff_grads[:-1]):
                extra[f"grad_efficient_rep{k}"] = g
            extra["grad_efficient_logit_scale"] = np.float64(eff_grads[-1])
            # The same loss on their naive (B, B, D) area matrix: the golden value.
            loss = _naive_triangle_loss(tri_mod, *reps, s, squared=squared, eps=1e-8)
            reference = (
                ref.format("triangle") + " compute_triangle_area_matrix (naive) with the "
                "symmetric InfoNCE of compute_triangle_infonce"
            )
            with torch.no_grad():
                a, b, c = reps
                naive = tri_mod.compute_triangle_area_matrix(a, b, c, squared=squared)
                efficient = tri_mod.compute_triangle_area_matrix_efficient(a, b, c, squared=squared)
                extra["area_naive"] = naive.numpy()
                extra["area_efficient"] = efficient.numpy()
                _check_triangle_belief(a, b, c, naive, efficient, squared, name)
            print(
                f"{name:40s} efficient-path loss={eff.item():.8f} (naive {loss.item():.8f}, "
                f"diff {eff.item() - loss.item():+.3e})"
            )
        grads = _grads(loss, reps + [s])
        meta = {"method": method, "kwargs": kwargs, "num_modalities": 3, "reference": reference}
        w.case(name, meta, arrays, np.float32(scale), loss.item(), grads[:-1], grads[-1], **extra)


def _check_triangle_belief(a, b, c, naive, efficient, squared, name):
    """The efficient area equals the naive one iff b.c is taken on the candidate row j."""

    def area(bc):
        a2 = (a * a).sum(1, keepdim=True)
        b2 = (b * b).sum(1)[None, :]
        c2 = (c * c).sum(1)[None, :]
        ab, ac = a @ b.t(), a @ c.t()
        det = torch.clamp((a2 + b2 - 2 * ab) * (a2 + c2 - 2 * ac) - (a2 - ab - ac + bc) ** 2, min=0.0)
        return 0.5 * det if squared else 0.5 * torch.sqrt(det + 1e-8)

    with_bj_cj = area((b * c).sum(1)[None, :])  # geometry: triangle (a_i, b_j, c_j)
    with_bi_cj = area(b @ c.t())  # what the efficient function computes
    checks = {
        "naive == area(b_j.c_j)": float((naive - with_bj_cj).abs().max()),
        "efficient == area(b_i.c_j)": float((efficient - with_bi_cj).abs().max()),
        "diag(naive) == diag(efficient)": float((naive.diagonal() - efficient.diagonal()).abs().max()),
    }
    off = float((naive - efficient).abs().max())
    print(f"  {name}: max|naive - efficient| = {off:.3e}; " + ", ".join(f"{k}: {v:.1e}" for k, v in checks.items()))
    if max(checks.values()) > 1e-10 or off < 1e-3:
        raise AssertionError(f"TRIANGLE efficient/naive relation not as expected: {checks}, off={off}")


# --------------------------------------------------------------------------------------------
# ConFu (authors' code)


def confu_cases(w, seed, repo):
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:
        stub = types.ModuleType("pytorch_lightning")
        stub.LightningModule = torch.nn.Module  # enough to define the class
        sys.modules["pytorch_lightning"] = stub
    sys.path.insert(0, os.path.abspath(repo))
    try:
        confu_module = importlib.import_module("src.modules.models.confu")
    finally:
        sys.path.pop(0)
    ConFu = confu_module.ConFu

    def instance(lam):
        obj = ConFu.__new__(ConFu)
        torch.nn.Module.__init__(obj)
        obj.lambda_ = lam
        if not isinstance(getattr(type(obj), "device", None), property):
            obj.device = torch.device("cpu")
        return obj

    specs = [
        ("confu_m3_lam0.5", 0.5, 8, 6),
        ("confu_m3_lam0", 0.0, 8, 6),
        ("confu_m3_lam1", 1.0, 7, 5),
    ]
    for i, (name, lam, n, d) in enumerate(specs):
        arrays, _ = _inputs(seed + 300 + i, 6, n, d)
        uni, fused = arrays[:3], arrays[3:]  # fused in pair order (0,1), (0,2), (1,2)
        uni_t, fused_t = _leaves(uni), _leaves(fused)
        scale = 1.0 / 0.07
        s = _scale_leaf(scale)
        model = instance(lam)
        # Reference argument order: mod12_proj, mod13_proj, mod23_proj, mod1, mod2, mod3.
        loss, _ = model.pairwise_contrastive_loss(*fused_t, *uni_t, temperature=1.0 / s)
        grads = _grads(loss, uni_t + fused_t + [s])
        meta = {
            "method": "confu",
            "kwargs": {"lam": lam},
            "num_modalities": 3,
            "reference": "ConFu authors' src/modules/models/confu.py "
            "ConFu.pairwise_contrastive_loss (temperature = 1 / logit_scale)",
        }
        extra = {f"fused{k}": f for k, f in enumerate(fused)}
        extra.update({f"grad_fused{k}": g for k, g in enumerate(grads[3:6])})
        w.case(name, meta, uni, np.float32(scale), loss.item(), grads[:3], grads[-1], **extra)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--gated_symile_repo", required=True, help="checkout holding the Gated Symile authors' losses/ package"
    )
    parser.add_argument("--confu_repo", required=True, help="checkout holding the ConFu authors' src/ package")
    parser.add_argument(
        "--output",
        default=os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "reference_losses.npz"
        ),
    )
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args(argv)
    _import_torch()

    print(f"torch {torch.__version__}, reference dtype {DTYPE}")
    w = Writer()
    symile_cases(w, args.seed)
    gated_symile_cases(w, args.seed, args.gated_symile_repo)
    confu_cases(w, args.seed, args.confu_repo)
    w.save(os.path.normpath(args.output))


if __name__ == "__main__":
    main()
