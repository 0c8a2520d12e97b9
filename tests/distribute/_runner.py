"""Subprocess entry point of the distributed tests: one strategy per process.

Usage: ``python tests/distribute/_runner.py MODE '{"json": "args"}'``. Logical CPU devices are
configured before TensorFlow initialises; the last line of stdout is a JSON object of results.
Two ``MirroredStrategy`` instances in one process abort collectives, so every mode creates at
most one strategy (the single-device reference runs use the default strategy).
"""

import json
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

MODE = sys.argv[1]
ARGS = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}

import tensorflow as tf  # noqa: E402

if MODE != "worker":
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(ARGS.get("devices", 2))
    )

if os.environ.get("RUNNER_NO_GRAPPLER", "1") == "1":  # tiny graphs: optimising them costs more than it saves
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.disable_traceback_filtering()

import tf_mmcl  # noqa: E402
from tf_mmcl import distribute  # noqa: E402

MODALITIES = ("a", "b", "c")

# Objective name in the tests -> (objective, options). No dropout anywhere: the runs must be
# deterministic functions of the data.
CASES = {
    "clip": ("clip", {}),
    "symile_n_squared": ("symile", {"negative_sampling": "n_squared"}),
    "symile_n_fixed": ("symile", {"negative_sampling": "n", "seed": 7}),
    "symile_n_seeded": ("symile", {"negative_sampling": "n", "seed": 7}),
    "confu": ("confu", {"fusion_dropout": 0.0, "fusion_hidden_dim": 8}),
    "gram": ("gram", {}),
    "triangle": ("triangle", {}),
    "gated_symile": ("gated_symile", {"key_dim": 8, "seed": 3}),
    "gated_symile_sampled": ("gated_symile", {"key_dim": 8, "seed": 3, "num_negatives": 3}),
}


def make_data(n, seed=0, masks=False):
    rng = np.random.default_rng(seed)
    data = {m: rng.normal(size=(n, 5)).astype("float32") for m in MODALITIES}
    if masks:  # every row keeps at least two modalities
        drop = rng.integers(0, 4, size=n)
        for i, m in enumerate(MODALITIES):
            data[m + "_mask"] = drop != i
    return data


def make_model(case, seed=0):
    objective, options = CASES[case]
    keras.utils.set_random_seed(seed)
    encoders = {m: keras.layers.Dense(6, name=f"enc_{m}") for m in MODALITIES}
    return tf_mmcl.models.MultimodalContrastiveModel(encoders, embedding_dim=4, objective=objective, **options)


def permutations(n, seed=11):
    rng = np.random.default_rng(seed)
    m = len(MODALITIES)
    return np.stack([[rng.permutation(n) for _ in range(m - 1)] for _ in range(m)]).astype("int32")


def build(
    case,
    strategy,
    data,
    init=None,
    precision="float32",
    jit_compile=False,
    global_negatives=True,
    lr=0.1,
    optimizer="sgd",
):
    def opt():
        inner = keras.optimizers.SGD(lr) if optimizer.startswith("sgd") else keras.optimizers.Adam(lr)
        if optimizer.endswith("+loss_scale"):  # dynamic loss scaling from a scale that does not overflow
            return keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**4)
        return inner

    model = distribute.build_model(
        lambda: make_model(case),
        strategy,
        precision=precision,
        jit_compile=jit_compile,
        optimizer=opt,
        global_negatives=global_negatives,
    )
    with (strategy or tf.distribute.get_strategy()).scope():
        model({k: v[:2] for k, v in data.items()})
    if init is not None:
        model.set_weights(init)
    return model


def dataset(data, batch, drop_remainder=True):
    ds = tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=drop_remainder)
    return distribute.prepare_dataset(ds)


def max_diff(w1, w2):
    return float(
        max(np.max(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))) for a, b in zip(w1, w2) if np.size(a))
    )


def trainable(model):
    return [v.numpy() for v in model.trainable_variables]


def fit(model, ds, epochs=1, callbacks=None):
    history = model.fit(ds, epochs=epochs, verbose=0, callbacks=callbacks or [])
    return {k: [float(x) for x in v] for k, v in history.history.items()}


def run_pair(case, strategy, data, batch, drop_remainder=True, **kwargs):
    """Single device (default strategy) vs ``strategy`` from the same initial weights."""
    single = build(case, None, data, **kwargs)
    init = single.get_weights()
    fixed = case == "symile_n_fixed"
    if fixed:
        single.symile_permutations = permutations(batch)
    h1 = fit(single, dataset(data, batch, drop_remainder))
    dist = build(case, strategy, data, init=init, **kwargs)
    if fixed:
        dist.symile_permutations = permutations(batch)
    h2 = fit(dist, dataset(data, batch, drop_remainder))
    return {
        "max_dw": max_diff(trainable(single), trainable(dist)),
        "moved": max_diff(_initial_trainable(single, init), trainable(single)),
        "loss_single": h1["loss"][-1],
        "loss_dist": h2["loss"][-1],
        "top1_single": h1["top1_a"][-1],
        "top1_dist": h2["top1_a"][-1],
    }


def _initial_trainable(model, init):
    by_path = dict(zip([v.path for v in model.weights], init))
    return [by_path[v.path] for v in model.trainable_variables]


def mode_equivalence():
    strategy = distribute.make_strategy("mirrored", devices=["CPU:0", "CPU:1"])
    assert strategy.num_replicas_in_sync == 2
    out = {}
    data = make_data(16, seed=1)
    for case in ARGS["cases"]:
        t0 = time.time()
        out[case] = run_pair(case, strategy, data, batch=8)
        out[case]["seconds"] = round(time.time() - t0, 2)
    return out


def mode_variants():
    """Per-replica negatives, masks, uneven and empty replica batches, precision and XLA.

    Runs on 3 replicas (``devices: 3``) with global batches of 9 (3 rows per replica); a last
    batch of 4 splits into 2 + 1 + 1 rows and a last batch of 2 into 1 + 1 + 0. (Keras' ``fit``
    needs the *first* batch to split evenly: it averages it over the replicas to build the model.)
    """
    strategy = distribute.make_strategy("mirrored", devices=[f"CPU:{i}" for i in range(int(ARGS["devices"]))])
    out = {}
    data = make_data(18, seed=1)
    refs = {}
    for case in ("clip", "symile_n_squared"):  # single-device float32 graph-mode references
        ref = build(case, None, data)
        init = ref.get_weights()
        fit(ref, dataset(data, 9))
        refs[case] = (init, trainable(ref))
    # Per-replica negatives: same init, same data, only the negatives differ.
    init, ref_w = refs["clip"]
    local = build("clip", strategy, data, init=init, global_negatives=False)
    h = fit(local, dataset(data, 9))
    out["local_negatives"] = {"max_dw": max_diff(ref_w, trainable(local)), "loss": h["loss"][-1]}
    # Presence masks are gathered with the embeddings.
    out["masks_symile"] = run_pair("symile_n_squared", strategy, make_data(18, seed=2, masks=True), batch=9)
    # Uneven (last batch 4 -> 2 + 1 + 1 rows) and empty (last batch 2 -> 1 + 1 + 0 rows) replica batches.
    out["uneven"] = run_pair("clip", strategy, make_data(22, seed=3), batch=9, drop_remainder=False)
    out["empty"] = run_pair("symile_n_squared", strategy, make_data(20, seed=4), batch=9, drop_remainder=False)
    # Mixed precision (3 replicas) vs the float32 single-device run.
    init, ref_w = refs["symile_n_squared"]
    for precision in ("mixed_bfloat16", "mixed_float16"):
        # float16: Keras' default initial loss scale 2^15 overflows on the first step, which the
        # LossScaleOptimizer then skips; start from 2^4 so that both runs take the same steps.
        mp = build(
            "symile_n_squared",
            strategy,
            data,
            init=init,
            precision=precision,
            optimizer="sgd+loss_scale" if precision == "mixed_float16" else "sgd",
        )
        h = fit(mp, dataset(data, 9))
        steps = mp.optimizer.inner_optimizer.iterations if precision == "mixed_float16" else mp.optimizer.iterations
        out[precision] = {
            "max_dw": max_diff(ref_w, trainable(mp)),
            "loss": h["loss"][-1],
            "optimizer": type(mp.optimizer).__name__,
            "applied_steps": int(steps.numpy()),
            "compute_dtype": mp.encoders["a"].compute_dtype,
        }
    # XLA (jit_compile=True) vs graph mode on one device.
    for case in ("clip", "symile_n_squared"):
        init, ref_w = refs[case]
        xla = build(case, None, data, init=init, jit_compile=True)
        fit(xla, dataset(data, 9))
        out[f"xla_{case}"] = {"max_dw": max_diff(ref_w, trainable(xla))}
    # XLA with several replicas on logical CPU devices is refused (see build_model).
    try:
        build("clip", strategy, data, jit_compile=True)
        out["xla_mirrored_cpu_refused"] = False
    except ValueError as err:
        out["xla_mirrored_cpu_refused"] = "XLA" in str(err)
    return out


def mode_worker():
    """One process of a MultiWorkerMirroredStrategy cluster (TF_CONFIG) or the 1-process reference."""
    strategy = None
    if ARGS.get("multi_worker"):
        strategy = distribute.make_strategy("multi_worker", communication="ring")
    data = make_data(32, seed=5)
    case = ARGS["case"]
    model = build(case, strategy, data, optimizer="adam", lr=0.01)
    fixed = case == "symile_n_fixed"
    if fixed:
        model.symile_permutations = permutations(8)
    h = fit(model, dataset(data, 8), epochs=2)
    np.savez(ARGS["out"], *trainable(model))
    return {
        "replicas": distribute.num_replicas() if strategy is None else strategy.num_replicas_in_sync,
        "loss": h["loss"][-1],
    }


class _PauseOnce(keras.callbacks.Callback):
    """Blocks mid-epoch the first time (marker file absent) so that the test can SIGKILL us."""

    def __init__(self, marker, epoch, batch):
        super().__init__()
        self.marker, self.epoch, self.batch = marker, epoch, batch
        self.current = None
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            while True:  # the test kills us here (SIGKILL: no cleanup, no final backup)
                time.sleep(1)


def mode_backup():
    strategy = distribute.make_strategy("mirrored", devices=["CPU:0", "CPU:1"])
    data = make_data(32, seed=6)
    model = build("symile_n_seeded", strategy, data, optimizer="adam", lr=0.01)
    pause = _PauseOnce(ARGS["marker"], ARGS["kill_epoch"], ARGS["kill_batch"]) if ARGS.get("marker") else None
    callbacks = [
        distribute.BackupAndRestore(ARGS["backup_dir"])
        if ARGS.get("rng", True)
        else keras.callbacks.BackupAndRestore(ARGS["backup_dir"], save_freq="epoch")
    ]
    if pause is not None:
        callbacks.append(pause)
    fit(model, dataset(data, 8), epochs=ARGS["epochs"], callbacks=callbacks)
    np.savez(ARGS["out"], *trainable(model))
    return {"first_epoch": None if pause is None else pause.first_epoch}


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    result = {"equivalence": mode_equivalence, "variants": mode_variants, "worker": mode_worker, "backup": mode_backup}[
        MODE
    ]()
    print(json.dumps(result))
    sys.stdout.flush()
