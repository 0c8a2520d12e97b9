"""Build the dataset and model of a config, train with ``model.fit``, and export the result.

A training run writes into its ``workdir``::

    config.json                  the validated config: the run's identity (fingerprint)
    checkpoints/epoch_NNN.weights.h5   weights after every epoch
    backup/                      the full state of the last completed epochs: a killed run
                                 resumes exactly (deleted when the run has finished)
    tensorboard/                 TensorBoard logs (train/ and validation/, step = epoch)
    metrics.csv                  one row per epoch
    metrics.json                 history, status ("running" | "finished"), final metrics, wall
                                 time and the paths below
    model.keras                  the final model (``keras.models.load_model`` after ``import tf_mmcl``)

Every file is written atomically (temporary name in the same directory, ``fsync``, rename;
see :mod:`tf_mmcl.training.files`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import warnings

import keras
import numpy as np
import tensorflow as tf

from tf_mmcl.data import MultimodalSplits, make_pipeline
from tf_mmcl.data.synthetic import GENERATORS
from tf_mmcl.keys import mask_key
from tf_mmcl.layers import AudioEncoder, ImageEncoder, MLPEncoder, TextEncoder
from tf_mmcl.models import MultimodalContrastiveModel
from tf_mmcl.optimizers import ScheduleFreeAdamW, ScheduleFreeEvaluation
from tf_mmcl.training import loop
from tf_mmcl.training.config import load_saved_config, validate_config
from tf_mmcl.training.files import (
    BackupStore,
    CorruptFileError,
    atomic_path,
    read_json,
    remove_leftovers,
    write_json,
    write_text,
)

__all__ = [
    "RUN_FILES",
    "TrainResult",
    "build_dataset",
    "build_model",
    "check_workdir",
    "config_fingerprint",
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
        train_seconds: wall time of ``model.fit`` in this call.
        status: ``"trained"`` (from scratch), ``"resumed"`` (from a backup) or ``"finished"``
            (the run had already finished: nothing was trained).
    """

    model: MultimodalContrastiveModel
    history: dict
    paths: dict
    train_seconds: float
    status: str = "trained"


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
        raise ValueError(f"dataset.tfds_name {tfds_name!r} is not a config of dataset.name {config.dataset.name!r}.")
    builder = prepare_tfds(tfds_name, config.dataset.data_dir or None)
    arrays = {
        ours: tfds.as_numpy(builder.as_dataset(split=theirs, batch_size=-1, shuffle_files=False))
        for theirs, ours in (("train", "train"), ("validation", "val"), ("test", "test"))
    }
    params = dict(builder.builder_config.params, n_train=1, n_val=1, n_test=1)
    sample = type(builder).GENERATOR(**params)
    return MultimodalSplits(arrays, sample.modalities, builder.benchmark_info())


def _splits_from_m3_digits(config) -> MultimodalSplits:
    """m3_digits read from its tfds build (built here first if needed; docs/m3_digits.md).

    The target follows the config's structure: the image from (text, audio) for Symile-M3's
    (``symile_m3_*``), the text among the candidate texts from (image, audio) for the pairwise one.
    """
    import tensorflow_datasets as tfds

    from tf_mmcl.datasets import m3_digits

    tfds_name = config.dataset.tfds_name or "m3_digits/default"
    name, _, config_name = tfds_name.partition("/")
    if name != "m3_digits":
        raise ValueError(f"dataset.tfds_name {tfds_name!r} is not a config of dataset.name 'm3_digits'.")
    data_dir = os.path.expanduser(config.dataset.data_dir or "~/tensorflow_datasets")
    clip_source = config.dataset.params.to_dict().get("clip_source") or None
    try:
        builder = m3_digits.build(data_dir, config_name or "default", clip_source=clip_source)
    except m3_digits.EspeakNotFoundError as e:
        # A missing program, not a bug: the message names the install line and the alternative.
        hint = "--config.dataset.params.clip_source=<clip library directory>"
        raise FileNotFoundError(str(e).replace("clip_source=<clip library directory>", hint)) from None
    arrays = {
        ours: tfds.as_numpy(builder.as_dataset(split=theirs, batch_size=-1, shuffle_files=False))
        for theirs, ours in (("train", "train"), ("validation", "val"), ("test", "test"))
    }
    languages = list(builder.info.metadata["languages"])
    if builder.builder_config.structure == "symile_m3":
        # Symile-M3's task: the image from (text, audio); the texts are no closed set, so the
        # report scores the image by digit class (class-mean candidates of the "label" key).
        info = {"name": "m3_digits", "target": "image", "queries": ["text", "audio"], "languages": languages}
    else:
        info = {
            "name": "m3_digits",
            "target": "text",
            "queries": ["image", "audio"],
            "target_index_key": "text_id",
            "candidates": np.asarray(builder.candidate_texts(), np.int32),
            "languages": languages,
        }
    return MultimodalSplits(arrays, ["image", "audio", "text"], info)


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
    if config.dataset.name == "m3_digits":
        return _splits_from_m3_digits(config)
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
        raise ValueError(
            f"Config modalities {wanted} do not match the modalities of dataset "
            f"{config.dataset.name!r}: {list(splits.modalities)}. Set model.modalities "
            f"to {tuple(splits.modalities)} (or leave it empty to use the dataset's)."
        )
    return [m for m in splits.modalities if m in wanted]


def train_inputs(example: dict, modalities) -> dict:
    """Keeps the model inputs of an example dict: the modalities and their presence masks."""
    keys = list(modalities) + [mask_key(m) for m in modalities]
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
    specs = m.encoders.to_dict()
    unknown = sorted(set(specs) - set(modalities))
    if unknown:
        raise ValueError(
            f"model.encoders names {unknown}, not modalities of dataset {config.dataset.name!r} ({list(modalities)})."
        )
    encoders = {}
    for name in modalities:
        if name not in specs:
            encoders[name] = MLPEncoder(name=f"encoder_{name}", **encoder)
            continue
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in specs[name].items()}
        cls = _ENCODERS[kwargs.pop("type")]
        try:
            encoders[name] = cls(name=f"encoder_{name}", **kwargs)
        except TypeError as e:  # an argument the encoder does not take
            takes = sorted(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs"))
            raise ValueError(f"model.encoders.{name}: {e}; {cls.__name__} takes {takes}.") from None
    options = m.objective_options.to_dict()
    try:
        return MultimodalContrastiveModel(
            encoders,
            embedding_dim=int(m.embedding_dim),
            objective=m.objective,
            projection_hidden_units=tuple(m.projection_hidden_units),
            logit_scale_init=float(m.logit_scale_init),
            learn_logit_scale=m.learn_logit_scale,
            **options,
        )
    except ValueError as e:
        raise ValueError(
            f"Cannot build the {m.objective!r} model on dataset {config.dataset.name!r} "
            f"(modalities {list(modalities)}): {e}"
        ) from e


_ENCODERS = {"mlp": MLPEncoder, "image": ImageEncoder, "audio": AudioEncoder, "text": TextEncoder}


def _optimizer(config):
    lr = float(config.learning_rate)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=float(config.weight_decay))
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9)
    if config.optimizer == "schedule_free_adamw":
        # Evaluated and saved at its average x: train() passes ScheduleFreeEvaluation to fit.
        return ScheduleFreeAdamW(lr, weight_decay=float(config.weight_decay))
    raise ValueError(
        f"Unknown optimizer {config.optimizer!r}; expected 'adam', 'adamw', 'sgd' or 'schedule_free_adamw'."
    )


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
            raise FileNotFoundError(
                f"Workdir {path} does not exist; train first: "
                f"python tools/train.py --config <config file> --workdir {workdir}"
            )
        for key in ("config", "model"):
            if not os.path.isfile(os.path.join(path, RUN_FILES[key])):
                raise FileNotFoundError(
                    f"Workdir {path} holds no finished training run (no "
                    f"{RUN_FILES[key]}); train first with tools/train.py --workdir {workdir}."
                )
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


def _load_model_file(path):
    """``keras.models.load_model`` with a truncated or corrupt file reported as such, by name."""
    import zipfile

    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        # Keras would say "File not found" for a file that is there but truncated.
        raise CorruptFileError(
            f"The model file {path} is corrupt or incomplete ({os.path.getsize(path)} bytes, "
            "not a complete .keras zip archive). Train again: tools/train.py --overwrite "
            "with the run's config."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CorruptFileError(
            f"The model file {path} is corrupt or incomplete ({type(e).__name__}: {e}). "
            "Train again: tools/train.py --overwrite with the run's config."
        ) from e
    except ValueError as e:
        if "File not found" in str(e) or "not a zip" in str(e).lower():
            raise CorruptFileError(
                f"The model file {path} is corrupt or incomplete ({e}). Train again: "
                "tools/train.py --overwrite with the run's config."
            ) from e
        raise


def load_run(workdir):
    """The config and the trained model of a finished run.

    Args:
        workdir: the run directory written by :func:`train`.

    Returns:
        ``(config, model)``.

    Raises:
        FileNotFoundError: if there is no finished run in ``workdir``.
        CorruptFileError (a ``ValueError``): if ``config.json`` or ``model.keras`` is corrupt,
            naming the file.
    """
    path = check_workdir(workdir, must_exist=True)
    config = load_saved_config(read_json(os.path.join(path, RUN_FILES["config"]), "run config"))
    model = _load_model_file(os.path.join(path, RUN_FILES["model"]))
    return config, model


# ---------------------------------------------------------------------------------- run files
# Keys that change how a run is shown, not what it computes: they may differ when a run resumes.
_UNFINGERPRINTED = ("verbose",)


def _config_items(config) -> dict:
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(json.loads(config.to_json(sort_keys=True)), "")
    return {k: v for k, v in flat.items() if k not in _UNFINGERPRINTED}


def config_fingerprint(config) -> str:
    """SHA-256 of the resolved config (every key but ``verbose``): the identity of a run."""
    text = json.dumps(_config_items(config), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remove_run_files(path):
    """``--overwrite``: deletes what a run wrote (backup first), nothing else in the directory."""
    for key in ("backup", "metrics_json", "model", "checkpoints", "tensorboard", "metrics_csv", "config"):
        target = os.path.join(path, RUN_FILES[key])
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.exists(target):
            os.remove(target)


def _claim_workdir(path, config, overwrite):
    """Fingerprints a new run's workdir, or checks that an existing one holds this run.

    Returns the saved ``metrics.json`` if the run there has finished (else None).
    """
    config_path = os.path.join(path, RUN_FILES["config"])
    if overwrite:
        _remove_run_files(path)
    if not os.path.exists(config_path):
        if os.path.isdir(os.path.join(path, RUN_FILES["backup"])) or os.path.exists(
            os.path.join(path, RUN_FILES["model"])
        ):
            raise ValueError(
                f"Workdir {path} holds files of a run but no {RUN_FILES['config']}; it cannot be "
                "resumed safely. Use a new --workdir, or --overwrite to start again there."
            )
        write_text(config_path, config.to_json(indent=2, sort_keys=True))
        return None
    try:
        saved = load_saved_config(read_json(config_path, "run config"))
    except CorruptFileError as e:
        raise ValueError(f"{e} Use a new --workdir, or --overwrite to start again there.") from e
    old, new = _config_items(saved), _config_items(config)
    differ = sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))
    if differ:
        shown = "; ".join(
            f"{k}: {old.get(k, '<absent>')!r} in the workdir, {new.get(k, '<absent>')!r} now" for k in differ[:10]
        )
        more = f" (and {len(differ) - 10} more)" if len(differ) > 10 else ""
        raise ValueError(
            f"Workdir {path} belongs to a run with another config: {shown}{more}. Use a new "
            "--workdir for this config, or --overwrite to delete that run and start this one there."
        )
    metrics_path = os.path.join(path, RUN_FILES["metrics_json"])
    if os.path.exists(metrics_path):
        try:
            metrics = read_json(metrics_path, "metrics file")
        except CorruptFileError as e:
            warnings.warn(f"{e} It is rewritten from the last backup.", stacklevel=3)
            return None
        if metrics.get("status") == "finished" and os.path.exists(os.path.join(path, RUN_FILES["model"])):
            return metrics
    return None


def _write_csv(path, history):
    keys = ["epoch"] + sorted(history)
    rows = [",".join(keys)]
    for i in range(len(next(iter(history.values()), []))):
        rows.append(",".join([str(i)] + [repr(float(history[k][i])) for k in keys[1:]]))
    write_text(path, "\n".join(rows) + "\n")


class _TensorBoardLog:
    """Epoch scalars in ``tensorboard/{train,validation}`` (Keras' layout, step = epoch index).

    At start-up the log is rebuilt from the restored history (in a temporary directory, then
    swapped in), so a resumed run's curves are continuous with no duplicate steps.
    """

    def __init__(self, path):
        self.path = path
        self.writers = None

    @staticmethod
    def _write(writers, history, epochs):
        for epoch in epochs:
            for key, values in history.items():
                split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                with writers[split].as_default():
                    tf.summary.scalar(f"epoch_{name}", values[epoch], step=epoch)
        for w in writers.values():
            w.flush()

    @staticmethod
    def _open(root):
        return {split: tf.summary.create_file_writer(os.path.join(root, split)) for split in ("train", "validation")}

    def rebuild(self, history):
        tmp = self.path + ".rebuild"
        shutil.rmtree(tmp, ignore_errors=True)
        writers = self._open(tmp)
        self._write(writers, history, range(len(next(iter(history.values()), []))))
        for w in writers.values():
            w.close()
        shutil.rmtree(self.path, ignore_errors=True)
        os.replace(tmp, self.path)
        self.writers = self._open(self.path)

    def append(self, history, epoch):
        self._write(self.writers, history, [epoch])

    def close(self):
        for w in (self.writers or {}).values():
            w.close()


def _check_checkpoints(directory):
    """Warns about (and removes) checkpoint files that cannot be opened, naming them."""
    import h5py

    for name in sorted(os.listdir(directory)):
        full = os.path.join(directory, name)
        if not name.endswith(".weights.h5"):
            continue
        try:
            with h5py.File(full, "r"):
                pass
        except OSError as e:
            warnings.warn(f"The checkpoint {full} is corrupt or incomplete ({e}); removing it.", stacklevel=3)
            os.remove(full)


# ---------------------------------------------------------------------------------- training
def train(config, workdir, verbose=None, overwrite=False) -> TrainResult:
    """Trains the config's model on its benchmark with ``model.fit`` and saves everything.

    Writes the files listed in this module's docstring into ``workdir``, each atomically
    (temporary name, ``fsync``, rename). The config is checked, the data built and the model
    constructed before anything is written, so a bad config leaves no workdir behind.

    A workdir belongs to one run (its ``config.json``, every key but ``verbose``): started
    again with the same config, the run resumes exactly from its last completed epoch (see
    :func:`tf_mmcl.training.loop.fit`: the final weights, ``metrics.*`` and TensorBoard
    curves equal those of an uninterrupted run); a finished run is not retrained.

    Args:
        config: a config (see :mod:`tf_mmcl.training.config`).
        workdir: the run directory.
        verbose: Keras verbosity (default ``config.verbose``; 1 shows progress bars).
        overwrite: delete the run files in ``workdir`` first and train from scratch.

    Returns:
        :class:`TrainResult` (``status``: ``"trained"``, ``"resumed"`` or ``"finished"``,
        the last for a run that had already finished).

    Raises:
        ValueError: for an invalid config (unknown key, bad value, dataset, objective,
            modalities that do not match the dataset), a training split smaller than one
            batch, or a workdir that holds a run with another config.
        DivergenceError (a ``FloatingPointError``): a non-finite input, loss, gradient or
            weight; the last completed epoch stays in ``workdir/backup`` and ``checkpoints``.
        NotADirectoryError, PermissionError: for a workdir that cannot be written.
    """
    config = validate_config(config)
    if not workdir:
        raise ValueError("A workdir is required (--workdir DIR): where the run's outputs go.")
    splits = build_dataset(config)
    modalities = _modalities(config, splits)
    if splits.num_examples("train") < config.batch_size:
        raise ValueError(
            f"The training split has {splits.num_examples('train')} examples, fewer than "
            f"batch_size={config.batch_size}: lower batch_size or raise dataset.params.n_train."
        )
    train_arrays = train_inputs(splits.as_numpy("train"), modalities)
    val_ds = _pipeline(splits, "val", modalities, config.batch_size, config.seed, shuffle=False)
    keras.utils.set_random_seed(int(config.seed))
    model = build_model(config, modalities)

    path = check_workdir(workdir)  # the first write
    paths = {k: os.path.join(path, v) for k, v in RUN_FILES.items()}
    for directory in (path, paths["checkpoints"]):
        remove_leftovers(directory)
    fingerprint = config_fingerprint(config)
    finished = _claim_workdir(path, config, overwrite)
    if finished is not None:
        BackupStore(paths["backup"]).clear()  # in case the finished run was killed while clearing it
        model = _load_model_file(paths["model"])
        return TrainResult(
            model=model,
            history=finished.get("history", {}),
            paths=paths,
            train_seconds=float(finished.get("train_seconds", 0.0)),
            status="finished",
        )

    model.compile(
        optimizer=_optimizer(config),
        jit_compile=bool(config.jit_compile),
        steps_per_execution=int(config.steps_per_execution),
    )
    os.makedirs(paths["checkpoints"], exist_ok=True)
    _check_checkpoints(paths["checkpoints"])
    payload = {
        "dataset": config.dataset.name,
        "objective": config.model.objective,
        "modalities": modalities,
        "paths": paths,
        "config_fingerprint": fingerprint,
    }
    board = _TensorBoardLog(paths["tensorboard"])

    def save_checkpoint(epochs_done):
        with atomic_path(os.path.join(paths["checkpoints"], f"epoch_{epochs_done:03d}.weights.h5")) as tmp:
            model.save_weights(tmp)

    def on_epoch_saved(epochs_done, history, model):
        # The backup of this epoch is complete: every file below can be rebuilt from it.
        save_checkpoint(epochs_done)
        _write_csv(paths["metrics_csv"], history)
        write_json(paths["metrics_json"], dict(payload, history=history, epochs_done=epochs_done, status="running"))
        board.append(history, epochs_done - 1)

    def accept_backup(state):
        if state.get("config_fingerprint") != fingerprint:
            return "it was written for another config."
        return None

    def on_start(history):  # after the restore: the logs are rebuilt from the restored history
        if history:
            done = len(next(iter(history.values())))
            if not os.path.exists(os.path.join(paths["checkpoints"], f"epoch_{done:03d}.weights.h5")):
                save_checkpoint(done)  # killed while writing it: the restored weights are that epoch's
            _write_csv(paths["metrics_csv"], history)
            write_json(paths["metrics_json"], dict(payload, history=history, status="running", epochs_done=done))
        board.rebuild(history)

    try:
        result = loop.fit(
            model,
            train_arrays,
            batch_size=int(config.batch_size),
            epochs=int(config.epochs),
            seed=int(config.seed),
            steps_per_epoch=int(config.steps_per_epoch) or None,
            validation_data=val_ds,
            backup_dir=paths["backup"],
            backup_state={"config_fingerprint": fingerprint},
            accept_backup=accept_backup,
            on_start=on_start,
            on_epoch_saved=on_epoch_saved,
            # Schedule-free AdamW: validate at its average x and leave x in the model
            # after validation, so the epoch's backup and checkpoint hold x too, and
            # model.keras after the last epoch (a no-op for other optimizers).
            callbacks=[ScheduleFreeEvaluation()],
            verbose=config.verbose if verbose is None else verbose,
        )
    except loop.DivergenceError as e:
        # The advice in the message (another learning rate, other data) is another config: say
        # how to run it, since this workdir belongs to the diverged run's config.
        raise loop.DivergenceError(
            f"{e} The completed epochs are in {path} (checkpoints/, backup/, metrics.*); to train with other "
            f"settings use a new --workdir, or --overwrite to start again in {path}."
        ) from e
    finally:
        board.close()
    with atomic_path(paths["model"]) as tmp:
        model.save(tmp)
    seconds = result.seconds
    history = result.history
    write_json(
        paths["metrics_json"],
        dict(
            payload,
            history=history,
            epochs_done=int(config.epochs),
            train_seconds=seconds,
            status="finished",
            resumed_from_epoch=result.resumed_from,
            final={k: v[-1] for k, v in history.items() if v},
        ),
    )
    BackupStore(paths["backup"]).clear()
    return TrainResult(
        model=model,
        history=history,
        paths=paths,
        train_seconds=seconds,
        status="resumed" if result.resumed_from else "trained",
    )


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
        "candidates": .npz path or None, "examples": .npz path}``; ``<name>_examples.npz``
        holds the first 8 test rows of every modality, keyed by modality (request inputs).

    Raises:
        FileNotFoundError: if ``workdir`` holds no finished run.
    """
    from tf_mmcl.export import export_for_serving

    config, model = load_run(workdir)
    export_dir = os.path.abspath(export_dir or os.path.join(check_workdir(workdir, must_exist=True), "export"))
    os.makedirs(export_dir, exist_ok=True)
    name = name or config.export.name or f"{config.dataset.name}_{config.model.objective}"
    saved = export_for_serving(
        model,
        export_dir,
        name,
        version=version,
        overwrite=overwrite,
        partial_queries=bool(config.export.partial_queries),
    )
    candidates_path = None
    splits = build_dataset(config)
    info = splits.info
    if info.get("candidates") is not None and info.get("target") in model.modalities:
        cands = _candidate_array(info["candidates"])
        candidates_path = os.path.join(export_dir, f"{name}_candidates.npz")
        _save_npz(
            candidates_path,
            candidates=cands,
            target=info["target"],
            candidate_embeddings=model.embed(info["target"], cands).numpy(),
        )
    # A few test rows of every modality, named as the signatures' inputs: ready-made request
    # inputs (tools/serving_request.py --input b=<name>_examples.npz).
    test = splits.as_numpy("test")
    examples_path = os.path.join(export_dir, f"{name}_examples.npz")
    _save_npz(examples_path, **{m: np.asarray(test[m][:_NUM_EXAMPLES]) for m in model.modalities})
    return {
        "saved_model": saved,
        "model_base_path": os.path.join(export_dir, name),
        "name": name,
        "candidates": candidates_path,
        "examples": examples_path,
    }


_NUM_EXAMPLES = 8


def _candidate_array(candidates):
    """Candidates as model input: float32 values, or integer token ids kept as int32."""
    cands = np.asarray(candidates)
    return cands.astype(np.int32) if np.issubdtype(cands.dtype, np.integer) else cands.astype(np.float32)


def _save_npz(path, **arrays):
    """np.savez through :func:`atomic_path`: never a half-written file at ``path`` (``path`` ends in .npz)."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
