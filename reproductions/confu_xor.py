"""Experiment 2: ConFu's synthetic XOR -- 2->1 accuracy of ConFu, Symile, GRAM, TRIANGLE, CLIP.

Data: :func:`tf_mmcl.data.synthetic.make_confu_xor` (predict z2 from (z1, z3); at p_hat = 1 every
pairwise mutual information is zero). Every method gets the same linear per-modality encoder
(the projection head on the raw bits), embedding width, optimiser, batch and steps; ConFu adds its
pair fusion heads (MLP over the concatenated encoder features) and keeps its fixed temperature
0.07, the others learn the logit scale (library defaults). Accuracy: argmax of each objective's
own 2->1 score over all 2^d codes of z2.
"""

from __future__ import annotations

import keras
import numpy as np

from reproductions import common
from reproductions.base import Experiment, register
from reproductions.symile_xor import two_to_one_accuracy
from tf_mmcl.data.synthetic import make_confu_xor
from tf_mmcl.data.synthetic.symile_xor import bayes_top1, per_bit_posterior_top1

# The poster's statements about its XOR figure (no table).
PAPER = {
    "ConFu": "high, rising with p̂",
    "Symile": "high, rising with p̂",
    "GRAM": "< 15",
    "TRIANGLE": "< 15",
    "CLIP": "≈ 3 (chance)",
}


@register
class ConFuXOR(Experiment):
    name = "confu_xor"
    title = "2. ConFu XOR: ConFu, Symile, GRAM, TRIANGLE, CLIP"
    source = (
        "Koutoupis et al., *The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal "
        "Alignment* (ConFu, 2025), poster 'Synthetic XOR Experiment'"
    )
    claim = (
        "ConFu and Symile capture the XOR synergy (2→1 accuracy rises with p̂); GRAM and TRIANGLE stay "
        "under 15 % even with 1024-d embeddings; CLIP ≈ 3 % (chance)."
    )

    def run_seed(self, config, seed, log):
        labels = [m["label"] for m in config.methods]
        out = {"p_hat": [], "methods": {lab: {"accuracy": [], "final_loss": []} for lab in labels}}
        for p_hat in config.p_hats:
            data = make_confu_xor(
                d=config.d,
                p_hat=float(p_hat),
                n_train=config.n_train,
                n_val=config.n_val,
                n_test=config.n_test,
                seed=seed,
            )
            train, test = data.as_numpy("train"), data.as_numpy("test")
            out["p_hat"].append(float(p_hat))
            for spec in config.methods:
                keras.utils.set_random_seed(seed)
                model = common.build_model(dict(spec), data.modalities, "identity", config.embedding_dim)
                fit = common.train_model(
                    model,
                    train,
                    config.batch_size,
                    config.steps,
                    config.learning_rate,
                    config.weight_decay,
                    seed=seed,
                    jit_compile=spec.get("jit_compile", False),
                )
                acc = two_to_one_accuracy(
                    model, test, data.info["candidates"], target="z2", queries=("z1", "z3"), index_key="z2_index"
                )
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
        chance = 2.0**-config.d
        acc = {lab: np.array([s["methods"][lab]["accuracy"] for s in per_seed]) for lab in labels}
        header = ["method"] + [f"p̂ = {p:.2f}" for p in p_hats] + ["paper (p̂ = 1)"]
        rows = []
        for lab in labels:
            base = lab.split(" ")[0]
            rows.append(
                [lab] + [common.fmt_mean_std(acc[lab][:, i]) for i in range(len(p_hats))] + [PAPER.get(base, "–")]
            )
        tables = [
            {
                "caption": f"2→1 test accuracy (%) of retrieving z2 from (z1, z3) among 2^{config.d} codes; "
                f"mean ± std over {len(per_seed)} seeds; chance {100 * chance:.1f} %. "
                "Paper column: the poster's statements (it shows a figure, no table).",
                "header": header,
                "rows": rows,
            }
        ]
        findings, checks = [], []
        if 1.0 in p_hats:
            i = p_hats.index(1.0)
            m = {lab: float(acc[lab][:, i].mean()) for lab in labels}
            for lab in labels:
                base = lab.split(" ")[0]
                if base in ("ConFu", "Symile"):
                    ok = m[lab] >= 0.5
                    checks.append(ok)
                    if not ok:
                        findings.append(
                            f"{lab} reaches only {100 * m[lab]:.1f} % at p̂ = 1, below the poster's "
                            "'captures the synergy'. Likely cause: our short CPU training budget "
                            f"({config.steps} steps); the poster gives no budget to compare."
                        )
                elif base in ("GRAM", "TRIANGLE"):
                    ok = m[lab] < 0.15
                    checks.append(ok)
                    if not ok:
                        findings.append(
                            f"{lab} reaches {100 * m[lab]:.1f} % at p̂ = 1, above the poster's < 15 %. "
                            "A volume/area score of three unit vectors is a function of their pairwise "
                            "cosines only, so it cannot represent XOR exactly; what it gains is "
                            "partial (e.g. on codes where pairwise cosines differ by chance)."
                        )
                    else:
                        findings.append(
                            f"{lab}: {100 * m[lab]:.1f} % at p̂ = 1 (poster: < 15 %; chance {100 * chance:.1f} %). "
                            + ("Above chance, as expected: " if m[lab] > 2 * chance else "Near chance: ")
                            + "the score is a function of the three pairwise cosines only, but not an additive "
                            "one (the squared Gram volume is 1 − c₁₂² − c₁₃² − c₂₃² + 2·c₁₂·c₁₃·c₂₃, and the "
                            "triangle area is likewise non-linear in them), so it carries a weak three-way term "
                            "that can represent part of the XOR, never all of it."
                        )
                elif base == "CLIP":
                    ok = abs(m[lab] - chance) < 0.03
                    checks.append(ok)
            verdict = (
                ("**reproduced**" if all(checks) else "**partly reproduced**")
                + ": at p̂ = 1 "
                + ", ".join(f"{lab} {100 * m[lab]:.1f} %" for lab in labels)
                + "."
            )
        else:
            verdict = "not evaluated (no p̂ = 1 in this run)"
        if 0.0 in p_hats and "CLIP" in acc:
            j = p_hats.index(0.0)
            findings.append(
                "At p̂ = 0 z2 is a copy of z1, so every method (CLIP included) can retrieve it "
                f"(CLIP {100 * acc['CLIP'][:, j].mean():.1f} %)."
            )
        mixed = [j for j, p in enumerate(p_hats) if 0.0 < p < 1.0]
        if mixed:
            j = min(mixed, key=lambda k: abs(p_hats[k] - 0.5))
            p = p_hats[j]
            findings.append(
                f"At p̂ = {p:.2f}: "
                + ", ".join(f"{lab} {100 * acc[lab][:, j].mean():.1f} %" for lab in labels)
                + f" (Bayes-optimal {100 * bayes_top1(config.d, p):.1f} %, per-bit posterior "
                f"{100 * per_bit_posterior_top1(config.d, p):.1f} %). The mechanism measured in experiment 1: for "
                "ConFu, Symile and CLIP the 2→1 score is a dot product with the linear embedding of the candidate "
                "z2, so it is affine in z2 and its best-calibrated form is the product of per-bit posteriors; at "
                "p̂ = 0.5 those tie on every bit where z3 is 1. The beyond-pairs scores (ConFu's fused head, "
                "Symile's trilinear term) can represent them and land near the per-bit value; CLIP cannot, and "
                "neither can GRAM or TRIANGLE (functions of the three pairwise cosines): they fall back to the "
                "copy z2 = z1, Bayes-optimal for p̂ ≤ 0.5. Disagreement "
                "with the poster's framing, which calls p̂ a noise parameter with a 'strong positive trend': in "
                "the Symile process we use (the authors' generator is not public) accuracy falls from p̂ = 0 to "
                "0.5 and rises from 0.5 to 1; the claim at p̂ = 1 is unaffected."
            )
        return {"tables": tables, "findings": findings, "verdict": verdict}

    def plot(self, per_seed, config, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        p = np.array(per_seed[0]["p_hat"])
        fig, ax = plt.subplots(figsize=(5, 3.5))
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
        ax.axhline(2.0**-config.d, color="gray", lw=0.8, ls=":", label="chance")
        ax.axhline(0.15, color="red", lw=0.6, ls="--", label="15 % (poster bound)")
        ax.set_xlabel("p̂")
        ax.set_ylabel("2→1 test accuracy (z2 | z1, z3)")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"ConFu XOR (d={config.d})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
