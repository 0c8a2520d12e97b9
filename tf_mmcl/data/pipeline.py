"""tf.data pipelines over dicts of modalities.

An example is a dict keyed by modality name (float32 features or int32 token ids), with an
optional boolean presence mask per modality under ``"<name>_mask"`` (True = present). Other
keys (``"corruption"``, ``"label"``, latent blocks, ...) ride along for evaluation.

Sources: numpy dicts (:func:`from_numpy`), TFRecord files (:func:`write_tfrecord` /
:func:`from_tfrecord`) and tensorflow-datasets (:func:`from_tfds`). :func:`make_pipeline` then
shuffles with a seed, applies per-modality preprocessing and corruption transforms, batches and
prefetches; the same seed gives the same batches.

:class:`MultimodalSplits` holds the train/val/test numpy arrays of a generated benchmark and
hands them out as unbatched ``tf.data.Dataset`` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tf_mmcl.keys import MASK_SUFFIX, mask_key

__all__ = [
    "MASK_SUFFIX",
    "SPLITS",
    "MultimodalSplits",
    "mask_key",
    "from_numpy",
    "write_tfrecord",
    "from_tfrecord",
    "from_tfds",
    "make_pipeline",
]

SPLITS = ("train", "val", "test")


def _check_arrays(arrays: Mapping[str, np.ndarray], what="arrays") -> dict:
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError(f"{what} must be a non-empty dict of arrays keyed by name, got {type(arrays).__name__}.")
    out = {}
    n = None
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise ValueError(f"{what}: keys must be strings, got {key!r}.")
        arr = np.asarray(value)
        if arr.ndim == 0:
            raise ValueError(f"{what}[{key!r}] must have a leading example axis, got a scalar.")
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise ValueError(
                f"{what}: every array needs the same number of examples; {key!r} has {arr.shape[0]}, expected {n}."
            )
        out[key] = arr
    return out


class MultimodalSplits:
    """Train/val/test splits of a multimodal benchmark held as numpy arrays.

    Args:
        splits: ``{"train": {...}, "val": {...}, "test": {...}}``, each a dict of arrays with the
            same leading example axis.
        modalities: the modality names, in order (keys of the splits that are model inputs).
        info: free-form description of the benchmark (parameters, candidate sets, latent blocks).

    Attributes:
        train, val, test: unbatched ``tf.data.Dataset`` of example dicts (built on access).
        modalities: list of modality names.
        info: dict.

    Example:
        >>> import numpy as np
        >>> s = MultimodalSplits({k: {"a": np.zeros((4, 2), "float32")} for k in SPLITS}, ["a"])
        >>> s.num_examples("train"), s.train.element_spec["a"].shape
        (4, TensorShape([2]))
    """

    def __init__(self, splits: Mapping[str, Mapping[str, np.ndarray]], modalities: Sequence[str], info=None):
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"MultimodalSplits needs the splits {SPLITS}; missing {missing}.")
        self._splits = {name: _check_arrays(splits[name], f"split {name!r}") for name in SPLITS}
        self.modalities = list(modalities)
        for name in SPLITS:
            absent = [m for m in self.modalities if m not in self._splits[name]]
            if absent:
                raise ValueError(f"split {name!r} lacks the modalities {absent}.")
        self.info = dict(info or {})

    def as_numpy(self, split: str = "train") -> dict:
        """The arrays of one split (a shallow copy of the dict; the arrays are shared)."""
        if split not in self._splits:
            raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
        return dict(self._splits[split])

    def num_examples(self, split: str = "train") -> int:
        """Number of examples in a split."""
        arrays = self.as_numpy(split)
        return int(next(iter(arrays.values())).shape[0])

    def dataset(self, split: str = "train") -> tf.data.Dataset:
        """The unbatched ``tf.data.Dataset`` of one split."""
        return from_numpy(self.as_numpy(split))

    @property
    def train(self) -> tf.data.Dataset:
        return self.dataset("train")

    @property
    def val(self) -> tf.data.Dataset:
        return self.dataset("val")

    @property
    def test(self) -> tf.data.Dataset:
        return self.dataset("test")

    def __repr__(self):
        sizes = ", ".join(f"{s}={self.num_examples(s)}" for s in SPLITS)
        return f"MultimodalSplits(modalities={self.modalities}, {sizes})"


def from_numpy(arrays: Mapping[str, np.ndarray]) -> tf.data.Dataset:
    """An unbatched dataset of example dicts from a dict of equally long arrays.

    float64 arrays become float32 and int64 arrays int32 (the library's dtypes); bool stays bool.

    Example:
        >>> import numpy as np
        >>> ds = from_numpy({"a": np.ones((3, 2)), "a_mask": np.array([True, False, True])})
        >>> [bool(e["a_mask"]) for e in ds]
        [True, False, True]
    """
    arrays = _check_arrays(arrays)
    converted = {}
    for key, arr in arrays.items():
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        elif arr.dtype == np.int64:
            arr = arr.astype(np.int32)
        converted[key] = arr
    return tf.data.Dataset.from_tensor_slices(converted)


def write_tfrecord(path: str, arrays: Mapping[str, np.ndarray]) -> dict:
    """Writes a dict of arrays as one ``tf.train.Example`` per row; returns the feature spec.

    Each feature is stored as a serialised tensor, so dtype and shape round-trip exactly.

    Args:
        path: the TFRecord file to write.
        arrays: dict of equally long arrays.

    Returns:
        ``{name: tf.TensorSpec}`` of one example, to pass to :func:`from_tfrecord`.

    Example:
        >>> import numpy as np, os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "x.tfrecord")
        >>> spec = write_tfrecord(p, {"a": np.arange(6, dtype="float32").reshape(3, 2)})
        >>> [e["a"].numpy().tolist() for e in from_tfrecord(p, spec)][1]
        [2.0, 3.0]
    """
    arrays = _check_arrays(arrays)
    n = next(iter(arrays.values())).shape[0]
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(n):
            feature = {
                key: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(tf.convert_to_tensor(arr[i])).numpy()])
                )
                for key, arr in arrays.items()
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return {key: tf.TensorSpec(arr.shape[1:], tf.as_dtype(arr.dtype)) for key, arr in arrays.items()}


def from_tfrecord(paths, feature_spec: Mapping[str, tf.TensorSpec], num_parallel_reads=None) -> tf.data.Dataset:
    """An unbatched dataset of example dicts from files written by :func:`write_tfrecord`.

    Args:
        paths: a file name or a list of them (read in the given order, deterministically).
        feature_spec: ``{name: tf.TensorSpec}`` as returned by :func:`write_tfrecord`.
        num_parallel_reads: passed to ``tf.data.TFRecordDataset``.

    Example: see :func:`write_tfrecord`.
    """
    if isinstance(paths, (str, bytes)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("from_tfrecord needs at least one file.")
    if not feature_spec:
        raise ValueError("from_tfrecord needs a non-empty feature_spec.")
    for key, spec in feature_spec.items():
        if not isinstance(spec, tf.TensorSpec):
            raise ValueError(f"feature_spec[{key!r}] must be a tf.TensorSpec, got {type(spec).__name__}.")
    _check_first_record(paths, feature_spec)
    parse_spec = {key: tf.io.FixedLenFeature([], tf.string) for key in feature_spec}

    def parse(record):
        raw = tf.io.parse_single_example(record, parse_spec)
        out = {}
        for key, spec in feature_spec.items():
            t = tf.io.parse_tensor(raw[key], out_type=spec.dtype)
            out[key] = tf.ensure_shape(t, spec.shape)
        return out

    ds = tf.data.TFRecordDataset(paths, num_parallel_reads=num_parallel_reads)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def from_tfds(
    name_or_builder, split: str = "train", data_dir=None, download: bool = True, keys: Sequence[str] | None = None
) -> tf.data.Dataset:
    """An unbatched dataset of example dicts from tensorflow-datasets.

    Args:
        name_or_builder: a registered dataset name (e.g. ``"symile_xor/tiny"``; import
            :mod:`tf_mmcl.datasets` to register ours) or a ``tfds.core.DatasetBuilder``.
        split: the split to read (our builders name them ``train``, ``validation``, ``test``;
            ``"val"`` is accepted for ``validation``).
        data_dir: where the prepared data lives.
        download: prepare the dataset if it is not there yet (our builders generate in
            process; nothing is downloaded).
        keys: keep only these features (default: all).

    Example:
        >>> import tempfile, tf_mmcl.datasets  # doctest: +SKIP
        >>> ds = from_tfds("symile_xor/tiny", "test", data_dir=tempfile.mkdtemp())  # doctest: +SKIP
    """
    import tensorflow_datasets as tfds

    if split == "val":
        split = "validation"
    if isinstance(name_or_builder, str):
        builder = tfds.builder(name_or_builder, data_dir=data_dir)
    elif isinstance(name_or_builder, tfds.core.DatasetBuilder):
        builder = name_or_builder
    else:
        raise ValueError(f"from_tfds expects a dataset name or a tfds builder, got {type(name_or_builder).__name__}.")
    if download:
        builder.download_and_prepare()
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if keys is not None:
        keys = list(keys)
        spec = ds.element_spec
        absent = [k for k in keys if k not in spec]
        if absent:
            raise ValueError(f"from_tfds: features {absent} are not in the dataset; it has {sorted(spec)}.")
        ds = ds.map(lambda e: {k: e[k] for k in keys})
    return ds


def _apply_preprocess(preprocess: Mapping[str, Callable]):
    def fn(example):
        out = dict(example)
        for key, f in preprocess.items():
            out[key] = f(example[key])
        return out

    return fn


def _check_first_record(paths, feature_spec):
    """Compares the first record's features with ``feature_spec``: a mismatch names the feature.

    Parsing inside the ``tf.data`` map only says "type mismatch" at iteration time, without
    the feature's name; one record read here turns that into a clear error up front.
    """
    from tensorflow.core.framework import tensor_pb2

    for path in paths:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"from_tfrecord: no such file {path!r}.")
    try:
        first = next(iter(tf.data.TFRecordDataset(paths[:1]).take(1)), None)
    except tf.errors.OpError as e:
        raise ValueError(f"from_tfrecord: {paths[0]!r} is not a readable TFRecord file ({e.message}).") from None
    if first is None:
        return  # an empty file: an empty dataset
    example = tf.train.Example.FromString(first.numpy())
    features = example.features.feature
    missing = sorted(k for k in feature_spec if k not in features)
    if missing:
        raise ValueError(
            f"from_tfrecord: feature_spec names {missing}, which {paths[0]!r} lacks; it holds "
            f"{sorted(features)} (use the spec write_tfrecord returned)."
        )
    for key, spec in feature_spec.items():
        raw = features[key].bytes_list.value
        if len(raw) != 1:
            raise ValueError(
                f"from_tfrecord: feature {key!r} of {paths[0]!r} is not a serialised tensor "
                "(files must come from write_tfrecord)."
            )
        proto = tensor_pb2.TensorProto.FromString(raw[0])
        dtype = tf.dtypes.as_dtype(proto.dtype)
        shape = tf.TensorShape([d.size for d in proto.tensor_shape.dim])
        if dtype != spec.dtype:
            raise ValueError(
                f"from_tfrecord: feature {key!r} is stored as {dtype.name} but feature_spec says "
                f"{spec.dtype.name}; pass tf.TensorSpec({list(shape)}, tf.{dtype.name}) for it."
            )
        if not spec.shape.is_compatible_with(shape):
            raise ValueError(
                f"from_tfrecord: feature {key!r} has per-example shape {shape} but feature_spec "
                f"says {spec.shape}; pass the spec write_tfrecord returned."
            )


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}.")
    return bool(value)


def make_pipeline(
    ds: tf.data.Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool | None = None,
    preprocess: Mapping[str, Callable] | None = None,
    corruptions: Sequence[Callable] = (),
    shuffle_buffer: int | None = None,
    repeat: bool = False,
    cache: bool = False,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """Shuffles, preprocesses, batches, corrupts and prefetches a dataset of example dicts.

    The order of operations: cache -> shuffle -> (repeat) -> per-key ``preprocess`` -> batch ->
    ``corruptions`` (each gets a per-batch seed derived from ``seed`` and the batch index) ->
    prefetch(AUTOTUNE). Every step is deterministic, so the same seed yields the same batches.

    Args:
        ds: unbatched ``tf.data.Dataset`` of dicts.
        batch_size: examples per batch (>= 1).
        shuffle: shuffle the examples (training); reshuffled every epoch from ``seed``.
        seed: the shuffle and corruption seed.
        drop_remainder: drop the last partial batch; default: ``shuffle`` (True for training,
            False for evaluation).
        preprocess: ``{key: fn}``: ``fn`` maps that key's value of one example (e.g. per-modality
            normalisation); other keys pass through.
        corruptions: transforms from :mod:`tf_mmcl.data.corruptions`, applied to whole batches.
        shuffle_buffer: shuffle buffer size; default: the dataset size when known, else 10000.
        repeat: repeat indefinitely (after shuffling, so each epoch is reshuffled).
        cache: cache the examples in memory before shuffling.
        prefetch: add ``prefetch(AUTOTUNE)``.

    Returns:
        The batched ``tf.data.Dataset``.

    Example:
        >>> import numpy as np
        >>> ds = from_numpy({"a": np.arange(10, dtype="float32")[:, None]})
        >>> batches = list(make_pipeline(ds, 4, seed=1))
        >>> len(batches), batches[0]["a"].shape
        (2, TensorShape([4, 1]))
    """
    if not isinstance(ds, tf.data.Dataset):
        raise ValueError(f"make_pipeline expects a tf.data.Dataset, got {type(ds).__name__}.")
    if not isinstance(ds.element_spec, dict):
        raise ValueError("make_pipeline expects a dataset of dicts keyed by modality name.")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if shuffle_buffer is not None and (
        isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, (int, np.integer)) or shuffle_buffer < 1
    ):
        raise ValueError(f"shuffle_buffer must be a positive integer or None, got {shuffle_buffer!r}.")
    shuffle, repeat, cache, prefetch = (
        _flag(shuffle, "shuffle"),
        _flag(repeat, "repeat"),
        _flag(cache, "cache"),
        _flag(prefetch, "prefetch"),
    )
    if drop_remainder is not None:
        drop_remainder = _flag(drop_remainder, "drop_remainder")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}.")
    preprocess = dict(preprocess or {})
    unknown = [k for k in preprocess if k not in ds.element_spec]
    if unknown:
        raise ValueError(f"preprocess names keys {unknown} that the dataset lacks; it has {sorted(ds.element_spec)}.")
    for key, f in preprocess.items():
        if not callable(f):
            raise ValueError(f"preprocess[{key!r}] must be callable.")
    for c in corruptions:
        if not callable(c):
            raise ValueError(f"corruptions must be callables, got {type(c).__name__}.")
    if drop_remainder is None:
        drop_remainder = bool(shuffle)
    card = int(ds.cardinality())
    if card == 0:
        raise ValueError("make_pipeline: the dataset is empty (0 examples); there is nothing to batch.")
    if card > 0 and not repeat and drop_remainder and card < batch_size:
        raise ValueError(
            f"make_pipeline: batch_size={batch_size} with drop_remainder=True over {card} examples "
            f"yields 0 batches; use batch_size <= {card} or drop_remainder=False."
        )

    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    if cache:
        ds = ds.cache()
    if shuffle:
        if shuffle_buffer is None:
            card = int(ds.cardinality())
            shuffle_buffer = card if card > 0 else 10000
        ds = ds.shuffle(shuffle_buffer, seed=int(seed), reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if preprocess:
        ds = ds.map(_apply_preprocess(preprocess), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size), drop_remainder=bool(drop_remainder))
    if corruptions:
        corruptions = list(corruptions)
        base = tf.constant(int(seed), tf.int64)

        def corrupt(index, batch):
            for j, c in enumerate(corruptions):
                batch = c(batch, seed=tf.stack([base * 1009 + j, index]))
            return batch

        ds = ds.enumerate().map(corrupt, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds
