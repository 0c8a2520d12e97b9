#!/usr/bin/env python
"""Generate a benchmark as a tensorflow-datasets dataset.

``python tools/make_dataset.py --dataset symile_xor/default --data_dir DIR`` (or the name as the
one argument: ``python tools/make_dataset.py m3_digits``) prepares the data (generated in
process, nothing is downloaded) and prints the split sizes and where they are. ``m3_digits``
renders its speech with espeak-ng (``apt-get install espeak-ng``) unless ``--clip_source`` names
a folder of pre-rendered clips.
Train on it with ``--config.dataset.source=tfds --config.dataset.tfds_name=symile_xor/default
--config.dataset.data_dir=DIR``; m3_digits with ``configs/benchmark.py:m3_digits,<objective>``
(which reads ``m3_digits/default`` from ``~/tensorflow_datasets``). ``--list`` lists the builders and their configs.
"""

import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/_cli.py, also under runpy
import _cli  # noqa: E402

_PROG = "make_dataset.py"

_DATASET = flags.DEFINE_string("dataset", None, "<name>[/<config>], e.g. symile_xor/tiny.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds data directory (default: ~/tensorflow_datasets).")
_LIST = flags.DEFINE_bool("list", False, "List the datasets and their configs, then exit.")
_CLIP_SOURCE = flags.DEFINE_string(
    "clip_source", None, "m3_digits only: a folder of pre-rendered clips (default: espeak-ng live)."
)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TF's SavedModel INFO lines drown the output
    if len(argv) > 2 or (len(argv) == 2 and _DATASET.value):
        _cli.fail(_PROG, f"unexpected arguments {argv[1:]}; name one dataset, as --dataset or the one argument.")
    dataset = argv[1] if len(argv) == 2 else _DATASET.value
    if _LIST.value:
        import tf_mmcl.datasets

        builders = dict(tf_mmcl.datasets.BUILDERS, m3_digits=tf_mmcl.datasets.M3Digits)
        for name, builder in sorted(builders.items()):
            print(f"{name}: {', '.join(c.name for c in builder.BUILDER_CONFIGS)}")
        return
    if not dataset:
        _cli.fail(_PROG, "--dataset (or the dataset name as the argument) is required, or --list.")
    name, _, config_name = dataset.partition("/")
    data_dir = _DATA_DIR.value or os.path.expanduser("~/tensorflow_datasets")
    built = os.path.isdir(os.path.join(data_dir, name, config_name or "default"))
    if name == "m3_digits" and not built and not _CLIP_SOURCE.value and not shutil.which("espeak-ng"):
        _cli.fail(
            _PROG,
            "m3_digits renders its speech with espeak-ng, which is not on PATH: install it "
            "(apt-get install -y espeak-ng) or pass --clip_source=<folder of pre-rendered clips> "
            "(docs/m3_digits.md).",
        )
    from tf_mmcl import training  # here, not at the top: --help and flag errors need no TensorFlow

    try:
        if name == "m3_digits":
            from tf_mmcl.datasets import m3_digits

            try:
                builder = m3_digits.build(data_dir, config_name or "default", clip_source=_CLIP_SOURCE.value)
            except m3_digits.EspeakNotFoundError as e:  # espeak-ng vanished or is not executable
                _cli.fail(_PROG, e)
        else:
            builder = training.prepare_tfds(dataset, _DATA_DIR.value)
    except (ValueError, PermissionError, NotADirectoryError, OSError, ImportError) as e:
        _cli.fail(_PROG, e)
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    print(f"Prepared {builder.info.full_name}: {splits}")
    print(f"  data_dir {builder.data_dir}")


if __name__ == "__main__":
    app.run(main, flags_parser=_cli.flags_parser(_PROG))
