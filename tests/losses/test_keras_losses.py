"""The Keras Loss classes: dict input keyed by modality, config round trip, use in compile/fit."""

import keras
import numpy as np
import pytest

from tests.helpers import unit_rows
from tf_mmcl import losses

rng = np.random.default_rng(0)
REPS = {name: unit_rows(rng, 6, 4) for name in ("a", "b", "c")}
FUSED = {"a+b": unit_rows(rng, 6, 4), "a+c": unit_rows(rng, 6, 4), "b+c": unit_rows(rng, 6, 4)}

CASES = [
    (losses.CLIPLoss(), lambda r, s: losses.clip_loss(r, s)),
    (losses.SymileLoss(negative_sampling="n_squared"), lambda r, s: losses.symile_loss(r, s, "n_squared")),
    (losses.GRAMLoss(eps=1e-6), lambda r, s: losses.gram_loss(r, s, eps=1e-6)),
    (losses.TriangleLoss(squared=False), lambda r, s: losses.triangle_loss(r, s, squared=False)),
    (losses.ConFuLoss(lam=0.3), lambda r, s: losses.confu_loss(r, list(FUSED.values()), s, lam=0.3)),
]


@pytest.mark.parametrize("loss,fn", CASES, ids=lambda c: getattr(c, "name", ""))
def test_dict_input_equals_function(loss, fn):
    y_pred = dict(REPS, **FUSED, logit_scale=np.float32(4.0))
    np.testing.assert_allclose(loss(None, y_pred), fn(list(REPS.values()), 4.0), rtol=1e-6)
    # Without a scale in y_pred the constructor's fixed scale applies.
    y_pred.pop("logit_scale")
    np.testing.assert_allclose(loss(None, y_pred), fn(list(REPS.values()), loss.logit_scale), rtol=1e-6)


@pytest.mark.parametrize("loss,fn", CASES, ids=lambda c: getattr(c, "name", ""))
def test_config_round_trip(loss, fn):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


def test_modalities_order_and_unknown_names():
    loss = losses.SymileLoss(negative_sampling="n_squared", modalities=["c", "a", "b"])
    expected = losses.symile_loss([REPS["c"], REPS["a"], REPS["b"]], 1 / 0.07, "n_squared")
    np.testing.assert_allclose(loss(None, REPS), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown modality"):
        loss(None, dict(REPS, d=REPS["a"]))
    with pytest.raises(ValueError, match="Missing embeddings"):
        loss(None, {"a": REPS["a"], "b": REPS["b"]})
    with pytest.raises(TypeError, match="dict"):
        loss(None, list(REPS.values()))
    with pytest.raises(ValueError, match="duplicates"):
        losses.CLIPLoss(modalities=["a", "a"])
    with pytest.raises(ValueError, match="finite number > 0"):
        losses.CLIPLoss(logit_scale=-1.0)


def test_confu_loss_requires_fused_keys():
    with pytest.raises(ValueError, match="a\\+b"):
        losses.ConFuLoss(lam=0.5)(None, REPS)
    # lam = 0 needs none.
    np.testing.assert_allclose(
        losses.ConFuLoss(lam=0.0)(None, REPS), losses.clip_loss(list(REPS.values()), 1 / 0.07), rtol=1e-6
    )


def test_symile_n_loss_draws_fresh_permutations_each_call_reproducibly():
    a = losses.SymileLoss(negative_sampling="n", seed=3)
    b = losses.SymileLoss(negative_sampling="n", seed=3)
    first = [float(a(None, REPS)) for _ in range(3)]
    second = [float(b(None, REPS)) for _ in range(3)]
    assert first == second
    assert len(set(first)) > 1


class DictLossModel(keras.Model):
    """A functional model whose dict output goes whole to one contrastive Loss."""

    def __init__(self, contrastive_loss, **kwargs):
        inputs = {n: keras.Input((5,), name=n) for n in "abc"}
        outputs = {n: keras.layers.UnitNormalization()(keras.layers.Dense(4)(x)) for n, x in inputs.items()}
        super().__init__(inputs, outputs, **kwargs)
        self.contrastive_loss = contrastive_loss

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.contrastive_loss(None, y_pred)


def test_loss_trains_a_tiny_model_with_fit():
    model = DictLossModel(losses.SymileLoss(negative_sampling="n_squared", logit_scale=5.0))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    x = {n: np.random.default_rng(1).normal(size=(32, 5)).astype("float32") for n in "abc"}
    x["b"] = x["a"] + 0.01
    x["c"] = x["a"] - 0.01
    history = model.fit(x, None, batch_size=8, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
