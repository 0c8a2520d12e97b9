"""BackboneEncoder over tiny randomly initialised keras-hub presets saved by the test itself."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402

import tf_mmcl  # noqa: E402
from tests.hub import hub_utils as hu  # noqa: E402
from tf_mmcl.export import export_for_serving  # noqa: E402
from tf_mmcl.layers import BackboneEncoder  # noqa: E402
from tf_mmcl.layers.backbone import transformer_blocks  # noqa: E402


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    return hu.make_presets(str(tmp_path_factory.mktemp("presets")))


def test_from_preset_local_dirs_and_default_pooling(presets):
    expected = {
        "vit": ("image", "cls"),
        "clip_vision": ("image", "cls"),
        "bert": ("text", "pooled"),
        "xlm_roberta": ("text", "mean"),
        "distil_bert": ("text", "mean"),
        "whisper": ("audio", "mean"),
    }
    for arch, (kind, pooling) in expected.items():
        enc = BackboneEncoder.from_preset(presets[arch])
        assert (enc.kind, enc.pooling, enc.preset) == (kind, pooling, presets[arch]), arch
        assert enc.input_dtype == ("int32" if kind == "text" else "float32")
    # Whisper: the encoder alone (log-mel in, pooled out); the decoder's weights are not tracked.
    whisper = BackboneEncoder.from_preset(presets["whisper"])
    x = np.random.default_rng(0).normal(size=(3, hu.FRAMES, hu.MELS)).astype("float32")
    assert whisper(x).shape == (3, 32)
    assert not any("decoder" in v.path for v in whisper.weights)
    with pytest.raises(ValueError, match="pad or crop to 64 frames"):
        BackboneEncoder.from_preset(presets["whisper"])(np.zeros((1, 128, hu.MELS), "float32"))


def test_preset_name_without_network_fails_in_one_line(presets, monkeypatch, tmp_path):
    monkeypatch.delenv("TF_MMCL_PRESETS", raising=False)
    with pytest.raises(ValueError) as info:
        BackboneEncoder.from_preset("bert_tiny_en_uncased")
    message = str(info.value)
    assert "\n" not in message and "save_to_preset" in message and "TF_MMCL_PRESETS" in message
    # The same name resolves from $TF_MMCL_PRESETS/<name> when put there.
    os.symlink(presets["bert"], tmp_path / "bert_tiny_en_uncased")
    monkeypatch.setenv("TF_MMCL_PRESETS", str(tmp_path))
    assert BackboneEncoder.from_preset("bert_tiny_en_uncased").kind == "text"
    with pytest.raises(ValueError, match="does not exist"):
        BackboneEncoder.from_preset(str(tmp_path / "missing" / "dir"))


def test_text_pooling_matches_the_backbone_and_ignores_padding(presets):
    backbone = keras_hub.models.Backbone.from_preset(presets["bert"])
    ids = np.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 0]], "int32")
    out = backbone({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids != 0).astype("int32")})
    seq = np.asarray(out["sequence_output"])
    mask = (ids != 0)[..., None]
    np.testing.assert_allclose(BackboneEncoder(backbone, pooling="cls")(ids), seq[:, 0], atol=1e-6)
    np.testing.assert_allclose(BackboneEncoder(backbone, pooling="pooled")(ids), out["pooled_output"], atol=1e-6)
    mean = BackboneEncoder(backbone, pooling="mean")
    np.testing.assert_allclose(mean(ids), (seq * mask).sum(1) / mask.sum(1), atol=1e-5)
    # More padding changes nothing; a padding id of 0 vs 3 changes which tokens count.
    longer = np.concatenate([ids, np.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(mean(longer), mean(ids), atol=1e-5)
    other = BackboneEncoder(backbone, pooling="mean", padding_id=3)
    assert not np.allclose(other(ids), mean(ids))
    # Attention pooling starts as the masked mean, and its query is trainable.
    att = BackboneEncoder(backbone, pooling="attention")
    np.testing.assert_allclose(att(ids), mean(ids), atol=1e-5)
    assert any("attention_query" in v.path for v in att.trainable_weights)
    with pytest.raises(ValueError, match="integer token ids"):
        BackboneEncoder(backbone)(ids.astype("float32"))
    with pytest.raises(ValueError, match="max_sequence_length=16"):
        BackboneEncoder(backbone)(np.ones((1, 17), "int32"))


def test_pooling_errors_name_the_fix(presets):
    vit = keras_hub.models.Backbone.from_preset(presets["vit"])
    with pytest.raises(ValueError, match="pooled_output"):
        BackboneEncoder(vit, pooling="pooled")
    with pytest.raises(ValueError, match="pooling"):
        BackboneEncoder(vit, pooling="max")
    with pytest.raises(ValueError, match="Keras model"):
        BackboneEncoder("vit")


def test_freezing_whole_or_all_but_last_blocks(presets):
    vit = keras_hub.models.Backbone.from_preset(presets["vit"])
    blocks = transformer_blocks(vit)
    assert len(blocks) == 2
    frozen = BackboneEncoder(keras_hub.models.Backbone.from_preset(presets["vit"]), trainable_blocks=0)
    assert frozen.trainable_weights == [] and frozen.frozen
    last = BackboneEncoder(vit, trainable_blocks=1)
    trainable = {v.path for v in last.trainable_weights}
    assert trainable and all(blocks[-1].name in p or "/ln/" in p for p in trainable), trainable
    assert not any("class_token" in p or "patching" in p or blocks[0].name in p for p in trainable)
    assert {v.path for v in blocks[-1].weights} <= trainable
    with pytest.raises(ValueError, match="2 transformer block"):
        BackboneEncoder(keras_hub.models.Backbone.from_preset(presets["vit"]), trainable_blocks=3)
    # Frozen encoders run in inference mode even when the model trains (dropout off).
    drop = BackboneEncoder.from_preset(presets["xlm_roberta"], trainable_blocks=0)
    ids = np.array([[5, 6, 7]], "int32")
    np.testing.assert_array_equal(drop(ids, training=True), drop(ids, training=False))


def test_generic_keras_model_and_config_round_trip():
    inp = keras.Input((5, 3))
    backbone = keras.Model(inp, keras.layers.Dense(4)(inp))
    enc = BackboneEncoder(backbone, pooling="attention", name="enc")
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    y = enc(x)
    config = enc.get_config()
    json.dumps(config)
    clone = BackboneEncoder.from_config(config)
    clone(x)
    clone.set_weights(enc.get_weights())
    np.testing.assert_allclose(clone(x), y, atol=1e-6)
    assert clone.get_config() == config


@pytest.mark.slow
def test_trains_saves_and_serves_the_symile_trio(presets, tmp_path):
    keras.utils.set_random_seed(0)
    encoders = {
        "image": BackboneEncoder.from_preset(presets["clip_vision"]),
        "audio": BackboneEncoder.from_preset(presets["whisper"], trainable_blocks=1),
        "text": BackboneEncoder.from_preset(presets["xlm_roberta"], padding_id=1),
    }
    model = tf_mmcl.models.MultimodalContrastiveModel(encoders, embedding_dim=8, objective="symile")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = hu.trio_inputs()
    before = {m: [np.array(v) for v in encoders[m].weights] for m in encoders}
    history = model.fit(x, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    for m, enc in encoders.items():
        trainable = {id(v) for v in enc.trainable_weights}
        for v, old in zip(enc.weights, before[m]):
            # Trainable weights moved; frozen ones (all but Whisper's last block) did not.
            assert (not np.array_equal(np.array(v), old)) == (id(v) in trainable), (m, v.path)
    # .keras round trip: identical embeddings.
    path = str(tmp_path / "trio.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    for m in model.modalities:
        np.testing.assert_array_equal(reloaded.embed(m, x[m]), model.embed(m, x[m]))
    assert reloaded.encoders["audio"].trainable_blocks == 1
    assert len(reloaded.trainable_weights) == len(model.trainable_weights)
    # SavedModel served by a TensorFlow-only process: int32 ids in, same embeddings out.
    version = export_for_serving(model, str(tmp_path / "serving"), "trio")
    np.savez(tmp_path / "in.npz", **x)
    report = json.loads(
        hu.run_tf_only(hu.TF_ONLY_SCRIPT, version, str(tmp_path / "in.npz"), str(tmp_path / "out.npz"))
        .strip()
        .splitlines()[-1]
    )
    assert report["imported"] == []
    assert report["input_dtypes"]["text"] == "int32"
    served = np.load(tmp_path / "out.npz")
    full = model(x)
    for m in model.modalities:
        np.testing.assert_allclose(served[f"{m}_embedding"], full[m], atol=1e-6)


def test_mixed_precision_fit(presets):
    keras.mixed_precision.set_global_policy("mixed_float16")
    encoders = {
        "image": BackboneEncoder.from_preset(presets["vit"]),
        "text": BackboneEncoder.from_preset(presets["bert"]),
    }
    assert encoders["image"].backbone.compute_dtype == "float16"
    model = tf_mmcl.models.MultimodalContrastiveModel(encoders, embedding_dim=8, objective="clip")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = hu.trio_inputs(padding_id=0)
    history = model.fit({"image": x["image"], "text": x["text"]}, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert model.embed("text", x["text"]).dtype == "float32"


@pytest.mark.slow
def test_without_keras_hub_the_error_names_the_extra(presets):
    script = (
        "import sys; sys.modules['keras_hub'] = None\n"
        "import tf_mmcl\n"
        "try:\n"
        f"    tf_mmcl.layers.BackboneEncoder.from_preset({presets['vit']!r})\n"
        "except ImportError as e:\n"
        "    print('MSG', e)\n"
    )
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MSG" in proc.stdout and "make install-hub" in proc.stdout and "tf-mmcl[hub]" in proc.stdout


def test_preset_tokenizer_runs_in_tf_data(tmp_path):
    import tensorflow as tf

    from tf_mmcl.hub import save_random_preset
    from tf_mmcl.hub.pipeline import preprocessor

    preset = save_random_preset(str(tmp_path / "bert"), "bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "dog"]
    keras_hub.models.BertTokenizer(vocabulary=vocab).save_to_preset(preset)
    tokenize = preprocessor(preset, "text", sequence_length=5, padding_id=0)
    ds = tf.data.Dataset.from_tensor_slices(["the cat sat", "dog"]).map(tokenize)
    ids = np.stack(list(ds.as_numpy_iterator()))
    np.testing.assert_array_equal(ids, [[5, 6, 7, 0, 0], [8, 0, 0, 0, 0]])
    assert ids.dtype == np.int32
    assert BackboneEncoder.from_preset(preset)(ids).shape == (2, 32)
    assert BackboneEncoder.from_preset(preset).padding_id == 0
    assert preprocessor(save_random_preset(str(tmp_path / "vit"), "vit"), "image") is None
    # The padding id comes from the preset's tokenizer unless given.
    other = save_random_preset(str(tmp_path / "bert2"), "bert")
    keras_hub.models.BertTokenizer(vocabulary=["[UNK]", "[CLS]", "[PAD]", "[SEP]", "[MASK]", "a"]).save_to_preset(other)
    assert BackboneEncoder.from_preset(other).padding_id == 2
    assert BackboneEncoder.from_preset(other, padding_id=0).padding_id == 0


def test_docstring_examples():
    import doctest

    from tf_mmcl.hub import finetune, heads
    from tf_mmcl.layers import backbone

    for module in (backbone, heads, finetune):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_preset_audio_and_image_converters_run_in_tf_data(tmp_path):
    import tensorflow as tf

    from tf_mmcl.hub import save_random_preset
    from tf_mmcl.hub.pipeline import preprocessor

    whisper = save_random_preset(str(tmp_path / "whisper"), "whisper")
    keras_hub.layers.WhisperAudioConverter(
        num_mels=hu.MELS, num_fft_bins=50, stride=25, sampling_rate=1600, max_audio_length=1
    ).save_to_preset(whisper)
    to_mels = preprocessor(whisper, "audio")
    waves = np.random.default_rng(0).normal(size=(2, 1200)).astype("float32")
    mels = np.stack(list(tf.data.Dataset.from_tensor_slices(waves).map(to_mels).as_numpy_iterator()))
    assert mels.shape == (2, hu.FRAMES, hu.MELS)
    assert BackboneEncoder.from_preset(whisper)(mels).shape == (2, 32)

    vit = save_random_preset(str(tmp_path / "vit"), "vit")
    keras_hub.layers.ViTImageConverter(image_size=hu.IMAGE[:2], scale=1 / 255.0).save_to_preset(vit)
    convert = preprocessor(vit, "image")
    images = np.random.default_rng(1).integers(0, 256, size=(2, 48, 40, 3)).astype("float32")
    out = np.stack(list(tf.data.Dataset.from_tensor_slices(images).map(convert).as_numpy_iterator()))
    assert out.shape == (2,) + hu.IMAGE and out.max() <= 1.0 + 1e-6
