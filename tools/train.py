#!/usr/bin/env python
"""Train one config: ``python tools/train.py --config configs/<x>.py --workdir DIR``.

Override any config key on the command line, e.g. ``--config.batch_size=256``,
``--config.epochs=10``, ``--config.model.objective_options.key_dim=32``. The run writes
checkpoints, TensorBoard logs (``tensorboard --logdir DIR/tensorboard``), ``metrics.csv``,
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

from tf_mmcl import training  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/<benchmark>_<objective>.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory for checkpoints, logs, metrics and the model.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete the run files in --workdir first and train from "
                               "scratch (a workdir otherwise belongs to the run that first used it).")
_USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required, e.g. --config configs/symile_xor_symile.py")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required: the directory the run writes to.")
    try:
        result = training.train(_CONFIG.value, _WORKDIR.value, overwrite=_OVERWRITE.value)
    except _USER_ERRORS as e:
        sys.exit(f"train.py: error: {e}")
    except FloatingPointError as e:  # tf_mmcl.training.DivergenceError
        sys.exit(f"train.py: error: {e}")
    if result.status == "finished":
        print(f"The run in {result.paths['model'].rsplit(os.sep, 1)[0]} has already finished "
              f"({len(next(iter(result.history.values()), []))} epoch(s)); nothing to do. Pass --overwrite to "
              "train it again from scratch, or use a new --workdir.")
        return
    final = {k: round(v[-1], 4) for k, v in result.history.items()}
    print(f"Trained {_CONFIG.value.model.objective} on {_CONFIG.value.dataset.name} in "
          f"{result.train_seconds:.1f} s; final metrics: {final}")
    for key, path in result.paths.items():
        print(f"  {key:13s} {path}")


def _parse_flags(argv):
    """absl's parser, with config-override errors (unknown key, bad value) as one clear line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"train.py: error: {e}\nPass --helpfull to see the flags.")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        text = str(e).strip("'\"").replace("\\n", " ").replace("\n", " ").replace("\\'", "'")
        sys.exit(f"train.py: error: bad --config override ({type(e).__name__}): {text}")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
