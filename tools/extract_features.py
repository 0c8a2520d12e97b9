#!/usr/bin/env python
"""Cache frozen encoder features: ``python tools/extract_features.py --config configs/hub/<setup>.py``.

Loads each modality's keras-hub preset (``--config.encoders.<m>.preset``: a local directory,
or a name found under ``$TF_MMCL_PRESETS``), runs the frozen encoders over the dataset
(``--config.data.tfds=<name>`` or ``--config.data.tfrecords=<glob>``) in batches under
``--config.extract.precision``, and writes ``features-NNNNN.tfrecord`` shards plus
``manifest.json`` into ``--features_dir`` (or ``config.features_dir``). A killed run resumes at
the first missing shard when started again; a directory holding features of other encoders is
refused. Needs the ``hub`` extra (``make install-hub``). See docs/real_data.md.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/hub/<setup>.py).")
_FEATURES_DIR = flags.DEFINE_string("features_dir", None, "Output directory (default: config.features_dir).")
_MAX_SHARDS = flags.DEFINE_integer("max_shards", None, "Stop after this many new shards (default: all).")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress bar.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required, e.g. --config configs/hub/symile_m3.py")
    from tf_mmcl.hub.pipeline import run_extraction  # TensorFlow loads only past --help

    try:
        manifest = run_extraction(_CONFIG.value, _FEATURES_DIR.value, _MAX_SHARDS.value, progress=not _QUIET.value)
    except (ValueError, FileNotFoundError, ImportError) as e:
        sys.exit(f"extract_features.py: error: {e}")
    state = "complete" if manifest["complete"] else "partial (rerun to resume)"
    print(
        f"{manifest['count']} rows in {len(manifest['shards'])} shard(s), {state}: "
        f"{_FEATURES_DIR.value or _CONFIG.value.features_dir}"
    )


if __name__ == "__main__":
    app.run(
        main,
        flags_parser=_cli.flags_parser(
            "extract_features.py", required=("config",), config_flag="config", config_example="configs/hub/symile_m3.py"
        ),
    )
