#!/usr/bin/env python
"""Train projection heads on cached features, then serve them on raw inputs.

    python tools/train_heads.py --config configs/hub/<setup>.py --workdir DIR [--export_dir SERVING]

Reads the features of ``tools/extract_features.py`` (``--features_dir`` or
``config.features_dir``), trains the head-only model (projection heads + the objective of
``config.heads``), saves ``DIR/heads.keras`` and ``DIR/history.json``; with ``--export_dir``
it puts the trained heads on the config's backbones (checked to be the encoders that made the
features) and exports the raw-input model with ``export_for_serving``. See docs/real_data.md.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/hub/<setup>.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for heads.keras and history.json.")
_FEATURES_DIR = flags.DEFINE_string("features_dir", None, "Feature directory (default: config.features_dir).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Export the raw-input model under this TF Serving base directory."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None or not _WORKDIR.value:
        raise app.UsageError("--config and --workdir are required.")
    from tf_mmcl.hub.pipeline import train_heads  # TensorFlow loads only past --help

    try:
        _, history, version = train_heads(
            _CONFIG.value, _WORKDIR.value, _FEATURES_DIR.value, _EXPORT_DIR.value, verbose=2
        )
    except (ValueError, FileNotFoundError, ImportError) as e:
        sys.exit(f"train_heads.py: error: {e}")
    print(
        f"final loss {history['loss'][-1]:.4f}; heads in {_WORKDIR.value}"
        + (f"; served model at {version}" if version else "")
    )


if __name__ == "__main__":
    app.run(
        main,
        flags_parser=_cli.flags_parser(
            "train_heads.py",
            required=("config", "workdir"),
            config_flag="config",
            config_example="configs/hub/symile_m3.py",
        ),
    )
