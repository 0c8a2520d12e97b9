"""Runs the Gated Symile authors' own Synthetic-XNOR training, for a side-by-side with tf_mmcl.

The reference for the faithful rows of experiment 3 (``configs/reproduce/gated_fragility.py``,
``c.faithful``): the authors' code (github.com/TillmannRheude/gated_symile), their
``config/config_synthetic.yaml`` and their ``main.py`` Trainer settings (early stopping on
``val/acc_top1`` with their patience, the gradient norm clipped at 1.0), with three changes that
a CPU machine needs: the CPU accelerator, float32 instead of bf16, and no Weights & Biases logger.
It prints the validation top-1 (their in-batch retrieval of A from (B, C), batches of 128) after
every epoch and writes the curve as JSON.

It needs a checkout of their repository and a Python with torch, pytorch_lightning, hydra-core
and schedulefree (not tf_mmcl's environment)::

    git clone https://github.com/TillmannRheude/gated_symile ../gated_symile
    python -m venv ../ref && ../ref/bin/pip install torch pytorch_lightning hydra-core schedulefree
    ../ref/bin/python tools/reference_gated_xnor.py --repo=../gated_symile --method=clip --seed=0

``--method``: ``clip``, ``symile`` (their ``modelname`` configs) or ``gated`` (``symile`` with
``use_gate=true`` and ``negative_sampling=pair``, the paper's Gated Symile).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types

METHODS = {
    "clip": ["modelname=clip"],
    "symile": ["modelname=symile"],
    "gated": ["modelname=symile", "modelname.use_gate=true", "modelname.negative_sampling=pair"],
}
REQUIREMENTS = ("torch", "pytorch_lightning", "hydra", "schedulefree")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="A checkout of TillmannRheude/gated_symile.")
    parser.add_argument("--method", choices=sorted(METHODS), required=True)
    parser.add_argument("--seed", type=int, default=0, help="Their cfg.seed (seeds the data split and the model).")
    parser.add_argument("--max_epochs", type=int, default=None, help="Default: their config's (25).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    parser.add_argument("--output", default=None, help="JSON file for the curve (written atomically).")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="An extra Hydra override of their config, e.g. --set=encoders.n_samples=3000 (repeatable).",
    )
    return parser.parse_args(argv)


def _fail(message):
    sys.exit(f"reference_gated_xnor.py: error: {message}")


def _check(args):
    missing = []
    for name in REQUIREMENTS:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        _fail(
            f"this Python lacks {missing}; run the tool with a Python that has torch, pytorch_lightning, "
            "hydra-core and schedulefree installed (see the module docstring)."
        )
    config = os.path.join(args.repo, "config", "config_synthetic.yaml")
    if not os.path.isfile(config):
        _fail(f"--repo={args.repo!r} is not a gated_symile checkout (no config/config_synthetic.yaml there).")


def _write_json(path, data):
    # tf_mmcl.training.files.write_json does this too, but importing tf_mmcl loads TensorFlow, which
    # the reference environment (torch) does not have.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run(args):
    import pytorch_lightning as pl
    import torch
    from hydra import compose, initialize_config_dir
    from pytorch_lightning.callbacks.early_stopping import EarlyStopping

    # Their encoders.py and datasets import torchvision / transformers for the real-data encoders
    # only; Synthetic-XNOR never uses them, so empty stand-ins keep those packages optional.
    for name in ("torchvision", "transformers"):
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                stand_in = types.ModuleType(name)
                stand_in.models = stand_in.AutoModel = stand_in.AutoTokenizer = None
                sys.modules[name] = stand_in
    repo = os.path.abspath(args.repo)
    sys.path.insert(0, repo)
    from helpers import build_datamodule, build_model, set_all_seeds

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"seed={args.seed}"] + METHODS[args.method]
    if args.max_epochs:
        overrides.append(f"max_epochs={args.max_epochs}")
    overrides += list(args.set)
    with initialize_config_dir(config_dir=os.path.join(repo, "config"), version_base=None):
        cfg = compose(config_name="config_synthetic", overrides=overrides)
    set_all_seeds(seed=cfg.seed)
    model = build_model(cfg)
    datamodule = build_datamodule(cfg)
    curve, start = [], time.time()

    class Curve(pl.Callback):
        # on_validation_end runs after the module's on_validation_epoch_end has logged val/acc_top1.
        def on_validation_end(self, trainer, pl_module):
            value = trainer.callback_metrics.get("val/acc_top1")
            if trainer.sanity_checking or value is None:
                return
            curve.append(float(value))
            print(
                f"{args.method} seed {args.seed} epoch {len(curve)}: val top-1 {curve[-1]:.4f} "
                f"({time.time() - start:.0f}s)",
                flush=True,
            )

    trainer = pl.Trainer(
        logger=False,
        accelerator="cpu",
        devices=1,
        max_epochs=cfg.max_epochs,
        precision=32,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        callbacks=[EarlyStopping(monitor=cfg.monitor, mode=cfg.monitor_mode, patience=cfg.patience), Curve()],
        gradient_clip_val=1.0,
        gradient_clip_algorithm="norm",
    )
    trainer.fit(model, datamodule=datamodule)
    best = max(curve) if curve else float("nan")
    result = {
        "method": args.method,
        "seed": args.seed,
        "val_curve": curve,
        "best_val_top1": best,
        "best_epoch": curve.index(best) + 1 if curve else None,
        "seconds": round(time.time() - start, 1),
        "overrides": overrides,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "val_curve"}))
    if args.output:
        _write_json(args.output, result)
    return result


def main(argv=None):
    args = parse_args(argv)
    _check(args)
    run(args)


if __name__ == "__main__":
    main()
