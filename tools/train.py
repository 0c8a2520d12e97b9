#!/usr/bin/env python
"""Train one config: ``python tools/train.py --config configs/benchmark.py:<benchmark>,<objective> --workdir DIR``.

``configs/benchmark.py:symile_xor,clip`` is CLIP on the Symile XOR benchmark (the file lists the
benchmarks and holds their settings); any other file defining ``get_config()`` works too.

Override any config key on the command line, e.g. ``--config.batch_size=256``,
``--config.epochs=10``; switch the objective with ``--config.model.objective=clip`` (its
``objective_options`` follow it: the new objective's defaults, plus any
``--config.model.objective_options.<key>=<value>`` given on the same command line, e.g.
``--config.model.objective=gated_symile --config.model.objective_options.key_dim=32``). The run
writes checkpoints, TensorBoard logs (``tensorboard --logdir DIR/tensorboard``), ``metrics.csv``,
``metrics.json`` and the final ``model.keras`` into DIR (see ``tf_mmcl.training.train``). Every
file is written atomically. A run that was killed (at any moment) resumes exactly from its last
completed epoch when started again with the same command; DIR belongs to that run: another
config there is an error (use a new ``--workdir`` or ``--overwrite``), and a finished run is not
retrained. A non-finite loss, gradient, weight or input stops the run with an error (exit 1).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_PROG = "train.py"
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file, e.g. configs/benchmark.py:symile_xor,symile (<benchmark>,<objective>).",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory for checkpoints, logs, metrics and the model.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Delete the run files in --workdir first and train from "
    "scratch (a workdir otherwise belongs to the run that first used it).",
)
_USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
# Overrides of the objective and its options are applied after parsing, by
# tf_mmcl.training.apply_overrides: switching the objective resets its options to the new
# objective's defaults, and objective_options is an open dict (a new objective's keys are welcome).
_OBJECTIVE_PREFIXES = ("config.model.objective=", "config.model.objective_options.")
_objective_overrides = []


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 1:
        _cli.fail(_PROG, f"unexpected arguments {argv[1:]}; every setting is a --config.<key>=<value> flag.")
    from tf_mmcl import training  # here, not at the top: --help and flag errors need no TensorFlow

    try:
        config = _CONFIG.value
        if _objective_overrides:
            with config.unlocked():
                training.apply_overrides(config, _objective_overrides)
        result = training.train(config, _WORKDIR.value, overwrite=_OVERWRITE.value)
    except (*_USER_ERRORS, FloatingPointError) as e:  # FloatingPointError: tf_mmcl.training.DivergenceError
        _cli.fail(_PROG, e)
    if result.status == "finished":
        print(
            f"The run in {result.paths['model'].rsplit(os.sep, 1)[0]} has already finished "
            f"({len(next(iter(result.history.values()), []))} epoch(s)); nothing to do. Pass --overwrite to "
            "train it again from scratch, or use a new --workdir."
        )
        return
    final = {k: round(v[-1], 4) for k, v in result.history.items()}
    print(
        f"Trained {config.model.objective} on {config.dataset.name} in "
        f"{result.train_seconds:.1f} s; final metrics: {final}"
    )
    for key, path in result.paths.items():
        print(f"  {key:13s} {path}")


def _split_objective_overrides(argv):
    """Takes ``--config.model.objective[_options.*]=...`` out of argv (see _OBJECTIVE_PREFIXES)."""
    rest, i = [argv[0]], 1
    while i < len(argv):
        arg = argv[i]
        body = arg[2:] if arg.startswith("--") else None
        if (
            body is not None
            and "=" not in body
            and (body == "config.model.objective" or body.startswith("config.model.objective_options."))
        ):
            if i + 1 < len(argv):  # --config.model.objective clip
                body, i = f"{body}={argv[i + 1]}", i + 1
        if body is not None and body.startswith(_OBJECTIVE_PREFIXES):
            _objective_overrides.append(body[len("config.") :])
        else:
            rest.append(arg)
        i += 1
    return rest


def _parse_flags(argv):
    """absl's parser, with config-override errors (unknown key, bad value) as one clear line."""
    return _cli.parse_config_flags(_PROG, _split_objective_overrides(argv))


if __name__ == "__main__":
    app.run(
        main,
        flags_parser=_cli.flags_parser(_PROG, required=("config", "workdir"), config_flag="config", parse=_parse_flags),
    )
