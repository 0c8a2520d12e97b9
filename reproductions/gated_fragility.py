"""Experiment 3: Gated Symile's fragility benchmark -- top-1 retrieval vs the unreliable rate.

Data: :func:`tf_mmcl.data.synthetic.make_fragility` with the authors' ``SyntheticXNOR`` settings
where our generator has them (``a = XNOR(u, v)``, the redundant ``u_v_uv`` embedding, no bit
flips, signal scale 1 in 128 dims of std-3 distractors). At total corruption rate ``r`` each
sample has one of ``b``/``c`` corrupted with probability ``r``, the kind drawn uniformly among
misaligned (another sample's signal), weak (-10 dB noise on the signal) and missing (mask off).
Train and test use the same rate.

Evaluation (as the authors' ``retrieval_step``): in-batch retrieval of ``a`` from ``(b, c)``
among the ``a`` of the same test block of ``eval_block`` examples, correct when the row's own
``a`` scores strictly highest; broken down by the corruption kind of the row. Missing query
modalities are the objective's neutral element: the all-ones vector for Symile (as in training),
zero for CLIP's sum of cosines, the gate's neutral direction for Gated Symile.

The faithful variant (``config.faithful``) is the authors' own protocol on their setting: their
scale (16 bits, 128 dims, 256-d embeddings from their 128 -> 256 -> 256 -> 256 MLP of three
linear layers, the model's projection head being the third; 30k samples split 24k / 3k / 3k), their
optimiser (schedule-free AdamW, lr 1e-3, betas 0.9 / 0.95, eps 1e-7, weight decay 0.01, 100 warmup
steps, the gradient's global norm clipped at 1.0), their gate and logit scales
(``config/modelname/symile.yaml``; Symile's effective scale 256, not clamped at the library's 100),
top-1 on the validation split after every epoch at the schedule-free average, early stopping
(patience 5, up to 25 epochs) and the best-validation checkpoint scored on the test split.
"""

from __future__ import annotations

import keras
import numpy as np

from reproductions import common
from reproductions.base import Experiment, register
from tf_mmcl.data.synthetic import CORRUPTION_KINDS, make_fragility
from tf_mmcl.evaluation import metrics_by_group, target_ranks
from tf_mmcl.keys import mask_key
from tf_mmcl.optimizers import ScheduleFreeAdamW, ScheduleFreeEvaluation

# The authors' own code on this machine, for the faithful rows: best validation top-1 per seed
# (0, 1, 2) of `python tools/reference_gated_xnor.py --repo=<their checkout> --method=<m> --seed=<s>`
# (their config_synthetic.yaml and Trainer settings; CPU, float32).
AUTHORS_CODE_VAL_TOP1 = {
    "Symile": (0.0557, 0.0463, 0.0487),
    "CLIP": (0.0947, 0.1037, 0.0927),
}
# Their Gated Symile was not run to completion: its per-candidate loss takes 20-25 minutes per epoch
# on one CPU core (ours: about 20 s). Its first epochs, seed 0, validation top-1 after each epoch
# (`... --method=gated --seed=0 --max_epochs=3 --threads=1`, 3828 s, 2026-12-03):
AUTHORS_CODE_GATED_FIRST_EPOCHS = {"seed": 0, "val_curve": (0.011333, 0.009000, 0.011667)}


def _authors_code_cell(label: str) -> str:
    """The authors' code's best validation top-1 for the faithful comparison table."""
    if label in AUTHORS_CODE_VAL_TOP1:
        return common.fmt_mean_std(AUTHORS_CODE_VAL_TOP1[label])
    if label == "Gated Symile":
        run = AUTHORS_CODE_GATED_FIRST_EPOCHS
        return f"{common.fmt_pct(max(run['val_curve']))} (first {len(run['val_curve'])} epochs, seed {run['seed']})"
    return "not run"


def _gated_first_epochs_finding(per_seed, labels, chance: float) -> str:
    """Their Gated Symile's first epochs beside ours, epoch by epoch (validation top-1)."""
    theirs = AUTHORS_CODE_GATED_FIRST_EPOCHS
    k = len(theirs["val_curve"])

    def curve(values):
        return " / ".join(f"{100 * v:.1f}" for v in values)

    ours = {}
    for lab in labels:
        runs = [s["faithful"][lab].get("val_curve") or [] for s in per_seed]
        if all(len(run) >= k for run in runs):
            ours[lab] = np.mean([run[:k] for run in runs], axis=0)
    text = (
        f"The authors' Gated Symile over its first {k} epochs (seed {theirs['seed']}; the full run, up to 25 epochs, "
        f"is a GPU run): validation top-1 {curve(theirs['val_curve'])} % after each epoch (chance "
        f"{100 * chance:.1f} %)"
    )
    if "Gated Symile" not in ours:
        return text + "."
    text += f"; tf_mmcl's over the same epochs {curve(ours['Gated Symile'])} % (mean over {len(per_seed)} seeds"
    others = [lab for lab in ("Symile", "CLIP") if lab in ours]
    text += "".join(f"; our {lab} {curve(ours[lab])} %" for lab in others) + "). "
    best_theirs, best_ours = max(theirs["val_curve"]), float(max(ours["Gated Symile"]))
    if best_theirs <= best_ours + 0.01:
        text += "Over these epochs their gate does not learn faster than ours"
    else:
        text += f"Over these epochs their gate is ahead of ours by {100 * (best_theirs - best_ours):.1f} points"
    if "Symile" in ours:
        text += (
            ", and its best is "
            + ("below" if best_theirs < float(max(ours["Symile"])) else "not below")
            + " our Symile's over the same epochs"
        )
    return text + "."


def block_ranks(model, arrays, block, target="a", queries=("b", "c")):
    """Ranks of each row's own target among the targets of its block (in-batch retrieval)."""
    n = len(arrays[target]) // block * block
    ranks = []
    for start in range(0, n, block):
        sl = slice(start, start + block)
        batch = {k: arrays[k][sl] for k in model.modalities}
        batch.update({mask_key(m): arrays[mask_key(m)][sl] for m in model.modalities})
        emb = model(batch, training=False)
        # A missing query row is filled the objective's way (Symile: ones, CLIP: zeros, Gated
        # Symile: the gate's neutral direction).
        masks = {m: arrays[mask_key(m)][sl] for m in queries}
        scores = model.score_embeddings({m: emb[m] for m in queries}, target, emb[target], query_masks=masks)
        ranks.append(target_ranks(np.asarray(scores), np.arange(block)))
    return np.concatenate(ranks), n


class _BestValidation(keras.callbacks.Callback):
    """After every epoch (at the schedule-free average, so after ScheduleFreeEvaluation): the
    validation top-1, a copy of the best weights, and early stopping after ``patience`` epochs
    without improvement."""

    def __init__(self, val, block, patience, max_seconds=None):
        super().__init__()
        self.val, self.block, self.patience, self.max_seconds = val, block, patience, max_seconds
        self.curve, self.best, self.best_epoch, self.best_weights, self.wait = [], -1.0, -1, None, 0
        self.start = None

    def on_train_begin(self, logs=None):
        import time

        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import time

        ranks, _ = block_ranks(self.model, self.val, self.block)
        top1 = float(np.mean(ranks == 0))
        self.curve.append(top1)
        if logs is not None:
            logs["val_top1"] = top1
        if top1 > self.best:
            self.best, self.best_epoch, self.best_weights, self.wait = top1, epoch, self.model.get_weights(), 0
        else:
            self.wait += 1
        over_time = self.max_seconds is not None and time.perf_counter() - self.start > self.max_seconds
        if self.wait >= self.patience or over_time:
            self.model.stop_training = True


def run_faithful(config, seed, log):
    """The authors' protocol on their setting (see the module docstring): one entry per method."""
    from tf_mmcl.training.loop import fit

    fc = config.faithful
    data = make_fragility(
        n_bits=fc.n_bits,
        dim=fc.dim,
        p_misaligned=1.0,
        p_weak=0.0,
        p_missing=0.0,
        p_flip=config.p_flip,
        signal_scale=config.signal_scale,
        distractor_std=config.distractor_std,
        a_rule=config.a_rule,
        embed_mode=config.embed_mode,
        n_train=fc.n_train,
        n_val=fc.n_val,
        n_test=fc.n_test,
        seed=seed,
    )
    train, val, test = data.as_numpy("train"), data.as_numpy("val"), data.as_numpy("test")
    keys = list(data.modalities) + [mask_key(m) for m in data.modalities]
    out = {}
    for spec in fc.methods:
        keras.utils.set_random_seed(seed)
        model = common.build_model(dict(spec), data.modalities, dict(fc.encoder), fc.embedding_dim)
        model.in_batch_metrics = False
        model.compile(optimizer=ScheduleFreeAdamW(**dict(fc.optimizer)), jit_compile=False)
        best = _BestValidation(val, config.eval_block, fc.patience, fc.get("max_seconds_per_method") or None)
        result = fit(
            model,
            {k: train[k] for k in keys},
            batch_size=fc.batch_size,
            epochs=fc.max_epochs,
            seed=seed,
            callbacks=[ScheduleFreeEvaluation(), best],
        )
        model.set_weights(best.best_weights)  # the best-validation checkpoint (at the average)
        ranks, n = block_ranks(model, test, config.eval_block)
        groups = metrics_by_group(ranks, test["corruption"][:n], ks=(1,), names=CORRUPTION_KINDS)
        entry = {
            "val_top1": best.best,
            "test_top1": groups["all"]["top1"],
            "best_epoch": best.best_epoch + 1,
            "epochs": len(best.curve),
            "val_curve": best.curve,
            "seconds": round(result.seconds, 1),
        }
        out[spec["label"]] = entry
        log(
            f"  seed {seed} faithful {spec['label']}: val top1 {entry['val_top1']:.3f} (epoch {entry['best_epoch']} "
            f"of {entry['epochs']}), test top1 {entry['test_top1']:.3f} ({entry['seconds']:.0f}s)"
        )
    return out


@register
class GatedFragility(Experiment):
    name = "gated_fragility"
    title = "3. Gated fragility: Gated Symile vs Symile vs CLIP under unreliable modalities"
    source = (
        "Rheude et al., *Hidden in the Multiplicative Interaction: Uncovering Fragility in Multimodal "
        "Contrastive Learning* (arXiv 2604.05834, 2026), synthetic benchmark (`SyntheticXNOR`)"
    )
    claim = (
        "Gating matches Symile on clean data and beats it (and CLIP) in top-1 retrieval when modalities are unreliable."
    )

    def run_seed(self, config, seed, log):
        labels = [m["label"] for m in config.methods]
        out = {"rate": [], "methods": {lab: {"top1": [], "by_kind": []} for lab in labels}}
        # The rate sweep (the rate split equally over the three kinds), then, when configured, the
        # authors' own setting: every sample has exactly one of b / c misaligned ("swap_signal").
        conditions = [(float(r), (float(r) / 3.0,) * 3) for r in config.rates]
        if config.get("authors_setting", False):
            conditions.append(("authors", (1.0, 0.0, 0.0)))
        for rate, (p_mis, p_weak, p_missing) in conditions:
            data = make_fragility(
                n_bits=config.n_bits,
                dim=config.dim,
                p_misaligned=p_mis,
                p_weak=p_weak,
                p_missing=p_missing,
                p_flip=config.p_flip,
                signal_scale=config.signal_scale,
                distractor_std=config.distractor_std,
                a_rule=config.a_rule,
                embed_mode=config.embed_mode,
                n_train=config.n_train,
                n_val=config.n_val,
                n_test=config.n_test,
                seed=seed,
            )
            train, test = data.as_numpy("train"), data.as_numpy("test")
            if rate == "authors":
                out["authors"] = {lab: {} for lab in labels}
            else:
                out["rate"].append(rate)
            for spec in config.methods:
                keras.utils.set_random_seed(seed)
                model = common.build_model(dict(spec), data.modalities, dict(config.encoder), config.embedding_dim)
                fit = common.train_model(
                    model,
                    train,
                    config.batch_size,
                    config.steps,
                    config.learning_rate,
                    config.weight_decay,
                    seed=seed,
                    jit_compile=config.jit_compile and spec.get("jit_compile", False),
                )
                ranks, n = block_ranks(model, test, config.eval_block)
                groups = metrics_by_group(ranks, test["corruption"][:n], ks=(1,), names=CORRUPTION_KINDS)
                by_kind = {k: {"top1": v["top1"], "count": v["count"]} for k, v in groups.items() if k != "all"}
                top1 = groups["all"]["top1"]
                if rate == "authors":
                    out["authors"][spec["label"]] = {"top1": top1, "by_kind": by_kind}
                else:
                    out["methods"][spec["label"]]["top1"].append(top1)
                    out["methods"][spec["label"]]["by_kind"].append(by_kind)
                log(
                    f"  seed {seed} rate={rate} {spec['label']}: top1 {top1:.3f} "
                    + " ".join(f"{k}={v['top1']:.2f}" for k, v in by_kind.items())
                    + f" (loss {fit['first_loss']:.3f} -> {fit['final_loss']:.3f}, {fit['seconds']:.0f}s)"
                )
        if config.get("faithful") and config.faithful.get("enabled", False):
            out["faithful"] = run_faithful(config, seed, log)
        return out

    def summarize(self, per_seed, config):
        labels = [m["label"] for m in config.methods]
        rates = per_seed[0]["rate"]
        chance = 1.0 / config.eval_block
        ours = (
            f"our scale: {config.n_bits} bits / {config.dim} dims / {config.embedding_dim}-d, AdamW "
            f"{config.learning_rate:g}, {config.steps} steps, final model, test split"
        )
        top1 = {lab: np.array([s["methods"][lab]["top1"] for s in per_seed]) for lab in labels}
        rows = [[lab, ours] + [common.fmt_mean_std(top1[lab][:, i]) for i in range(len(rates))] for lab in labels]
        tables = [
            {
                "caption": f"Top-1 in-batch retrieval (%) of a from (b, c) among {config.eval_block} candidates "
                f"(chance {100 * chance:.1f} %), by total unreliable rate (train = test rate); "
                f"mean ± std over {len(per_seed)} seeds. The paper reports no synthetic table in "
                "its abstract; its claim is qualitative.",
                "header": ["method", "setting"] + [f"rate {r:.2f}" for r in rates],
                "rows": rows,
            }
        ]
        kind_rows = []
        for i, r in enumerate(rates):
            if r == 0:
                continue
            for lab in labels:
                cells = []
                for kind in CORRUPTION_KINDS:
                    vals = [s["methods"][lab]["by_kind"][i].get(kind, {}).get("top1") for s in per_seed]
                    vals = [v for v in vals if v is not None]
                    cells.append(common.fmt_mean_std(vals) if vals else "–")
                kind_rows.append([f"{r:.2f}", lab] + cells)
        if kind_rows:
            tables.append(
                {
                    "caption": "Top-1 (%) broken down by the corruption kind of the query row.",
                    "header": ["rate", "method"] + list(CORRUPTION_KINDS),
                    "rows": kind_rows,
                }
            )
        authors = {
            lab: np.array([s["authors"][lab]["top1"] for s in per_seed])
            for lab in labels
            if all("authors" in s and lab in s["authors"] for s in per_seed)
        }
        faithful = {}
        fc = config.get("faithful")
        if fc is not None and fc.get("enabled", False) and all("faithful" in s for s in per_seed):
            for spec in fc.methods:
                lab = spec["label"]
                faithful[lab] = {
                    key: np.array([s["faithful"][lab][key] for s in per_seed], np.float64)
                    for key in ("val_top1", "test_top1", "best_epoch", "epochs")
                }
        if authors or faithful:
            setting_rows = [
                [lab, ours + " (the authors' corruption)", "–", common.fmt_mean_std(v), "–"]
                for lab, v in authors.items()
            ]
            if faithful:
                opt = dict(fc.optimizer)
                faithful_setting = (
                    f"faithful: {fc.n_bits} bits / {fc.dim} dims / {fc.embedding_dim}-d, schedule-free AdamW "
                    f"{opt['learning_rate']:g}"
                    + (f" (gradient norm clipped at {opt['global_clipnorm']:g})" if opt.get("global_clipnorm") else "")
                    + f", batch {fc.batch_size}, validation each epoch, early stopping "
                    f"(patience {fc.patience}, <= {fc.max_epochs} epochs), best-validation checkpoint"
                )
                for lab, v in faithful.items():
                    epochs = "/".join(f"{int(b)} of {int(e)}" for b, e in zip(v["best_epoch"], v["epochs"]))
                    setting_rows.append(
                        [
                            lab,
                            faithful_setting,
                            common.fmt_mean_std(v["val_top1"]),
                            common.fmt_mean_std(v["test_top1"]),
                            epochs,
                        ]
                    )
            tables.append(
                {
                    "caption": "The authors' setting (their `synthetic_xnor.yaml`: p_corrs [0, 1, 1], "
                    "`bc_corr_exclusive`, `swap_signal`): every sample has exactly one of b / c "
                    "replaced by another sample's signal, in training, validation and test. Each row says "
                    "its scale, training and checkpoint. Top-1 (%) among "
                    f"{config.eval_block} in-batch candidates, mean ± std over {len(per_seed)} seeds; "
                    "epochs: best / run, per seed.",
                    "header": ["method", "setting", "val top-1 (best)", "test top-1", "epochs"],
                    "rows": setting_rows,
                }
            )
            if faithful:
                tables.append(
                    {
                        "caption": "The faithful rows beside the authors' own code run on this machine "
                        "(`tools/reference_gated_xnor.py`: their config and Trainer, CPU, float32), best "
                        "validation top-1 (%), seeds 0, 1, 2. Their Gated Symile was not run to completion "
                        "(20-25 minutes per epoch on one CPU core): its row gives the best of its first "
                        f"{len(AUTHORS_CODE_GATED_FIRST_EPOCHS['val_curve'])} epochs, seed "
                        f"{AUTHORS_CODE_GATED_FIRST_EPOCHS['seed']} only.",
                        "header": ["method", "authors' code", "tf_mmcl (faithful)"],
                        "rows": [
                            [
                                lab,
                                _authors_code_cell(lab),
                                common.fmt_mean_std(v["val_top1"]),
                            ]
                            for lab, v in faithful.items()
                        ],
                    }
                )
        findings = []
        verdict = "not evaluated (needs Gated Symile and Symile)"
        if "Gated Symile" in top1 and "Symile" in top1:
            g, s = top1["Gated Symile"].mean(0), top1["Symile"].mean(0)
            clean = [i for i, r in enumerate(rates) if r == 0]
            corrupt = [i for i, r in enumerate(rates) if r > 0]
            matches = all(g[i] >= s[i] - 0.03 for i in clean)
            beats = all(g[i] > s[i] for i in corrupt) if corrupt else False
            parts = [
                f"rate {rates[i]:.2f}: gated {100 * g[i]:.1f} % vs Symile {100 * s[i]:.1f} %" for i in range(len(rates))
            ]
            if "Gated Symile" in authors and "Symile" in authors:
                ga, sa = float(authors["Gated Symile"].mean()), float(authors["Symile"].mean())
                beats = beats and ga > sa
                parts.append(f"authors' setting: gated {100 * ga:.1f} % vs Symile {100 * sa:.1f} %")
            beats_clip = True
            if "CLIP" in top1:
                c = top1["CLIP"].mean(0)
                beats_clip = all(g[i] > c[i] for i in corrupt)
                if "Gated Symile" in authors and "CLIP" in authors:
                    beats_clip = beats_clip and authors["Gated Symile"].mean() > authors["CLIP"].mean()
            if matches and beats:
                head = (
                    "**reproduced**"
                    if beats_clip
                    else "**partly reproduced** (against Symile; not against CLIP at every rate)"
                )
            else:
                head = "**not reproduced**"
            verdict = head + " at our scale: " + "; ".join(parts)
            if {"Gated Symile", "Symile", "CLIP"} <= set(faithful):
                f = {lab: float(v["test_top1"].mean()) for lab, v in faithful.items()}
                fv = {lab: float(v["val_top1"].mean()) for lab, v in faithful.items()}
                holds = f["Gated Symile"] > max(f["Symile"], f["CLIP"]) and fv["Gated Symile"] > max(
                    fv["Symile"], fv["CLIP"]
                )
                verdict = (
                    ("**reproduced**" if holds else "**not reproduced**")
                    + " at the authors' protocol (faithful row; gated > Symile and CLIP "
                    + ("holds" if holds else "does not hold")
                    + f"): test top-1 gated {100 * f['Gated Symile']:.1f} % vs Symile {100 * f['Symile']:.1f} % "
                    f"vs CLIP {100 * f['CLIP']:.1f} % (validation {100 * fv['Gated Symile']:.1f} / "
                    f"{100 * fv['Symile']:.1f} / {100 * fv['CLIP']:.1f} %). " + verdict[0].upper() + verdict[1:]
                )
                ref = {lab: float(np.mean(v)) for lab, v in AUTHORS_CODE_VAL_TOP1.items()}

                def versus(lab):
                    gap = 100 * (fv[lab] - ref[lab])
                    return f"{lab} {'agrees' if abs(gap) < 2 else 'differs'} ({gap:+.1f} points)"

                order = "above" if ref["CLIP"] > ref["Symile"] else "below"
                same = (fv["CLIP"] > fv["Symile"]) == (ref["CLIP"] > ref["Symile"])
                findings.append(
                    f"At the authors' protocol their own code, run on this machine, gives best validation top-1 "
                    f"CLIP {100 * ref['CLIP']:.1f} % and Symile {100 * ref['Symile']:.1f} % (3 seeds); tf_mmcl gives "
                    f"CLIP {100 * fv['CLIP']:.1f} % and Symile {100 * fv['Symile']:.1f} %: {versus('CLIP')}, "
                    f"{versus('Symile')}; their CLIP is {order} their Symile, "
                    + ("as ours is. " if same else "ours is not. ")
                    + f"Gated Symile reaches {100 * fv['Gated Symile']:.1f} %; their gated run could not be finished "
                    "on this CPU (its per-candidate loss scores 128 x 128 gated tuples per batch), so the gated row "
                    "is checked against their code over its first epochs only."
                )
                findings.append(_gated_first_epochs_finding(per_seed, list(faithful), 1.0 / config.eval_block))
            if not matches:
                findings.append(
                    "On clean data Gated Symile is more than 3 points below Symile. The gate starts "
                    "almost closed (strength sigmoid(-6)) and its per-candidate loss samples "
                    f"{dict(config.methods[0]['options']).get('num_negatives')} negatives instead of "
                    "the whole batch, which may need more steps than our CPU budget."
                )
            if corrupt and not beats:
                findings.append(
                    "Gated Symile does not beat Symile at every corruption rate. Likely causes to "
                    f"check: the short training budget ({config.steps} steps vs the authors' 25 "
                    "epochs of 30k samples), our equal split of the rate over three kinds (the "
                    "authors corrupt with swap_signal only, B/C exclusive, at rate 1.0), and the "
                    "smaller gate key width (key_dim) used on CPU."
                )
        if "CLIP" in top1 and "Gated Symile" in top1:
            c, g = top1["CLIP"].mean(0), top1["Gated Symile"].mean(0)
            worse = [i for i in range(len(rates)) if rates[i] > 0 and g[i] < c[i]]
            better = [i for i in range(len(rates)) if rates[i] > 0 and g[i] >= c[i]]
            if worse:
                text = "Pairwise CLIP is ahead of Gated Symile at rate(s) " + ", ".join(
                    f"{rates[i]:.1f} ({100 * c[i]:.1f} % vs {100 * g[i]:.1f} %)" for i in worse
                )
                if better:
                    text += "; the gate is ahead at " + ", ".join(
                        f"{rates[i]:.1f} ({100 * g[i]:.1f} % vs {100 * c[i]:.1f} %)" for i in better
                    )
                if "Gated Symile" in authors and "CLIP" in authors:
                    text += (
                        f" and in the authors' setting ({100 * authors['Gated Symile'].mean():.1f} % vs "
                        f"{100 * authors['CLIP'].mean():.1f} %)"
                    )
                text += (
                    ". The paper's claim is against Symile; against CLIP it holds only where corruption is "
                    "heavy. Why CLIP is strong here: in the redundant (u_v_uv) embedding a = [u, v, u⊕v], "
                    "b = [u, 1, u], c = [1, v, v], so a is recoverable *pairwise* (u from b, v from c) and "
                    "CLIP's additive score loses only one term when one modality is corrupted, whereas a "
                    "multiplicative score is corrupted as a whole unless the gate neutralises the bad "
                    "modality."
                )
                findings.append(text)
        if "Gated Symile" in authors:
            vals = authors["Gated Symile"]
            if len(vals) > 1 and np.std(vals, ddof=1) > 0.05:
                findings.append(
                    "In the authors' setting the gate's result varies by seed ("
                    + "/".join(f"{100 * v:.1f}" for v in vals)
                    + " %): whether the per-candidate gate "
                    "learns to close on the misaligned modality within the budget decides the outcome."
                )
        return {"tables": tables, "findings": findings, "verdict": verdict}

    def plot(self, per_seed, config, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rates = np.array(per_seed[0]["rate"])
        kinds = [k for k in CORRUPTION_KINDS]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for spec in config.methods:
            lab = spec["label"]
            acc = np.array([s["methods"][lab]["top1"] for s in per_seed])
            axes[0].errorbar(
                rates, acc.mean(0), yerr=acc.std(0, ddof=1) if len(acc) > 1 else None, marker="o", capsize=3, label=lab
            )
        axes[0].set_xlabel("unreliable-modality rate")
        axes[0].set_ylabel("top-1 retrieval of a")
        axes[0].set_ylim(0, 1.05)
        axes[0].legend(fontsize=8)
        axes[0].set_title("overall")
        i = int(np.argmax(rates))
        width = 0.8 / len(config.methods)
        for j, spec in enumerate(config.methods):
            lab = spec["label"]
            vals = [
                np.mean([s["methods"][lab]["by_kind"][i].get(k, {}).get("top1", np.nan) for s in per_seed])
                for k in kinds
            ]
            axes[1].bar(np.arange(len(kinds)) + j * width, vals, width, label=lab)
        axes[1].set_xticks(np.arange(len(kinds)) + 0.4 - width / 2)
        axes[1].set_xticklabels(kinds)
        axes[1].set_ylim(0, 1.05)
        axes[1].set_title(f"by corruption kind (rate {rates[i]:.2f})")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
