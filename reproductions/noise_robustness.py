"""Experiment 5: noise robustness -- 2->1 accuracy with one query modality degraded by Gaussian
noise at 10, 15 and 20 dB SNR (the ConFu poster's table 'Accuracy under Gaussian Noise').

The poster's table is on AV-MNIST (audio + image -> digit class), which we cannot obtain here.
We run its protocol on our offline audio-visual benchmark ``m3_digits`` (its pairwise configs, experiment 6b, with its
encoders and budget): V = the digit scan, A = the spoken-number waveform, target = the text.
Models are trained on clean data; at test time :class:`~tf_mmcl.data.GaussianNoise` degrades the
image pixels or the audio *waveform* (before the log-mel features, as noise on the recording)
at each SNR, with the noise power set per example from that example's signal power.

An earlier stand-in (ConFu's XOR bits in 32-d coordinates) could not test the claim: a ±1 bit
spread over many coordinates keeps its sign far above 10 dB of per-coordinate noise, and no
method lost more than a point. Natural-signal inputs do lose information at these SNRs.

Difference from AV-MNIST, which the summary reports: there, A and V both show the class
(redundant), so a robust method can fall back on the clean modality for the whole answer. In
m3_digits the image carries the digit and the audio the language (complementary), so a noisy
modality costs its factor whatever the method; robustness shows as (a) how much of the noisy
modality's factor survives and (b) whether the clean modality's factor is kept (digit accuracy
under audio noise, language accuracy under image noise).
"""

from __future__ import annotations

import numpy as np

from reproductions import common
from reproductions.base import Experiment, register
from reproductions.m3_digits import audio_inputs, prepare_splits, train_m3_model, waveform_log_mels
from reproductions.m3_digits_pairwise import evaluate
from tf_mmcl.data import GaussianNoise

# The poster's AV-MNIST table (accuracy %, degraded modality A or V at each SNR).
PAPER = {
    "Tri-CLIP (V)": {10: (69.0, 5.5), 15: (69.0, 13.2), 20: (66.0, 35.1)},
    "Tri-CLIP (A)": {10: (26.0, 31.1), 15: (29.1, 31.1), 20: (30.3, 31.1)},
    "Symile": {10: (58.4, 21.2), 15: (59.2, 25.9), 20: (60.0, 48.0)},
    "GRAM": {10: (58.9, 4.0), 15: (58.3, 8.04), 20: (58.1, 25.0)},
    "TRIANGLE": {10: (61.9, 3.4), 15: (64.0, 7.24), 20: (64.0, 26.5)},
    "ConFu": {10: (71.2, 30.2), 15: (71.4, 33.1), 20: (71.5, 45.4)},
}
# Short names of the degraded modalities, as in the poster's columns.
SHORT = {"audio": "A", "image": "V"}
# What each query modality determines in m3_digits (the factor of the text it carries).
FACTOR = {"image": "digit", "audio": "language"}
OTHER = {"image": "audio", "audio": "image"}


def condition_name(modality: str | None, snr_db: float | None) -> str:
    """``"clean"`` or e.g. ``"10 dB A deg."``."""
    return "clean" if modality is None else f"{snr_db:g} dB {SHORT[modality]} deg."


def noisy_test_inputs(data, test, config, seed: int) -> dict:
    """The test queries of every condition: ``{name: {"image", "audio"}}`` (model inputs).

    The image noise is added to the pixels, the audio noise to the waveform, before the
    log-mel features (standardised with the clean training statistics, as the model saw them).
    Each condition has its own noise draw, the same for every method of this seed.
    """
    out = {"clean": {"image": test["image"], "audio": test["audio"]}}
    for k, snr in enumerate(config.snr_dbs):
        for j, modality in enumerate(config.degraded):
            noise_seed = 1000 * int(seed) + 10 * k + j
            x = {"image": test["image"], "audio": test["audio"]}
            if modality == "image":
                x["image"] = np.asarray(GaussianNoise("image", snr, seed=noise_seed)({"image": test["image"]})["image"])
            elif modality == "audio":
                wave = np.asarray(
                    GaussianNoise("waveform", snr, seed=noise_seed)({"waveform": test["waveform"]})["waveform"]
                )
                x["audio"] = audio_inputs(waveform_log_mels(data, wave), config.audio_features)
            else:
                raise ValueError(f"degraded modalities must be 'image' or 'audio', got {modality!r}.")
            out[condition_name(modality, snr)] = x
    return out


@register
class NoiseRobustness(Experiment):
    name = "noise_robustness"
    title = "5. Noise robustness: one modality degraded at 10/15/20 dB SNR"
    source = (
        "ConFu poster, table 'Accuracy under Gaussian Noise' (AV-MNIST); run on our audio-visual "
        "stand-in `m3_digits` (docs/m3_digits.md)"
    )
    claim = (
        "ConFu is the most stable method when one input modality is degraded by Gaussian noise "
        "(10/15/20 dB SNR): the highest accuracy under noise."
    )

    def run_seed(self, config, seed, log):
        data, train, test = prepare_splits(config, seed)
        inputs = noisy_test_inputs(data, test, config, seed)
        conds = list(inputs)
        out = {"conditions": conds, "languages": data["languages"], "methods": {}}
        for spec in config.methods:
            model, fit = train_m3_model(spec, config, data, train, seed)
            per = {k: [] for k in ("acc_2to1", "digit_2to1", "language_2to1", "digit_image", "language_audio")}
            for name in conds:
                metrics = evaluate(model, dict(test, **inputs[name]), data["candidates"])
                for k in per:
                    per[k].append(metrics[k])
            per.update(final_loss=fit["final_loss"], train_seconds=fit["seconds"])
            out["methods"][spec["label"]] = per
            log(
                f"  seed {seed} {spec['label']}: "
                + ", ".join(f"{c}={a:.2f}" for c, a in zip(conds, per["acc_2to1"]))
                + f" (loss {fit['first_loss']:.3f} -> {fit['final_loss']:.3f}, {fit['seconds']:.0f}s)"
            )
        return out

    def summarize(self, per_seed, config):
        conds = per_seed[0]["conditions"]
        labels = [m["label"] for m in config.methods]
        n_lang = len(per_seed[0]["languages"])

        def arr(lab, metric):
            return np.array([s["methods"][lab][metric] for s in per_seed])

        acc = {lab: arr(lab, "acc_2to1") for lab in labels}
        rows = [[lab] + [common.fmt_mean_std(acc[lab][:, i]) for i in range(len(conds))] for lab in labels]
        # The poster's single-modality CLIP rows: CLIP scored from V (or A) alone.
        single = {}
        if "CLIP" in labels:
            for modality in ("image", "audio"):
                key = f"CLIP ({SHORT[modality]} only)"
                metric = "digit_image" if modality == "image" else "language_audio"
                single[key] = (modality, arr("CLIP", metric))
        tables = [
            {
                "caption": f"Ours: 2→1 accuracy (%) of the text from (image, audio) on m3_digits, among "
                f"{10 * n_lang} texts (chance {100 / (10 * n_lang):.1f} %), one query modality "
                "degraded at test time (V = image pixels, A = audio waveform); models trained on "
                f"clean data; mean ± std over {len(per_seed)} seeds.",
                "header": ["method"] + conds,
                "rows": rows,
            }
        ]
        # What survives: each modality's own factor, and the clean modality's factor.
        kept_rows = []
        for lab in labels:
            row = [lab]
            for modality in config.degraded:
                idx = [conds.index(condition_name(modality, snr)) for snr in config.snr_dbs]
                own = arr(lab, f"{FACTOR[modality]}_2to1")
                other = arr(lab, f"{FACTOR[OTHER[modality]]}_2to1")
                row += [
                    f"{100 * own[:, 0].mean():.1f} → {100 * own[:, idx].mean():.1f}",
                    f"{100 * other[:, 0].mean():.1f} → {100 * other[:, idx].mean():.1f}",
                ]
            kept_rows.append(row)
        for key, (modality, values) in single.items():
            row = [f"{key}: its {FACTOR[modality]}"]
            for degraded in config.degraded:
                idx = [conds.index(condition_name(degraded, snr)) for snr in config.snr_dbs]
                cell = f"{100 * values[:, 0].mean():.1f} → {100 * values[:, idx].mean():.1f}"
                row += [cell, "–"] if degraded == modality else ["–", cell]
            kept_rows.append(row)
        header = ["method"]
        for modality in config.degraded:
            header += [
                f"{SHORT[modality]} deg.: {FACTOR[modality]} (noisy modality's factor)",
                f"{SHORT[modality]} deg.: {FACTOR[OTHER[modality]]} (clean modality's factor)",
            ]
        tables.append(
            {
                "caption": "Which factor of the retrieved text survives (%): clean → mean over the SNRs. "
                "The digit comes from the image, the language from the audio. Last rows: CLIP "
                "scored from one modality, the poster's Tri-CLIP (V) / (A), on the factor that "
                "modality can carry.",
                "header": header,
                "rows": kept_rows,
            }
        )
        paper_rows = [[m] + [f"{v[snr][k]:.1f}" for snr in (10, 15, 20) for k in (0, 1)] for m, v in PAPER.items()]
        tables.append(
            {
                "caption": "Paper (ConFu poster, AV-MNIST; different data: compare the ordering and the "
                "drop, not the levels).",
                "header": [
                    "method",
                    "10 dB A deg.",
                    "10 dB V deg.",
                    "15 dB A deg.",
                    "15 dB V deg.",
                    "20 dB A deg.",
                    "20 dB V deg.",
                ],
                "rows": paper_rows,
            }
        )
        noisy_idx = [i for i, c in enumerate(conds) if c != "clean"]
        clean_idx = conds.index("clean")
        drop = {lab: float(acc[lab][:, clean_idx].mean() - acc[lab][:, noisy_idx].mean()) for lab in labels}
        level = {lab: float(acc[lab][:, noisy_idx].mean()) for lab in labels}
        best = max(level, key=level.get)
        informative = max(drop.values()) >= 0.03
        verdict = (
            (
                "**inconclusive** (the noise does not degrade any method)"
                if not informative
                else "**reproduced**"
                if best == "ConFu"
                else "**not reproduced**"
            )
            + f": highest mean 2→1 accuracy under noise: {best}; "
            + ", ".join(f"{lab} {100 * level[lab]:.1f} % (drop {100 * drop[lab]:.1f} pts)" for lab in labels)
            + "."
        )
        findings = [
            "The poster's numbers are on AV-MNIST, where image and audio both show the class; in m3_digits "
            "they carry complementary factors (digit, language), so a degraded modality costs its factor "
            "for every method and levels are not comparable: the claim checked is the ordering (ConFu "
            "most accurate under noise)."
        ]
        for modality in config.degraded:
            idx = [conds.index(condition_name(modality, snr)) for snr in config.snr_dbs]
            mdrop = {lab: float(acc[lab][:, clean_idx].mean() - acc[lab][:, idx].mean()) for lab in labels}
            order = sorted(mdrop, key=mdrop.get)
            findings.append(
                f"Drop from clean with {modality} ({SHORT[modality]}) degraded, mean over the SNRs: "
                + ", ".join(f"{lab} {100 * mdrop[lab]:.1f}" for lab in order)
                + " points (least first)."
                + (
                    f" {best} is the most accurate under noise but not the least degraded: its lead is "
                    "the clean lead carried over."
                    if informative and order[0] != best
                    else ""
                )
            )
        if "audio" in config.degraded:
            mild = condition_name("audio", max(config.snr_dbs))
            j = conds.index(mild)
            lang = {lab: float(arr(lab, "language_2to1")[:, j].mean()) for lab in labels}
            if max(lang.values()) < 1.0 / n_lang + 0.05:
                findings.append(
                    f"Audio noise erases the language for every method even at {max(config.snr_dbs):g} dB "
                    f"(right language {100 * min(lang.values()):.1f}-{100 * max(lang.values()):.1f} %, chance "
                    f"{100 / n_lang:.0f} %; CLIP's audio-only row too), so the A-degraded columns only show that each "
                    "method keeps the digit from the clean image. Cause: the front end. The espeak clips are "
                    "about half silence (46 % of test samples below 1e-4), where log(mel + 1e-6) sits at "
                    "log(1e-6); noise scaled to the clip's mean power fills those frames, moving every band's "
                    "mean over time far outside the training range. AV-MNIST's recorded audio has no digital "
                    "silence. The V-degraded columns are the informative half of this table."
                )
        if not informative:
            findings.append(
                f"No method loses 3 points or more on average (largest drop {100 * max(drop.values()):.1f} "
                "points): at these SNRs the encoders still read the degraded modality."
            )
        if "ConFu" in level and best != "ConFu":
            findings.append(
                f"{best} is more accurate than ConFu under noise ({100 * level[best]:.1f} % vs "
                f"{100 * level['ConFu']:.1f} %); on clean data: {best} "
                f"{100 * acc[best][:, clean_idx].mean():.1f} %, ConFu "
                f"{100 * acc['ConFu'][:, clean_idx].mean():.1f} %. "
                + (
                    "The ranking under noise follows the clean ranking here, so it says more about "
                    "clean accuracy on this task than about robustness."
                    if acc[best][:, clean_idx].mean() >= acc["ConFu"][:, clean_idx].mean()
                    else f"{best} loses less to the noise than ConFu, against the poster's claim."
                )
            )
        return {"tables": tables, "findings": findings, "verdict": verdict}

    def plot(self, per_seed, config, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = [m["label"] for m in config.methods]
        conds = per_seed[0]["conditions"]
        fig, axes = plt.subplots(1, len(config.degraded), figsize=(5 * len(config.degraded), 3.5), squeeze=False)
        for k, modality in enumerate(config.degraded):
            ax = axes[0, k]
            idx = [conds.index("clean")] + [conds.index(condition_name(modality, snr)) for snr in config.snr_dbs]
            pos = np.arange(len(idx))
            for lab in labels:
                a = np.array([s["methods"][lab]["acc_2to1"] for s in per_seed])[:, idx]
                ax.errorbar(
                    pos, a.mean(0), yerr=a.std(0, ddof=1) if len(a) > 1 else None, marker="o", capsize=3, label=lab
                )
            ax.set_xticks(pos)
            ax.set_xticklabels(["clean"] + [f"{s:g} dB" for s in config.snr_dbs])
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{modality} ({SHORT[modality]}) degraded, m3_digits")
            ax.set_ylabel("2→1 accuracy (text | image, audio)")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
