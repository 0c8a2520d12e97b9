"""Experiment configs: one ``ml_collections.ConfigDict`` schema for every method x benchmark.

:func:`default_config` is the schema (every key a config may hold, with its default); the
settings of an experiment live in its config file, which starts from the schema
(``configs/benchmark.py:<benchmark>,<objective>`` for the training benchmarks). The library holds
no experiment presets. :func:`validate_config` rejects
unknown keys (with a did-you-mean), unknown datasets, sources and objectives, so a typo fails
before any training starts.

Layout of a config::

    seed, batch_size, epochs, learning_rate, optimizer, weight_decay, steps_per_epoch,
    verbose, jit_compile, steps_per_execution
    dataset: name, source ("generator" | "tfds"), tfds_name, data_dir, params (the
             generator's keyword arguments)
    model:   objective, modalities (empty: the dataset's), embedding_dim, encoder
             (MLPEncoder arguments), encoders (per modality: {"type": "mlp" | "image" |
             "audio" | "text", **that encoder's arguments}; a modality not listed gets
             MLPEncoder(**encoder)), projection_hidden_units, logit_scale_init,
             learn_logit_scale (None: the objective's default), objective_options
    eval:    batch_size, ks
    export:  name (empty: "<dataset>_<objective>"), partial_queries

``dataset.params``, ``model.encoders`` and ``model.objective_options`` are open: their keys are
checked against the generator's signature, the encoders' arguments and the objective's options.

``m3_digits`` (image, audio, text; docs/m3_digits.md) has no in-process generator: it is read
from its tfds build (``dataset.source = "tfds"``, built on first use, or by
``tools/make_dataset.py m3_digits``); its one ``dataset.params`` key is ``clip_source`` ("" renders
the speech with espeak-ng, or a directory of pre-rendered clips).
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import math
import os

import ml_collections
from ml_collections import config_dict

from tf_mmcl import objectives as objectives_lib
from tf_mmcl.data.synthetic import GENERATORS

__all__ = [
    "DATASET_SOURCES",
    "ENCODER_TYPES",
    "TFDS_ONLY_DATASETS",
    "apply_overrides",
    "default_config",
    "load_config_file",
    "load_saved_config",
    "objective_defaults",
    "validate_config",
]

DATASET_SOURCES = ("generator", "tfds")
# Top-level keys added to the schema after runs were saved, with the value that reproduces what
# those runs did: a saved config.json without them still loads (see load_saved_config).
_ADDED_KEYS = {"steps_per_execution": 1}
_ADDED_MODEL_KEYS = {"encoders": {}}
# Sub-dicts whose keys are free (checked later against the generator / the encoders / the objective).
_OPEN_KEYS = ("dataset.params", "model.encoders", "model.objective_options")
# Datasets read from their tfds build only (no in-process generator): name -> accepted params.
TFDS_ONLY_DATASETS = {"m3_digits": ("clip_source",)}
ENCODER_TYPES = ("mlp", "image", "audio", "text")


def objective_defaults(objective: str) -> dict:
    """The ``model.objective_options`` a config switched to ``objective`` starts from.

    Switching a config's objective (``apply_overrides(config, ["model.objective=clip"])``,
    ``--config.model.objective=clip``) resets its options to these, the objective's own
    defaults: options of the old objective mean nothing (or something else) to the new one.
    Settings tuned for an experiment live in its config file (``configs/benchmark.py``).

    Example:
        >>> objective_defaults("confu")["lam"]
        0.5
    """
    return objectives_lib.defaults(objective)  # an unknown name: the error lists the registered ones


def default_config() -> ml_collections.ConfigDict:
    """The config schema with its defaults (Symile on the Symile XOR benchmark).

    The experiments' settings are not here: a config file starts from this schema and fills
    them in (``configs/benchmark.py``).

    Returns:
        A ``ConfigDict`` holding every key a config may have.

    Example:
        >>> c = default_config()
        >>> c.dataset.name, c.model.objective, c.dataset.params.to_dict()
        ('symile_xor', 'symile', {})
    """
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 128
    c.epochs = 5
    c.learning_rate = 0.02
    c.optimizer = "adam"  # adam | adamw | sgd | schedule_free_adamw
    c.weight_decay = 0.0
    c.steps_per_epoch = 0  # 0: one pass over the training split
    c.verbose = 1  # Keras: 1 progress bar, 2 one line per epoch, 0 silent
    c.jit_compile = False  # XLA compiles slowly on CPU for these small models
    # Training steps per tf.function call (Keras' steps_per_execution): small steps are dominated by
    # TF's fixed per-call cost (docs/benchmarks.md, loop modes); > 1 pays it once per that many steps.
    c.steps_per_execution = 1

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "symile_xor"
    c.dataset.source = "generator"
    c.dataset.tfds_name = ""  # e.g. "symile_xor/tiny" when source == "tfds"
    c.dataset.data_dir = ""  # tfds data_dir ("" = the tfds default)
    c.dataset.params = ml_collections.ConfigDict()  # the generator's keyword arguments (empty: its defaults)

    c.model = ml_collections.ConfigDict()
    c.model.objective = "symile"
    c.model.modalities = ()  # empty: every modality of the dataset
    c.model.embedding_dim = 16
    c.model.encoder = ml_collections.ConfigDict(
        dict(hidden_units=(), output_dim=16, activation="relu", dropout=0.0, use_layer_norm=False)
    )
    c.model.encoders = ml_collections.ConfigDict()  # per-modality encoders (see the module docstring)
    c.model.projection_hidden_units = ()
    c.model.logit_scale_init = 1.0 / 0.07
    c.model.learn_logit_scale = config_dict.placeholder(bool)
    c.model.objective_options = ml_collections.ConfigDict(objective_defaults("symile"))

    c.eval = ml_collections.ConfigDict(dict(batch_size=1024, ks=(1, 5, 10)))
    c.export = ml_collections.ConfigDict(dict(name="", partial_queries=True))
    return c


def _flatten(cfg, prefix=""):
    out = {}
    for key in cfg.keys():
        path = f"{prefix}{key}"
        value = cfg[key]
        if isinstance(value, ml_collections.ConfigDict) and path not in _OPEN_KEYS:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def validate_config(config) -> ml_collections.ConfigDict:
    """Checks a config against the schema of :func:`default_config`.

    Args:
        config: a ``ConfigDict`` (or a plain dict, e.g. read back from ``config.json``).

    Returns:
        The config as a ``ConfigDict``.

    Raises:
        ValueError: naming every unknown or missing key (with close matches), or an unknown
            dataset, dataset source or objective.
    """
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(f"A config must be an ml_collections.ConfigDict, got {type(config).__name__}.")
    known = _flatten(default_config())
    given = _flatten(config)
    unknown = sorted(set(given) - set(known))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(known), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"Unknown config key(s): {', '.join(hints)}. Known keys: {sorted(known)}.")
    missing = sorted(set(known) - set(given))
    if missing:
        raise ValueError(
            f"Config is missing the key(s) {missing}; start from "
            "tf_mmcl.training.default_config() (as configs/benchmark.py does)."
        )
    _check_values(config)
    datasets = sorted(GENERATORS) + sorted(TFDS_ONLY_DATASETS)
    if config.dataset.name not in datasets:
        raise ValueError(f"Unknown dataset {config.dataset.name!r}; expected one of {datasets}.")
    if config.dataset.source not in DATASET_SOURCES:
        raise ValueError(f"Unknown dataset source {config.dataset.source!r}; expected one of {DATASET_SOURCES}.")
    if config.dataset.name in TFDS_ONLY_DATASETS and config.dataset.source != "tfds":
        raise ValueError(
            f"Dataset {config.dataset.name!r} is read from its tfds build: set "
            "dataset.source='tfds' (start from configs/benchmark.py:m3_digits,<objective>)."
        )
    encoders = config.model.encoders
    encoders = encoders.to_dict() if isinstance(encoders, ml_collections.ConfigDict) else dict(encoders or {})
    for modality, spec in encoders.items():
        if not isinstance(spec, dict) or spec.get("type") not in ENCODER_TYPES:
            raise ValueError(
                f"model.encoders.{modality} must be a dict with 'type' in {ENCODER_TYPES} and the "
                f"encoder's arguments, got {spec!r}."
            )
    allowed = objectives_lib.defaults(config.model.objective)  # an unknown name: the error lists them
    options = config.model.objective_options
    options = options.to_dict() if isinstance(options, ml_collections.ConfigDict) else dict(options or {})
    foreign = sorted(set(options) - set(allowed))
    if foreign:
        raise ValueError(
            f"model.objective_options {foreign} are not options of objective {config.model.objective!r} "
            f"(it takes {sorted(allowed)}): drop them, or switch the "
            "objective with --config.model.objective=<name> / apply_overrides(config, ['model.objective=<name>']), "
            "which resets the options to that objective's defaults."
        )
    try:  # the values, by the objective's own validation (before any data is read)
        objectives_lib.get(config.model.objective, **options)
    except (TypeError, ValueError) as e:
        raise type(e)(f"model.objective_options of {config.model.objective!r}: {e}") from e
    params = (
        config.dataset.params.to_dict()
        if isinstance(config.dataset.params, ml_collections.ConfigDict)
        else dict(config.dataset.params or {})
    )
    if config.dataset.name in TFDS_ONLY_DATASETS:
        accepted = set(TFDS_ONLY_DATASETS[config.dataset.name])
    else:
        accepted = set(inspect.signature(GENERATORS[config.dataset.name]).parameters)
    bad = sorted(set(params) - accepted)
    if bad:
        raise ValueError(
            f"Unknown dataset.params {bad} for dataset {config.dataset.name!r}; "
            f"its generator accepts {sorted(accepted)}."
        )
    return config


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_values(config):
    """Rejects values no run can use (checked before a workdir is created)."""

    def fail(key, expected, fix=""):
        value = config
        for part in key.split("."):
            value = value[part]
        raise ValueError(f"{key} must be {expected}, got {value!r}.{(' ' + fix) if fix else ''}")

    for key, low in (("epochs", 1), ("batch_size", 2), ("steps_per_execution", 1), ("steps_per_epoch", 0), ("seed", 0)):
        value = config[key]
        if not _is_int(value) or value < low:
            fix = (
                "Contrastive batches need at least 2 examples (each row's negatives are the others)."
                if key == "batch_size"
                else ""
            )
            fail(key, f"an integer >= {low}", fix)
    if not _is_finite_number(config.learning_rate) or config.learning_rate <= 0:
        fail("learning_rate", "a finite number > 0")
    value = config.weight_decay
    if not _is_finite_number(value) or value < 0:
        fail("weight_decay", "a finite number >= 0")
    if config.verbose not in (0, 1, 2) or isinstance(config.verbose, bool):
        fail("verbose", "0, 1 or 2 (Keras: silent, progress bar, one line per epoch)")
    if not isinstance(config.jit_compile, bool):
        fail("jit_compile", "True or False")
    if config.optimizer not in ("adam", "adamw", "sgd", "schedule_free_adamw"):
        fail("optimizer", "'adam', 'adamw', 'sgd' or 'schedule_free_adamw'")
    value = config.model.embedding_dim
    if not _is_int(value) or value < 1:
        fail("model.embedding_dim", "an integer >= 1")
    value = config.model.logit_scale_init
    if not _is_finite_number(value) or value <= 0:
        fail("model.logit_scale_init", "a finite number > 0")
    if not _is_int(config.eval.batch_size) or config.eval.batch_size < 1:
        fail("eval.batch_size", "an integer >= 1")
    ks = config.eval.ks
    if not isinstance(ks, (tuple, list)) or not ks or not all(_is_int(k) and k >= 1 for k in ks):
        fail("eval.ks", "a non-empty list of integers >= 1")


def load_saved_config(saved: dict) -> ml_collections.ConfigDict:
    """A run's saved ``config.json`` (a dict) as a validated config.

    Keys the schema gained after the run was saved get the value that reproduces the run (e.g.
    ``steps_per_execution=1``); anything else missing or unknown is an error, as in
    :func:`validate_config`.
    """
    saved = dict(saved)
    for key, value in _ADDED_KEYS.items():
        saved.setdefault(key, value)
    if isinstance(saved.get("model"), dict):
        saved["model"] = dict(saved["model"])
        for key, value in _ADDED_MODEL_KEYS.items():
            saved["model"].setdefault(key, value)
    return validate_config(ml_collections.ConfigDict(saved))


def load_config_file(path: str, overrides=()) -> ml_collections.ConfigDict:
    """Loads ``get_config()`` from a config file and applies ``key=value`` overrides.

    Args:
        path: a Python file defining ``get_config()`` (as the files in ``configs/``), optionally
            followed by ``:<arg>`` for ``get_config(arg)``, as on the command line
            (``configs/benchmark.py:symile_xor,clip``).
        overrides: ``"key.path=value"`` strings, see :func:`apply_overrides`.

    Returns:
        The validated ``ConfigDict``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it has no ``get_config`` or the config is invalid.
    """
    path, has_arg, arg = os.fspath(path).partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist.")
    spec = importlib.util.spec_from_file_location(f"_tf_mmcl_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"Config file {path!r} defines no get_config().")
    config = module.get_config(arg) if has_arg else module.get_config()
    apply_overrides(config, overrides)
    return validate_config(config)


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as clip or adam


def apply_overrides(config: ml_collections.ConfigDict, overrides=()) -> ml_collections.ConfigDict:
    """Applies ``"a.b.c=value"`` overrides in place (values parsed as Python literals).

    Like ``--config.a.b.c=value`` on the command line, an override may only set an existing
    key (except inside the open ``dataset.params`` and ``model.objective_options``).

    ``model.objective=<new>`` switches the objective and resets ``model.objective_options`` to
    :func:`objective_defaults` of the new one (it is applied first, so
    ``model.objective_options.<key>=...`` overrides in the same call land on top of those).

    Args:
        config: the ``ConfigDict`` to edit.
        overrides: iterable of ``"key.path=value"`` strings.

    Returns:
        ``config``.

    Raises:
        ValueError: for a malformed override or an unknown key.

    Example:
        >>> c = apply_overrides(default_config(), ["epochs=1", "model.objective=clip"])
        >>> c.epochs, c.model.objective, c.model.objective_options.similarity
        (1, 'clip', 'cosine')
    """
    overrides = list(overrides or ())
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"Override {item!r} must look like key.path=value.")
    # The objective first: switching it resets the options, which the other overrides may then set.
    overrides.sort(key=lambda item: item.split("=", 1)[0].strip() != "model.objective")
    for item in overrides:
        path, text = item.split("=", 1)
        if path.strip() == "model.objective":
            objective = _parse_value(text.strip())
            if objective != config.model.objective:
                with config.model.unlocked() if hasattr(config.model, "unlocked") else _nullcontext():
                    config.model.objective = objective
                    config.model.objective_options = ml_collections.ConfigDict(objective_defaults(objective))
            continue
        parts = path.strip().split(".")
        node = config
        for depth, part in enumerate(parts[:-1]):
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise ValueError(f"Unknown config key {'.'.join(parts[: depth + 1])!r} in override {item!r}.")
            node = node[part]
        leaf = parts[-1]
        open_dict = ".".join(parts[:-1]) in _OPEN_KEYS
        if leaf not in node and not open_dict:
            close = difflib.get_close_matches(path.strip(), list(_flatten(default_config())), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"Unknown config key {path.strip()!r} in override {item!r}{hint}.")
        value = _parse_value(text.strip())
        with node.unlocked() if hasattr(node, "unlocked") else _nullcontext():
            try:
                node[leaf] = value
            except TypeError:
                # Same conversion rules as the command line: int -> float is fine, else a clear error.
                raise ValueError(
                    f"Override {item!r}: {path.strip()} holds a {type(node[leaf]).__name__}, got {value!r}."
                ) from None
    return config


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
