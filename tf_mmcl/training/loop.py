"""The one training path: ``model.fit`` over a deterministic batch stream, with exact resume.

:func:`fit` is what ``tf_mmcl.training.train`` (``tools/train.py``) and the reproduction
experiments (``tools/reproduce.py``) train with. Three properties make a resumed run the run
that was interrupted:

* **Data order is a function of (seed, step)**, not of the iterator's history:
  :func:`batch_stream` shuffles pass ``p`` over the data with the seed ``(seed, p)``, so the
  batches from any step on can be rebuilt in a fresh process.
* **The whole state is backed up after every epoch** (:class:`~tf_mmcl.training.files.BackupStore`):
  model weights, optimizer variables (iteration count included), the state of every
  ``keras.random.SeedGenerator`` the model draws from (sampled negatives, permutations,
  dropout; see :func:`tf_mmcl.distribute.seed_generators`) and the metrics history.
* **Backups are atomic and verified**: a process killed at any moment, even while writing,
  resumes from the last complete epoch and recomputes the rest exactly.

:class:`FiniteMonitor` is the divergence guard: inside the compiled train step (``tf.function``
and XLA alike) it checks the inputs, the loss, every gradient and every weight for NaN/Inf and
records the first step where one is not finite; :func:`fit` then stops with a
:class:`DivergenceError` naming that step and tensor, before anything non-finite is saved.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from tf_mmcl.training.files import BackupStore

__all__ = ["DivergenceError", "FiniteMonitor", "FitResult", "batch_stream", "fit", "model_state"]

_NO_STEP = -1


class DivergenceError(FloatingPointError):
    """Training produced a non-finite input, loss, gradient or weight."""


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: ``{metric: [value per epoch]}`` over all epochs, restored ones included.
        epochs_done: completed epochs.
        resumed_from: the epoch the run resumed from (0: a fresh start).
        seconds: wall time of this call's ``model.fit``.
        batch_losses: the loss of every step this call ran (when ``record_batch_losses``).
    """

    history: dict
    epochs_done: int
    resumed_from: int
    seconds: float
    batch_losses: list = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------------- data
def _as_arrays(data):
    if not isinstance(data, Mapping) or not data:
        raise ValueError(
            f"Training data must be a non-empty dict of arrays (feature name -> array with the "
            f"examples on axis 0), got {type(data).__name__}."
        )
    arrays = {k: np.asarray(v) for k, v in data.items()}
    sizes = {k: (len(v) if v.ndim else 0) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"Training arrays have different numbers of examples: {sizes}.")
    return arrays, next(iter(sizes.values()))


def batch_stream(data, batch_size: int, seed: int, start_step: int = 0) -> tf.data.Dataset:
    """An endless stream of training batches whose step ``k`` depends only on ``(seed, k)``.

    Pass ``p`` over the data is a stateless permutation seeded with ``(seed, p)`` cut into
    ``num_examples // batch_size`` batches (the remainder is dropped); ``start_step`` skips to
    step ``k`` without replaying the passes before it, so a resumed run sees exactly the
    batches the uninterrupted run saw.

    Args:
        data: dict of arrays with the same leading size (the examples).
        batch_size: examples per batch (<= the number of examples).
        seed: the shuffle seed.
        start_step: the first step to yield.

    Returns:
        The batched, prefetched ``tf.data.Dataset`` (infinite).

    Example:
        >>> import numpy as np
        >>> ds = batch_stream({"a": np.arange(6)}, 2, seed=0)
        >>> later = batch_stream({"a": np.arange(6)}, 2, seed=0, start_step=4)
        >>> [b["a"].numpy().tolist() for b in ds.skip(4).take(2)] == [
        ...     b["a"].numpy().tolist() for b in later.take(2)]
        True
    """
    arrays, n = _as_arrays(data)
    batch_size = int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the number of training examples), got {batch_size}.")
    per_pass = n // batch_size
    first_pass, offset = divmod(int(start_step), per_pass)
    seed = int(seed) % (2**31)
    tensors = {k: tf.constant(v) for k, v in arrays.items()}

    def one_pass(p):
        # Stateless: each pass has its own fixed order, whatever ran before it.
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), p])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True)

    indices = tf.data.Dataset.range(first_pass, 2**62).flat_map(one_pass)
    if offset:
        indices = indices.skip(offset)
    batches = indices.map(
        lambda idx: {k: tf.gather(t, idx) for k, t in tensors.items()},
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return batches.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------- state
def _state_groups(model):
    from tf_mmcl.distribute import seed_generators

    if model.optimizer is None:
        raise ValueError("The model must be compiled (model.compile(optimizer=...)) before training.")
    return {
        "model": list(model.weights),
        "optimizer": list(model.optimizer.variables),
        "rng": [g.state for g in seed_generators(model)],
    }


def model_state(model) -> dict:
    """Every variable that decides how training continues, as ``{name: np.ndarray}``.

    Model weights, optimizer variables and the random-number states, keyed
    ``"<group>/<index>"`` in a stable order (the order a model of the same config creates them).
    """
    out = {}
    for group, variables in _state_groups(model).items():
        for i, v in enumerate(variables):
            out[f"{group}/{i:05d}"] = np.asarray(keras.ops.convert_to_numpy(v.value))
    return out


def _restore_state(model, arrays, source):
    groups = _state_groups(model)
    expected = {f"{g}/{i:05d}": v for g, vs in groups.items() for i, v in enumerate(vs)}
    if set(expected) != set(arrays):
        raise ValueError(
            f"The backup {source} holds {len(arrays)} arrays, the model and optimizer have "
            f"{len(expected)}: it was written by another model. Use a new workdir or --overwrite."
        )
    for key, var in expected.items():
        value = arrays[key]
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(
                f"The backup {source} does not fit this model: {key} ({getattr(var, 'path', var.name)}) "
                f"has shape {tuple(value.shape)}, the model {tuple(var.shape)}. Use a new workdir or "
                "--overwrite."
            )
        var.assign(value)


# ---------------------------------------------------------------------------------- guard
class FiniteMonitor:
    """Records the first training step with a non-finite input, loss, gradient or weight.

    :func:`fit` sets it as ``model.finite_monitor``; ``MultimodalContrastiveModel.train_step``
    then runs :meth:`train_step` (Keras' step plus the checks). The checks run inside the
    compiled step, so they work under ``tf.function``, XLA and ``steps_per_execution > 1``: every step one
    ``is_finite`` over all the values at once; only when that fails, which tensor (a
    ``tf.cond``). The first bad step and tensor are kept (later steps do not overwrite them).
    """

    def __init__(self, strategy=None):
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            kw = dict(trainable=False, dtype=tf.int64, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.step = tf.Variable(_NO_STEP, name="nonfinite_step", **kw)
            self.index = tf.Variable(0, name="nonfinite_tensor", **kw)
        self.names = []

    def reset(self):
        self.step.assign(_NO_STEP)
        self.index.assign(0)

    def _record(self, step, named):
        names, tensors = zip(*named)
        self.names = list(names)  # trace time: the same list for every trace of this model
        # Fast path, every step: one finiteness test over all values at once (the flattened
        # tensors concatenated). Which tensor failed is worked out only when one did (tf.cond).
        flat = [tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tensors]
        all_finite = tf.reduce_all(tf.math.is_finite(tf.concat(flat, axis=0)))
        hit = tf.logical_and(tf.logical_not(all_finite), tf.equal(self.step, _NO_STEP))

        def first_bad():
            finite = tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in flat])
            return tf.argmax(tf.cast(tf.logical_not(finite), tf.int32), output_type=tf.int64)

        index = tf.cond(hit, first_bad, lambda: tf.constant(0, tf.int64))
        self.index.assign(tf.where(hit, index, self.index))
        self.step.assign(tf.where(hit, tf.cast(step, tf.int64), self.step))

    def train_step(self, model, data):
        """Keras' TensorFlow ``train_step`` with the finite checks (called by the model)."""
        from keras.src.trainers.data_adapters import data_adapter_utils

        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        step = tf.identity(model.optimizer.iterations.value)  # read now: apply_gradients increments it
        named = []
        if isinstance(x, Mapping):
            named += [
                (f"input {k!r}", v) for k, v in x.items() if hasattr(v, "dtype") and tf.as_dtype(v.dtype).is_floating
            ]
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            model._loss_tracker.update_state(
                keras.src.losses.loss.unscale_loss_for_distribution(loss),
                sample_weight=tf.shape(tf.nest.flatten(x)[0])[0],
            )
            scaled = model.optimizer.scale_loss(loss)
        named.append(("loss", loss))
        weights = model.trainable_weights
        gradients = tape.gradient(scaled, weights)
        named += [(f"gradient of {w.path}", g) for w, g in zip(weights, gradients) if g is not None]
        model.optimizer.apply_gradients(zip(gradients, weights))
        named += [(f"weight {w.path}", w.value) for w in weights]
        self._record(step, named)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def failure(self):
        """``(step, tensor name)`` of the first non-finite step, or None."""
        step = int(self.step.numpy())
        if step == _NO_STEP:
            return None
        index = int(self.index.numpy())
        return step, self.names[index] if index < len(self.names) else f"tensor #{index}"


# ---------------------------------------------------------------------------------- callback
class _RunCallback(keras.callbacks.Callback):
    """Checks for divergence after every step; backs up and reports after every epoch."""

    def __init__(self, monitor, history, store, state_extra, on_epoch_saved, steps_per_epoch, record_batch_losses):
        super().__init__()
        self.monitor, self.history, self.store = monitor, history, store
        self.state_extra, self.on_epoch_saved = state_extra, on_epoch_saved
        self.steps_per_epoch = steps_per_epoch
        self.record_batch_losses = record_batch_losses
        self.batch_losses = []
        self._running = []

    def on_epoch_begin(self, epoch, logs=None):
        self._running = []

    def on_train_batch_end(self, batch, logs=None):
        if self.monitor is not None:
            failure = self.monitor.failure()
            if failure is not None:
                step, name = failure
                raise DivergenceError(
                    f"Training diverged at step {step} (epoch {step // self.steps_per_epoch + 1}, batch "
                    f"{step % self.steps_per_epoch + 1}): {name} is not finite (NaN or Inf). Nothing after the "
                    "last completed epoch was saved (its backup and checkpoint are kept). Training is "
                    "deterministic, so the same settings diverge again at this step: lower the learning "
                    "rate or remove the NaN/Inf from the data."
                )
        if self.record_batch_losses and logs and "loss" in logs:
            # Keras logs the running mean of the epoch; recover each step's loss from it.
            mean = float(logs["loss"])
            k = len(self._running) + 1
            total = mean * k
            self.batch_losses.append(total - (self._running[-1] if self._running else 0.0))
            self._running.append(total)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        bad = sorted(k for k, v in logs.items() if not math.isfinite(v))
        if bad:
            raise DivergenceError(
                f"Training diverged in epoch {epoch + 1}: the metric(s) {bad} are not finite "
                f"({ {k: logs[k] for k in bad} }). Nothing of this epoch was saved; check the "
                "validation data for NaN/Inf or lower the learning rate."
            )
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        if self.store is not None:
            state = dict(self.state_extra, history=self.history)
            self.store.save(epoch + 1, model_state(self.model), state)
        if self.on_epoch_saved is not None:
            self.on_epoch_saved(epoch + 1, self.history, self.model)


def fit(
    model,
    train_data,
    *,
    batch_size: int,
    epochs: int,
    seed: int,
    steps_per_epoch: int | None = None,
    validation_data=None,
    backup_dir: str | None = None,
    backup_state: Mapping | None = None,
    accept_backup: Callable | None = None,
    on_start: Callable | None = None,
    on_epoch_saved: Callable | None = None,
    check_finite: bool = True,
    record_batch_losses: bool = False,
    verbose=0,
    callbacks=(),
) -> FitResult:
    """Trains a compiled model with ``model.fit``, resumably and with a divergence guard.

    Args:
        model: a compiled Keras model (``MultimodalContrastiveModel`` for the finite checks).
        train_data: dict of arrays (feature name -> array, examples on axis 0).
        batch_size: examples per step.
        epochs: total epochs (>= 1), counting those restored from a backup.
        seed: seed of the data order (see :func:`batch_stream`).
        steps_per_epoch: steps per epoch (None: one pass, ``num_examples // batch_size``).
        validation_data: evaluated after every epoch (``val_*`` metrics), e.g. a batched dataset.
        backup_dir: where to back up the state after every epoch and resume from (None: no backup).
        backup_state: JSON-able extras stored in every backup (e.g. the config fingerprint).
        accept_backup: ``f(state) -> None | reason``: a backup whose state gets a reason is
            ignored (with a warning).
        on_start: ``f(history)`` once the state is restored (the restored history; ``{}`` on a
            fresh start), before training.
        on_epoch_saved: ``f(epochs_done, history, model)`` after each epoch's backup is complete
            (write checkpoints and metrics here).
        check_finite: run the :class:`FiniteMonitor` in the train step (needs a model whose
            ``train_step`` honours ``finite_monitor``, as ``MultimodalContrastiveModel``).
        record_batch_losses: return every step's loss in ``FitResult.batch_losses``.
        verbose: Keras verbosity.
        callbacks: more Keras callbacks.

    Returns:
        :class:`FitResult`.

    Raises:
        DivergenceError: a non-finite input, loss, gradient, weight or epoch metric.
        ValueError: bad sizes, an uncompiled model, a backup of another model.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}.")
    _, n = _as_arrays(train_data)
    if not 1 <= int(batch_size) <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the number of training examples), got {batch_size}.")
    steps = int(steps_per_epoch or n // int(batch_size))
    if steps < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}.")
    if model.optimizer is None:
        raise ValueError("The model must be compiled (model.compile(optimizer=...)) before training.")
    if not model.built:
        model(next(iter(batch_stream(train_data, batch_size, seed))))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)

    store = BackupStore(backup_dir) if backup_dir else None
    history, initial_epoch = {}, 0
    restored = store.latest(accept_backup) if store is not None else None
    if restored is not None:
        state, arrays = restored
        _restore_state(model, arrays, f"{backup_dir} (epoch {state['epoch']})")
        history = {k: [float(v) for v in vals] for k, vals in state.get("history", {}).items()}
        initial_epoch = int(state["epoch"])
    if on_start is not None:
        on_start(history)
    monitor = None
    if check_finite:
        monitor = FiniteMonitor(model.distribute_strategy)
    callback = _RunCallback(
        monitor, history, store, dict(backup_state or {}), on_epoch_saved, steps, record_batch_losses
    )
    seconds = 0.0
    if initial_epoch < epochs:
        stream = batch_stream(train_data, batch_size, seed, start_step=initial_epoch * steps)
        model.finite_monitor = monitor
        start = time.perf_counter()
        try:
            model.fit(
                stream,
                epochs=int(epochs),
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                validation_data=validation_data,
                callbacks=[callback, *callbacks],
                shuffle=False,
                verbose=verbose,
            )
        finally:
            model.finite_monitor = None
            # Keras caches the compiled step with the monitor's variables; drop it with the monitor.
            model.train_function = None
        seconds = time.perf_counter() - start
    return FitResult(
        history=history,
        epochs_done=max(initial_epoch, int(epochs)),
        resumed_from=initial_epoch,
        seconds=seconds,
        batch_losses=callback.batch_losses,
    )
