"""``m3_digits`` with Symile-M3's structure: image from (w-word text, audio).

The generator is checked on synthetic scans and clips for w = 2, 5 and 10 (no espeak-ng); the
tfds builder on ``symile_m3_tiny`` and a 2-language config built from the cached clip sample.
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tf_mmcl.datasets  # noqa: F401 (registers the builders)
from tf_mmcl.datasets.m3_digits import generate
from tf_mmcl.datasets.m3_digits import m3_digits_dataset_builder as m3b
from tf_mmcl.datasets.m3_digits.languages import LANGUAGE_SETS, MAX_TEXT_LENGTH, decode_text, digit_name

CACHE = os.path.join(os.path.dirname(__file__), "data", "m3_digits_clips")
SPLITS = ("train", "validation", "test")


def _synthetic_inputs(languages, n_scans=200, clips_per_language=4, audio_length=32):
    rng = np.random.default_rng(0)
    labels = np.arange(n_scans) % 10
    images = rng.random((n_scans, 8, 8, 1)).astype(np.float32)
    clip_ids = np.arange(len(languages) * clips_per_language)
    return dict(
        scan_ids=np.arange(n_scans),
        scan_images=images,
        scan_labels=labels,
        clip_ids=clip_ids,
        clip_waveforms={int(c): rng.normal(size=20).astype(np.float32) for c in clip_ids},
        clip_languages={int(c): int(c) // clips_per_language for c in clip_ids},
        clip_spoken={int(c): 10 + int(c) % 10 for c in clip_ids},
        languages=languages,
        audio_length=audio_length,
    )


def _words(text_row, w):
    return [decode_text(text_row[k * MAX_TEXT_LENGTH : (k + 1) * MAX_TEXT_LENGTH]) for k in range(w)]


@pytest.mark.parametrize("w", [2, 5, 10])
def test_structure_for_each_w(w):
    languages = LANGUAGE_SETS[w]
    inputs = _synthetic_inputs(languages)
    n = 2000
    x = generate.make_symile_m3_split(n, seed=[0, 3, 0], **inputs)
    assert x["text"].shape == (n, w * MAX_TEXT_LENGTH) and x["text"].dtype == np.int32
    assert x["text_languages"].shape == (n, w) and x["text_digits"].shape == (n, w)
    # The image shows the label; the audio is a clip of the language; the pairing is make_split's.
    np.testing.assert_array_equal(inputs["scan_labels"][x["image_id"]], x["label"])
    assert all(inputs["clip_languages"][int(c)] == lang for c, lang in zip(x["audio_id"], x["language"]))
    base = generate.make_split(n, seed=[0, 3, 0], **inputs)
    for k in ("image_id", "audio_id", "label", "language", "spoken"):
        np.testing.assert_array_equal(base[k], x[k])
    for i in range(0, n, 97):
        words = _words(x["text"][i], w)
        assert sorted(x["text_languages"][i].tolist()) == list(range(w))  # one word per language
        for k, (lang, digit) in enumerate(zip(x["text_languages"][i], x["text_digits"][i])):
            assert words[k] == digit_name(int(digit), languages[int(lang)])
        pos = x["answer_position"][i]
        assert x["text_languages"][i, pos] == x["language"][i]
        assert words[pos] == digit_name(int(x["label"][i]), languages[int(x["language"][i])])
    # The audio's language picks the word: its position in the text is uniform over the w slots,
    # and the other words' digits are independent of the label (so text alone leaves ~w digits).
    counts = np.bincount(x["answer_position"], minlength=w)
    assert counts.min() > 0.6 * n / w and counts.max() < 1.4 * n / w
    others = np.ones((n, w), bool)
    others[np.arange(n), x["answer_position"]] = False
    hit = (x["text_digits"] == x["label"][:, None]) & others
    assert abs(hit.sum() / others.sum() - 0.1) < 0.03
    if w >= 5:
        # Most texts name several distinct digits: the text alone does not decide the image.
        distinct = np.array([len(set(r)) for r in x["text_digits"]])
        assert np.mean(distinct >= 3) > 0.9


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("m3sym")
    builder = m3b.build(root, "symile_m3_tiny", clip_source=CACHE)
    data = {s: next(iter(tfds.as_numpy(builder.as_dataset(split=s).batch(10_000)))) for s in SPLITS}
    return builder, data


def test_tiny_build(built):
    builder, data = built
    config = m3b.CONFIGS["symile_m3_tiny"]
    w = len(config.languages)
    assert builder.info.metadata["structure"] == "symile_m3"
    sizes = {"train": config.n_train, "validation": config.n_val, "test": config.n_test}
    for split, x in data.items():
        n = sizes[split]
        assert x["image"].shape == (n, 8, 8, 1)
        assert x["audio"].shape == (n, config.audio_length)
        assert x["text"].shape == (n, w * MAX_TEXT_LENGTH)
        assert "text_id" not in x
        for i in range(n):
            pos = x["answer_position"][i]
            assert _words(x["text"][i], w)[pos] == digit_name(
                int(x["label"][i]), config.languages[int(x["language"][i])]
            )
    with pytest.raises(ValueError, match="retrieves the image"):
        builder.candidate_texts()


def test_two_word_config_and_default_config_name(tmp_path):
    config = m3b.M3DigitsConfig(
        name="sym2",
        languages=LANGUAGE_SETS[2],
        clips_per_language=3,
        n_train=12,
        n_val=6,
        n_test=6,
        audio_length=8000,
        speed_range=(260, 320),
        max_clip_seconds=0.5,
        structure="symile_m3",
    )
    builder = m3b.build(tmp_path, config=config, clip_source=CACHE)
    x = next(iter(tfds.as_numpy(builder.as_dataset(split="train").batch(100))))
    assert x["text"].shape == (12, 2 * MAX_TEXT_LENGTH)
    assert sorted(set(x["text_languages"].ravel().tolist())) == [0, 1]
    # The benchmark's default is Symile-M3's structure; "default" by name keeps the pairwise one.
    assert m3b.Builder.DEFAULT_CONFIG_NAME == "symile_m3_5"
    assert m3b.CONFIGS["symile_m3_5"].structure == "symile_m3"
    assert m3b.CONFIGS["default"].structure == "pairwise" == m3b.CONFIGS["pairwise"].structure
    assert [len(m3b.CONFIGS[f"symile_m3_{w}"].languages) for w in (2, 5, 10)] == [2, 5, 10]


def test_bad_structure():
    with pytest.raises(ValueError, match="structure"):
        m3b.M3DigitsConfig(name="x", structure="triples").validate()
