"""Experiments from configs: build the dataset and model, train, evaluate, export.

The command-line tools in ``tools/`` are thin layers over these functions:

* :func:`train` (``tools/train.py``): :func:`fit` (``model.fit`` with exact resume and a
  divergence guard) with checkpoints, TensorBoard, CSV and JSON metrics; saves ``model.keras``.
* :func:`fit`: the one training loop, also used by the reproduction experiments.
* :func:`evaluate` (``tools/evaluate.py``): retrieval on the test split -> Markdown table and
  PNG plots (with the ``plot`` extra, matplotlib); :func:`comparison_markdown` /
  :func:`plot_comparison` put several runs side by side.
* :func:`export` (``tools/export.py``): a TF Serving SavedModel via
  :func:`tf_mmcl.export.export_for_serving`.
* :func:`prepare_tfds` (``tools/make_dataset.py``): generate a tfds builder's data.

Configs are ``ml_collections.ConfigDict`` objects of one schema (:func:`default_config`);
config files hold the settings (``configs/benchmark.py:<benchmark>,<objective>``: one objective
on one benchmark).

Example:
    >>> import tempfile
    >>> from tf_mmcl import training
    >>> config = training.default_config()  # Symile on Symile XOR, the generator's defaults
    >>> config.epochs, config.verbose = 1, 0
    >>> config.dataset.params.update(n_train=256, n_val=64, n_test=64)
    >>> run = training.train(config, tempfile.mkdtemp())  # doctest: +SKIP
"""

from tf_mmcl.training.config import (
    DATASET_SOURCES,
    apply_overrides,
    default_config,
    load_config_file,
    load_saved_config,
    objective_defaults,
    validate_config,
)
from tf_mmcl.training.files import CorruptFileError
from tf_mmcl.training.loop import DivergenceError, FitResult, batch_stream, fit
from tf_mmcl.training.report import (
    comparison_markdown,
    evaluate,
    evaluate_model,
    plot_comparison,
    plot_retrieval,
    plot_training_curves,
    plotting_available,
    results_markdown,
)
from tf_mmcl.training.runner import (
    RUN_FILES,
    TrainResult,
    build_dataset,
    build_model,
    check_workdir,
    config_fingerprint,
    export,
    load_run,
    prepare_tfds,
    train,
    train_inputs,
)

__all__ = [
    "DATASET_SOURCES",
    "RUN_FILES",
    "TrainResult",
    "apply_overrides",
    "build_dataset",
    "build_model",
    "CorruptFileError",
    "DivergenceError",
    "FitResult",
    "batch_stream",
    "check_workdir",
    "comparison_markdown",
    "config_fingerprint",
    "default_config",
    "evaluate",
    "evaluate_model",
    "export",
    "fit",
    "load_config_file",
    "load_saved_config",
    "load_run",
    "objective_defaults",
    "plot_comparison",
    "plot_retrieval",
    "plot_training_curves",
    "plotting_available",
    "prepare_tfds",
    "results_markdown",
    "train",
    "train_inputs",
    "validate_config",
]
