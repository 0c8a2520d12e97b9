"""Config-driven real-data pipeline: encoders from presets, the input dataset, extraction,
head-only training and the raw-input export (what ``tools/extract_features.py`` and
``tools/train_heads.py`` run; configs in ``configs/hub/*.py``).

Config keys (see ``configs/hub/symile_m3.py``):

* ``encoders.<modality>``: ``preset`` (name, local directory, or a name under
  ``$TF_MMCL_PRESETS``), ``pooling`` (``""``: the backbone kind's default), ``padding_id``,
  ``key`` (the dataset key holding this modality), ``sequence_length`` (text: pad / truncate
  token ids to this length; 0 keeps the data's).
* ``data``: ``tfds`` (a tfds name, read with ``download=False``) or ``tfrecords`` (a glob of
  files written by :func:`write_tensor_records`), ``split``, ``data_dir``, ``keep_keys``.
* ``extract``: ``batch_size``, ``shard_size``, ``precision`` (a Keras dtype policy:
  ``float32``, ``mixed_bfloat16``, ``mixed_float16``).
* ``features_dir``: where the features go.
* ``heads``: ``objective``, ``embedding_dim``, ``epochs``, ``batch_size``, ``learning_rate``,
  ``shuffle``, ``seed``.
"""

from __future__ import annotations

import glob
import os

import keras
import tensorflow as tf

from tf_mmcl.data.pipeline import write_tfrecord
from tf_mmcl.hub import features as features_lib
from tf_mmcl.hub.heads import compose_with_encoders, head_model

__all__ = ["input_dataset", "load_encoders", "preprocessor", "run_extraction", "train_heads", "write_tensor_records"]


# ---------------------------------------------------------------------------------- data
def write_tensor_records(path, arrays):
    """Writes dict key -> array ``(N, ...)`` as TFRecords of ``tf.io.serialize_tensor`` bytes,
    one Example per row (the ``data.tfrecords`` format), atomically."""
    n = {len(v) for v in arrays.values()}
    if len(n) != 1:
        raise ValueError(f"All arrays need the same number of rows, got { {k: len(v) for k, v in arrays.items()} }.")
    tmp = f"{path}.tmp"
    write_tfrecord(tmp, arrays)  # the same row format as tf_mmcl.data.from_tfrecord reads
    os.replace(tmp, path)


def _tensor_records(pattern, keys):
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"data.tfrecords={pattern!r} matches no file.")
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(files[:1]))).numpy())
    dtypes = {}
    for k in keys:
        if k not in first.features.feature:
            raise ValueError(f"TFRecords {pattern!r} have no key {k!r}; they have {sorted(first.features.feature)}.")
        proto = tf.make_tensor_proto(0)
        proto.ParseFromString(first.features.feature[k].bytes_list.value[0])
        dtypes[k] = tf.dtypes.as_dtype(proto.dtype)
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in keys}

    def parse(record):
        row = tf.io.parse_single_example(record, spec)
        return {k: tf.io.parse_tensor(row[k], dtypes[k]) for k in keys}

    return tf.data.TFRecordDataset(files).map(parse)


def preprocessor(preset, kind, sequence_length=0, padding_id=0):
    """The preset's own preprocessing as a ``tf.data``-mappable function, or ``None``.

    Text presets with a tokenizer turn strings into ``(L,)`` int32 ids (padded with
    ``padding_id`` / truncated to ``sequence_length``); image presets with an image converter
    resize and rescale; audio presets with an audio converter turn waveforms into log-mels.
    Presets without these files (e.g. the random ones of :mod:`tf_mmcl.hub.random_presets`)
    return ``None``: the data must already be ids / images / log-mels.
    """
    from tf_mmcl.layers.backbone import require_keras_hub, resolve_preset

    source = resolve_preset(preset)
    if not os.path.isdir(source):
        return None
    keras_hub = require_keras_hub("preprocessor")
    if kind == "text" and os.path.exists(os.path.join(source, "tokenizer.json")):
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(source)

        def tokenize(text):
            ids = tf.cast(tokenizer(text), tf.int32)
            if isinstance(ids, tf.RaggedTensor):
                ids = ids.to_tensor(default_value=padding_id)
            if sequence_length:
                ids = ids[..., :sequence_length]
                pad = sequence_length - tf.shape(ids)[-1]
                ids = tf.pad(ids, [[0, pad]] if ids.shape.rank == 1 else [[0, 0], [0, pad]], constant_values=padding_id)
            return ids

        return tokenize
    if kind == "image" and os.path.exists(os.path.join(source, "image_converter.json")):
        return keras_hub.layers.ImageConverter.from_preset(source)
    if kind == "audio" and os.path.exists(os.path.join(source, "audio_converter.json")):
        return keras_hub.layers.AudioConverter.from_preset(source)
    return None


def _pad_ids(ids, length, padding_id):
    ids = tf.cast(ids[:length], tf.int32)
    return tf.pad(ids, [[0, length - tf.shape(ids)[0]]], constant_values=padding_id)


def input_dataset(config, encoders):
    """The unbatched dataset of dicts modality -> preprocessed input (+ kept keys)."""
    data = config.data
    keys = {m: (config.encoders[m].key or m) for m in encoders}
    keep = list(data.keep_keys)
    if data.tfds and data.tfrecords:
        raise ValueError("Set one of data.tfds and data.tfrecords, not both.")
    if data.tfds:
        import tensorflow_datasets as tfds

        ds = tfds.load(data.tfds, split=data.split, data_dir=data.data_dir or None, download=False, shuffle_files=False)
    elif data.tfrecords:
        ds = _tensor_records(data.tfrecords, sorted(set(keys.values()) | set(keep)))
    else:
        raise ValueError("Set data.tfds (a tfds name) or data.tfrecords (a glob of TFRecords).")
    steps = {}
    for m, enc in encoders.items():
        c = config.encoders[m]
        fn = preprocessor(c.preset, enc.kind, c.sequence_length, c.padding_id)
        if fn is None and enc.kind == "text" and c.sequence_length:
            fn = lambda ids, c=c: _pad_ids(ids, c.sequence_length, c.padding_id)  # noqa: E731
        steps[m] = fn

    def select(row):
        out = {}
        for m in encoders:
            x = row[keys[m]]
            out[m] = steps[m](x) if steps[m] is not None else x
        out.update({k: tf.cast(row[k], tf.int64) for k in keep})
        return out

    return ds.map(select)


# ---------------------------------------------------------------------------------- steps
def load_encoders(config, trainable_blocks=0):
    """dict modality -> ``BackboneEncoder.from_preset`` per ``config.encoders``."""
    from tf_mmcl.layers import BackboneEncoder

    precision = config.extract.precision if "extract" in config else None
    encoders = {}
    for m in sorted(config.encoders):
        c = config.encoders[m]
        encoders[m] = BackboneEncoder.from_preset(
            c.preset,
            pooling=c.pooling or None,
            padding_id=int(c.padding_id),
            trainable_blocks=trainable_blocks,
            dtype=precision or None,
            name=f"encoder_{m}",
        )
    return encoders


def _source(config):
    d = config.data
    return {"tfds": d.tfds, "tfrecords": d.tfrecords, "split": d.split}


def run_extraction(config, features_dir=None, max_shards=None, progress=True):
    """Extracts (or resumes extracting) the config's features; returns the manifest."""
    features_dir = features_dir or config.features_dir
    if not features_dir:
        raise ValueError("Set features_dir (config.features_dir or --features_dir).")
    encoders = load_encoders(config, trainable_blocks=0)
    ds = input_dataset(config, encoders)
    return features_lib.extract_features(
        encoders,
        ds,
        features_dir,
        batch_size=config.extract.batch_size,
        shard_size=config.extract.shard_size,
        keep_keys=list(config.data.keep_keys),
        source=_source(config),
        progress=progress,
        max_shards=max_shards,
    )


def train_heads(config, workdir, features_dir=None, export_dir=None, verbose=0):
    """Trains the head-only model on cached features; saves ``heads.keras``, ``history.json``,
    and, with ``export_dir``, the raw-input model composed with the backbones
    (``export_for_serving`` to ``<export_dir>/<name>/<version>``).

    Returns:
        (head model, history dict, version directory or None).
    """
    features_dir = features_dir or config.features_dir
    manifest = features_lib.load_manifest(features_dir)
    if manifest is None:
        raise ValueError(f"No features in {features_dir!r}: run tools/extract_features.py first.")
    h = config.heads
    keras.utils.set_random_seed(h.seed)
    model = head_model(manifest, h.embedding_dim, objective=h.objective, modalities=sorted(config.encoders))
    model.compile(optimizer=keras.optimizers.Adam(h.learning_rate))
    ds = features_lib.read_features(
        features_dir, batch_size=h.batch_size, shuffle=h.shuffle or None, seed=h.seed
    ).prefetch(tf.data.AUTOTUNE)
    history = model.fit(ds, epochs=h.epochs, verbose=verbose)
    os.makedirs(workdir, exist_ok=True)
    from tf_mmcl.training.files import atomic_path, write_json  # never a half-written file

    with atomic_path(os.path.join(workdir, "heads.keras")) as tmp:
        model.save(tmp)
    write_json(os.path.join(workdir, "history.json"), {k: [float(x) for x in v] for k, v in history.history.items()})
    version = None
    if export_dir:
        from tf_mmcl.export import export_for_serving

        encoders = load_encoders(config, trainable_blocks=0)
        sample = next(iter(input_dataset(config, encoders).batch(1)))
        composed = compose_with_encoders(model, encoders, {m: sample[m] for m in encoders})
        version = export_for_serving(composed, export_dir, config.get("name", "model"))
    return model, history.history, version
