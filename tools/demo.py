#!/usr/bin/env python
"""The first thing to run: ``make demo`` (or ``python tools/demo.py --workdir demo_out``).

Trains CLIP, Symile, ConFu and Gated Symile on the Symile XOR benchmark at p_hat = 1
(``c = a XOR b``: every *pair* of modalities is independent, only the triple is informative),
evaluates zero-shot retrieval of ``a`` over all 2^5 candidates from one modality (1->1) and from
the other two (2->1), prints the side-by-side table, saves a plot, exports the Symile model
as a TF Serving SavedModel, and prints where every output is.

Expected: 1->1 is at chance (1/32) for every method, because no pair carries information;
2->1 is at chance for pairwise CLIP and near 1 for the beyond-pairs objectives.

Each objective trains ``configs/benchmark.py:symile_xor,<objective>``; ``--config.<key>=<value>``
overrides a key in every one of them (the syntax of ``tools/train.py``), e.g. ``--config.epochs=1
--config.dataset.params.n_train=256``.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_PROG = "demo.py"

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WORKDIR = flags.DEFINE_string("workdir", "demo_out", "Where every output goes.")
_OBJECTIVES = flags.DEFINE_list(
    "objectives",
    ["clip", "symile", "confu", "gated_symile"],
    "Objectives to train (configs/benchmark.py:symile_xor,<objective>).",
)
_EXPORT = flags.DEFINE_string("export", "symile", "Objective whose model is exported for TF Serving ('' = none).")
_BENCHMARK_CONFIG = os.path.join(_REPO, "configs", "benchmark.py")
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Set by demo.py itself (configs/benchmark.py:symile_xor,<objective> per objective); override a key of "
    "every objective's config with --config.<key>=<value>, e.g. --config.epochs=1.",
    lock_config=True,
)
_REMOVED = {
    "override": "override a key of every objective's config with --config.<key>=<value>, e.g. --config.epochs=1."
}
_VERBOSE = flags.DEFINE_integer("verbose", 1, "Keras verbosity: 1 progress bars, 2 one line per epoch, 0 none.")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 1:
        _cli.fail(_PROG, f"unexpected arguments {argv[1:]}; every setting is a flag (--help lists them).")
    from tf_mmcl import training  # here, not at the top: --help and flag errors need no TensorFlow

    start = time.perf_counter()
    try:
        root = training.check_workdir(_WORKDIR.value)
        overrides = config_flags.get_override_values(flags.FLAGS["config"])
        results = {}
        for objective in _OBJECTIVES.value:
            config = training.load_config_file(f"{_BENCHMARK_CONFIG}:symile_xor,{objective}")
            config.update_from_flattened_dict(overrides)
            config = training.validate_config(config)
            config.verbose = _VERBOSE.value
            print(f"\n=== {objective}: {config.epochs} epochs, batch {config.batch_size} ===", flush=True)
            workdir = os.path.join(root, objective)
            training.train(config, workdir)
            results[objective] = training.evaluate(workdir)
        table = training.comparison_markdown(results)
        table_path = os.path.join(root, "comparison.md")
        with open(table_path, "w") as f:
            f.write(table)
        plot_path = training.plot_comparison(
            results, os.path.join(root, "comparison.png"), title="Symile XOR (p_hat = 1): retrieve a over 32 candidates"
        )
        exported = None
        if _EXPORT.value:
            if _EXPORT.value not in results:
                raise ValueError(f"--export={_EXPORT.value!r} is not among the trained objectives {list(results)}.")
            exported = training.export(
                os.path.join(root, _EXPORT.value), export_dir=os.path.join(root, "export"), overwrite=True, version=1
            )
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        _cli.fail(_PROG, e)

    print("\nSymile XOR, p_hat = 1 (c = a XOR b): zero-shot retrieval of a over all 32 candidates,")
    print("from b or c alone (1->1) and from (b, c) together (2->1), test split:\n")
    print(table)
    print("Outputs:")
    for objective, r in results.items():
        print(f"  {objective:13s} run {os.path.join(root, objective)}  (report {r['paths']['markdown']})")
    print(f"  table         {table_path}")
    print(f"  plot          {plot_path}")
    if exported:
        print(
            f"  SavedModel    {exported['saved_model']}  (TF Serving MODEL_NAME={exported['name']}, "
            f"model_base_path {exported['model_base_path']})"
        )
        print(f"  candidates    {exported['candidates']}")
    print(f"  TensorBoard   tensorboard --logdir {root}")
    print(f"Demo finished in {time.perf_counter() - start:.0f} s.")


def _parse_flags(argv):
    """absl's parser, with ``--config`` set to the demo's config (the key overrides are checked on it)."""
    args = argv[1:]
    args = args[: args.index("--")] if "--" in args else args
    if any(a in ("--config", "-config") or a.startswith(("--config=", "-config=")) for a in args):
        _cli.fail(
            _PROG,
            "--config is set by demo.py (configs/benchmark.py:symile_xor,<objective> for each of --objectives): "
            "override its keys with --config.<key>=<value> (e.g. --config.epochs=1), or train another config "
            "with tools/train.py --config.",
        )
    objective = [a for a in args if a.lstrip("-").startswith(("config.model.objective", "noconfig.model.objective"))]
    if objective:
        _cli.fail(
            _PROG,
            f"{objective[0].split('=', 1)[0]}: --objectives picks the objectives, each with its options from "
            "configs/benchmark.py; train one with other options with tools/train.py --config.",
        )
    template = f"{_BENCHMARK_CONFIG}:symile_xor,symile"  # the keys every objective's config has
    return _cli.parse_config_flags(_PROG, [argv[0], f"--config={template}", *argv[1:]])


if __name__ == "__main__":
    app.run(main, flags_parser=_cli.flags_parser(_PROG, config_flag="config", parse=_parse_flags, removed=_REMOVED))
