"""Schedule-free AdamW (Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky, 2024).

"The Road Less Scheduled" replaces the learning-rate schedule by an average. Three sequences
share the optimiser's step ``k``:

* ``z``: the base AdamW iterate, ``z <- z - lr_k * (g / (sqrt(v_hat) + eps) + wd * y)``;
* ``x``: a weighted running average of ``z``, ``x <- (1 - c) x + c z`` with
  ``c = w_k / sum_{i<=k} w_i`` and ``w_k = (k + 1) ** r * max_{i<=k}(lr_i) ** weight_lr_power``;
* ``y = (1 - beta_1) z + beta_1 x``: the point where the gradient ``g`` is taken.

``lr_k = learning_rate * min(1, (k + 1) / warmup_steps) * sqrt(1 - beta_2 ** (k + 1))`` (linear
warmup, no other schedule; Adam's bias correction applied to the step size, as in the paper's
Algorithm 1 and the authors' ``schedulefree.AdamWScheduleFree``, so it also enters the averaging
weights through ``max(lr_i)``), ``v`` is Adam's second moment and ``v_hat = v`` in the
denominator. ``bias_correction="second_moment"`` instead divides ``v`` by ``1 - beta_2 ** (k + 1)``
(``v_hat``, as plain Adam) and leaves ``lr_k`` without the factor; the two differ in where
``eps`` sits and, early in training, in the averaging weights. Weight decay is taken at ``y``
inside the step (not Keras' decoupled ``variable -= lr * wd * variable``).

The model's variables hold ``y`` during training (gradients are taken there); ``z`` and ``v``
are optimiser slots and ``x`` is not stored: it is recovered from ``y`` and ``z`` as
``x = (y - (1 - beta_1) z) / beta_1``. **The model must be evaluated and saved at ``x``**:
call :meth:`ScheduleFreeAdamW.use_average_weights` before evaluating or saving and
:meth:`ScheduleFreeAdamW.use_training_weights` before training again, or put
:class:`ScheduleFreeEvaluation` first in ``model.fit``'s callbacks, which does both around
validation, at every epoch end (so ``ModelCheckpoint`` / ``EarlyStopping`` after it see ``x``)
and at the end of training. Applying gradients while the variables hold ``x`` is an error.

The update is written so that ``y`` is advanced in place (the model's variables) without
storing ``x``:  ``y <- y + c (z - y) + lr_k (beta_1 (1 - c) - 1) d`` followed by
``z <- z - lr_k d``, with ``d`` the normalised, decayed gradient; expanding the three
definitions above gives the same ``y``.

TensorFlow backend (the library's); gradient accumulation and EMA are not supported (the
average is the point of the method).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

#: Where Adam's bias correction goes: the step size (the paper's Algorithm 1) or the second moment.
BIAS_CORRECTIONS = ("step_size", "second_moment")


@keras.saving.register_keras_serializable(package="tf_mmcl")
class ScheduleFreeAdamW(keras.optimizers.Optimizer):
    """Schedule-free AdamW: no learning-rate schedule, evaluate at the averaged parameters.

    Args:
        learning_rate: Peak step size (a float; warmup is ``warmup_steps``, not a schedule).
        beta_1: Interpolation between the average ``x`` and the iterate ``z`` where gradients
            are taken (the method's momentum), in ``(0, 1]``.
        beta_2: Adam's second-moment decay, in ``[0, 1)``.
        epsilon: Added to ``sqrt(v_hat)``.
        weight_decay: Decay coefficient applied at ``y`` inside the step (``0`` or ``None``:
            none). ``exclude_from_weight_decay`` works as in Keras' optimisers.
        warmup_steps: Linear warmup of the step size over this many steps (``0``: none).
        r: Polynomial weighting ``(k + 1) ** r`` of the average.
        weight_lr_power: Power of the running max learning rate in the average's weights.
        bias_correction: ``"step_size"`` (default; the published algorithm: ``lr_k`` times
            ``sqrt(1 - beta_2 ** (k + 1))``, ``sqrt(v) + eps`` in the denominator) or
            ``"second_moment"`` (``sqrt(v / (1 - beta_2 ** (k + 1))) + eps``, ``lr_k`` uncorrected).
        **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``name``, ... as in
            ``keras.optimizers.Optimizer``.

    Example:
        >>> import numpy as np, keras
        >>> from tf_mmcl.optimizers import ScheduleFreeAdamW, ScheduleFreeEvaluation
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer=ScheduleFreeAdamW(1e-2, warmup_steps=5), loss="mse")
        >>> x, y = np.ones((8, 3), "float32"), np.ones((8, 1), "float32")
        >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[ScheduleFreeEvaluation()])
        >>> bool(model.optimizer.at_average)  # the model now holds x: evaluate / save it
        True
    """

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        warmup_steps=0,
        r=0.0,
        weight_lr_power=2.0,
        bias_correction="step_size",
        name="schedule_free_adamw",
        **kwargs,
    ):
        if kwargs.get("use_ema"):
            raise ValueError(
                "ScheduleFreeAdamW: `use_ema=True` is not supported; the optimiser's "
                "own average x is what to evaluate (see ScheduleFreeEvaluation)."
            )
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError(
                "ScheduleFreeAdamW: `gradient_accumulation_steps` is not supported; use a larger batch instead."
            )
        if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or callable(learning_rate):
            raise ValueError(
                "ScheduleFreeAdamW: `learning_rate` must be a number (got a "
                f"schedule {learning_rate!r}); the method replaces schedules, use "
                "`warmup_steps` for warmup."
            )
        if not 0.0 < float(beta_1) <= 1.0:
            raise ValueError(f"ScheduleFreeAdamW: `beta_1` must be in (0, 1], got {beta_1}.")
        if not 0.0 <= float(beta_2) < 1.0:
            raise ValueError(f"ScheduleFreeAdamW: `beta_2` must be in [0, 1), got {beta_2}.")
        if bias_correction not in BIAS_CORRECTIONS:
            raise ValueError(
                f"ScheduleFreeAdamW: `bias_correction` must be one of {BIAS_CORRECTIONS}, got {bias_correction!r}."
            )
        if int(warmup_steps) < 0:
            raise ValueError(f"ScheduleFreeAdamW: `warmup_steps` must be >= 0, got {warmup_steps}.")
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.warmup_steps = int(warmup_steps)
        self.r = float(r)
        self.weight_lr_power = float(weight_lr_power)
        self.bias_correction = bias_correction

    # ----------------------------------------------------------------------------- state
    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # z starts at the initial parameters (x = y = z at step 0).
        self._z = [
            self.add_variable_from_reference(
                v, "z", initializer=lambda shape, dtype, v=v: ops.cast(ops.convert_to_tensor(v), dtype)
            )
            for v in var_list
        ]
        self._v = [self.add_variable_from_reference(v, "v", initializer="zeros") for v in var_list]
        self._lr_max = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="lr_max", aggregation="only_first_replica"
        )
        self._weight_sum = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="weight_sum", aggregation="only_first_replica"
        )
        # 1.0 while the model's variables hold x (after use_average_weights), 0.0 when they hold y.
        self._at_average = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="at_average", aggregation="only_first_replica"
        )

    @property
    def at_average(self) -> bool:
        """True while the model's variables hold the average ``x`` (evaluate / save there)."""
        return self.built and bool(ops.convert_to_tensor(self._at_average) > 0.5)

    def _step_lr(self, learning_rate):
        """``lr_k``: the learning rate with linear warmup (and the step-size bias correction)."""
        k = ops.cast(self.iterations, "float32")
        lr = ops.cast(learning_rate, "float32")
        if self.warmup_steps > 0:
            lr = lr * ops.minimum(1.0, (k + 1.0) / float(self.warmup_steps))
        if self.bias_correction == "step_size":
            lr = lr * ops.sqrt(1.0 - ops.power(self.beta_2, k + 1.0))
        return lr

    def _next_averaging(self, learning_rate):
        """(lr_k, new lr_max, new weight_sum, c_k) from the stored state, without assigning."""
        k = ops.cast(self.iterations, "float32")
        lr = self._step_lr(learning_rate)
        lr_max = ops.maximum(ops.convert_to_tensor(self._lr_max), lr)
        weight = ops.power(k + 1.0, self.r) * ops.power(lr_max, self.weight_lr_power)
        weight_sum = ops.convert_to_tensor(self._weight_sum) + weight
        ckp1 = ops.where(weight_sum > 0, weight / ops.maximum(weight_sum, 1e-30), 0.0)
        return lr, lr_max, weight_sum, ckp1

    # ----------------------------------------------------------------------------- update
    def _apply_weight_decay(self, variables):
        # Weight decay is part of the step at y (update_step); Keras' decoupled decay is not used.
        return

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        tf.debugging.Assert(
            self._at_average < 0.5,
            [
                "ScheduleFreeAdamW: gradients were applied while the model holds the average x; "
                "call optimizer.use_training_weights() before training (ScheduleFreeEvaluation "
                "does it in fit)."
            ],
        )
        super()._backend_update_step(grads, trainable_variables, learning_rate)
        # Every variable's update_step read the old (lr_max, weight_sum); advance them once.
        _, lr_max, weight_sum, _ = self._next_averaging(learning_rate)
        self._lr_max.assign(lr_max)
        self._weight_sum.assign(weight_sum)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr, _, _, ckp1 = self._next_averaging(learning_rate)
        lr = ops.cast(lr, dtype)
        ckp1 = ops.cast(ckp1, dtype)
        k = ops.cast(self.iterations, dtype)
        index = self._get_variable_index(variable)
        z, v = self._z[index], self._v[index]
        gradient = ops.cast(gradient, dtype)

        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        if self.bias_correction == "step_size":  # the correction is in lr_k
            direction = gradient / (ops.sqrt(v) + self.epsilon)
        else:
            bias_correction2 = 1.0 - ops.power(ops.cast(self.beta_2, dtype), k + 1.0)
            direction = gradient / (ops.sqrt(v / bias_correction2) + self.epsilon)
        if self.weight_decay and self._use_weight_decay(variable):
            direction = direction + ops.cast(self.weight_decay, dtype) * variable
        y_new = variable + ckp1 * (z - variable) + lr * (self.beta_1 * (1.0 - ckp1) - 1.0) * direction
        self.assign(z, z - lr * direction)
        self.assign(variable, y_new)

    # ----------------------------------------------------------------------------- swap
    def use_average_weights(self):
        """Put the average ``x`` into the model's variables (for evaluating or saving).

        Idempotent; a no-op before the first step (then ``x = y = z``).
        """
        if not self.built or self.at_average:
            return
        # x = y + (1 - 1 / beta_1) (z - y)
        coefficient = 1.0 - 1.0 / self.beta_1
        for variable, z in zip(self._trainable_variables, self._z):
            variable.assign(variable + ops.cast(coefficient, variable.dtype) * (z - variable))
        self._at_average.assign(1.0)

    def use_training_weights(self):
        """Put ``y`` back into the model's variables (before training again). Idempotent."""
        if not self.built or not self.at_average:
            return
        # y = x + (1 - beta_1) (z - x)
        coefficient = 1.0 - self.beta_1
        for variable, z in zip(self._trainable_variables, self._z):
            variable.assign(variable + ops.cast(coefficient, variable.dtype) * (z - variable))
        self._at_average.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "warmup_steps": self.warmup_steps,
                "r": self.r,
                "weight_lr_power": self.weight_lr_power,
                "bias_correction": self.bias_correction,
            }
        )
        return config


class ScheduleFreeEvaluation(keras.callbacks.Callback):
    """Keeps a schedule-free model at ``y`` while it trains and at ``x`` otherwise.

    Put it **first** in ``model.fit``'s callbacks: it swaps to the average ``x`` before
    validation and at every epoch end (so ``ModelCheckpoint`` and ``EarlyStopping
    (restore_best_weights=True)`` placed after it record ``x``), back to ``y`` when an epoch
    starts, and leaves ``x`` in the model when training ends. A no-op for other optimisers.

    Example:
        >>> import keras
        >>> from tf_mmcl.optimizers import ScheduleFreeEvaluation
        >>> callbacks = [ScheduleFreeEvaluation(), keras.callbacks.ModelCheckpoint("m.keras")]
    """

    def _optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        return optimizer if isinstance(optimizer, ScheduleFreeAdamW) else None

    def _to_training(self):
        if (optimizer := self._optimizer()) is not None:
            optimizer.use_training_weights()

    def _to_average(self):
        if (optimizer := self._optimizer()) is not None:
            optimizer.use_average_weights()

    def on_train_begin(self, logs=None):
        self._to_training()

    def on_epoch_begin(self, epoch, logs=None):
        self._to_training()

    def on_test_begin(self, logs=None):
        self._to_average()

    def on_epoch_end(self, epoch, logs=None):
        self._to_average()

    def on_train_end(self, logs=None):
        self._to_average()
