"""``m3_digits``: built offline from the cached clip sample; espeak-ng checked live when present.

The cached sample ``tests/datasets/data/m3_digits_clips`` is the ``tiny`` config's clip library
rendered by ``python -m tf_mmcl.datasets.m3_digits --config tiny --out <dir>`` with espeak-ng.
Every test except ``test_espeak_live_or_clear_error`` builds from it, so the suite needs neither
espeak-ng nor network. That test synthesizes with espeak-ng when it is installed; when it is not,
it checks that rendering fails with the apt hint instead of passing silently, and it fails if
``TF_MMCL_REQUIRE_ESPEAK=1`` (set it on CI machines that install espeak-ng).
"""

import doctest
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tf_mmcl.datasets  # noqa: F401 (registers the builders)
from tf_mmcl.data.audio import decode_wav, log_mel_spectrogram, tfio_available
from tf_mmcl.datasets.m3_digits import clips, generate
from tf_mmcl.datasets.m3_digits import languages as m3_languages
from tf_mmcl.datasets.m3_digits import m3_digits_dataset_builder as m3b
from tf_mmcl.datasets.m3_digits.languages import (
    DIGIT_NAMES,
    LANGUAGE_SETS,
    MAX_TEXT_LENGTH,
    decode_text,
    digit_name,
    encode_text,
    shared_words,
)

CACHE = os.path.join(os.path.dirname(__file__), "data", "m3_digits_clips")
TINY = m3b.CONFIGS["tiny"]
SPLITS = ("train", "validation", "test")


def _read_all(builder):
    return {s: next(iter(tfds.as_numpy(builder.as_dataset(split=s).batch(10_000)))) for s in SPLITS}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("m3")


@pytest.fixture(scope="module")
def tiny(tiny_root):
    builder = m3b.build(tiny_root, "tiny", clip_source=CACHE)
    return builder, _read_all(builder)


@pytest.fixture(scope="module")
def manifest():
    with open(os.path.join(CACHE, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def test_registered_and_build_is_idempotent(tiny, tiny_root, tmp_path):
    builder, data = tiny
    assert "m3_digits" in tfds.list_builders()
    assert isinstance(builder, tf_mmcl.datasets.M3Digits)
    by_name = tfds.builder("m3_digits/tiny", data_dir=str(tiny_root))
    assert by_name.info.splits["train"].num_examples == TINY.n_train
    # Already prepared: a second build reads nothing (this clip source does not even exist).
    again = m3b.build(tiny_root, "tiny", clip_source=tmp_path / "no_such_library")
    np.testing.assert_array_equal(_read_all(again)["test"]["audio"], data["test"]["audio"])
    with pytest.raises(ValueError, match="Unknown m3_digits config"):
        m3b.build(tmp_path, "nope", clip_source=CACHE)


def test_shapes_dtypes_and_sizes(tiny):
    builder, data = tiny
    sizes = {"train": TINY.n_train, "validation": TINY.n_val, "test": TINY.n_test}
    for split, x in data.items():
        n = sizes[split]
        assert builder.info.splits[split].num_examples == n
        assert x["image"].shape == (n, 8, 8, 1) and x["image"].dtype == np.float32
        assert x["audio"].shape == (n, TINY.audio_length) and x["audio"].dtype == np.float32
        assert x["text"].shape == (n, MAX_TEXT_LENGTH) and x["text"].dtype == np.int32
        for k in ("label", "language", "text_id", "image_id", "audio_id", "spoken"):
            assert x[k].shape == (n,) and x[k].dtype == np.int32, k
        assert 0.0 <= x["image"].min() and x["image"].max() <= 1.0 and x["image"].max() > 0.5
        assert np.abs(x["audio"]).max() <= 1.0
        assert np.all(np.abs(x["audio"]).max(axis=1) > 0.05)  # every example has speech
        assert np.all(x["text"][:, 0] > 0)
    assert builder.info.metadata["languages"] == list(TINY.languages)
    assert builder.info.metadata["sample_rate"] == 16000


def test_images_are_the_sklearn_scans(tiny):
    _, data = tiny
    images, labels = generate.load_digit_scans()
    assert images.shape == (1797, 8, 8, 1)
    for x in data.values():
        np.testing.assert_array_equal(x["image"], images[x["image_id"]])
        np.testing.assert_array_equal(x["label"], labels[x["image_id"]])


def test_splits_disjoint_in_scans_and_clips(tiny):
    builder, data = tiny
    for key in ("image_id", "audio_id"):
        sets = {s: set(data[s][key].tolist()) for s in SPLITS}
        for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
            assert not sets[a] & sets[b], (key, a, b)
    # Disjoint by construction, not by luck: the full scan split has no overlap either.
    _, labels = generate.load_digit_scans()
    full = generate.split_indices(labels, TINY.split_fractions, seed=[TINY.seed, 1])
    assert sum(len(v) for v in full.values()) == 1797
    assert len(set().union(*map(set, full.values()))) == 1797
    for s, ours in zip(SPLITS, generate.SPLITS):
        assert set(data[s]["image_id"].tolist()) <= set(full[ours].tolist())


def test_audio_is_the_clip_of_the_example_language(tiny, manifest):
    _, data = tiny
    by_id = {r["clip_id"]: r for r in manifest["clips"]}
    for x in data.values():
        for i in range(len(x["label"])):
            rec = by_id[int(x["audio_id"][i])]
            assert rec["language"] == TINY.languages[x["language"][i]]
            assert rec["spoken"] == x["spoken"][i] and rec["spoken"] >= 10  # never a single digit
            samples, rate = clips.read_wav_int16(os.path.join(CACHE, rec["file"]))
            n = min(len(samples), TINY.audio_length)
            np.testing.assert_array_equal(x["audio"][i, :n], samples[:n] / 32768.0)
            assert not x["audio"][i, n:].any()


def test_text_needs_both_image_and_audio(tiny):
    builder, data = tiny
    x = {k: np.concatenate([data[s][k] for s in SPLITS]) for k in data["train"]}
    texts = [tuple(t) for t in x["text"]]
    by_pair = {}
    for t, d, w in zip(texts, x["label"], x["language"]):
        by_pair.setdefault((int(d), int(w)), set()).add(t)
        assert decode_text(t) == digit_name(d, TINY.languages[w])
    assert all(len(v) == 1 for v in by_pair.values())  # (digit, language) determines the text
    assert len({next(iter(v)) for v in by_pair.values()}) == len(by_pair)  # and tells them apart
    # Neither the digit (image) alone nor the language (audio) alone determines it.
    for key in ("label", "language"):
        varying = [len({t for t, k in zip(texts, x[key]) if k == v}) for v in np.unique(x[key])]
        assert max(varying) > 1 and min(varying) >= 1, key
    assert sum(len({t for t, d in zip(texts, x["label"]) if d == v}) > 1 for v in range(10)) >= 5
    np.testing.assert_array_equal(builder.candidate_texts()[x["text_id"]], x["text"])
    np.testing.assert_array_equal(x["text_id"], x["language"] * 10 + x["label"])
    # The spoken number carries nothing about the digit: it is drawn from 10-19.
    assert set(x["spoken"].tolist()) <= set(TINY.spoken_numbers)


def test_audio_front_end_core_tf(tiny, manifest):
    _, data = tiny
    rec = manifest["clips"][0]
    with open(os.path.join(CACHE, rec["file"]), "rb") as f:
        wave, rate = decode_wav(f.read(), expected_sample_rate=16000)
    assert int(rate) == 16000 and 0 < wave.shape[0] <= 8000
    mel = log_mel_spectrogram(data["train"]["audio"][:4])
    assert mel.shape == (4, 50, 64) and np.all(np.isfinite(mel.numpy()))
    # Speech frames are louder than the zero padding at the end.
    assert float(tf.reduce_max(mel[:, :5])) > float(tf.reduce_max(mel[:, -1])) + 5.0
    # espeak-ng's native 22,050 Hz would be rejected: resampling happens at build time.
    raw = tf.audio.encode_wav(tf.zeros([2205, 1]), 22050)
    with pytest.raises(ValueError, match="resample"):
        decode_wav(raw, expected_sample_rate=16000)


def test_cached_sample_is_the_tiny_plan(manifest):
    plans = TINY.clip_plans()
    assert len(manifest["clips"]) == len(plans) == 15
    for rec, plan in zip(manifest["clips"], plans):
        assert {k: rec[k] for k in ("clip_id", "language", "spoken", "voice", "speed", "pitch", "file")} == {
            "clip_id": plan.clip_id,
            "language": plan.language,
            "spoken": plan.spoken,
            "voice": plan.voice,
            "speed": plan.speed,
            "pitch": plan.pitch,
            "file": plan.file,
        }
        samples, rate = clips.read_wav_int16(os.path.join(CACHE, rec["file"]))
        assert rate == 16000 and 0.1 * 16000 < len(samples) <= 0.5 * 16000
    total = sum(os.path.getsize(os.path.join(CACHE, n)) for n in os.listdir(CACHE))
    assert total < 300 * 1024
    assert len({r["voice"] for r in manifest["clips"]}) > 3
    assert len({r["speed"] for r in manifest["clips"]}) > 3


def test_espeak_live_or_clear_error(tmp_path, manifest):
    plan = TINY.clip_plans()[0]
    if not clips.espeak_available():
        if os.environ.get("TF_MMCL_REQUIRE_ESPEAK") == "1":
            pytest.fail("TF_MMCL_REQUIRE_ESPEAK=1 but espeak-ng is not installed: apt-get install -y espeak-ng")
        # Routed to the cached path: rendering must fail loudly, and the tests above use the cache.
        with pytest.raises(clips.EspeakNotFoundError, match="apt-get install -y espeak-ng"):
            clips.synthesize(plan)
        with pytest.raises(clips.EspeakNotFoundError, match="apt-get install -y espeak-ng"):
            m3b.build(tmp_path, "tiny", clip_source="espeak")
        return
    samples = clips.synthesize(plan, max_seconds=TINY.max_clip_seconds)
    assert samples.dtype == np.int16 and 0.1 * 16000 < len(samples) <= 8000
    assert np.abs(samples).max() > 1000
    cached, _ = clips.read_wav_int16(os.path.join(CACHE, plan.file))
    assert 0.7 < len(samples) / len(cached) < 1.3
    # Live build of tiny: same pairing as the cached build, audio rendered now.
    live = _read_all(m3b.build(tmp_path / "live", "tiny", clip_source="espeak"))
    cached_build = _read_all(m3b.build(tmp_path / "cached", "tiny", clip_source=CACHE))
    for s in SPLITS:
        for k in ("label", "language", "image_id", "audio_id", "spoken", "text"):
            np.testing.assert_array_equal(live[s][k], cached_build[s][k])
        assert np.all(np.abs(live[s]["audio"]).max(axis=1) > 0.05)
    with pytest.raises(RuntimeError, match="espeak-ng"):
        clips.synthesize(clips.ClipPlan(0, "en", 12, "no_such_voice_xyz", 170, 50))


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(clips.shutil, "which", lambda *_: None)
    plan = TINY.clip_plans()[0]
    for call in (
        lambda: clips.synthesize(plan),
        lambda: clips.render_clip_library(tmp_path / "lib", [plan]),
        lambda: m3b.build(tmp_path / "data", "tiny"),
    ):
        with pytest.raises(clips.EspeakNotFoundError, match="apt-get install -y espeak-ng"):
            call()


def test_missing_sklearn_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        generate.load_digit_scans()


def test_config_validation_and_clip_library_errors(tmp_path):
    with pytest.raises(ValueError, match="six"):
        m3b.M3DigitsConfig(name="x", languages=("en", "fr")).validate()
    m3b.M3DigitsConfig(name="x", languages=("en", "fr"), allow_shared_words=True).validate()
    with pytest.raises(ValueError, match="Unknown languages"):
        m3b.M3DigitsConfig(name="x", languages=("en", "xx")).validate()
    with pytest.raises(ValueError, match="clips_per_language"):
        m3b.M3DigitsConfig(name="x", clips_per_language=2).validate()
    with pytest.raises(ValueError, match="at least 2"):
        m3b.M3DigitsConfig(name="x", languages=("en",)).validate()
    more = m3b.M3DigitsConfig(name="more", clips_per_language=4, n_train=4, n_val=2, n_test=2, audio_length=800)
    with pytest.raises(ValueError, match="holds 3 clip"):
        m3b.build(tmp_path / "d", config=more, clip_source=CACHE)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        m3b.build(tmp_path / "e", "tiny", clip_source=tmp_path)
    # A library file at the wrong rate is rejected when read (decode_wav with 16 kHz expected).
    lib = tmp_path / "lib"
    lib.mkdir()
    clips.write_wav_int16(lib / "a.wav", np.ones(100, np.int16), sample_rate=22050)
    (lib / "manifest.json").write_text(
        json.dumps({"clips": [{"clip_id": 0, "language": "en", "spoken": 12, "file": "a.wav"}]})
    )
    with pytest.raises(ValueError, match="a.wav.*22050 Hz"):
        clips.load_clip_library(lib)


def test_custom_config_two_languages(tmp_path):
    config = m3b.M3DigitsConfig(
        name="two",
        languages=("en", "de"),
        clips_per_language=3,
        n_train=30,
        n_val=10,
        n_test=10,
        audio_length=4000,
        seed=0,
    )
    data = _read_all(m3b.build(tmp_path, config=config, clip_source=CACHE))
    assert data["train"]["audio"].shape == (30, 4000)
    assert set(np.concatenate([data[s]["language"] for s in SPLITS]).tolist()) == {0, 1}
    assert set(np.concatenate([data[s]["audio_id"] for s in SPLITS]).tolist()) <= set(range(6))


def test_languages_table_and_vocabulary():
    for n, langs in LANGUAGE_SETS.items():
        assert len(langs) == n and not shared_words(langs)
    assert shared_words(["en", "it"]) == {"zero": [("en", 0), ("it", 0)]}
    for lang, names in DIGIT_NAMES.items():
        assert len(names) == 10 and len(set(names)) == 10, lang
        for w in names:
            assert decode_text(encode_text(w)) == w
    assert encode_text("acht").tolist()[4:] == [0] * (MAX_TEXT_LENGTH - 4)
    with pytest.raises(ValueError, match="not in the m3_digits vocabulary"):
        encode_text("日本")
    with pytest.raises(ValueError, match="Unknown language"):
        digit_name(1, "xx")


def test_plan_is_deterministic_and_extension_stable():
    a = clips.plan_clips(("en", "de"), 3, seed=5)
    assert a == clips.plan_clips(("en", "de"), 3, seed=5)
    b = clips.plan_clips(("en", "de", "es"), 5, seed=5)
    assert [(p.spoken, p.voice, p.speed, p.pitch) for p in a[:3]] == [
        (p.spoken, p.voice, p.speed, p.pitch) for p in b[:3]
    ]
    assert a != clips.plan_clips(("en", "de"), 3, seed=6)
    assert generate.split_counts(3, (0.6, 0.2, 0.2)) == (1, 1, 1)
    assert generate.split_counts(60, (0.6, 0.2, 0.2)) == (36, 12, 12)
    with pytest.raises(ValueError, match="at least 3"):
        generate.split_counts(2, (0.6, 0.2, 0.2))


def test_resample_and_trim():
    t = np.arange(22050) / 22050
    x = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    y = clips.resample(x, 22050, 16000)
    assert y.dtype == np.int16 and len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 Hz bins over 1 s
    if tfio_available():
        assert len(clips.resample(x, 22050, 16000, resampler="tfio")) == 16000
    else:
        with pytest.raises(RuntimeError, match="tfio_available"):
            clips.resample(x, 22050, 16000, resampler="tfio")
    with pytest.raises(ValueError, match="resampler"):
        clips.resample(x, 22050, 16000, resampler="sox")
    padded = np.concatenate([np.zeros(1000, np.int16), x[:500], np.zeros(1000, np.int16)])
    assert len(clips.trim_silence(padded, margin=10)) <= 520
    with pytest.raises(ValueError, match="silent"):
        clips.trim_silence(np.zeros(10, np.int16))


@pytest.mark.parametrize("module", [m3_languages, generate], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
