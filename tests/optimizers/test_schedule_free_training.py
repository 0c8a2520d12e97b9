"""tools/train.py's runner with ``optimizer="schedule_free_adamw"``: checkpoints and model at x."""

import os

import keras
import numpy as np
import pytest

from configs.benchmark import benchmark_config
from tf_mmcl import training
from tf_mmcl.optimizers import ScheduleFreeAdamW


def test_train_with_schedule_free_saves_the_average(tmp_path):
    config = training.apply_overrides(
        benchmark_config("symile_xor", "clip"),
        [
            "dataset.params.n_train=256",
            "dataset.params.n_val=64",
            "dataset.params.n_test=64",
            "epochs=2",
            "batch_size=64",
            "verbose=0",
            "optimizer='schedule_free_adamw'",
            "weight_decay=0.01",
        ],
    )
    keras.utils.set_random_seed(0)
    result = training.train(config, str(tmp_path))
    optimizer = result.model.optimizer
    assert isinstance(optimizer, ScheduleFreeAdamW) and optimizer.at_average
    assert np.all(np.isfinite(result.history["val_loss"]))
    # The last epoch's checkpoint and the saved model hold x, the weights the run ends with.
    _, loaded = training.load_run(str(tmp_path))
    for a, b in zip(loaded.get_weights(), result.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    result.model.load_weights(os.path.join(str(tmp_path), "checkpoints", "epoch_002.weights.h5"))
    for a, b in zip(loaded.get_weights(), result.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_unknown_optimizer_names_the_choices(tmp_path):
    config = training.apply_overrides(benchmark_config("symile_xor", "clip"), ["optimizer='lion'", "verbose=0"])
    with pytest.raises(ValueError, match="schedule_free_adamw"):
        training.train(config, str(tmp_path))
