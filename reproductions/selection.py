"""Checkpoint selection on the validation split and bootstrap test sets (the papers' protocol).

The Symile paper tests the checkpoint with the best validation score and reports the mean over
10 bootstrap resamples of the test set. :func:`train_select_best` trains with ``model.fit``
(AdamW, the library's :func:`tf_mmcl.training.loop.fit`), validates every ``val_every`` steps and
keeps both the final and the best-validation weights; :func:`bootstrap_accuracy` resamples per-example correctness.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import keras
import numpy as np

__all__ = ["train_select_best", "bootstrap_accuracy"]


class _BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the lowest ``validate()`` value (first on ties)."""

    def __init__(self, validate: Callable[[], float]):
        super().__init__()
        self._validate = validate
        self.best_value = math.inf
        self.best_epoch = -1
        self.best_weights = None
        self.values = []

    def on_epoch_end(self, epoch, logs=None):
        value = float(self._validate())
        self.values.append(value)
        if value < self.best_value:
            self.best_value, self.best_epoch = value, epoch
            self.best_weights = [np.array(w) for w in self.model.get_weights()]


def train_select_best(
    model,
    train: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray],
    batch_size: int,
    steps: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    val_every: int,
    validate: Callable | None = None,
) -> dict:
    """Trains ``model`` for ``steps`` AdamW steps, validating every ``val_every`` steps.

    Args:
        model: a :class:`~tf_mmcl.models.MultimodalContrastiveModel` (built here if needed).
        train, val: arrays keyed by modality.
        batch_size: examples per step (<= the training set size).
        steps: optimizer steps (>= 1); the last validation is at the final step.
        learning_rate, weight_decay: AdamW's.
        seed: batch shuffling seed.
        val_every: steps between validations (>= 1; an "epoch" of ``fit``).
        validate: ``(model) -> float``, lower is better; default: the objective's loss on the
            whole validation split (one batch).

    Returns:
        ``{"final_weights", "best_weights", "best_step", "val_values", "final_loss", "seconds"}``;
        the model is left holding the final weights.

    Raises:
        ValueError: on bad sizes or a non-finite training loss.
    """
    from tf_mmcl.distribute import seed_generators
    from tf_mmcl.training.loop import fit

    keys = [k for k in train if k in model.modalities]
    n = len(train[keys[0]])
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] (the training set size), got {batch_size}.")
    if steps < 1 or val_every < 1:
        raise ValueError(f"steps and val_every must be >= 1, got {steps} and {val_every}.")
    data = {k: np.asarray(train[k]) for k in keys}
    val_data = {k: np.asarray(val[k]) for k in keys}
    model.in_batch_metrics = False  # as common.train_model: scored on held-out data afterwards
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay))
    if validate is None:

        def validate():
            # The loss draws random negatives (Symile "n", Gated Symile): put the generators back,
            # so validating does not change the training run's negatives.
            generators = seed_generators(model)
            saved = [np.array(g.state) for g in generators]
            value = float(model.compute_loss(x=val_data, y_pred=model(val_data, training=False), training=False))
            for g, state in zip(generators, saved):
                g.state.assign(state)
            return value
    else:
        user_validate = validate

        def validate():
            return float(user_validate(model))

    keeper = _BestWeights(validate)
    epochs = int(math.ceil(steps / val_every))
    start = time.time()
    # The library's training path (as common.train_model): one continuous batch stream, so with
    # val_every dividing steps the final weights are those of an unvalidated run of `steps` steps.
    result = fit(
        model,
        data,
        batch_size=int(batch_size),
        epochs=epochs,
        steps_per_epoch=int(val_every),
        seed=int(seed),
        callbacks=[keeper],
        record_batch_losses=True,
    )
    losses = np.asarray(result.batch_losses, np.float64)
    tail = max(1, steps // 10)
    return {
        "final_weights": [np.array(w) for w in model.get_weights()],
        "best_weights": keeper.best_weights,
        "best_step": (keeper.best_epoch + 1) * int(val_every),
        "steps_run": epochs * int(val_every),
        "val_values": keeper.values,
        "final_loss": float(losses[-tail:].mean()),
        "seconds": round(time.time() - start, 2),
    }


def bootstrap_accuracy(correct, num_resamples: int = 10, seed: int = 0) -> list:
    """Accuracy on ``num_resamples`` bootstrap resamples (with replacement, same size) of the test set.

    Args:
        correct: bool/0-1 array (N,), per-example correctness.
        num_resamples: number of bootstrap test sets.
        seed: resampling seed.

    Returns:
        list of ``num_resamples`` floats.

    Example:
        >>> acc = bootstrap_accuracy(np.array([1, 1, 0, 1]), num_resamples=3, seed=0)
        >>> len(acc), all(0.0 <= a <= 1.0 for a in acc)
        (3, True)
    """
    correct = np.asarray(correct, np.float64).reshape(-1)
    if correct.size == 0 or num_resamples < 1:
        raise ValueError(f"need a non-empty test set and num_resamples >= 1, got {correct.size} and {num_resamples}.")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, correct.size, size=(int(num_resamples), correct.size))
    return [float(v) for v in correct[idx].mean(axis=1)]
