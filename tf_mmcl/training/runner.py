"""Build the dataset and model of a config, train with ``model.fit``, and export the result.

A training run writes into its ``workdir``::

    config.json                  the validated config (evaluate/export read it back)
    checkpoints/epoch_NNN.weights.h5   weights after every epoch (ModelCheckpoint)
    backup/                      BackupAndRestore state: a killed run resumes where it stopped
    tensorboard/                 TensorBoard logs (train/ and validation/)
    metrics.csv                  one row per epoch (CSVLogger)
    metrics.json                 history, final metrics, wall time and the paths below
    model.keras                  the final model (``keras.models.load_model`` after ``import tf_mmcl``)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_mmcl.data import MASK_SUFFIX, MultimodalSplits, make_pipeline
from tf_mmcl.data.synthetic import GENERATORS
from tf_mmcl.layers import MLPEncoder
from tf_mmcl.models import MultimodalContrastiveModel
from tf_mmcl.optimizers import ScheduleFreeAdamW, ScheduleFreeEvaluation
from tf_mmcl.training.config import load_saved_config, validate_config

__all__ = [
    "RUN_FILES",
    "TrainResult",
    "build_dataset",
    "build_model",
    "check_workdir",
    "export",
    "load_run",
    "prepare_tfds",
    "train",
    "train_inputs",
]

RUN_FILES = {
    "config": "config.json",
    "checkpoints": "checkpoints",
    "backup": "backup",
    "tensorboard": "tensorboard",
    "metrics_csv": "metrics.csv",
    "metrics_json": "metrics.json",
    "model": "model.keras",
}


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained ``MultimodalContrastiveModel``.
        history: ``{metric: [value per epoch]}`` (``val_*`` for the validation split).
        paths: ``{"config", "checkpoints", "backup", "tensorboard", "metrics_csv",
            "metrics_json", "model"}`` -> absolute path.
        train_seconds: wall time of ``model.fit``.
    """

    model: MultimodalContrastiveModel
    history: dict
    paths: dict
    train_seconds: float


# ---------------------------------------------------------------------------------- dataset
def prepare_tfds(tfds_name: str, data_dir: str | None = None):
    """Generates (if needed) one of our tensorflow-datasets builders and returns it.

    Args:
        tfds_name: ``"<dataset>[/<config>]"``, e.g. ``"symile_xor/tiny"``.
        data_dir: the tfds data directory (None: the tfds default, ``~/tensorflow_datasets``).

    Returns:
        The prepared ``tfds.core.DatasetBuilder``.

    Raises:
        ValueError: for a dataset or builder config that is not registered.
    """
    import tensorflow_datasets as tfds

    import tf_mmcl.datasets  # registers the builders

    name, _, config_name = tfds_name.partition("/")
    if name not in tf_mmcl.datasets.BUILDERS:
        raise ValueError(f"Unknown dataset {name!r}; our tfds builders are {sorted(tf_mmcl.datasets.BUILDERS)}.")
    configs = [c.name for c in tf_mmcl.datasets.BUILDERS[name].BUILDER_CONFIGS]
    if config_name and config_name not in configs:
        raise ValueError(f"Unknown config {config_name!r} of dataset {name!r}; expected one of {configs}.")
    builder = tfds.builder(tfds_name, data_dir=data_dir or None)
    builder.download_and_prepare()
    return builder


def _splits_from_tfds(config) -> MultimodalSplits:
    import tensorflow_datasets as tfds

    tfds_name = config.dataset.tfds_name or config.dataset.name
    if tfds_name.partition("/")[0] != config.dataset.name:
        raise ValueError(f"dataset.tfds_name {tfds_name!r} is not a config of dataset.name "
                         f"{config.dataset.name!r}.")
    builder = prepare_tfds(tfds_name, config.dataset.data_dir or None)
    arrays = {ours: tfds.as_numpy(builder.as_dataset(split=theirs, batch_size=-1, shuffle_files=False))
              for theirs, ours in (("train", "train"), ("validation", "val"), ("test", "test"))}
    params = dict(builder.builder_config.params, n_train=1, n_val=1, n_test=1)
    sample = type(builder).GENERATOR(**params)
    return MultimodalSplits(arrays, sample.modalities, builder.benchmark_info())


def build_dataset(config) -> MultimodalSplits:
    """The train/val/test splits of the config's benchmark.

    ``dataset.source == "generator"`` calls the generator of ``dataset.name`` with
    ``dataset.params``; ``"tfds"`` reads (and prepares, if needed) ``dataset.tfds_name`` under
    ``dataset.data_dir`` (see ``tools/make_dataset.py``).

    Args:
        config: a config (see :mod:`tf_mmcl.training.config`).

    Returns:
        :class:`~tf_mmcl.data.MultimodalSplits` with ``info`` (candidate sets, target, ...).

    Raises:
        ValueError: for an unknown dataset or source, or parameters the generator rejects.
    """
    config = validate_config(config)
    if config.dataset.source == "tfds":
        return _splits_from_tfds(config)
    params = config.dataset.params.to_dict()
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return GENERATORS[config.dataset.name](**params)


def _modalities(config, splits: MultimodalSplits):
    wanted = list(config.model.modalities or ())
    if not wanted:
        return list(splits.modalities)
    if sorted(wanted) != sorted(splits.modalities):
        raise ValueError(f"Config modalities {wanted} do not match the modalities of dataset "
                         f"{config.dataset.name!r}: {list(splits.modalities)}. Set model.modalities "
                         f"to {tuple(splits.modalities)} (or leave it empty to use the dataset's).")
    return [m for m in splits.modalities if m in wanted]


def train_inputs(example: dict, modalities) -> dict:
    """Keeps the model inputs of an example dict: the modalities and their presence masks."""
    keys = list(modalities) + [m + MASK_SUFFIX for m in modalities]
    return {k: example[k] for k in keys if k in example}


def _pipeline(splits, split, modalities, batch_size, seed, shuffle):
    n = splits.num_examples(split)
    if n < 2:
        raise ValueError(f"The {split} split has {n} example(s); contrastive batches need at least 2.")
    batch = min(int(batch_size), n)
    ds = splits.dataset(split).map(lambda e: train_inputs(e, modalities))
    return make_pipeline(ds, batch, shuffle=shuffle, seed=seed, drop_remainder=True)


# ---------------------------------------------------------------------------------- model
def build_model(config, modalities) -> MultimodalContrastiveModel:
    """The (unbuilt) ``MultimodalContrastiveModel`` of a config: one ``MLPEncoder`` per modality.

    Args:
        config: a config.
        modalities: the modality names (e.g. ``build_dataset(config).modalities``).

    Returns:
        The model, not compiled.

    Raises:
        ValueError: for an unknown objective or objective option, or modalities the objective
            cannot take (e.g. ``confu`` with 2 modalities).
    """
    config = validate_config(config)
    m = config.model
    encoder = m.encoder.to_dict()
    encoder["hidden_units"] = tuple(encoder["hidden_units"])
    encoders = {name: MLPEncoder(name=f"encoder_{name}", **encoder) for name in modalities}
    options = m.objective_options.to_dict()
    try:
        return MultimodalContrastiveModel(
            encoders, embedding_dim=int(m.embedding_dim), objective=m.objective,
            projection_hidden_units=tuple(m.projection_hidden_units),
            logit_scale_init=float(m.logit_scale_init), learn_logit_scale=m.learn_logit_scale,
            **options)
    except ValueError as e:
        raise ValueError(f"Cannot build the {m.objective!r} model on dataset {config.dataset.name!r} "
                         f"(modalities {list(modalities)}): {e}") from e


def _optimizer(config):
    lr = float(config.learning_rate)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=float(config.weight_decay))
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9)
    if config.optimizer == "schedule_free_adamw":
        # Evaluated and saved at its average x: train() puts ScheduleFreeEvaluation first.
        return ScheduleFreeAdamW(lr, weight_decay=float(config.weight_decay))
    raise ValueError(f"Unknown optimizer {config.optimizer!r}; expected 'adam', 'adamw', 'sgd' or "
                     "'schedule_free_adamw'.")


# ---------------------------------------------------------------------------------- workdir
def check_workdir(workdir, must_exist: bool = False) -> str:
    """Checks (and for training creates) a run directory; returns its absolute path.

    Args:
        workdir: the directory.
        must_exist: require an existing run (``config.json`` and ``model.keras``), as
            evaluation and export do.

    Raises:
        ValueError: if ``workdir`` is empty.
        FileNotFoundError: if ``must_exist`` and there is no finished run in it.
        NotADirectoryError: if it (or a parent) is a file.
        PermissionError: if it cannot be written.
    """
    if not workdir:
        raise ValueError("A workdir is required (--workdir DIR): where the run's outputs go.")
    path = os.path.abspath(os.path.expanduser(str(workdir)))
    if must_exist:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"Workdir {path} does not exist; train first: "
                                    f"python tools/train.py --config configs/<x>.py --workdir {workdir}")
        for key in ("config", "model"):
            if not os.path.isfile(os.path.join(path, RUN_FILES[key])):
                raise FileNotFoundError(f"Workdir {path} holds no finished training run (no "
                                        f"{RUN_FILES[key]}); train first with tools/train.py --workdir {workdir}.")
        return path
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"Workdir {path} exists and is not a directory.")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except (NotADirectoryError, FileExistsError) as e:
        raise NotADirectoryError(f"Workdir {path} cannot be created: a parent is not a directory ({e}).") from e
    except OSError as e:
        raise PermissionError(f"Workdir {path} is not writable: {e}.") from e
    return path


def load_run(workdir):
    """The config and the trained model of a finished run.

    Args:
        workdir: the run directory written by :func:`train`.

    Returns:
        ``(config, model)``.

    Raises:
        FileNotFoundError: if there is no finished run in ``workdir``.
    """
    path = check_workdir(workdir, must_exist=True)
    with open(os.path.join(path, RUN_FILES["config"])) as f:
        config = load_saved_config(json.load(f))
    model = keras.models.load_model(os.path.join(path, RUN_FILES["model"]), compile=False)
    return config, model


# ---------------------------------------------------------------------------------- training
class _JsonMetrics(keras.callbacks.Callback):
    """Rewrites ``metrics.json`` after every epoch (so a running job can be watched)."""

    def __init__(self, path, payload):
        super().__init__()
        self.path, self.payload, self.history = path, payload, {}

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        self.write(epochs_done=epoch + 1)

    def write(self, **extra):
        data = dict(self.payload, history=self.history, **extra)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)


def train(config, workdir, verbose=None) -> TrainResult:
    """Trains the config's model on its benchmark with ``model.fit`` and saves everything.

    Writes the files listed in this module's docstring into ``workdir`` (created if needed).
    A run killed part-way resumes from ``workdir/backup`` when started again.

    Args:
        config: a config (see :mod:`tf_mmcl.training.config`).
        workdir: the run directory.
        verbose: Keras verbosity (default ``config.verbose``; 1 shows progress bars).

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: for an invalid config (unknown key, dataset, objective, modalities that do
            not match the dataset) or a training split smaller than one batch.
        NotADirectoryError, PermissionError: for a workdir that cannot be written.
    """
    config = validate_config(config)
    path = check_workdir(workdir)
    paths = {k: os.path.join(path, v) for k, v in RUN_FILES.items()}
    splits = build_dataset(config)
    modalities = _modalities(config, splits)
    if splits.num_examples("train") < config.batch_size:
        raise ValueError(f"The training split has {splits.num_examples('train')} examples, fewer than "
                         f"batch_size={config.batch_size}: lower batch_size or raise dataset.params.n_train.")
    keras.utils.set_random_seed(int(config.seed))
    model = build_model(config, modalities)
    train_ds = _pipeline(splits, "train", modalities, config.batch_size, config.seed, shuffle=True)
    val_ds = _pipeline(splits, "val", modalities, config.batch_size, config.seed, shuffle=False)
    model(next(iter(train_ds)))  # build, so BackupAndRestore can restore weights into it
    model.compile(optimizer=_optimizer(config), jit_compile=bool(config.jit_compile),
                  steps_per_execution=int(config.steps_per_execution))

    with open(paths["config"], "w") as f:
        f.write(config.to_json(indent=2, sort_keys=True))
    os.makedirs(paths["checkpoints"], exist_ok=True)
    payload = {"dataset": config.dataset.name, "objective": config.model.objective,
               "modalities": modalities, "paths": paths}
    json_metrics = _JsonMetrics(paths["metrics_json"], payload)
    callbacks = [
        # First, so validation, checkpoints, the backup and the saved model see the schedule-free
        # average x (a no-op for other optimizers).
        ScheduleFreeEvaluation(),
        keras.callbacks.BackupAndRestore(paths["backup"]),
        keras.callbacks.ModelCheckpoint(os.path.join(paths["checkpoints"], "epoch_{epoch:03d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(paths["tensorboard"], write_graph=False, update_freq="epoch",
                                    profile_batch=0),
        keras.callbacks.CSVLogger(paths["metrics_csv"], append=True),
        json_metrics,
    ]
    steps = int(config.steps_per_epoch) or None
    start = time.perf_counter()
    fit = model.fit(train_ds, validation_data=val_ds, epochs=int(config.epochs), steps_per_epoch=steps,
                    callbacks=callbacks, shuffle=False,  # the pipeline shuffles
                    verbose=config.verbose if verbose is None else verbose)
    seconds = time.perf_counter() - start
    model.save(paths["model"])
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    json_metrics.history = history  # the same numbers; after a resume fit.history has the rest only
    json_metrics.write(epochs_done=int(config.epochs), train_seconds=seconds,
                       final={k: v[-1] for k, v in history.items() if v})
    return TrainResult(model=model, history=history, paths=paths, train_seconds=seconds)


# ---------------------------------------------------------------------------------- export
def export(workdir, export_dir=None, name=None, version=None, overwrite=False) -> dict:
    """Exports a trained run as a TF Serving SavedModel (``tf_mmcl.export.export_for_serving``).

    For benchmarks with a candidate set (the XOR benchmarks) the candidates and their
    embeddings are saved next to it, ready for the ``score_<target>`` signature's
    ``candidate_embeddings`` input.

    Args:
        workdir: a finished run.
        export_dir: TF Serving base directory (default ``<workdir>/export``).
        name: the served model's name (default ``config.export.name`` or
            ``"<dataset>_<objective>"``).
        version: int version (default: one more than the highest existing).
        overwrite: replace an existing version.

    Returns:
        ``{"saved_model": version dir, "model_base_path": <export_dir>/<name>, "name": name,
        "candidates": .npz path or None}``.

    Raises:
        FileNotFoundError: if ``workdir`` holds no finished run.
    """
    from tf_mmcl.export import export_for_serving

    config, model = load_run(workdir)
    export_dir = os.path.abspath(export_dir or os.path.join(check_workdir(workdir, must_exist=True), "export"))
    os.makedirs(export_dir, exist_ok=True)
    name = name or config.export.name or f"{config.dataset.name}_{config.model.objective}"
    saved = export_for_serving(model, export_dir, name, version=version, overwrite=overwrite,
                               partial_queries=bool(config.export.partial_queries))
    candidates_path = None
    info = build_dataset(config).info
    if info.get("candidates") is not None and info.get("target") in model.modalities:
        cands = np.asarray(info["candidates"], np.float32)
        candidates_path = os.path.join(export_dir, f"{name}_candidates.npz")
        np.savez(candidates_path, candidates=cands, target=info["target"],
                 candidate_embeddings=model.embed(info["target"], cands).numpy())
    return {"saved_model": saved, "model_base_path": os.path.join(export_dir, name), "name": name,
            "candidates": candidates_path}
