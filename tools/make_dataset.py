#!/usr/bin/env python
"""Generate a benchmark as a tensorflow-datasets dataset.

``python tools/make_dataset.py --dataset symile_xor/default --data_dir DIR`` prepares the data
(generated in process, nothing is downloaded) and prints the split sizes and where they are.
Train on it with ``--config.dataset.source=tfds --config.dataset.tfds_name=symile_xor/default
--config.dataset.data_dir=DIR``. ``--list`` lists the builders and their configs.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from tf_mmcl import training  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", None, "<name>[/<config>], e.g. symile_xor/tiny.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds data directory (default: ~/tensorflow_datasets).")
_LIST = flags.DEFINE_bool("list", False, "List the datasets and their configs, then exit.")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _LIST.value:
        import tf_mmcl.datasets

        for name, builder in sorted(tf_mmcl.datasets.BUILDERS.items()):
            print(f"{name}: {', '.join(c.name for c in builder.BUILDER_CONFIGS)}")
        return
    if not _DATASET.value:
        raise app.UsageError("--dataset is required (or --list).")
    try:
        builder = training.prepare_tfds(_DATASET.value, _DATA_DIR.value)
    except (ValueError, PermissionError, NotADirectoryError) as e:
        sys.exit(f"make_dataset.py: error: {e}")
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    print(f"Prepared {builder.info.full_name}: {splits}")
    print(f"  data_dir {builder.data_dir}")


if __name__ == "__main__":
    app.run(main)
