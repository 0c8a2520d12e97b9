"""Training at scale with ``tf.distribute``: strategies, global negatives, precision and XLA.

Everything TF-specific about distribution lives here (``keras.ops`` has no collectives):

* :func:`make_strategy` builds a ``tf.distribute`` strategy by name (``"auto"``,
  ``"one_device"``, ``"mirrored"``, ``"multi_worker"``).
* :func:`gather` / :func:`gather_batch` all-gather per-replica tensors to the global batch
  (axis 0). ``MultimodalContrastiveModel.compute_loss`` gathers every embedding (fused pairs
  and presence masks included) so that the negatives of every objective span the *global*
  batch, computes the global loss identically on every replica and returns
  ``global_loss / num_replicas`` (:func:`scale_loss`).
* :func:`build_model` creates and compiles a model under a strategy with a mixed-precision
  policy and/or XLA (``jit_compile``); :func:`prepare_dataset` readies a pipeline of global
  batches (boolean masks, auto-sharding, batch size check).
* :class:`BackupAndRestore` resumes a killed run exactly (weights, optimizer, epoch and the
  random-number state of the objective).

Why this is exact: Keras sums the gradients of the replicas (all-reduce SUM). The gradient of
``ReplicaContext.all_gather`` all-reduces (SUM) the upstream gradients of the gathered tensor
and slices this replica's rows. Each of the R replicas computes the same ``L / R``; the SUM over
replicas of ``d(L/R)/d(gathered)`` is ``dL/d(gathered)``, whose rows for replica r flow back
into replica r's encoders; summing the R weight gradients gives ``dL/dW`` of the single-device
run on the global batch, and the gradients of weights used outside the gather (logit scale,
gate) are ``R * d(L/R)/dW = dL/dW`` too. One epoch on 2 replicas therefore ends with the same
weights as one device on the same global batches (up to float summation order).

On one replica (no strategy, ``OneDeviceStrategy``, or a one-device ``MirroredStrategy``) the
gathering functions are the identity. After the first batch (which Keras' ``fit`` needs split
evenly, see :func:`prepare_dataset`), per-replica batches may differ in size (the last partial
batch of a dataset) and may be empty (a last batch smaller than the number of replicas):
``all_gather`` concatenates the rows that exist, and every replica still computes the loss of
the global batch. See ``docs/distributed.md``.
"""

from __future__ import annotations

import contextlib
import json
import os

import keras
import tensorflow as tf

__all__ = [
    "BackupAndRestore",
    "PRECISIONS",
    "STRATEGIES",
    "build_model",
    "gather",
    "gather_batch",
    "global_batch_size",
    "local_share",
    "make_strategy",
    "num_replicas",
    "precision_policy",
    "prepare_dataset",
    "replica_id",
    "scale_loss",
    "seed_generators",
    "uses_global_negatives",
]

#: Strategy names accepted by :func:`make_strategy`.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
#: Precision policies accepted by :func:`build_model` / :func:`precision_policy`.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
_COMMUNICATIONS = {
    "auto": "AUTO",
    "ring": "RING",
    "nccl": "NCCL",
}


# ---------------------------------------------------------------------------------- strategies
def _tf_config_workers():
    """Number of worker tasks (chief included) declared in ``TF_CONFIG``; 0 without one."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON: {err}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict):
        raise ValueError(
            'TF_CONFIG must be a JSON object with a "cluster" dict, e.g. '
            '{"cluster": {"worker": ["host0:port", "host1:port"]}, '
            '"task": {"type": "worker", "index": 0}}.'
        )
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError('TF_CONFIG needs "task": {"type": ..., "index": ...} for this process.')
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(kind="auto", devices=None, communication="auto"):
    """Creates a ``tf.distribute`` strategy by name.

    Create the strategy first thing in the program (before other TensorFlow work; for
    ``"multi_worker"`` this is required by TensorFlow), then build and compile the model under
    ``strategy.scope()`` (see :func:`build_model`) and call ``fit`` with a dataset batched with
    the **global** batch size.

    Args:
        kind: ``"auto"``: ``"multi_worker"`` when ``TF_CONFIG`` declares at least two workers,
            else ``"mirrored"`` over the local GPUs when there are several (or over ``devices``
            when it lists several), else ``"one_device"``. ``"one_device"``: the given device
            (one name), else the first GPU, else the CPU. ``"mirrored"``: synchronous data
            parallelism over ``devices`` (default: every local GPU, else the CPU).
            ``"multi_worker"``: ``MultiWorkerMirroredStrategy`` over the cluster in
            ``TF_CONFIG`` (required), with ``reduce`` extended to dicts so that Keras' ``fit``
            works with dict inputs (keras-team/keras#20329).
        devices: device names (e.g. ``["/gpu:0", "/gpu:1"]`` or, with logical CPU devices,
            ``["CPU:0", "CPU:1"]``); not used by ``"multi_worker"``.
        communication: collective implementation for ``"multi_worker"``: ``"auto"``,
            ``"ring"`` (gRPC, works on CPUs) or ``"nccl"`` (GPUs).

    Returns:
        A ``tf.distribute.Strategy``.

    Raises:
        ValueError: unknown ``kind`` or ``communication``, ``devices`` given for
            ``"multi_worker"`` or several for ``"one_device"``, or ``"multi_worker"`` without a
            usable ``TF_CONFIG``.

    Example:
        >>> strategy = make_strategy("one_device", devices="/cpu:0")
        >>> strategy.num_replicas_in_sync
        1
    """
    if kind not in STRATEGIES:
        raise ValueError(f"Unknown strategy kind {kind!r}; expected one of {STRATEGIES}.")
    if communication not in _COMMUNICATIONS:
        raise ValueError(f"Unknown communication {communication!r}; expected one of {tuple(_COMMUNICATIONS)}.")
    if isinstance(devices, str):
        devices = [devices]
    if devices is not None:
        devices = [str(d) for d in devices]
        if not devices:
            raise ValueError("devices must name at least one device (or be None).")
    if kind == "auto":
        if _tf_config_workers() >= 2:
            kind = "multi_worker"
            devices = None
        elif devices is not None:
            kind = "mirrored" if len(devices) > 1 else "one_device"
        else:
            kind = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "one_device"
    if kind == "one_device":
        if devices is not None and len(devices) != 1:
            raise ValueError(f'"one_device" takes exactly one device, got {devices}.')
        if devices is None:
            devices = ["/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"]
        return tf.distribute.OneDeviceStrategy(devices[0])
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    # multi_worker
    if devices is not None:
        raise ValueError('"multi_worker" uses every local GPU (or the CPU) of each worker; do not pass devices.')
    if _tf_config_workers() < 1:
        raise ValueError(
            '"multi_worker" needs TF_CONFIG with a "cluster" of workers and this '
            'process\'s "task" (see docs/distributed.md).'
        )
    implementation = getattr(tf.distribute.experimental.CommunicationImplementation, _COMMUNICATIONS[communication])
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return _MultiWorkerMirroredStrategy(communication_options=options)


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` works for what Keras' ``fit`` passes it.

    Two failures of Keras 3's ``fit`` under the multi-worker strategy are fixed here:

    * ``fit`` reduces the first (dict) batch over the replicas to build the model; the
      multi-worker strategy only reduces single values and fails with "Attempt to convert a
      value ({'a': PerReplica...})" (keras-team/keras#20329). Each leaf is reduced instead, as
      ``MirroredStrategy`` does.
    * ``fit`` reduces the scalar logs (loss, metrics) with ``MEAN`` along ``axis=0``, which
      fails for scalars ("Invalid reduction dimension 0 for input with 0 dimensions"). Scalars
      are averaged over the replicas instead (``axis=None``), the ``"mean"`` Keras asks for.
    """

    def reduce(self, reduce_op, value, axis):
        if isinstance(value, (dict, list, tuple)):
            return tf.nest.map_structure(lambda v: self.reduce(reduce_op, v, axis), value)
        if axis is not None:
            local = self.experimental_local_results(value)
            if all(getattr(t, "shape", None) is not None and t.shape.rank == 0 for t in local):
                axis = None
        return super().reduce(reduce_op, value, axis)


# ---------------------------------------------------------------------------------- replicas
def num_replicas():
    """Number of replicas in sync of the current strategy (1 without one), as a Python int.

    Works in the cross-replica context (e.g. under ``strategy.scope()``) and inside a replica
    function (e.g. ``compute_loss`` during ``fit``).
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is not None:
        return int(ctx.num_replicas_in_sync)
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replica_id():
    """Index of the current replica in its sync group (int32 scalar tensor; 0 outside one)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None:
        return tf.constant(0, tf.int32)
    return tf.cast(ctx.replica_id_in_sync_group, tf.int32)


def scale_loss(loss):
    """``loss / num_replicas()``: what a custom ``compute_loss`` returns under a strategy.

    Keras sums the gradients of the replicas (all-reduce SUM), so each replica returns its share
    of the mean; the logged loss is multiplied back by Keras.
    """
    n = num_replicas()
    return loss if n == 1 else loss / n


def uses_global_negatives(model):
    """Whether ``model`` contrasts over the global batch (its ``global_negatives``, default True).

    Set ``model.global_negatives = False`` (before ``fit``) to keep the negatives of each
    replica local. That changes the objective whenever there is more than one replica (each
    replica's loss then sees ``global_batch / num_replicas`` candidates); it exists to compare
    against and for objectives one deliberately wants per device.
    """
    value = getattr(model, "global_negatives", True)
    if not isinstance(value, bool):
        raise ValueError(f"global_negatives must be True or False, got {value!r}.")
    return value


# ---------------------------------------------------------------------------------- gathering
def gather(tensor, name="tensor"):
    """All-gathers per-replica rows to the global batch along axis 0 (identity on one replica).

    Must run inside a replica function (``compute_loss``, ``train_step``, ``strategy.run``) and
    be called by every replica, in the same order, with the same rank and the same trailing
    dimensions; never inside a data-dependent ``tf.cond``. Rows come out in replica order (the
    order of the global batch for ``MirroredStrategy`` and ``experimental_distribute_dataset``).
    Per-replica row counts may differ, and may be 0.

    The gather is differentiable: its gradient all-reduces (SUM) the upstream gradients over the
    replicas and returns this replica's rows. Boolean and integer tensors are gathered too (as
    int32) and come back in their own dtype, without gradient.

    Args:
        tensor: a dense tensor of rank >= 1 with the batch on axis 0.
        name: what to call it in error messages.

    Returns:
        The (global_batch, ...) tensor, identical on every replica.

    Raises:
        ValueError: a sparse, ragged or ``IndexedSlices`` value, a scalar, or a call in the
            cross-replica context of a multi-replica strategy.
    """
    if isinstance(tensor, (tf.SparseTensor, tf.RaggedTensor, tf.IndexedSlices)):
        raise ValueError(f"gather: {name} must be a dense tensor, got {type(tensor).__name__}.")
    n = num_replicas()
    tensor = tf.convert_to_tensor(tensor)
    if tensor.shape.rank is not None and tensor.shape.rank < 1:
        raise ValueError(f"gather: {name} must have rank >= 1 (batch on axis 0), got a scalar.")
    if n == 1:
        return tensor
    ctx = tf.distribute.get_replica_context()
    if ctx is None:
        raise ValueError(
            f"gather: {name} can only be gathered inside a replica function "
            "(compute_loss, train_step, strategy.run), not in the cross-replica context."
        )
    dtype = tensor.dtype
    if dtype.is_floating:
        gathered = ctx.all_gather(tensor, axis=0)
    else:  # collectives on booleans are not supported everywhere: move them as int32
        gathered = tf.cast(ctx.all_gather(tf.cast(tensor, tf.int32), axis=0), dtype)
    # The collective loses the static trailing dimensions; the objectives need them (e.g. d).
    if tensor.shape.rank is not None and not tf.executing_eagerly():
        gathered.set_shape(tf.TensorShape([None]).concatenate(tensor.shape[1:]))
    return gathered


def gather_batch(values, enabled=True):
    """Applies :func:`gather` to every tensor of a dict or list (``None`` entries stay ``None``).

    Args:
        values: dict or list/tuple of per-replica tensors (or ``None``), or ``None``.
        enabled: ``False`` returns ``values`` unchanged (per-replica negatives).

    Returns:
        The same structure with global-batch tensors.
    """
    if values is None:
        return values
    if not isinstance(values, (dict, list, tuple)):
        raise ValueError(f"gather_batch takes a dict or a list of tensors, got {type(values).__name__}.")
    if not enabled or num_replicas() == 1:
        return values
    if isinstance(values, dict):
        return {k: None if v is None else gather(v, name=repr(k)) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return type(values)(None if v is None else gather(v, name=f"item {i}") for i, v in enumerate(values))


def local_share(loss, batch_size):
    """Per-replica-negatives loss share: ``loss / num_replicas``, 0 on an empty replica batch.

    Args:
        loss: scalar loss of this replica's rows.
        batch_size: this replica's number of rows (int or scalar tensor).
    """
    loss = tf.convert_to_tensor(loss)
    scaled = scale_loss(loss)
    if num_replicas() == 1:
        return scaled
    return tf.where(tf.cast(batch_size, tf.int32) > 0, scaled, tf.zeros_like(scaled))


def global_batch_size(per_replica_batch_size, strategy=None):
    """Global batch size to batch a dataset with: ``per_replica_batch_size * num_replicas``.

    Args:
        per_replica_batch_size: positive int, rows per replica and step.
        strategy: a ``tf.distribute.Strategy`` (default: the current one).

    Raises:
        ValueError: a non-positive or non-integer batch size.
    """
    if (
        isinstance(per_replica_batch_size, bool)
        or not isinstance(per_replica_batch_size, int)
        or per_replica_batch_size < 1
    ):
        raise ValueError(f"per_replica_batch_size must be a positive int, got {per_replica_batch_size!r}.")
    strategy = strategy or tf.distribute.get_strategy()
    return per_replica_batch_size * int(strategy.num_replicas_in_sync)


_SHARD_POLICIES = {
    "auto": "AUTO",
    "data": "DATA",
    "file": "FILE",
    "off": "OFF",
}


def prepare_dataset(dataset, auto_shard="data", strategy=None):
    """Makes a ``tf.data`` pipeline of global batches ready for ``fit`` under a strategy.

    * Boolean components (presence masks ``"<modality>_mask"``) become int32 0/1: Keras'
      ``fit`` under a ``tf.distribute`` strategy reduces the first batch with ``MEAN`` over the
      replicas to build the model, which fails on booleans (``AddN`` has no bool kernel). The
      model casts masks back to bool.
    * Sets the auto-shard policy used by ``MultiWorkerMirroredStrategy``: ``"data"`` (every
      worker reads the whole pipeline and keeps its part of each global batch: right for
      in-memory or generated data), ``"file"`` (each worker reads its own files: needs at
      least as many files as workers), ``"auto"`` or ``"off"``.
    * Refuses a static global batch size that is not a multiple of the number of replicas:
      Keras' ``fit`` averages the *first* batch over the replicas to build the model and fails
      when its per-replica parts differ in size. (Later batches may be uneven, e.g. the last
      partial batch, and replicas may get no rows at all; see :func:`gather`.)

    Args:
        dataset: a ``tf.data.Dataset`` batched with the global batch size.
        auto_shard: one of ``"data"``, ``"file"``, ``"auto"``, ``"off"``.
        strategy: the strategy ``fit`` will run under (default: the current one).

    Returns:
        The prepared ``tf.data.Dataset``.

    Raises:
        ValueError: not a ``tf.data.Dataset``, an unknown ``auto_shard``, or a static global
            batch size that the replicas cannot share evenly.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"prepare_dataset takes a tf.data.Dataset, got {type(dataset).__name__}.")
    if auto_shard not in _SHARD_POLICIES:
        raise ValueError(f"Unknown auto_shard {auto_shard!r}; expected one of {tuple(_SHARD_POLICIES)}.")
    specs = tf.nest.flatten(dataset.element_spec)
    replicas = int((strategy or tf.distribute.get_strategy()).num_replicas_in_sync)
    batch = next(
        (spec.shape[0] for spec in specs if getattr(spec, "shape", None) is not None and spec.shape.rank), None
    )
    if replicas > 1 and batch is not None and batch % replicas:
        raise ValueError(
            f"The global batch size {batch} is not a multiple of the {replicas} replicas; "
            f"batch with global_batch_size(per_replica) = per_replica * {replicas}."
        )
    if any(getattr(spec, "dtype", None) == tf.bool for spec in specs):

        def to_int(*element):
            element = element[0] if len(element) == 1 else element
            return tf.nest.map_structure(lambda t: tf.cast(t, tf.int32) if t.dtype == tf.bool else t, element)

        dataset = dataset.map(to_int, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, _SHARD_POLICIES[auto_shard]
    )
    return dataset.with_options(options)


# ---------------------------------------------------------------------------------- precision / XLA
@contextlib.contextmanager
def precision_policy(precision="float32"):
    """Sets the global Keras dtype policy inside the block and restores the previous one.

    Layers take the global policy when they are *constructed*, so create the whole model (its
    encoders included) inside the block. ``mixed_float16`` suits GPUs (Keras then wraps the
    optimizer in a ``LossScaleOptimizer``), ``mixed_bfloat16`` TPUs / recent GPUs and CPUs.
    Variables stay float32; the embeddings, logit scale and every objective run in float32.

    Args:
        precision: one of :data:`PRECISIONS`.

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {PRECISIONS}.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(
    model_fn,
    strategy=None,
    precision="float32",
    jit_compile=False,
    optimizer="adam",
    global_negatives=True,
    **compile_kwargs,
):
    """Creates ``model_fn()`` and compiles it under ``strategy.scope()`` with a precision policy.

    Args:
        model_fn: zero-argument callable returning an (uncompiled) Keras model, e.g. a
            ``MultimodalContrastiveModel``; called inside the strategy scope and the policy.
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
        precision: ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        jit_compile: compile the train step with XLA (``True``), not (``False``), or let Keras
            decide (``"auto"``: XLA off on CPU-only hosts). ``True`` is refused for several
            replicas on CPU devices (TensorFlow cannot run it).
        optimizer: a Keras optimizer instance, a zero-argument callable creating one (so that
            it is created inside the scope), or an optimizer name.
        global_negatives: set on the model; ``False`` keeps each replica's negatives local.
        **compile_kwargs: further ``Model.compile`` arguments (``steps_per_execution``, ...).

    Returns:
        The compiled model.

    Raises:
        ValueError: an unknown precision, a bad ``jit_compile`` or ``global_negatives``, XLA with
            several CPU replicas, or ``model_fn`` not returning a Keras model.
    """
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f'jit_compile must be True, False or "auto", got {jit_compile!r}.')
    if not isinstance(global_negatives, bool):
        raise ValueError(f"global_negatives must be True or False, got {global_negatives!r}.")
    if not callable(model_fn):
        raise ValueError("model_fn must be a callable returning a Keras model.")
    strategy = strategy or tf.distribute.get_strategy()
    if (
        jit_compile is True
        and int(strategy.num_replicas_in_sync) > 1
        and all(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in strategy.extended.worker_devices)
    ):
        raise ValueError(
            "jit_compile=True (XLA) with several replicas on CPU devices is not supported by "
            "TensorFlow: XLA's CPU device cannot reach the variables of the other replicas' "
            "devices. Use jit_compile=False on CPUs (XLA works per GPU/TPU replica)."
        )
    with strategy.scope(), precision_policy(precision):
        model = model_fn()
        if not isinstance(model, keras.Model):
            raise ValueError(f"model_fn must return a keras.Model, got {type(model).__name__}.")
        model.global_negatives = global_negatives
        if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = optimizer()
        model.compile(optimizer=optimizer, jit_compile=jit_compile, **compile_kwargs)
    return model


# ---------------------------------------------------------------------------------- fault tolerance
def seed_generators(model):
    """Every ``keras.random.SeedGenerator`` a model draws from, in a stable order.

    That is the generators of its layers (dropout, the model's own, e.g. Gated Symile's sampled
    negatives) and those held by Keras losses attached to the model (e.g. ``SymileLoss``'s
    permutations for ``negative_sampling="n"``), which ``save_weights`` does not store.

    Args:
        model: a Keras model.

    Returns:
        List of ``SeedGenerator`` objects (each once).
    """
    found, seen = [], set()

    def add(generator):
        if id(generator) not in seen:
            seen.add(id(generator))
            found.append(generator)

    for layer in model._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(layer, "_seed_generators", []):
            add(generator)
        for value in vars(layer).values():
            if isinstance(value, keras.losses.Loss):
                for attr in vars(value).values():
                    if isinstance(attr, keras.random.SeedGenerator):
                        add(attr)
    return found


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """``keras.callbacks.BackupAndRestore`` that also backs up the random-number state.

    A process killed at any point (even by ``SIGKILL``) and started again with the same command
    resumes from the last completed epoch and ends with the same weights as an uninterrupted
    run, provided the input pipeline yields the same batches for an epoch whatever happened
    before (no ``reshuffle_each_iteration`` shuffling, or a shuffle keyed on the epoch).

    Keras saves the weights and the optimizer but not the state of the ``SeedGenerator``s the
    objective draws from (Symile's ``"n"`` permutations, Gated Symile's sampled negatives,
    dropout), so a resumed run would draw other negatives than the uninterrupted one; this
    callback stores them in ``rng_state.json`` next to the weights and restores them.

    Only ``save_freq="epoch"`` is accepted: Keras resumes at the *start* of the epoch in
    progress, so a mid-epoch backup would apply that epoch's first batches twice. For finer
    backups make epochs shorter (``steps_per_epoch`` over a repeated dataset whose batches
    depend only on the step).

    Args:
        backup_dir: directory for the backup (must be shared by all workers of a cluster and
            must not be used by another job).
        save_freq: ``"epoch"``.
        double_checkpoint: keep the previous backup as well (Keras' option).
        delete_checkpoint: delete the backup when training ends (Keras' option).

    Raises:
        ValueError: ``save_freq`` other than ``"epoch"``.
    """

    _RNG_FILE = "rng_state.json"

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        if save_freq != "epoch":
            raise ValueError(
                f'save_freq must be "epoch", got {save_freq!r}: Keras resumes at the start of the epoch '
                "in progress, so mid-epoch backups would replay batches. Use shorter epochs "
                "(steps_per_epoch) for finer backups."
            )
        super().__init__(
            backup_dir, save_freq=save_freq, double_checkpoint=double_checkpoint, delete_checkpoint=delete_checkpoint
        )
        self._rng_path = os.path.join(backup_dir, self._RNG_FILE)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not (tf.io.gfile.exists(self._rng_path) and tf.io.gfile.exists(self._weights_path)):
            return
        with tf.io.gfile.GFile(self._rng_path, "r") as f:
            states = json.loads(f.read())["states"]
        generators = seed_generators(self.model)
        if len(states) != len(generators):
            raise ValueError(
                f"The backup in {self.backup_dir!r} holds {len(states)} random-number states, "
                f"the model has {len(generators)} seed generators: not the same model."
            )
        for generator, state in zip(generators, states):
            generator.state.assign(tf.constant(state, dtype=generator.state.dtype))

    def _save_model(self):
        super()._save_model()
        states = [[int(v) for v in tf.convert_to_tensor(g.state.value).numpy()] for g in seed_generators(self.model)]
        tmp = self._rng_path + ".tmp"
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(json.dumps({"epoch": self._current_epoch, "states": states}))
        tf.io.gfile.rename(tmp, self._rng_path, overwrite=True)
