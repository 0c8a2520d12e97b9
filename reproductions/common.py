"""Shared pieces of the reproduction experiments: model building, training, statistics.

The experiments train :class:`tf_mmcl.models.MultimodalContrastiveModel` through the library's
one training path, :func:`tf_mmcl.training.fit` (``model.fit`` with AdamW and the divergence
guard), with the in-batch top-1 metrics off (``in_batch_metrics=False``): on the XOR benchmarks
they cost as much as the loss itself.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_mmcl.keys import mask_modality
from tf_mmcl.layers import MLPEncoder
from tf_mmcl.models import MultimodalContrastiveModel

__all__ = [
    "build_model",
    "train_model",
    "mean_std",
    "fmt_mean_std",
    "fmt_pct",
    "machine_description",
    "Timer",
]

# Keys of a method spec (a config entry) that are not objective options.
_SPEC_KEYS = (
    "label",
    "objective",
    "embedding_dim",
    "learn_logit_scale",
    "logit_scale_init",
    "max_logit_scale",
    "jit_compile",
    "options",
)


def build_model(
    spec: Mapping,
    modalities: Sequence[str],
    encoder: str | Mapping = "identity",
    embedding_dim: int = 16,
    logit_scale_init: float | None = None,
    learn_logit_scale: bool | None = None,
) -> MultimodalContrastiveModel:
    """Builds the contrastive model of one method.

    Args:
        spec: the method spec, a mapping with ``objective`` and optional ``options`` (objective
            options), ``embedding_dim``, ``logit_scale_init``, ``max_logit_scale`` (the clamp of
            the learned scale) and ``learn_logit_scale`` overriding the experiment-wide defaults.
        modalities: the modality names.
        encoder: ``"identity"`` (the projection head is then the only, linear, encoder: the
            reference XOR model ``Linear(d_v -> d) + L2``) or a mapping of
            :class:`~tf_mmcl.layers.MLPEncoder` arguments (``hidden_units``, ``output_dim``).
        embedding_dim: default embedding width.
        logit_scale_init: default initial logit scale (multiplier); None keeps the library's.
        learn_logit_scale: default for learning the scale; None keeps the objective's default.

    Returns:
        An unbuilt :class:`~tf_mmcl.models.MultimodalContrastiveModel`.

    Raises:
        ValueError: on an unknown spec key or encoder kind.
    """
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in method spec {dict(spec)!r}; allowed: {list(_SPEC_KEYS)}.")
    if "objective" not in spec:
        raise ValueError(f"Method spec {dict(spec)!r} lacks 'objective'.")
    if encoder == "identity":
        encoders = {m: keras.layers.Identity(name=f"identity_{m}") for m in modalities}
    elif isinstance(encoder, Mapping):
        encoders = {
            m: MLPEncoder(
                hidden_units=tuple(encoder.get("hidden_units", ())),
                output_dim=encoder.get("output_dim"),
                name=f"encoder_{m}",
            )
            for m in modalities
        }
    else:
        raise ValueError(f"encoder must be 'identity' or a mapping of MLPEncoder arguments, got {encoder!r}.")
    kwargs = dict(spec.get("options", {}) or {})
    scale = spec.get("logit_scale_init", logit_scale_init)
    if scale is not None:
        kwargs["logit_scale_init"] = float(scale)
    if spec.get("max_logit_scale") is not None:
        kwargs["max_logit_scale"] = float(spec["max_logit_scale"])
    learn = spec.get("learn_logit_scale", learn_logit_scale)
    if learn is not None:
        kwargs["learn_logit_scale"] = bool(learn)
    return MultimodalContrastiveModel(
        encoders, embedding_dim=int(spec.get("embedding_dim", embedding_dim)), objective=spec["objective"], **kwargs
    )


def train_model(
    model: MultimodalContrastiveModel,
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    steps: int,
    learning_rate: float,
    weight_decay: float = 0.01,
    seed: int = 0,
    jit_compile: bool = False,
    keys: Sequence[str] | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict:
    """Trains ``model`` with AdamW for ``steps`` steps through :func:`tf_mmcl.training.fit`.

    The one training path of the library (``model.fit`` on :func:`tf_mmcl.training.batch_stream`:
    the training arrays reshuffled every pass from ``seed``, ``drop_remainder``), with its
    divergence guard; the in-batch top-1 metrics are switched off (``in_batch_metrics=False``),
    which on the XOR benchmarks cost as much as the loss. The loss is the model's own
    ``compute_loss``.

    Args:
        model: a ``MultimodalContrastiveModel`` (built on the first batch if needed; compiled here).
        arrays: training arrays: the modalities and any ``"<m>_mask"`` keys.
        batch_size: examples per step (<= the number of examples).
        steps: optimizer steps (>= 1).
        learning_rate: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        seed: seed of the shuffling.
        jit_compile: XLA-compile the step (faster for the gated objective on CPU).
        keys: which keys of ``arrays`` to feed (default: the model's modalities and masks present).
        optimizer: another optimizer (``learning_rate`` and ``weight_decay`` are then unused).
        callbacks: Keras callbacks of the fit (e.g. evaluations at given steps).

    Returns:
        ``{"first_loss", "final_loss" (mean of the last 10 % of steps), "steps", "seconds"}``.

    Raises:
        ValueError: on bad sizes.
        tf_mmcl.training.DivergenceError: a non-finite input, loss, gradient or weight.
    """
    from tf_mmcl.training.loop import fit

    if keys is None:
        keys = [k for k in arrays if k in model.modalities or mask_modality(k) in model.modalities]
    data = {k: np.asarray(arrays[k]) for k in keys}
    n = len(next(iter(data.values())))
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the training set size), got {batch_size}.")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    model.in_batch_metrics = False  # the loss only: these runs are scored on held-out data afterwards
    if optimizer is None:
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    model.compile(optimizer=optimizer, jit_compile=bool(jit_compile))
    start = time.time()
    result = fit(
        model,
        data,
        batch_size=int(batch_size),
        epochs=1,
        steps_per_epoch=int(steps),
        seed=int(seed),
        record_batch_losses=True,
        callbacks=list(callbacks),
    )
    losses = np.asarray(result.batch_losses, np.float64)
    tail = max(1, steps // 10)
    return {
        "first_loss": float(losses[0]),
        "final_loss": float(losses[-tail:].mean()),
        "steps": int(steps),
        "seconds": round(time.time() - start, 2),
    }


class EvaluateAt(keras.callbacks.Callback):
    """Calls ``fn(step, model)`` after each optimizer step listed in ``steps`` (1-based): a learning curve."""

    def __init__(self, steps: Sequence[int], fn):
        super().__init__()
        self.steps, self.fn = {int(s) for s in steps}, fn

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 in self.steps:
            self.fn(batch + 1, self.model)


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for a single value) of a list of numbers."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value.")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt_mean_std(values, scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± std"`` of ``values * scale`` (percent by default); one value alone, no spread to show."""
    m, s = mean_std(values)
    if len(values) == 1:
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def fmt_pct(value: float, digits: int = 1) -> str:
    """A fraction as a percent string."""
    return f"{100.0 * float(value):.{digits}f}"


def machine_description() -> str:
    """A one-line description of the machine: CPU model, cores, load, TF version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    cores = os.cpu_count()
    try:
        load = f", load avg {os.getloadavg()[0]:.1f}"
    except OSError:
        load = ""
    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s)" if gpus else "CPU only"
    return f"{cpu}, {cores} cores ({device}{load} at start), TF {tf.__version__}, Keras {keras.__version__}"


class Timer:
    """Wall-clock timer: ``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self._start = time.time()
        self.seconds = math.nan
        return self

    def __exit__(self, *exc):
        self.seconds = time.time() - self._start
        return False
