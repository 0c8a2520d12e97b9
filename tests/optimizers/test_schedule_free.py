"""ScheduleFreeAdamW against direct NumPy transcriptions of the paper's update rule.

Algorithm 1 of Defazio et al. (2024), "The Road Less Scheduled": ``gamma_t = gamma *
sqrt(1 - beta_2^t) * min(1, t / T_warmup)`` (Adam's bias correction on the step size, which also
enters the averaging weights ``gamma_max^2``), ``z <- z - gamma_t (g / (sqrt(v) + eps) + lambda y)``;
the ``"second_moment"`` variant corrects ``v`` instead. A second transcription follows the
reference package's in-place form (``y`` advanced without storing ``x``), at the Gated Symile
authors' settings.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_mmcl.optimizers import ScheduleFreeAdamW, ScheduleFreeEvaluation


def reference_schedule_free(
    w0,
    grad_fn,
    steps,
    lr,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    warmup_steps=0,
    r=0.0,
    weight_lr_power=2.0,
    bias_correction="step_size",
):
    """The y / z / x sequences written out separately (x stored explicitly, float64).

    Returns the y and x iterates after each step.
    """
    z = w0.astype(np.float64).copy()
    x = z.copy()
    v = np.zeros_like(z)
    lr_max, weight_sum = 0.0, 0.0
    ys, xs = [], []
    for k in range(steps):
        y = (1 - beta1) * z + beta1 * x
        g = grad_fn(y)
        lr_k = lr * min(1.0, (k + 1) / warmup_steps) if warmup_steps else lr
        if bias_correction == "step_size":
            lr_k *= np.sqrt(1 - beta2 ** (k + 1))
        lr_max = max(lr_max, lr_k)
        weight = (k + 1) ** r * lr_max**weight_lr_power
        weight_sum += weight
        c = weight / weight_sum
        v = beta2 * v + (1 - beta2) * g * g
        v_hat = v if bias_correction == "step_size" else v / (1 - beta2 ** (k + 1))
        d = g / (np.sqrt(v_hat) + eps) + weight_decay * y
        z = z - lr_k * d
        x = (1 - c) * x + c * z
        ys.append((1 - beta1) * z + beta1 * x)
        xs.append(x.copy())
    return ys, xs


def _quadratic_grad(a, b):
    return lambda w: a * (w - b)  # gradient of 0.5 * sum(a * (w - b)^2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(warmup_steps=4, weight_decay=0.1),
        dict(warmup_steps=3, weight_decay=0.05, r=1.0, weight_lr_power=1.0, beta1=0.8),
        dict(warmup_steps=4, weight_decay=0.1, bias_correction="second_moment"),
        dict(warmup_steps=3, weight_decay=0.05, r=1.0, beta1=0.8, beta2=0.95, bias_correction="second_moment"),
    ],
)
def test_matches_reference_update_rule(kwargs):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 2)).astype("float32")
    a = rng.uniform(0.5, 2.0, size=(3, 2))
    b = rng.normal(size=(3, 2))
    grad = _quadratic_grad(a, b)
    steps, lr = 8, 0.05
    ref_kwargs = dict(kwargs)
    beta1 = ref_kwargs.pop("beta1", 0.9)
    ys, xs = reference_schedule_free(w0, grad, steps, lr, beta1=beta1, **ref_kwargs)
    if "beta2" in ref_kwargs:
        ref_kwargs["beta_2"] = ref_kwargs.pop("beta2")

    var = keras.Variable(w0)
    # A second variable with the same trajectory: the per-step averaging weights must advance
    # once per step, not once per variable.
    twin = keras.Variable(w0)
    opt = ScheduleFreeAdamW(learning_rate=lr, beta_1=beta1, **ref_kwargs)
    for k in range(steps):
        g = grad(var.numpy().astype(np.float64)).astype("float32")
        opt.apply([g, g], [var, twin])
        np.testing.assert_allclose(var.numpy(), ys[k], rtol=1e-5, atol=1e-6, err_msg=f"y, step {k}")
        np.testing.assert_allclose(twin.numpy(), ys[k], rtol=1e-5, atol=1e-6)
    opt.use_average_weights()
    np.testing.assert_allclose(var.numpy(), xs[-1], rtol=1e-5, atol=1e-6)
    assert opt.at_average
    opt.use_average_weights()  # idempotent
    np.testing.assert_allclose(var.numpy(), xs[-1], rtol=1e-5, atol=1e-6)
    opt.use_training_weights()
    np.testing.assert_allclose(var.numpy(), ys[-1], rtol=1e-5, atol=1e-6)


def reference_package_in_place(w0, grad_fn, steps, lr, betas, eps, weight_decay, warmup_steps):
    """The reference package's form of the same method: only y and z are stored; y moves by
    ``y <- y + c (z - y) + lr_k (beta_1 (1 - c) - 1) d`` and ``x = y + (1 - 1/beta_1)(z - y)``."""
    beta1, beta2 = betas
    y = w0.astype(np.float64).copy()
    z, v = y.copy(), np.zeros_like(y)
    lr_max, weight_sum, ys = -1.0, 0.0, []
    for k in range(steps):
        sched = (k + 1) / warmup_steps if k < warmup_steps else 1.0
        lr_k = lr * sched * np.sqrt(1 - beta2 ** (k + 1))
        lr_max = max(lr_k, lr_max)
        weight = lr_max**2
        weight_sum += weight
        c = weight / weight_sum
        g = grad_fn(y)
        v = beta2 * v + (1 - beta2) * g * g
        d = g / (np.sqrt(v) + eps) + weight_decay * y
        y = y + c * (z - y) + lr_k * (beta1 * (1 - c) - 1) * d
        z = z - lr_k * d
        ys.append(y.copy())
    return ys, y + (1 - 1 / beta1) * (z - y)


def test_matches_the_reference_package_form_at_the_gated_symile_authors_settings():
    # Their config: lr 1e-3, betas (0.9, 0.95), eps 1e-7, weight decay 0.01, 100 warmup steps.
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(4,)).astype("float32")
    grad = _quadratic_grad(rng.uniform(0.5, 2.0, size=(4,)), rng.normal(size=(4,)))
    settings = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-7, weight_decay=0.01, warmup_steps=100)
    steps = 130
    ys, x_last = reference_package_in_place(w0, grad, steps, **settings)
    ys_alg, xs_alg = reference_schedule_free(
        w0, grad, steps, 1e-3, beta1=0.9, beta2=0.95, eps=1e-7, weight_decay=0.01, warmup_steps=100
    )
    np.testing.assert_allclose(ys[-1], ys_alg[-1], rtol=1e-9, atol=1e-12)  # the two transcriptions agree
    np.testing.assert_allclose(x_last, xs_alg[-1], rtol=1e-9, atol=1e-12)
    var = keras.Variable(w0)
    opt = ScheduleFreeAdamW(1e-3, beta_2=0.95, epsilon=1e-7, weight_decay=0.01, warmup_steps=100)
    for k in range(steps):
        opt.apply([grad(var.numpy().astype(np.float64)).astype("float32")], [var])
        if k in (0, 1, 20, 99, 129):
            np.testing.assert_allclose(var.numpy(), ys[k], rtol=1e-5, atol=1e-6, err_msg=f"step {k}")
    opt.use_average_weights()
    np.testing.assert_allclose(var.numpy(), x_last, rtol=1e-5, atol=1e-6)
    # the other convention gives another trajectory (eps placement and early averaging weights)
    other = reference_schedule_free(
        w0,
        grad,
        steps,
        1e-3,
        beta1=0.9,
        beta2=0.95,
        eps=1e-7,
        weight_decay=0.01,
        warmup_steps=100,
        bias_correction="second_moment",
    )[1][-1]
    assert np.max(np.abs(other - x_last)) > 1e-5


def test_weight_decay_respects_exclusion():
    w0 = np.ones((2,), "float32")
    decayed, excluded = keras.Variable(w0, name="kernel"), keras.Variable(w0, name="bias")
    opt = ScheduleFreeAdamW(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    zero = np.zeros((2,), "float32")
    opt.apply([zero, zero], [decayed, excluded])
    assert np.all(decayed.numpy() < 1.0)
    np.testing.assert_allclose(excluded.numpy(), w0)


def test_applying_gradients_at_the_average_is_an_error():
    var = keras.Variable(np.ones((2,), "float32"))
    opt = ScheduleFreeAdamW(learning_rate=0.1)
    opt.apply([np.ones((2,), "float32")], [var])
    opt.use_average_weights()
    with pytest.raises(tf.errors.InvalidArgumentError, match="use_training_weights"):
        opt.apply([np.ones((2,), "float32")], [var])


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(beta_1=0.0), "beta_1"),
        (dict(beta_2=1.0), "beta_2"),
        (dict(bias_correction="adam"), "bias_correction"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)), "schedule"),
        (dict(use_ema=True), "use_ema"),
    ],
)
def test_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        ScheduleFreeAdamW(**bad)


def _tiny_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32") + 0.3).astype("float32")
    return x, y


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=ScheduleFreeAdamW(learning_rate=0.05, warmup_steps=5, weight_decay=1e-4), loss="mse")
    return model


def test_fit_trains_and_evaluates_at_the_average(tmp_path):
    x, y = _tiny_problem()
    model = _tiny_model()
    before = model.evaluate(x, y, verbose=0)
    checkpoint = str(tmp_path / "best.keras")
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=15,
        validation_data=(x, y),
        verbose=0,
        callbacks=[ScheduleFreeEvaluation(), keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss")],
    )
    opt = model.optimizer
    assert opt.at_average
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.2 * before
    # Validation was computed at x: the last epoch's val_loss is the loss of the model as left.
    np.testing.assert_allclose(history.history["val_loss"][-1], after, rtol=1e-5)
    # The checkpoint written at the epoch end holds x too.
    saved = keras.saving.load_model(checkpoint)
    for a, b in zip(saved.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_save_load_round_trips_state_and_training_continues_identically(tmp_path):
    x, y = _tiny_problem()
    model = _tiny_model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[ScheduleFreeEvaluation()])
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, ScheduleFreeAdamW)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.at_average
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, err_msg=a.path)
    for m in (model, loaded):
        m.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[ScheduleFreeEvaluation()])
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
