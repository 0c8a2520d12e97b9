#!/usr/bin/env python
"""Export a trained run for TF Serving: ``python tools/export.py --workdir DIR``.

Writes ``<export_dir>/<name>/<version>/`` (default ``DIR/export/<dataset>_<objective>/1``), a
SavedModel with the ``serving_default``, ``embed_<m>`` and ``score_<m>...`` signatures of
``tf_mmcl.export.export_for_serving`` and a warm-up file, plus ``<name>_candidates.npz`` (the
candidate set and its embeddings) for benchmarks that have one and ``<name>_examples.npz`` (8 test
rows of every modality, keyed by modality: request inputs for ``tools/serving_request.py``).
Serve it with::

    docker run -p 8501:8501 -v <export_dir>/<name>:/models/<name> -e MODEL_NAME=<name> tensorflow/serving
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_PROG = "export.py"

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished training run (written by tools/train.py).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "TF Serving base directory (default: WORKDIR/export).")
_NAME = flags.DEFINE_string("name", None, "Served model name (default: config.export.name or <dataset>_<objective>).")
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: one more than the highest existing).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 1:
        _cli.fail(_PROG, f"unexpected arguments {argv[1:]}; the run is --workdir DIR.")
    from tf_mmcl import training  # here, not at the top: --help and flag errors need no TensorFlow

    try:
        out = training.export(
            _WORKDIR.value,
            export_dir=_EXPORT_DIR.value,
            name=_NAME.value,
            version=_VERSION.value,
            overwrite=_OVERWRITE.value,
        )
    except _USER_ERRORS as e:
        # The library names its keyword arguments; here they are flags.
        _cli.fail(_PROG, str(e).replace("pass overwrite=True", "pass --overwrite"))
    print(f"SavedModel for TF Serving: {out['saved_model']}")
    print(f"  model_base_path {out['model_base_path']}  (MODEL_NAME={out['name']})")
    if out["candidates"]:
        print(f"  candidates      {out['candidates']}")
    print(
        f"  examples        {out['examples']}  (request inputs: tools/serving_request.py "
        f"--input <modality>={out['examples']})"
    )


if __name__ == "__main__":
    app.run(main, flags_parser=_cli.flags_parser(_PROG, required=("workdir",)))
