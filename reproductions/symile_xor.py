"""Experiment 1: Symile's binary XOR -- 2->1 accuracy of Symile vs pairwise CLIP over p_hat.

Data: :func:`tf_mmcl.data.synthetic.make_symile_xor` (the reference ``BinaryXORDataset``).
Model (the reference ``binary_xor`` run): one linear layer per modality ``Linear(d_v -> d)``
with bias, L2-normalised, learned logit scale initialised at ``exp(-0.3)``, AdamW. Task:
retrieve ``a`` from ``(b, c)`` among all ``2^d_v`` binary vectors (argmax of the objective's
own score), accuracy on the test split.

``config.protocol = "paper"`` adds the paper's protocol as the main table: retrieve ``b`` from
``(a, c)`` with the checkpoint of lowest validation loss (validated every ``val_every`` steps),
mean over ``bootstrap`` resampled test sets. The same training run also gives the other table
(``a`` from ``(b, c)``, final weights), so the protocol costs only the validations.
"""

from __future__ import annotations

import keras
import numpy as np

from reproductions import common, selection
from reproductions.base import Experiment, register
from tf_mmcl.data.synthetic import make_symile_xor
from tf_mmcl.data.synthetic._checks import bits_to_index
from tf_mmcl.data.synthetic.symile_xor import bayes_top1, per_bit_posterior_top1


def two_to_one_accuracy(model, arrays, candidates, target="a", queries=("b", "c"), index_key="a_index"):
    """Top-1 accuracy of retrieving ``target`` from ``queries`` among ``candidates`` (argmax)."""
    return float(np.mean(two_to_one_correct(model, arrays, candidates, target, queries, index_key)))


def two_to_one_correct(model, arrays, candidates, target="a", queries=("b", "c"), index_key=None):
    """Per-example correctness (N,) of the argmax retrieval of ``target`` from ``queries``.

    ``index_key=None``: the right candidate's index is computed from the target's bits.
    """
    scores = model.score({q: arrays[q] for q in queries}, target, candidates).numpy()
    right = np.asarray(arrays[index_key]) if index_key else bits_to_index(arrays[target])
    return scores.argmax(axis=1) == right


# The authors' code on the paper's protocol, run side by side on this machine: mean
# over 3 seeds of the mean over 10 bootstrap test sets, in %.
_AUTHORS_PAPER_PROTOCOL = {0.3: (28.6, 3.1), 0.5: (51.5, 3.4), 0.7: (71.0, 2.8), 1.0: (100.0, 3.6)}


def bayes_top1_b(d_v: int, p_hat: float) -> float:
    """Best achievable top-1 of retrieving ``b`` from ``(a, c)`` over all 2^d_v candidates.

    ``c != a`` only when the switch is on, and then ``b = a XOR c``; given ``c = a`` the
    posterior of ``b`` is uniform except for extra mass ``p_hat 2^-d_v`` on ``b = 0`` (the
    switch with ``b = 0``), so the argmax is ``b = 0``, right with probability
    ``2^-d_v / P(c = a)``. Total: ``p_hat (1 - 2^-d_v) + 2^-d_v``.

    Example:
        >>> round(bayes_top1_b(5, 0.5), 4)
        0.5156
    """
    chance = 2.0**-d_v
    return float(p_hat * (1.0 - chance) + chance)


def _run_paper_protocol(config, data, spec, seed):
    """One method under the paper's protocol; also returns the final model's a-from-(b, c) accuracy."""
    train, val, test = data.as_numpy("train"), data.as_numpy("val"), data.as_numpy("test")
    keras.utils.set_random_seed(seed)
    model = common.build_model(
        dict(spec), data.modalities, "identity", config.embedding_dim, config.logit_scale_init, True
    )
    fit = selection.train_select_best(
        model,
        train,
        val,
        config.batch_size,
        config.steps,
        config.learning_rate,
        config.weight_decay,
        seed=seed,
        val_every=int(config.val_every),
    )
    candidates = data.info["candidates"]
    final_acc = two_to_one_accuracy(model, test, candidates)  # a from (b, c), final weights
    model.set_weights(fit["best_weights"])
    correct = two_to_one_correct(model, test, candidates, target="b", queries=("a", "c"))
    boot = selection.bootstrap_accuracy(correct, int(config.bootstrap), seed=seed)
    return fit, final_acc, boot


@register
class SymileXOR(Experiment):
    name = "symile_xor"
    title = "1. Symile XOR: Symile vs pairwise CLIP over p̂"
    source = (
        "Saporta et al., *Contrastive learning beyond pairs* (Symile, NeurIPS 2024), Sec. 5.1 / "
        "Fig. 2; settings of the reference `experiments/bash_scripts/binary_xor/main.sbatch`"
    )
    claim = "Symile solves the XOR task (accuracy → 1 as p̂ → 1); pairwise CLIP stays at chance (2^-d_v) at p̂ = 1."

    def run_seed(self, config, seed, log):
        out = {
            "p_hat": [],
            "bayes": [],
            "methods": {m["label"]: {"accuracy": [], "final_loss": []} for m in config.methods},
        }
        for p_hat in config.p_hats:
            data = make_symile_xor(
                d_v=config.d_v,
                p_hat=float(p_hat),
                n_train=config.n_train,
                n_val=config.n_val,
                n_test=config.n_test,
                seed=seed,
            )
            train, test = data.as_numpy("train"), data.as_numpy("test")
            out["p_hat"].append(float(p_hat))
            out["bayes"].append(bayes_top1(config.d_v, float(p_hat)))
            for spec in config.methods:
                if config.get("protocol", "section1") == "paper":
                    fit, acc, boot = _run_paper_protocol(config, data, spec, seed)
                    rec = out["methods"][spec["label"]]
                    rec["accuracy"].append(acc)
                    rec["final_loss"].append(fit["final_loss"])
                    rec.setdefault("paper_accuracy", []).append(float(np.mean(boot)))
                    rec.setdefault("paper_bootstrap", []).append(boot)
                    rec.setdefault("best_step", []).append(fit["best_step"])
                    log(
                        f"  seed {seed} p_hat={p_hat:.2f} {spec['label']}: b|(a,c) best-val "
                        f"{np.mean(boot):.3f} (step {fit['best_step']}), a|(b,c) final {acc:.3f} "
                        f"({fit['seconds']:.0f}s)"
                    )
                    continue
                keras.utils.set_random_seed(seed)
                model = common.build_model(
                    dict(spec), data.modalities, "identity", config.embedding_dim, config.logit_scale_init, True
                )
                fit = common.train_model(
                    model, train, config.batch_size, config.steps, config.learning_rate, config.weight_decay, seed=seed
                )
                acc = two_to_one_accuracy(model, test, data.info["candidates"])
                out["methods"][spec["label"]]["accuracy"].append(acc)
                out["methods"][spec["label"]]["final_loss"].append(fit["final_loss"])
                log(
                    f"  seed {seed} p_hat={p_hat:.2f} {spec['label']}: acc {acc:.3f} "
                    f"(loss {fit['first_loss']:.3f} -> {fit['final_loss']:.3f}, {fit['seconds']:.0f}s)"
                )
        return out

    def summarize(self, per_seed, config):
        labels = [m["label"] for m in config.methods]
        p_hats = per_seed[0]["p_hat"]
        chance = 2.0**-config.d_v
        header = ["p̂", "Bayes-optimal", "per-bit posterior¹"] + [f"{lab} (ours)" for lab in labels]
        rows = []
        for i, p in enumerate(p_hats):
            row = [
                f"{p:.2f}",
                common.fmt_pct(per_seed[0]["bayes"][i]),
                common.fmt_pct(per_bit_posterior_top1(config.d_v, p)),
            ]
            for lab in labels:
                row.append(common.fmt_mean_std([s["methods"][lab]["accuracy"][i] for s in per_seed]))
            rows.append(row)
        tables = []
        paper = all("paper_accuracy" in per_seed[0]["methods"][lab] for lab in labels)
        if paper:
            header_p = ["p̂", "Bayes-optimal²"] + [f"{lab} (ours)" for lab in labels]
            authors = [lab for lab in ("Symile", "CLIP") if lab in labels]
            header_p += [f"{lab} (authors' code)" for lab in authors]
            rows_p = []
            for i, p in enumerate(p_hats):
                row = [f"{p:.2f}", common.fmt_pct(bayes_top1_b(config.d_v, p))] + [
                    common.fmt_mean_std([s["methods"][lab]["paper_accuracy"][i] for s in per_seed]) for lab in labels
                ]
                ref = _AUTHORS_PAPER_PROTOCOL.get(round(p, 1))
                row += [("—" if ref is None else f"{ref[0 if lab == 'Symile' else 1]:.1f}") for lab in authors]
                rows_p.append(row)
            tables.append(
                {
                    "caption": f"The paper's protocol: 2→1 test accuracy (%) of retrieving **b from (a, c)** "
                    f"among all 2^{config.d_v} candidates with the checkpoint of lowest validation "
                    f"loss (validated every {config.val_every} steps), mean over "
                    f"{config.bootstrap} bootstrap test sets, then mean ± std over "
                    f"{len(per_seed)} seeds. Authors' code: their implementation run the same "
                    "way on this machine, where measured. ² When c ≠ a the switch "
                    "was on and b = a XOR c; when c = a the best guess is b = 0: "
                    "p̂ (1 - 2^-d_v) + 2^-d_v.",
                    "header": header_p,
                    "rows": rows_p,
                }
            )
        tables.append(
            {
                "caption": ("Second table, another target: " if paper else "")
                + f"2→1 test accuracy (%) of retrieving a from (b, c) among all 2^{config.d_v} = "
                f"{2**config.d_v} candidates; mean ± std over {len(per_seed)} seeds. "
                f"Chance = {100 * chance:.1f} %. ¹ Argmax of the product of the per-bit "
                "posteriors p(a_j | b_j, c_j), ties at random: the best-calibrated score that "
                "is affine in the candidate a (a linear candidate encoder) reaches this."
                + (" Final weights of the same runs as the table above." if paper else ""),
                "header": header,
                "rows": rows,
            }
        )
        paper_rows = [
            ["Symile", "≈ 100 (Bayes-optimal curve)", "rises towards 1 with p̂"],
            ["CLIP", f"≈ {100 * chance:.1f} (chance)", "falls to chance as p̂ → 1"],
        ]
        tables.append(
            {
                "caption": "Paper (Fig. 2 of Symile; read from the figure and text, the paper has no table)",
                "header": ["method", "accuracy at p̂ = 1 (%)", "trend"],
                "rows": paper_rows,
            }
        )

        findings, verdict = [], "not evaluated (no p̂ = 1 in this run)"
        if paper and "Symile" in labels and "CLIP" in labels:
            sym = [
                float(np.mean([s["methods"]["Symile"]["paper_accuracy"][i] for s in per_seed]))
                for i in range(len(p_hats))
            ]
            clip = [
                float(np.mean([s["methods"]["CLIP"]["paper_accuracy"][i] for s in per_seed]))
                for i in range(len(p_hats))
            ]
            gaps = [bayes_top1_b(config.d_v, p) - a for p, a in zip(p_hats, sym)]
            findings.append(
                "Paper's protocol (b from (a, c), best-validation checkpoint, bootstrap test sets): Symile is "
                + ", ".join(f"{100 * g:+.1f}" for g in gaps)
                + " points from Bayes-optimal at p̂ = "
                + ", ".join(f"{p:.1f}" for p in p_hats)
                + f"; CLIP's accuracy is {100 * min(clip):.1f}–"
                f"{100 * max(clip):.1f} % (chance {100 * chance:.1f} %): b is independent of a and of c "
                "separately at every p̂, so a pairwise score has nothing to use. The findings below are "
                "about the second table's target (a from (b, c)), where c copies a and pairwise scores do."
            )
        if 1.0 in p_hats and "Symile" in labels and "CLIP" in labels:
            i = p_hats.index(1.0)
            sym = common.mean_std([s["methods"]["Symile"]["accuracy"][i] for s in per_seed])
            clip = common.mean_std([s["methods"]["CLIP"]["accuracy"][i] for s in per_seed])
            sym_ok = sym[0] >= 0.9
            clip_ok = clip[0] <= chance + 0.05
            verdict = ("**reproduced**" if sym_ok and clip_ok else "**not reproduced**") + (
                f": at p̂ = 1 Symile reaches {100 * sym[0]:.1f} % and CLIP {100 * clip[0]:.1f} % "
                f"(chance {100 * chance:.1f} %)."
            )
            if not sym_ok:
                findings.append(
                    "Symile falls short of ≈ 100 % at p̂ = 1. Likely cause: the training budget "
                    f"({config.steps} steps of batch {config.batch_size}) is below the paper's "
                    "100 epochs when this is a --quick run; otherwise an optimisation difference "
                    "(the reference uses PyTorch AdamW with the same lr/weight decay)."
                )
            if not clip_ok:
                findings.append(
                    "CLIP is above chance at p̂ = 1, which the theory forbids for a pairwise score: "
                    "look for leakage between train and test or a scoring bug."
                )
        mid = [j for j, p in enumerate(p_hats) if 0.0 < p < 1.0]
        if mid and "Symile" in labels and "CLIP" in labels:
            sym_all = {j: [s["methods"]["Symile"]["accuracy"][j] for s in per_seed] for j in mid}
            gap = {j: per_seed[0]["bayes"][j] - float(np.mean(sym_all[j])) for j in mid}
            half = [j for j in mid if abs(p_hats[j] - 0.5) < 1e-9]
            for j in half:
                clip = float(np.mean([s["methods"]["CLIP"]["accuracy"][j] for s in per_seed]))
                findings.append(
                    f"p̂ = 0.50: Symile {100 * np.mean(sym_all[j]):.1f} % against CLIP {100 * clip:.1f} % "
                    f"(Bayes-optimal {100 * per_seed[0]['bayes'][j]:.1f} %, per-bit posterior "
                    f"{100 * per_bit_posterior_top1(config.d_v, 0.5):.1f} %). Cause: with the reference's linear "
                    "encoders every score is affine in the candidate a, so exp(score) factorises over a's bits "
                    "and the best-calibrated Symile score is the product of the per-bit posteriors (its trilinear "
                    "term can represent them). At p̂ = 0.5 every bit with b_j = 1 is then a coin flip (a_j = c_j "
                    "or not, equally likely) and the argmax is right with probability E[2^-popcount(b)] = "
                    "(3/4)^d_v. CLIP's score b·a + c·a cannot represent the b_j·c_j interaction those posteriors "
                    "need; its best fit leans on c, so its argmax is the copy a = c, which is Bayes-optimal for "
                    "every p̂ ≤ 0.5. A property of the objective with linear encoders, not a bug."
                )
            band = [j for j in mid if j not in half and gap[j] > 0.05]
            if band:
                spread = max(100 * np.std(sym_all[j], ddof=1) if len(sym_all[j]) > 1 else 0.0 for j in band)
                findings.append(
                    "Near 0.5 (p̂ = "
                    + ", ".join(f"{p_hats[j]:.1f}" for j in band)
                    + ") Symile is "
                    + ", ".join(f"{100 * gap[j]:.1f}" for j in band)
                    + " points below Bayes-optimal, with a "
                    f"seed-to-seed spread up to {spread:.1f} points (per seed: "
                    + "; ".join(f"{p_hats[j]:.1f}: " + "/".join(f"{100 * a:.0f}" for a in sym_all[j]) for j in band)
                    + " %). Same mechanism: the bits with b_j = 1 are decided one by one, each on a log-odds "
                    "margin of only log(p̂/(1-p̂)) (0.41 at 0.4 and 0.6), and one wrongly signed bit loses the "
                    "whole vector, so small errors in the learned margins cost a lot and differ by seed (the "
                    "best seed is "
                    + ", ".join(f"{100 * (per_seed[0]['bayes'][j] - max(sym_all[j])):.1f}" for j in band)
                    + " points below Bayes-optimal, the worst falls towards the per-bit tie value). CLIP meanwhile "
                    "keeps the copy decision, exactly Bayes-optimal below 0.5 and wrong above it."
                )
            close = [j for j in mid if gap[j] <= 0.02]
            if close:
                findings.append(
                    "Symile is within 2 points of Bayes-optimal at p̂ = "
                    + ", ".join(f"{p_hats[j]:.1f}" for j in close)
                    + "."
                )
        return {"tables": tables, "findings": findings, "verdict": verdict}

    def plot(self, per_seed, config, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        p = np.array(per_seed[0]["p_hat"])
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(p, per_seed[0]["bayes"], "k--", label="Bayes-optimal")
        for spec in config.methods:
            acc = np.array([s["methods"][spec["label"]]["accuracy"] for s in per_seed])
            ax.errorbar(
                p,
                acc.mean(0),
                yerr=acc.std(0, ddof=1) if len(acc) > 1 else None,
                marker="o",
                capsize=3,
                label=spec["label"],
            )
        ax.axhline(2.0**-config.d_v, color="gray", lw=0.8, ls=":", label="chance")
        ax.set_xlabel("p̂ (probability of the XOR switch)")
        ax.set_ylabel("2→1 test accuracy")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"Symile XOR (d_v={config.d_v})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
