"""Cached features: resumable sharded extraction, no mixing of encoders, head-only training,
and the trained heads composed back onto the backbones for serving raw inputs."""

import os

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.hub import hub_utils as hu  # noqa: E402
from tf_mmcl.export import export_for_serving  # noqa: E402
from tf_mmcl.hub import features as fl  # noqa: E402
from tf_mmcl.hub.heads import compose_with_encoders, head_model  # noqa: E402
from tf_mmcl.layers import BackboneEncoder  # noqa: E402

ROWS = 20


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    return hu.make_presets(str(tmp_path_factory.mktemp("presets")))


def frozen_trio(presets, text_pooling="mean"):
    return {
        "image": BackboneEncoder.from_preset(presets["clip_vision"], trainable_blocks=0),
        "audio": BackboneEncoder.from_preset(presets["whisper"], trainable_blocks=0),
        "text": BackboneEncoder.from_preset(
            presets["xlm_roberta"], padding_id=1, pooling=text_pooling, trainable_blocks=0
        ),
    }


def raw_rows(n=ROWS):
    x = hu.trio_inputs(n=n)
    x["label"] = np.arange(n, dtype="int64") % 3
    return x


class Boom(Exception):
    pass


def test_extract_resumes_without_redoing_shards_and_matches_the_encoders(presets, tmp_path):
    encoders = frozen_trio(presets)
    x = raw_rows()
    out = str(tmp_path / "feats")
    ds = tf.data.Dataset.from_tensor_slices(x)
    first = fl.extract_features(
        encoders, ds, out, batch_size=4, shard_size=8, keep_keys=["label"], source="trio", progress=False, max_shards=1
    )
    assert not first["complete"] and [s["count"] for s in first["shards"]] == [8]
    shard0 = os.path.join(out, "features-00000.tfrecord")
    stamp = os.stat(shard0).st_mtime_ns

    # A kill in the middle of shard 1: the dataset dies after 12 rows, a temp file stays behind.
    def dying(i, row):
        tf.debugging.assert_less(i, tf.constant(12, tf.int64), message="killed")
        return row

    with pytest.raises(tf.errors.InvalidArgumentError, match="killed"):
        fl.extract_features(
            encoders,
            ds.enumerate().map(dying),
            out,
            batch_size=4,
            shard_size=8,
            keep_keys=["label"],
            source="trio",
            progress=False,
        )
    assert fl.load_manifest(out)["count"] == 8
    assert not os.path.exists(os.path.join(out, "features-00001.tfrecord"))

    done = fl.extract_features(
        encoders, ds, out, batch_size=4, shard_size=8, keep_keys=["label"], source="trio", progress=False
    )
    assert done["complete"] and done["count"] == ROWS
    assert [s["count"] for s in done["shards"]] == [8, 8, 4]
    assert os.stat(shard0).st_mtime_ns == stamp  # not redone
    assert not [f for f in os.listdir(out) if ".tmp-" in f]
    sig = done["encoders"]["text"]
    assert (sig["preset"], sig["pooling"], sig["dtype"], sig["feature_dim"]) == (
        presets["xlm_roberta"],
        "mean",
        "float32",
        32,
    )

    rows = list(fl.read_features(out).as_numpy_iterator())
    assert [r["index"] for r in rows] == list(range(ROWS))
    np.testing.assert_array_equal([r["label"] for r in rows], x["label"])
    for m, enc in encoders.items():
        np.testing.assert_allclose(np.stack([r[m] for r in rows]), enc(x[m]), atol=1e-5)


def test_refuses_to_mix_encoders(presets, tmp_path):
    x = raw_rows(8)
    ds = tf.data.Dataset.from_tensor_slices(x)
    out = str(tmp_path / "feats")
    fl.extract_features(frozen_trio(presets), ds, out, batch_size=4, shard_size=4, progress=False, max_shards=1)
    with pytest.raises(ValueError, match=r"text\.pooling.*must not mix"):
        fl.extract_features(
            frozen_trio(presets, text_pooling="cls"), ds, out, batch_size=4, shard_size=4, progress=False
        )
    other = frozen_trio(presets)
    other["image"] = BackboneEncoder(
        hu_random("clip_vision", seed=7), trainable_blocks=0, preset=presets["clip_vision"]
    )
    with pytest.raises(ValueError, match=r"image\.fingerprint"):
        fl.extract_features(other, ds, out, batch_size=4, shard_size=4, progress=False)
    with pytest.raises(ValueError, match="not complete"):
        fl.read_features(out)


def hu_random(arch, seed):
    from tf_mmcl.hub import random_backbone

    return random_backbone(arch, seed=seed)


def test_head_only_training_composes_into_a_raw_input_served_model(presets, tmp_path):
    encoders = frozen_trio(presets)
    x = raw_rows(16)
    out = str(tmp_path / "feats")
    manifest = fl.extract_features(
        encoders,
        tf.data.Dataset.from_tensor_slices(x),
        out,
        batch_size=8,
        shard_size=8,
        keep_keys=["label"],
        progress=False,
    )
    keras.utils.set_random_seed(0)
    heads = head_model(manifest, embedding_dim=8, objective="symile")
    heads.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = heads.fit(fl.read_features(out, batch_size=8), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # Only the heads train: three projections (kernel, bias) and the logit scale.
    assert len(heads.trainable_weights) == 7

    composed = compose_with_encoders(heads, encoders, {m: x[m][:2] for m in heads.modalities})
    feats = {m: np.stack([r[m] for r in fl.read_features(out).as_numpy_iterator()]) for m in heads.modalities}
    for m in heads.modalities:
        np.testing.assert_allclose(composed.embed(m, x[m]), heads.embed(m, feats[m]), atol=1e-5)
    # Served with raw inputs: int32 token ids, images, log-mels.
    version = export_for_serving(composed, str(tmp_path / "serving"), "trio")
    served = tf.saved_model.load(version).signatures["serving_default"]
    assert served.structured_input_signature[1]["text"].dtype == tf.int32
    got = served(**{m: tf.constant(x[m]) for m in heads.modalities})
    for m in heads.modalities:
        np.testing.assert_allclose(got[f"{m}_embedding"], heads.embed(m, feats[m]), atol=1e-5)
    # Another encoder than the one that made the features is refused.
    wrong = dict(
        encoders,
        text=BackboneEncoder.from_preset(presets["xlm_roberta"], pooling="cls", padding_id=1, trainable_blocks=0),
    )
    with pytest.raises(ValueError, match="not the one that produced"):
        compose_with_encoders(heads, wrong, x)


def test_extraction_under_a_chosen_precision(presets, tmp_path):
    x = raw_rows(8)
    ds = tf.data.Dataset.from_tensor_slices({"text": x["text"]})
    f32 = BackboneEncoder.from_preset(presets["xlm_roberta"], padding_id=1, trainable_blocks=0)
    bf16 = BackboneEncoder.from_preset(presets["xlm_roberta"], padding_id=1, trainable_blocks=0, dtype="mixed_bfloat16")
    assert bf16.backbone.compute_dtype == "bfloat16"
    manifest = fl.extract_features(
        {"text": bf16}, ds, str(tmp_path / "bf16"), batch_size=4, shard_size=8, progress=False
    )
    assert manifest["encoders"]["text"]["dtype"] == "mixed_bfloat16"
    got = np.stack([r["text"] for r in fl.read_features(str(tmp_path / "bf16")).as_numpy_iterator()])
    want = np.asarray(f32(x["text"]))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=0.1 * np.abs(want).max())
    assert not np.array_equal(got, want)  # really computed in bfloat16
