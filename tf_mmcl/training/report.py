"""Evaluate a trained run on its test split; Markdown tables and PNG plots.

The plots need matplotlib, the ``plot`` extra (``pip install "tf-mmcl[plot]"``); it is imported
when a plot is drawn, never at import time.

What is measured depends on what the benchmark provides:

* a candidate set (``info["candidates"]``, the XOR benchmarks): zero-shot retrieval of the
  target modality over every candidate, from each single query modality (1->1) and from all of
  them together ((M-1)->1);
* class labels (``"label"``, the fragility benchmark): the same directions into the target,
  with one candidate per class (the mean training embedding of the class), plus the
  (M-1)->1 top-1 per corruption kind;
* otherwise (misalignment): retrieval of the right test row, in every direction; with latent
  blocks, also the identifiability R² of each block from the first modality's embedding.

Scores are the model's own (``score_embeddings``: MIP, fused pair, gate, volume, ...).
"""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np

from tf_mmcl import evaluation as ev
from tf_mmcl.keys import gate_weights_target, is_fused_key, mask_key, split_fused_key
from tf_mmcl.training.runner import build_dataset, check_workdir, load_run, train_inputs

__all__ = [
    "comparison_markdown",
    "evaluate",
    "evaluate_model",
    "plot_comparison",
    "plot_retrieval",
    "plot_training_curves",
    "plotting_available",
    "results_markdown",
]


def _outputs(model, arrays, batch_size):
    """Model outputs (embeddings, fused pairs) over a whole split, batch by batch."""
    n = int(next(iter(arrays.values())).shape[0])
    chunks = {}
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in train_inputs(arrays, model.modalities).items()}
        out = model(batch, training=False)
        for k, v in out.items():
            if gate_weights_target(k) is None:
                chunks.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _score_fn(model, query_names, fused_names, mask_names, target):
    """A ``retrieve`` score function over packed [queries..., fused..., masks...] blocks."""
    nq, nf = len(query_names), len(fused_names)

    def fn(block, candidates):
        queries = dict(zip(query_names, block[:nq]))
        fused = dict(zip(fused_names, block[nq : nq + nf])) or None
        masks = {m: np.asarray(v[:, 0] > 0.5) for m, v in zip(mask_names, block[nq + nf :])} or None
        return model.score_embeddings(queries, target, candidates, fused_embeddings=fused, query_masks=masks)

    return fn


def _direction(model, outputs, arrays, query_names, target, candidates, targets, ks, batch_size):
    fused_names = [k for k in outputs if is_fused_key(k) and set(split_fused_key(k)) <= set(query_names)]
    mask_names = [m for m in query_names if mask_key(m) in arrays]
    packed = (
        [outputs[q] for q in query_names]
        + [outputs[f] for f in fused_names]
        + [np.asarray(arrays[mask_key(m)], np.float32)[:, None] for m in mask_names]
    )
    return ev.retrieve(
        packed,
        candidates,
        targets,
        score_fn=_score_fn(model, query_names, fused_names, mask_names, target),
        ks=ks,
        batch_size=batch_size,
        return_ranks=True,
    )


def _name(queries, target):
    return f"{','.join(queries)}->{target}"


def evaluate_model(model, splits, ks=(1, 5, 10), batch_size=1024, split="test") -> dict:
    """Retrieval metrics of a model on a benchmark (see the module docstring for which).

    Args:
        model: a trained ``MultimodalContrastiveModel``.
        splits: the benchmark's :class:`~tf_mmcl.data.MultimodalSplits`.
        ks: Recall@k cut-offs.
        batch_size: rows per forward pass and per scoring block.
        split: the split to evaluate.

    Returns:
        ``{"task", "target", "chance", "directions": {"b->a": metrics, "b,c->a": metrics, ...},
        "summary": {"1->1": mean top-1 of the single-query directions, "<M-1>->1": top-1},
        "by_group" (fragility), "identifiability" (misalignment)}``.
    """
    info = splits.info
    arrays = splits.as_numpy(split)
    modalities = list(model.modalities)
    missing = [m for m in modalities if m not in arrays]
    if missing:
        raise ValueError(f"The {split} split lacks the model's modalities {missing}.")
    outputs = _outputs(model, arrays, batch_size)
    target = info.get("target")
    n = int(next(iter(arrays.values())).shape[0])
    result = {"split": split, "num_examples": n, "directions": {}}
    ranks_by_direction = {}

    if info.get("candidates") is not None and target in modalities and info.get("target_index_key") in arrays:
        values = np.asarray(info["candidates"])  # token ids (m3_digits' texts) stay integers
        values = values.astype(np.int32) if np.issubdtype(values.dtype, np.integer) else values.astype(np.float32)
        candidates = np.asarray(model.embed(target, values))
        targets = arrays[info["target_index_key"]]
        result.update(
            task="zero-shot over the candidate set",
            target=target,
            chance=1.0 / candidates.shape[0],
            num_candidates=int(candidates.shape[0]),
        )
    elif "label" in arrays and target in modalities:
        train = splits.as_numpy("train")
        train_emb = _outputs(model, {k: v for k, v in train.items()}, batch_size)[target]
        labels = np.asarray(train["label"])
        k = int(max(labels.max(), np.asarray(arrays["label"]).max())) + 1
        protos = np.stack(
            [
                train_emb[labels == c].mean(axis=0) if np.any(labels == c) else np.zeros(train_emb.shape[1])
                for c in range(k)
            ]
        )
        candidates = (protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        targets = np.asarray(arrays["label"])
        result.update(task="class retrieval (class-mean candidates)", target=target, chance=1.0 / k, num_candidates=k)
    else:
        target = None
        result.update(task="retrieval of the matching test row", target=None, chance=1.0 / n, num_candidates=n)

    # Recall@k with k >= the number of candidates is 1.0 whatever the model: such columns are
    # dropped (and listed) rather than reported (e.g. Recall@5/10 over 2 class candidates).
    num_candidates = int(result["num_candidates"])
    if num_candidates < 2:
        raise ValueError(f"The {split} split offers {num_candidates} candidate(s): retrieval needs at least 2.")
    dropped = [k for k in ev.retrieval._check_ks(ks) if k >= num_candidates]
    ks = tuple(k for k in ev.retrieval._check_ks(ks) if k < num_candidates)
    if dropped:
        result["ks_dropped"] = dropped
    targets_of = [target] if target is not None else modalities
    for t in targets_of:
        others = [m for m in modalities if m != t]
        if target is None:
            candidates, targets = outputs[t], np.arange(n)
        directions = [[q] for q in others] + ([others] if len(others) > 1 else [])
        for qs in directions:
            metrics, ranks = _direction(model, outputs, arrays, qs, t, candidates, targets, ks, batch_size)
            result["directions"][_name(qs, t)] = metrics
            ranks_by_direction[_name(qs, t)] = ranks

    m = len(modalities)
    singles = [v["top1"] for k, v in result["directions"].items() if "," not in k.split("->")[0]]
    summary = {"1->1": float(np.mean(singles))}
    if m > 2:
        multi = [v["top1"] for k, v in result["directions"].items() if "," in k.split("->")[0]]
        summary[f"{m - 1}->1"] = float(np.mean(multi))
    result["summary"] = summary

    if "corruption" in arrays and target is not None and m > 2:
        kinds = info.get("corruption_kinds")
        name = _name([q for q in modalities if q != target], target)
        result["by_group"] = {
            "direction": name,
            "groups": {
                str(k): v
                for k, v in ev.metrics_by_group(
                    ranks_by_direction[name], arrays["corruption"], ks=ks, names=kinds
                ).items()
            },
        }
    if info.get("latent_keys") and info.get("name") == "misalignment":
        from tf_mmcl.data.synthetic import latent_blocks

        result["identifiability"] = {
            "representation": modalities[0],
            "r2": ev.identifiability_report(outputs[modalities[0]], latent_blocks(arrays, info), ("linear",)),
        }
    return result


# ---------------------------------------------------------------------------------- markdown
def results_markdown(result, title=None) -> str:
    """A Markdown report of one :func:`evaluate_model` result."""
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines += [
        f"Task: {result['task']} ({result['num_examples']} {result['split']} examples, "
        f"{result['num_candidates']} candidates, chance top-1 = {result['chance']:.3f}).",
        "",
    ]
    if result.get("ks_dropped"):
        lines += [
            f"Recall@k for k = {result['ks_dropped']} not reported: k >= the {result['num_candidates']} "
            "candidates makes it 1.0 whatever the model.",
            "",
        ]
    keys = [k for k in next(iter(result["directions"].values())) if k != "mrr"] + ["mrr"]
    lines.append("| direction | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---:|" * len(keys))
    for name, metrics in result["directions"].items():
        lines.append(f"| {name} | " + " | ".join(f"{metrics[k]:.3f}" for k in keys) + " |")
    if "by_group" in result:
        lines += [
            "",
            f"Top-1 of {result['by_group']['direction']} by corruption kind:",
            "",
            "| kind | count | top1 |",
            "|---|---:|---:|",
        ]
        for g, v in result["by_group"]["groups"].items():
            lines.append(f"| {g} | {v['count']} | {v['top1']:.3f} |")
    if "identifiability" in result:
        ident = result["identifiability"]
        lines += [
            "",
            f"Identifiability (linear R² from the {ident['representation']} embedding):",
            "",
            "| latent block | R² |",
            "|---|---:|",
        ]
        for block, v in ident["r2"].items():
            lines.append(f"| {block} | {v['linear']:.3f} |")
    return "\n".join(lines) + "\n"


def comparison_markdown(results: dict) -> str:
    """A side-by-side table of top-1 (1->1, (M-1)->1) of several runs.

    Args:
        results: ``{run name: evaluate_model result}`` (plus optional ``"train_seconds"``).

    Returns:
        The Markdown table.
    """
    if not results:
        raise ValueError("comparison_markdown needs at least one result.")
    columns = []
    for r in results.values():
        for k in r["summary"]:
            if k not in columns:
                columns.append(k)
    chance = next(iter(results.values()))["chance"]
    header = "| method | " + " | ".join(f"top-1 {c}" for c in columns) + " | train s |"
    lines = [header, "|---|" + "---:|" * (len(columns) + 1)]
    for name, r in results.items():
        cells = [f"{r['summary'][c]:.3f}" if c in r["summary"] else "-" for c in columns]
        secs = r.get("train_seconds")
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {secs:.0f} |"
            if secs is not None
            else f"| {name} | " + " | ".join(cells) + " | - |"
        )
    lines.append("| chance | " + " | ".join(f"{chance:.3f}" for _ in columns) + " | |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- plots
PLOT_EXTRA_HINT = 'pip install "tf-mmcl[plot]" (from a clone: pip install -e ".[plot]")'


def plotting_available() -> bool:
    """Whether matplotlib (the ``plot`` extra) is installed, without importing it."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken install, or an import hook refusing it
        return False


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use (the ``plot`` extra)."""
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(f"Plotting needs matplotlib, which comes from the `plot` extra: {PLOT_EXTRA_HINT}.") from e

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_retrieval(result, path, title=None) -> str:
    """Bar chart of top-1 per retrieval direction, with the chance level; returns ``path``."""
    plt = _pyplot()
    names = list(result["directions"])
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 1), 3.2))
    ax.bar(names, [result["directions"][n]["top1"] for n in names], color="tab:blue")
    ax.axhline(result["chance"], color="gray", ls="--", label="chance")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("top-1")
    ax.set_title(title or result["task"], fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_training_curves(history, path, title=None) -> str:
    """Loss and in-batch top-1 per epoch (train and validation); returns ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for key in ("loss", "val_loss"):
        if key in history:
            axes[0].plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    for key in sorted(history):
        if key.startswith(("top1_", "val_top1_")):
            axes[1].plot(range(1, len(history[key]) + 1), history[key], label=key)
    axes[0].set_xlabel("epoch")
    axes[0].set_title("loss")
    axes[1].set_xlabel("epoch")
    axes[1].set_title("in-batch top-1")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_comparison(results: dict, path, title=None) -> str:
    """Grouped bars: top-1 of every run for 1->1 and (M-1)->1, with chance; returns ``path``."""
    plt = _pyplot()
    columns = []
    for r in results.values():
        columns += [k for k in r["summary"] if k not in columns]
    names = list(results)
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(names) + 1), 3.4))
    for j, col in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [results[n]["summary"].get(col, 0.0) for n in names], width, label=f"{col} top-1")
    ax.axhline(next(iter(results.values()))["chance"], color="gray", ls="--", label="chance")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("top-1")
    ax.set_title(title or "retrieval accuracy", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- runs
def evaluate(workdir, output_dir=None, plots=None) -> dict:
    """Evaluates a finished training run and writes its report.

    Writes into ``output_dir`` (default ``<workdir>/eval``): ``results.json``, ``results.md``
    (Markdown table) and, with plots, ``retrieval.png`` (top-1 per direction) and
    ``training_curves.png`` (from ``metrics.json``).

    Args:
        workdir: a run directory written by :func:`tf_mmcl.training.train`.
        output_dir: where the report goes.
        plots: write the PNG plots (needs the ``plot`` extra, matplotlib); ``None``: when
            matplotlib is installed.

    Returns:
        The :func:`evaluate_model` result plus ``"name"``, ``"train_seconds"`` and ``"paths"``.

    Raises:
        FileNotFoundError: if ``workdir`` holds no finished run.
        ImportError: for ``plots=True`` without matplotlib.
    """
    if plots is None:
        plots = plotting_available()
    elif plots and not plotting_available():
        _pyplot()  # the error naming the extra, before any work
    path = check_workdir(workdir, must_exist=True)
    config, model = load_run(path)
    splits = build_dataset(config)
    result = evaluate_model(model, splits, ks=tuple(config.eval.ks), batch_size=int(config.eval.batch_size))
    name = f"{config.dataset.name} / {config.model.objective}"
    result["name"] = name
    history = {}
    metrics_path = os.path.join(path, "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            saved = json.load(f)
        history = saved.get("history", {})
        result["train_seconds"] = saved.get("train_seconds")
    out = check_workdir(output_dir or os.path.join(path, "eval"))
    paths = {"json": os.path.join(out, "results.json"), "markdown": os.path.join(out, "results.md")}
    with open(paths["markdown"], "w") as f:
        f.write(results_markdown(result, title=name))
    if plots:
        paths["retrieval_plot"] = plot_retrieval(result, os.path.join(out, "retrieval.png"), title=name)
    if plots and history:
        paths["training_curves"] = plot_training_curves(history, os.path.join(out, "training_curves.png"), name)
    result["paths"] = paths
    with open(paths["json"], "w") as f:
        json.dump(result, f, indent=2, sort_keys=True, default=float)
    return result
