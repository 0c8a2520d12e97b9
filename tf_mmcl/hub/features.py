"""Cached encoder features: frozen encoders over a dataset -> sharded TFRecords + a manifest.

This is the papers' workflow (Symile-M3 trains its projection heads on precomputed CLIP /
Whisper / XLM-R features): run the expensive frozen backbones once, then train only the heads
(:mod:`tf_mmcl.hub.heads`) on the cached features, many times.

Layout of a feature directory::

    manifest.json            encoders (preset, pooling, dtype, feature width, weight
                             fingerprint), kept keys, shard size, shards with counts, total
                             count, and whether the extraction completed
    features-00000.tfrecord  tf.train.Example per input row: "<modality>" float list (D,),
    features-00001.tfrecord  every kept key (int64 scalar) and "index" (row number)
    ...

Shards are written to a temporary file and renamed when complete, and the manifest is
rewritten (temp + rename) after each shard, so a killed extraction resumes at the first shard
that is not on disk, without redoing the finished ones. Extraction into a directory whose
manifest names different encoders (another preset, pooling, dtype or other weights), another
source or another shard size is refused: features of different encoders never mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import weakref

import numpy as np
import tensorflow as tf

__all__ = [
    "FORMAT",
    "MANIFEST",
    "encoder_signature",
    "extract_features",
    "load_manifest",
    "read_features",
]

FORMAT = "tf_mmcl.features/1"
MANIFEST = "manifest.json"
_SHARD = "features-{:05d}.tfrecord"


_ENCODE_FNS = weakref.WeakKeyDictionary()


def _encode_fn(encoder):
    # One compiled function per encoder, reused across calls (a resumed extraction, the
    # benchmark's warm-up) so that tracing is paid once per process.
    fn = _ENCODE_FNS.get(encoder)
    if fn is None:
        fn = tf.function(lambda x: tf.cast(encoder(x, training=False), tf.float32), reduce_retracing=True)
        _ENCODE_FNS[encoder] = fn
    return fn


def encoder_signature(encoder):
    """What identifies the features an encoder produces (stored per modality in the manifest).

    Includes a SHA-1 fingerprint of the encoder's weights, so two presets with the same name
    but different weights are told apart.
    """
    digest = hashlib.sha1()
    for v in encoder.weights:
        digest.update(v.path.encode())
        digest.update(np.ascontiguousarray(np.asarray(v)).tobytes())
    return {
        "class": type(encoder).__name__,
        "preset": getattr(encoder, "preset", None),
        "kind": getattr(encoder, "kind", None),
        "pooling": getattr(encoder, "pooling", None),
        "padding_id": getattr(encoder, "padding_id", None),
        "dtype": encoder.dtype_policy.name,
        "feature_dim": int(encoder.feature_dim) if hasattr(encoder, "feature_dim") else None,
        "fingerprint": digest.hexdigest(),
    }


def load_manifest(directory):
    """The manifest of a feature directory (dict), or ``None`` if there is none."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a tf_mmcl feature manifest (format {manifest.get('format')!r}, expected {FORMAT!r})."
        )
    return manifest


def _write_json_atomic(path, obj):
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _check_same_run(old, new, directory):
    """Refuses to continue an extraction made with other encoders / source / shard size."""
    diffs = []
    for key in ("source", "shard_size", "keep_keys"):
        if old.get(key) != new.get(key):
            diffs.append(f"{key}: {old.get(key)!r} on disk vs {new.get(key)!r} now")
    if sorted(old["encoders"]) != sorted(new["encoders"]):
        diffs.append(f"modalities: {sorted(old['encoders'])} on disk vs {sorted(new['encoders'])} now")
    else:
        for m in sorted(new["encoders"]):
            for field, value in new["encoders"][m].items():
                if old["encoders"][m].get(field) != value:
                    diffs.append(f"{m}.{field}: {old['encoders'][m].get(field)!r} on disk vs {value!r} now")
    if diffs:
        raise ValueError(
            f"{directory} holds features of other encoders or data ("
            + "; ".join(diffs)
            + "); features from different encoders must not mix: "
            "use a new output directory (or delete this one)."
        )


def _example(row):
    feature = {}
    for key, value in row.items():
        value = np.asarray(value)
        if value.dtype.kind == "f":
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=value.reshape(-1)))
        else:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=value.reshape(-1)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def extract_features(
    encoders,
    dataset,
    directory,
    *,
    batch_size=32,
    shard_size=1024,
    keep_keys=(),
    source=None,
    progress=True,
    max_shards=None,
):
    """Runs frozen encoders over ``dataset`` and writes sharded TFRecords of pooled features.

    Args:
        encoders: dict modality -> encoder layer (a :class:`~tf_mmcl.layers.BackboneEncoder`,
            or any layer mapping a batch to ``(N, D)``); run in inference mode.
        dataset: an *unbatched* ``tf.data.Dataset`` of dicts holding every modality (already
            preprocessed: token ids, images, log-mels) and the ``keep_keys``, in a fixed order
            (resuming skips the rows of finished shards).
        directory: output directory (created).
        batch_size: rows per encoder call.
        shard_size: rows per shard (the unit of resumption); a multiple of ``batch_size``.
        keep_keys: integer scalar keys copied next to the features (e.g. ``("label",)``).
        source: a JSON-able description of the data (tfds name, split, files); a resumed
            extraction must have the same.
        progress: show a progress bar.
        max_shards: stop after this many shards in this call (``None``: all).

    Returns:
        the manifest dict (``complete`` is True once every row is written).

    Raises:
        ValueError: if the directory holds features of other encoders or another source, or
            a row misses a modality / kept key.
    """
    import keras

    directory = os.fspath(directory)
    if not isinstance(encoders, dict) or not encoders:
        raise ValueError("encoders must be a non-empty dict modality -> encoder layer.")
    if shard_size < 1 or batch_size < 1 or shard_size % batch_size:
        raise ValueError(f"shard_size ({shard_size}) must be a positive multiple of batch_size ({batch_size}).")
    modalities = sorted(encoders)
    keep_keys = sorted(keep_keys)
    manifest = {
        "format": FORMAT,
        "encoders": {m: encoder_signature(encoders[m]) for m in modalities},
        "keep_keys": keep_keys,
        "source": source,
        "shard_size": int(shard_size),
        "shards": [],
        "count": 0,
        "complete": False,
    }
    os.makedirs(directory, exist_ok=True)
    old = load_manifest(directory)
    if old is not None:
        _check_same_run(old, manifest, directory)
        for s in old["shards"]:  # resume after the contiguous prefix of finished shards
            if not os.path.exists(os.path.join(directory, s["file"])):
                break
            manifest["shards"].append(s)
        manifest["count"] = sum(s["count"] for s in manifest["shards"])
        manifest["complete"] = bool(old.get("complete")) and manifest["shards"] == old["shards"]
    for name in os.listdir(directory):  # a kill mid-shard leaves only a temporary file
        if ".tmp-" in name:
            os.remove(os.path.join(directory, name))
    if manifest["complete"]:
        return manifest
    _write_json_atomic(os.path.join(directory, MANIFEST), manifest)

    done_shards = len(manifest["shards"])
    total = int(dataset.cardinality())
    total = total if total >= 0 else None
    bar = keras.utils.Progbar(total, unit_name="example") if progress else None
    if bar is not None and manifest["count"]:
        bar.update(manifest["count"])

    fns = {m: _encode_fn(encoders[m]) for m in modalities}

    def encode(batch):
        return {m: fns[m](batch[m]) for m in modalities}

    rows = dataset.skip(done_shards * shard_size).batch(batch_size)
    iterator = iter(rows)
    shard = done_shards
    written_now = 0
    while max_shards is None or written_now < max_shards:
        name = _SHARD.format(shard)
        tmp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
        count = 0
        with tf.io.TFRecordWriter(tmp) as writer:
            while count < shard_size:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                missing = [k for k in modalities + keep_keys if k not in batch]
                if missing:
                    raise ValueError(f"Dataset rows miss key(s) {missing}; they have {sorted(batch)}.")
                features = {m: v.numpy() for m, v in encode({m: batch[m] for m in modalities}).items()}
                kept = {k: batch[k].numpy() for k in keep_keys}
                n = len(features[modalities[0]])
                for i in range(n):
                    row = {m: features[m][i] for m in modalities}
                    row.update({k: kept[k][i] for k in keep_keys})
                    row["index"] = np.int64(shard * shard_size + count + i)
                    writer.write(_example(row))
                count += n
                if bar is not None:
                    bar.add(n)
        if count == 0:
            os.remove(tmp)
            manifest["complete"] = True
            break
        os.replace(tmp, os.path.join(directory, name))
        manifest["shards"].append({"file": name, "count": count})
        manifest["count"] += count
        shard += 1
        written_now += 1
        if count < shard_size:
            manifest["complete"] = True
        _write_json_atomic(os.path.join(directory, MANIFEST), manifest)
        if manifest["complete"]:
            break
    _write_json_atomic(os.path.join(directory, MANIFEST), manifest)
    return manifest


def read_features(directory, batch_size=None, shuffle=None, seed=None, require_complete=True):
    """The cached features of ``directory`` as a ``tf.data.Dataset`` of dicts.

    Each element holds ``"<modality>"`` float32 ``(D,)`` (``(B, D)`` when batched), the kept
    keys and ``"index"``.

    Args:
        directory: a feature directory written by :func:`extract_features`.
        batch_size: batch the rows (``drop_remainder=True``, as contrastive training wants).
        shuffle: shuffle buffer size (``None``: keep the order).
        seed: shuffle seed.
        require_complete: refuse a directory whose extraction has not finished.
    """
    directory = os.fspath(directory)
    manifest = load_manifest(directory)
    if manifest is None:
        raise ValueError(f"{directory} has no {MANIFEST}: extract features there first (tools/extract_features.py).")
    if require_complete and not manifest["complete"]:
        raise ValueError(
            f"The extraction in {directory} is not complete ({manifest['count']} rows so far): rerun it to resume."
        )
    spec = {m: tf.io.FixedLenFeature([sig["feature_dim"]], tf.float32) for m, sig in manifest["encoders"].items()}
    spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in manifest["keep_keys"]})
    spec["index"] = tf.io.FixedLenFeature([], tf.int64)
    files = [os.path.join(directory, s["file"]) for s in manifest["shards"]]
    ds = tf.data.TFRecordDataset(files)
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed)
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=True)
        return ds.map(lambda r: tf.io.parse_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
