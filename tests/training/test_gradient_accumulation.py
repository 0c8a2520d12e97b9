"""Keras' ``gradient_accumulation_steps`` with the contrastive model (docs/real_data.md, fine-tuning).

One optimizer update per k batches, with the mean of the k batches' gradients, each batch's
loss over its own in-batch negatives.
"""

import keras
import numpy as np
import tensorflow as tf

import tf_mmcl


def _model():
    keras.utils.set_random_seed(0)
    model = tf_mmcl.models.MultimodalContrastiveModel(
        {m: tf_mmcl.layers.MLPEncoder(hidden_units=(), output_dim=8) for m in "abc"},
        embedding_dim=8,
        objective="symile",
        negative_sampling="n_squared",
        in_batch_metrics=False,
    )
    return model


def _batches():
    rng = np.random.default_rng(0)
    return [{m: rng.normal(size=(8, 4)).astype("float32") for m in "abc"} for _ in range(2)]


def _gradients(model, batch):
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=batch, y_pred=model(batch, training=True))
    return tape.gradient(loss, model.trainable_variables)


def test_two_accumulated_batches_make_one_update_with_their_mean_gradient():
    b1, b2 = _batches()
    model = _model()
    model(b1)
    start = [v.numpy().copy() for v in model.trainable_variables]
    g1, g2 = _gradients(model, b1), _gradients(model, b2)

    lr = 0.1
    model.compile(optimizer=keras.optimizers.SGD(lr, gradient_accumulation_steps=2))
    model.train_on_batch(b1)
    after_one = [v.numpy() for v in model.trainable_variables]
    for w0, w1 in zip(start, after_one):
        np.testing.assert_array_equal(w0, w1)  # the first batch only accumulates

    model.train_on_batch(b2)
    changed = 0
    for w0, v, a, b in zip(start, model.trainable_variables, g1, g2):
        expected = w0 - lr * (a.numpy() + b.numpy()) / 2.0
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6)
        changed += int(not np.allclose(v.numpy(), w0))
    assert changed > 0
