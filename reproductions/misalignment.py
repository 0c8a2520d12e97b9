"""Experiment 4: Negate or Embrace -- identifiability R² per latent block under misalignment.

Data: :func:`tf_mmcl.data.synthetic.make_misalignment` (semantic s in R^10, modality-specific
m_x, m_t in R^5, fixed random invertible 3-layer mixing MLPs). Each setting chooses which
semantics the text sees (selection bias) and which of those are perturbed (perturbation bias).
A bimodal CLIP model (MLP encoders) is trained on (x, t); R² of linear and nonlinear (RBF
random-feature kernel ridge) regressors predicting each latent block from the standardised
image embedding of fresh test samples is reported, as in the authors' ``main_numeric.py``.
"""

from __future__ import annotations

import keras
import numpy as np

from reproductions import common
from reproductions.base import Experiment, register
from tf_mmcl.data.synthetic import latent_blocks, make_misalignment
from tf_mmcl.evaluation import identifiability_report

REGRESSORS = ("linear", "nonlinear")


def _groups(info, report):
    """Averages the per-index R² into the groups of the theorem."""
    sel, inv, pert = set(info["selected"]), set(info["invariant"]), set(info["perturbed"])
    n = info["semantics_n"]
    groups = {"invariant s (s_inv block)": report["s_inv"]}
    for name, idx in (("unselected s_i", [i for i in range(n) if i not in sel]), ("perturbed s_i", sorted(pert))):
        if idx:
            groups[name] = {r: float(np.mean([report[f"s_{i}"][r] for i in idx])) for r in REGRESSORS}
    if inv:
        groups["invariant s_i (each)"] = {
            r: float(np.mean([report[f"s_{i}"][r] for i in sorted(inv)])) for r in REGRESSORS
        }
    for m in ("m_x", "m_t"):
        if m in report:
            groups[m] = report[m]
    return groups


@register
class Misalignment(Experiment):
    name = "misalignment"
    title = "4. Negate or Embrace: R² per latent block under selection and perturbation bias"
    source = (
        "Cai et al., *Negate or Embrace: On How Misalignment Shapes Multimodal Representation Learning* "
        "(arXiv 2504.10143), numerical simulation (`main_numeric.py`)"
    )
    claim = (
        "The learned representation recovers exactly the semantic latents invariant to both biases: high R² "
        "for selected, unperturbed semantics; low for unselected or perturbed semantics and modality-specific "
        "latents."
    )

    def run_seed(self, config, seed, log):
        out = {"settings": []}
        for setting in config.settings:
            data = make_misalignment(
                semantics_n=config.semantics_n,
                modality_n=config.modality_n,
                selected=list(setting["selected"]),
                perturbed=list(setting["perturbed"]),
                change_prob=config.change_prob,
                n_train=config.n_train,
                n_val=config.n_val,
                n_test=config.n_test,
                cond_pool=config.cond_pool,
                seed=seed,
            )
            train, test = data.as_numpy("train"), data.as_numpy("test")
            keras.utils.set_random_seed(seed)
            dim = len(data.info["invariant"]) + config.extra_embedding_dims
            model = common.build_model({"objective": "clip"}, data.modalities, dict(config.encoder), dim)
            fit = common.train_model(
                model, train, config.batch_size, config.steps, config.learning_rate, config.weight_decay, seed=seed
            )
            rep = np.asarray(model.embed("x", test["x"]))
            report = identifiability_report(rep, latent_blocks(test, data.info), REGRESSORS, seed=seed)
            groups = _groups(data.info, report)
            out["settings"].append(
                {
                    "name": setting["name"],
                    "invariant": data.info["invariant"],
                    "per_block": report,
                    "groups": groups,
                    "final_loss": fit["final_loss"],
                }
            )
            log(
                f"  seed {seed} {setting['name']}: "
                + ", ".join(f"{g} {v['linear']:.2f}/{v['nonlinear']:.2f}" for g, v in groups.items())
                + f" (loss {fit['first_loss']:.3f} -> {fit['final_loss']:.3f}, {fit['seconds']:.0f}s)"
            )
        return out

    def summarize(self, per_seed, config):
        tables, findings, ok = [], [], []
        for k, setting in enumerate(config.settings):
            groups = list(per_seed[0]["settings"][k]["groups"])
            rows = []
            for g in groups:
                rows.append(
                    [g]
                    + [
                        common.fmt_mean_std([s["settings"][k]["groups"][g][r] for s in per_seed], scale=1.0, digits=2)
                        for r in REGRESSORS
                    ]
                )
            inv = per_seed[0]["settings"][k]["invariant"]
            tables.append(
                {
                    "caption": f"Setting '{setting['name']}': text sees s_{list(setting['selected'])}, "
                    f"perturbed {list(setting['perturbed'])} → invariant block s_{inv}. R² of the "
                    f"image embedding (mean ± std over {len(per_seed)} seeds).",
                    "header": ["latent block", "linear R²", "nonlinear R²"],
                    "rows": rows,
                }
            )
            inv_r2 = np.mean([s["settings"][k]["groups"]["invariant s (s_inv block)"]["nonlinear"] for s in per_seed])
            others = [
                np.mean([s["settings"][k]["groups"][g]["nonlinear"] for s in per_seed])
                for g in groups
                if not g.startswith("invariant")
            ]
            worst = max(others) if others else 0.0
            ok.append(inv_r2 > 0.7 and worst < inv_r2 - 0.3)
            findings.append(
                f"'{setting['name']}': nonlinear R² of the invariant block {inv_r2:.2f}; highest other "
                f"block {worst:.2f}."
                + (
                    ""
                    if inv_r2 > 0.7
                    else f" The invariant block is recovered only partly (the paper: R² ≈ 1). It rises with "
                    f"training (measured this session, 3 seeds, nonlinear R² of the two settings' invariant "
                    "blocks: 500 steps 0.62 / 0.47 (quick, 2 seeds), 3000 steps 0.74 / 0.55; this run "
                    f"{config.steps} steps of "
                    f"batch {config.batch_size}: {config.steps * config.batch_size / 1e6:.1f} M pairs, "
                    f"against the paper's 100k × 6144 = 614 M), so the budget is the first suspect; "
                    "the objective also differs (cosine vs the paper's Lp-distance InfoNCE)."
                )
            )
            if "perturbed s_i" in groups:
                p = np.mean([s["settings"][k]["groups"]["perturbed s_i"]["nonlinear"] for s in per_seed])
                if p > 0.3:
                    findings.append(
                        f"Perturbed semantics keep R² {p:.2f} (> 0.3): with change_prob = "
                        f"{config.change_prob} a perturbed index still matches in "
                        f"{100 * (1 - config.change_prob):.0f} % of pairs and is only displaced by "
                        "N(0, 1) otherwise, so it is partly shared; the theorem's 'discarded' holds "
                        "at the optimum of the population loss, which our short CPU training (batch "
                        f"{config.batch_size}, {config.steps} steps vs 6144 × 100k) need not reach."
                    )
        verdict = ("**reproduced**" if all(ok) else "**partly reproduced**") + (
            ": the invariant block has the highest R² and the excluded blocks stay low"
            if all(ok)
            else ": see the findings for the blocks that do not separate"
        )
        findings.append(
            "Paper numbers: the abstract gives none for the simulation; its figures show R² ≈ 1 for the "
            "invariant block and ≈ 0 for the rest after 100k steps at batch 6144 with an Lp-distance "
            "InfoNCE; we use the library's cosine InfoNCE with a learned scale and a unit-sphere "
            f"embedding of |s_inv| + {config.extra_embedding_dims} dims (one extra because the sphere "
            "has one degree of freedom fewer)."
        )
        return {"tables": tables, "findings": findings, "verdict": verdict}

    def plot(self, per_seed, config, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(config.settings), figsize=(5 * len(config.settings), 3.5), squeeze=False)
        for k, setting in enumerate(config.settings):
            ax = axes[0, k]
            blocks = [f"s_{i}" for i in range(config.semantics_n)] + ["m_x", "m_t"]
            inv = set(per_seed[0]["settings"][k]["invariant"])
            vals = [np.mean([s["settings"][k]["per_block"][b]["nonlinear"] for s in per_seed]) for b in blocks]
            colors = ["tab:green" if b.startswith("s_") and int(b[2:]) in inv else "tab:gray" for b in blocks]
            ax.bar(range(len(blocks)), vals, color=colors)
            ax.set_xticks(range(len(blocks)))
            ax.set_xticklabels(blocks, rotation=60, fontsize=7)
            ax.set_ylim(-0.05, 1.05)
            ax.set_ylabel("nonlinear R² (green = invariant)")
            ax.set_title(setting["name"], fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
