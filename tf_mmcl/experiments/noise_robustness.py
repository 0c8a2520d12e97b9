"""Experiment 5: noise robustness -- 2->1 accuracy with one query modality degraded by
Gaussian noise at 10, 15 and 20 dB SNR (the ConFu poster's 'Accuracy under Gaussian Noise').

The poster's table is on AV-MNIST (audio + image -> class), which we cannot obtain here; we run
the same protocol on ConFu's XOR in continuous coordinates
(:func:`~tf_mmcl.data.synthetic.make_confu_xor` with ``embed_dim``): z2 is a copy of z1 with
probability 1 - p_hat and z1 XOR z3 otherwise, so z1 carries pairwise *and* synergistic
information (like the poster's strong modality V) and z3 only synergistic information (like
A). Models are trained on clean data; at test time :class:`~tf_mmcl.data.GaussianNoise` degrades
z1 or z3 at each SNR. CLIP is also scored from a single query modality (the poster's
"Tri-CLIP (V)" / "(A)" rows).
"""

from __future__ import annotations

import keras
import numpy as np

from tf_mmcl.data import GaussianNoise
from tf_mmcl.data.synthetic import make_confu_xor
from tf_mmcl.experiments import common
from tf_mmcl.experiments.base import Experiment, register

# The poster's AV-MNIST table (accuracy %, degraded modality A or V at each SNR).
PAPER = {
    "Tri-CLIP (V)": {10: (69.0, 5.5), 15: (69.0, 13.2), 20: (66.0, 35.1)},
    "Tri-CLIP (A)": {10: (26.0, 31.1), 15: (29.1, 31.1), 20: (30.3, 31.1)},
    "Symile": {10: (58.4, 21.2), 15: (59.2, 25.9), 20: (60.0, 48.0)},
    "GRAM": {10: (58.9, 4.0), 15: (58.3, 8.04), 20: (58.1, 25.0)},
    "TRIANGLE": {10: (61.9, 3.4), 15: (64.0, 7.24), 20: (64.0, 26.5)},
    "ConFu": {10: (71.2, 30.2), 15: (71.4, 33.1), 20: (71.5, 45.4)},
}


def _accuracy(scores, targets):
    return float(np.mean(np.asarray(scores).argmax(axis=1) == targets))


@register
class NoiseRobustness(Experiment):
    name = "noise_robustness"
    title = "5. Noise robustness: one modality degraded at 10/15/20 dB SNR"
    source = "ConFu poster, table 'Accuracy under Gaussian Noise' (AV-MNIST)"
    claim = ("ConFu is the most stable method when one input modality is degraded by Gaussian noise "
             "(10/15/20 dB SNR).")

    def run_seed(self, config, seed, log):
        data = make_confu_xor(d=config.d, p_hat=config.p_hat, n_train=config.n_train, n_val=config.n_val,
                              n_test=config.n_test, embed_dim=config.embed_dim, noise_std=config.noise_std, seed=seed)
        train, test = data.as_numpy("train"), data.as_numpy("test")
        cands, targets = data.info["candidates"], test["z2_index"]
        conditions = [("clean", None, None)] + [(f"{m} @ {snr} dB", m, snr) for snr in config.snr_dbs
                                                for m in config.degraded]
        out = {"conditions": [c[0] for c in conditions], "methods": {}}
        for spec in config.methods:
            keras.utils.set_random_seed(seed)
            model = common.build_model(dict(spec), data.modalities, "identity", config.embedding_dim)
            fit = common.train_model(model, train, config.batch_size, config.steps, config.learning_rate,
                                     config.weight_decay, seed=seed)
            rows = {spec["label"]: []}
            if spec["objective"] == "clip":
                rows.update({f"{spec['label']} ({q} only)": [] for q in ("z1", "z3")})
            for name, modality, snr in conditions:
                x = {k: test[k] for k in ("z1", "z3")}
                if modality is not None:
                    noisy = GaussianNoise(modality, snr, seed=seed)({modality: x[modality]})
                    x[modality] = np.asarray(noisy[modality])
                rows[spec["label"]].append(_accuracy(model.score(x, "z2", cands), targets))
                if spec["objective"] == "clip":
                    for q in ("z1", "z3"):
                        rows[f"{spec['label']} ({q} only)"].append(
                            _accuracy(model.score({q: x[q]}, "z2", cands), targets))
            out["methods"].update(rows)
            log(f"  seed {seed} {spec['label']}: " + ", ".join(
                f"{c}={a:.2f}" for c, a in zip(out["conditions"], rows[spec["label"]]))
                + f" (loss {fit['first_loss']:.3f} -> {fit['final_loss']:.3f}, {fit['seconds']:.0f}s)")
        return out

    def summarize(self, per_seed, config):
        conds = per_seed[0]["conditions"]
        labels = list(per_seed[0]["methods"])
        acc = {lab: np.array([s["methods"][lab] for s in per_seed]) for lab in labels}
        rows = [[lab] + [common.fmt_mean_std(acc[lab][:, i]) for i in range(len(conds))] for lab in labels]
        tables = [{"caption": f"Ours: 2→1 accuracy (%) of z2 from (z1, z3) on ConFu XOR in {config.embed_dim}-d "
                              f"continuous coordinates (p̂ = {config.p_hat}, chance {100 * 2.0 ** -config.d:.1f} %, "
                              f"Bayes-optimal on clean data ≈ {100 * (2.0 ** -config.d + (1 - 2.0 ** -config.d) * max(config.p_hat, 1 - config.p_hat)):.0f} %), "
                              f"one query modality degraded at test time; mean ± std over {len(per_seed)} seeds.",
                   "header": ["method"] + conds, "rows": rows}]
        paper_rows = [[m] + [f"{v[snr][k]:.1f}" for snr in (10, 15, 20) for k in (0, 1)] for m, v in PAPER.items()]
        tables.append({"caption": "Paper (ConFu poster, AV-MNIST; different data: compare the ordering and the "
                                  "drop, not the levels).",
                       "header": ["method", "10 dB A deg.", "10 dB V deg.", "15 dB A deg.", "15 dB V deg.",
                                  "20 dB A deg.", "20 dB V deg."], "rows": paper_rows})
        # Robustness = the drop from clean accuracy, averaged over the degraded conditions (2->1 methods).
        fused = [lab for lab in labels if "only" not in lab]
        noisy_idx = [i for i, c in enumerate(conds) if c != "clean"]
        clean_idx = conds.index("clean")
        drop = {lab: float(acc[lab][:, clean_idx].mean() - acc[lab][:, noisy_idx].mean()) for lab in fused}
        level = {lab: float(acc[lab][:, noisy_idx].mean()) for lab in fused}
        best = max(level, key=level.get)
        informative = max(drop.values()) >= 0.03
        verdict = (("**inconclusive** (the noise does not degrade any method)" if not informative else
                    "**reproduced**" if best == "ConFu" else "**not reproduced**")
                   + f": highest mean accuracy under noise: {best}; " + ", ".join(
                       f"{lab} {100 * level[lab]:.1f} % (drop {100 * drop[lab]:.1f} pts)" for lab in fused) + ".")
        findings = ["The poster's numbers are on AV-MNIST and are not comparable in level to our synthetic task; "
                    "only the claim (ConFu is the most accurate under noise) is checked."]
        if max(drop.values()) < 0.03:
            findings.append(
                "The noise barely hurts any method here (largest mean drop "
                f"{100 * max(drop.values()):.1f} points), so this stand-in does not test robustness: each of the "
                f"{config.d} bits is spread over {config.embed_dim} coordinates by the orthonormal embedding, so a "
                "10 dB per-coordinate SNR leaves each bit's projection far above the noise. What the table ranks is "
                "clean accuracy at this p̂; a harder stand-in (fewer embedding dims, noise on the raw bits, or a real "
                "AV-MNIST) is needed before concluding anything about the claim.")
        if best != "ConFu":
            findings.append(f"{best} is more accurate than ConFu under noise here. At p̂ = {config.p_hat} the "
                            "2→1 (beyond-pairs) scores of ConFu and Symile are below the pairwise ones already on "
                            "clean data (the mixture dip of experiments 1 and 2), which dominates the ranking; "
                            "AV-MNIST's classes are mostly pairwise (image → class), a different regime.")
        return {"tables": tables, "findings": findings, "verdict": verdict}

    def plot(self, per_seed, config, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = list(per_seed[0]["methods"])
        fig, axes = plt.subplots(1, len(config.degraded), figsize=(5 * len(config.degraded), 3.5), squeeze=False)
        conds = per_seed[0]["conditions"]
        for k, modality in enumerate(config.degraded):
            ax = axes[0, k]
            xs = [float("inf")] + list(config.snr_dbs)
            idx = [conds.index("clean")] + [conds.index(f"{modality} @ {snr} dB") for snr in config.snr_dbs]
            pos = np.arange(len(xs))
            for lab in labels:
                a = np.array([s["methods"][lab] for s in per_seed])[:, idx]
                ax.errorbar(pos, a.mean(0), yerr=a.std(0, ddof=1) if len(a) > 1 else None, marker="o", capsize=3,
                            label=lab)
            ax.set_xticks(pos)
            ax.set_xticklabels(["clean"] + [f"{s} dB" for s in config.snr_dbs])
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{modality} degraded")
            ax.set_ylabel("2→1 accuracy")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
