"""``m3_digits``: a trimodal benchmark of handwritten digits, spoken languages and written names.

The offline, small-scale analogue of Symile-M3: given an **image** (a real handwritten digit
from scikit-learn's bundled 8x8 digits set) and an **audio** clip (espeak-ng speech in language
``w``), predict the **text** (the digit's name in ``w``). The image fixes the digit, the audio
fixes the language, and neither alone fixes the text, so pairwise models (CLIP) can at best
guess the missing factor: about ``1 / number of languages`` of Symile's 2->1 accuracy.

Example features (all fixed shape; ``audio_length`` depends on the config):

* ``image``: float32 ``(8, 8, 1)`` in ``[0, 1]`` (gray level / 16);
* ``audio``: float32 ``(audio_length,)``, 16 kHz mono, ``int16 / 32768``, speech from the
  first sample (silence trimmed at render time), zero-padded or cut at the end;
* ``text``: int32 ``(12,)`` character ids (:data:`~tf_mmcl.datasets.m3_digits.languages.VOCABULARY`), 0-padded;
* int32 scalars ``label`` (digit), ``language`` (index into the config's ``languages``),
  ``text_id`` (``language * 10 + label``, the row of :meth:`Builder.candidate_texts`),
  ``image_id`` (scan index in ``load_digits()``), ``audio_id`` (clip id in the clip
  library) and ``spoken`` (the number the clip says, independent of ``label``).

Splits ``train`` / ``validation`` / ``test`` are disjoint in scans and in clips.

Configs of this *pairwise* structure: ``l2``, ``default`` (= ``l5`` = ``pairwise``) and ``l10``
(2, 5, 10 languages) and ``tiny`` (5 languages, 3 short clips each, 40/20/20 examples, for tests).

Symile-M3's structure (``structure="symile_m3"``; configs ``symile_m3_2``, ``symile_m3_5`` (the
builder's default config), ``symile_m3_10``, ``symile_m3_tiny``): the text is ``w`` digit names,
one per language, in random order, the word in the audio's language naming the image's digit
and the others random digits; the task is to retrieve the **image** from (text, audio). The
text alone leaves ~``w`` candidate digits and the audio says only the language, so a pairwise
(additive) score cannot pick the word: CLIP should land near ``1/w`` of Symile. Features:
``text`` int32 ``(w * 12,)`` (word ``k`` in slots ``12k .. 12k+11``), ``text_languages`` and
``text_digits`` int32 ``(w,)``, ``answer_position`` (the slot of the audio's language), and
``label``, ``language``, ``image_id``, ``audio_id``, ``spoken`` as above (no ``text_id``).

Example:
    >>> import tempfile, tf_mmcl.datasets.m3_digits as m3  # doctest: +SKIP
    >>> b = m3.build(tempfile.mkdtemp(), "default")  # needs espeak-ng + scikit-learn  # doctest: +SKIP
    >>> ds = b.as_dataset(split="train")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from tf_mmcl.datasets.m3_digits import clips as _clips
from tf_mmcl.datasets.m3_digits import generate as _gen
from tf_mmcl.datasets.m3_digits.languages import DIGIT_NAMES, LANGUAGE_SETS, MAX_TEXT_LENGTH, VOCABULARY, shared_words

__all__ = ["Builder", "CONFIGS", "M3DigitsConfig", "build"]

# tfds split name -> our split name (as in tf_mmcl.datasets.TFDS_SPLITS).
_TFDS_SPLITS = {"train": "train", "validation": "val", "test": "test"}

#: "pairwise": text from image + audio, each a pairwise factor; "symile_m3": Symile-M3's
#: structure, image from text (w words) + audio, decided only by the pair.
STRUCTURES = ("pairwise", "symile_m3")


@dataclasses.dataclass(eq=False)
class M3DigitsConfig(tfds.core.BuilderConfig):
    """An ``m3_digits`` config: languages, clip library plan, split sizes and seed.

    Attributes:
        languages: espeak-ng language codes (keys of ``DIGIT_NAMES``); at least 2.
        clips_per_language: clips rendered per language, divided train/val/test (>= 3).
        n_train: examples in ``train``.
        n_val: examples in ``validation``.
        n_test: examples in ``test``.
        audio_length: samples per ``audio`` at 16 kHz.
        split_fractions: train/val/test fractions for both scans (per digit) and clips (per
            language).
        spoken_numbers: numbers a clip may say (default 10-19: never a single digit).
        variants: espeak-ng voice variants.
        speed_range: words per minute, inclusive.
        pitch_range: espeak-ng pitch, inclusive.
        max_clip_seconds: cut rendered clips to this duration (``None``: no cut).
        seed: seeds the clip plan, the splits and the pairing.
        allow_shared_words: accept language sets in which one word names a digit in two
            languages (two (digit, language) classes with one text).
        structure: ``"pairwise"`` (text = the name of the image's digit in the audio's
            language; retrieve the text from image + audio; each factor is a pairwise
            dependence) or ``"symile_m3"`` (Symile-M3's: text = ``w = len(languages)`` digit
            names, one per language, in random order, the word in the audio's language naming
            the image's digit; retrieve the image from text + audio; only the pair decides).
    """

    languages: tuple = LANGUAGE_SETS[5]
    clips_per_language: int = 60
    n_train: int = 6000
    n_val: int = 1000
    n_test: int = 1000
    audio_length: int = 16000
    split_fractions: tuple = (0.6, 0.2, 0.2)
    spoken_numbers: tuple = tuple(range(10, 20))
    variants: tuple = ("m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "klatt", "croak")
    speed_range: tuple = (140, 220)
    pitch_range: tuple = (20, 80)
    max_clip_seconds: float | None = None
    seed: int = 0
    allow_shared_words: bool = False
    structure: str = "pairwise"

    def validate(self):
        """Raises ``ValueError`` for an inconsistent config."""
        if self.structure not in STRUCTURES:
            raise ValueError(f"`structure` must be one of {STRUCTURES}. Received: {self.structure!r}")
        unknown = [lang for lang in self.languages if lang not in DIGIT_NAMES]
        if unknown:
            raise ValueError(f"Unknown languages {unknown}; known: {sorted(DIGIT_NAMES)}.")
        if len(self.languages) < 2 or len(set(self.languages)) != len(self.languages):
            raise ValueError(f"`languages` must hold at least 2 distinct codes. Received: {self.languages}")
        if self.clips_per_language < 3:
            raise ValueError(
                f"`clips_per_language` must be >= 3 (one clip per split at least). Received: {self.clips_per_language}"
            )
        for name in ("n_train", "n_val", "n_test", "audio_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "audio_length" else 0):
                raise ValueError(
                    f"`{name}` must be a non-negative integer (audio_length positive). Received: {value!r}"
                )
        shared = shared_words(self.languages)
        if shared and not self.allow_shared_words:
            raise ValueError(
                f"In languages {list(self.languages)} some words name a digit in several languages: "
                f"{shared}. The text would not tell those (digit, language) classes apart; choose "
                "other languages (LANGUAGE_SETS are collision-free) or set allow_shared_words=True."
            )
        _gen.split_counts(self.clips_per_language, self.split_fractions)

    def clip_plans(self):
        """The espeak-ng plan of this config's clip library (:func:`clips.plan_clips`)."""
        return _clips.plan_clips(
            self.languages,
            self.clips_per_language,
            spoken_numbers=self.spoken_numbers,
            variants=self.variants,
            speed_range=self.speed_range,
            pitch_range=self.pitch_range,
            seed=self.seed,
        )


def _config(name, n_lang, description, **kw):
    return M3DigitsConfig(name=name, description=description, languages=LANGUAGE_SETS[n_lang], **kw)


CONFIGS = {
    c.name: c
    for c in (
        _config("default", 5, "5 languages (en de es fi tr), 60 clips each, 6000/1000/1000 examples, 1 s audio."),
        _config("l2", 2, "2 languages (en de), 60 clips each, 6000/1000/1000 examples, 1 s audio."),
        _config("l5", 5, "Same as default: 5 languages, 60 clips each, 6000/1000/1000 examples, 1 s audio."),
        _config("l10", 10, "10 languages, 60 clips each, 10000/1000/1000 examples, 1 s audio.", n_train=10000),
        _config(
            "tiny",
            5,
            "Tiny, for tests: 5 languages, 3 fast clips of <= 0.5 s each, 40/20/20 examples.",
            clips_per_language=3,
            n_train=40,
            n_val=20,
            n_test=20,
            audio_length=8000,
            speed_range=(260, 320),
            max_clip_seconds=0.5,
        ),
        _config(
            "pairwise",
            5,
            "Same as default (the pairwise structure, named): 5 languages, 60 clips "
            "each, 6000/1000/1000 examples, 1 s audio.",
        ),
        # Symile-M3's structure (Symile-M3-2/5/10): image from (text of w words, audio).
        _config(
            "symile_m3_2",
            2,
            "Symile-M3-2 structure: image from (2-word text, audio); en de, 60 clips "
            "each, 6000/1000/1000 examples, 1 s audio.",
            structure="symile_m3",
        ),
        _config(
            "symile_m3_5",
            5,
            "Symile-M3-5 structure: image from (5-word text, audio); en de es fi tr, "
            "60 clips each, 6000/1000/1000 examples, 1 s audio.",
            structure="symile_m3",
        ),
        _config(
            "symile_m3_10",
            10,
            "Symile-M3-10 structure: image from (10-word text, audio); 10 "
            "languages, 60 clips each, 10000/1000/1000 examples, 1 s audio.",
            n_train=10000,
            structure="symile_m3",
        ),
        _config(
            "symile_m3_tiny",
            5,
            "Tiny Symile-M3-5 structure for tests: tiny's clips and sizes.",
            clips_per_language=3,
            n_train=40,
            n_val=20,
            n_test=20,
            audio_length=8000,
            speed_range=(260, 320),
            max_clip_seconds=0.5,
            structure="symile_m3",
        ),
    )
}


class Builder(tfds.core.GeneratorBasedBuilder):
    """The ``m3_digits`` trimodal benchmark (image + audio -> text).

    Args:
        clip_source: where the audio clips come from: ``None`` or ``"espeak"`` renders the
            config's clip plan with espeak-ng at build time (needs the ``espeak-ng`` program
            and scipy); a directory path uses a pre-rendered clip library
            (:func:`clips.render_clip_library`), the first ``clips_per_language`` clips of
            each configured language by clip id.
        resampler: ``"scipy"`` or ``"tfio"``, for live rendering (see :func:`clips.resample`).
        **kwargs: ``config``, ``data_dir``, ``version``, ``file_format`` as for any tfds builder.
    """

    name = "m3_digits"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: sklearn digit scans, espeak-ng clips, character text."}
    BUILDER_CONFIGS = list(CONFIGS.values())
    # The benchmark's default is Symile-M3's structure; the config *named* "default" keeps the
    # pairwise structure (alias "pairwise") so existing runs and configs read what they did.
    DEFAULT_CONFIG_NAME = "symile_m3_5"

    def __init__(self, *, clip_source=None, resampler="scipy", **kwargs):
        self._clip_source = clip_source
        self._resampler = resampler
        super().__init__(**kwargs)
        self.builder_config.validate()

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        if c.structure == "symile_m3":
            w = len(c.languages)
            scalar_keys = ("label", "language", "answer_position", "image_id", "audio_id", "spoken")
            text = {
                "text": tfds.features.Tensor(shape=(w * MAX_TEXT_LENGTH,), dtype=np.int32),
                "text_languages": tfds.features.Tensor(shape=(w,), dtype=np.int32),
                "text_digits": tfds.features.Tensor(shape=(w,), dtype=np.int32),
            }
        else:
            scalar_keys = ("label", "language", "text_id", "image_id", "audio_id", "spoken")
            text = {"text": tfds.features.Tensor(shape=(MAX_TEXT_LENGTH,), dtype=np.int32)}
        scalar = {k: tfds.features.Tensor(shape=(), dtype=np.int32) for k in scalar_keys}
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32),
                "audio": tfds.features.Tensor(
                    shape=(c.audio_length,), dtype=np.float32, encoding=tfds.features.Encoding.ZLIB
                ),
                **text,
                **scalar,
            }
        )
        metadata = tfds.core.MetadataDict(
            languages=list(c.languages),
            vocabulary=list(VOCABULARY),
            sample_rate=_clips.SAMPLE_RATE,
            structure=c.structure,
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=features,
            metadata=metadata,
            disable_shuffling=True,
            citation="Saporta, Puli, Goldstein, Ranganath. Contrastive learning "
            "beyond pairs (Symile). NeurIPS 2024. Digits: Alpaydin, "
            "Kaynak. Optical Recognition of Handwritten Digits. UCI, 1998.",
        )

    def candidate_texts(self):
        """Token ids of all ``len(languages) * 10`` texts; row ``text_id`` is that example's text.

        Pairwise structure only: with ``structure="symile_m3"`` the texts are not a small closed
        set and the task retrieves images (candidates: the split's images, by scan or by digit).
        """
        if self.builder_config.structure != "pairwise":
            raise ValueError(
                f"candidate_texts() is for the pairwise structure; config "
                f"{self.builder_config.name!r} has structure "
                f"{self.builder_config.structure!r}, whose task retrieves the image."
            )
        return _gen.text_table(self.builder_config.languages).reshape(-1, MAX_TEXT_LENGTH)

    def _load_clips(self):
        """Records and waveforms of the clips this config uses, from the configured source."""
        c = self.builder_config
        source = self._clip_source
        if source is None or source == "espeak":
            with tempfile.TemporaryDirectory(prefix="m3_digits_clips_") as tmp:
                _clips.render_clip_library(
                    tmp, c.clip_plans(), resampler=self._resampler, max_seconds=c.max_clip_seconds
                )
                records, waveforms = _clips.load_clip_library(tmp)
        else:
            records, waveforms = _clips.load_clip_library(os.fspath(source))
        chosen = []
        for lang in c.languages:
            mine = sorted(
                (r for r in zip(records, waveforms) if r[0]["language"] == lang), key=lambda rw: int(rw[0]["clip_id"])
            )
            if len(mine) < c.clips_per_language:
                raise ValueError(
                    f"The clip library {source!r} holds {len(mine)} clip(s) of language "
                    f"{lang!r}; config {c.name!r} needs {c.clips_per_language}."
                )
            chosen.extend(mine[: c.clips_per_language])
        return [r for r, _ in chosen], [w for _, w in chosen]

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: scans ship with scikit-learn, clips are rendered.
        c = self.builder_config
        images, labels = _gen.load_digit_scans()
        scan_split = _gen.split_indices(labels, c.split_fractions, seed=[c.seed, 1])
        records, waveforms = self._load_clips()
        lang_index = {lang: i for i, lang in enumerate(c.languages)}
        ids = np.array([int(r["clip_id"]) for r in records], np.int64)
        clip_split = _gen.split_indices(
            [lang_index[r["language"]] for r in records], c.split_fractions, seed=[c.seed, 2]
        )
        common = dict(
            scan_images=images,
            scan_labels=labels,
            languages=c.languages,
            audio_length=c.audio_length,
            clip_waveforms={int(i): w for i, w in zip(ids, waveforms)},
            clip_languages={int(r["clip_id"]): lang_index[r["language"]] for r in records},
            clip_spoken={int(r["clip_id"]): int(r["spoken"]) for r in records},
        )
        sizes = {"train": c.n_train, "val": c.n_val, "test": c.n_test}
        out = {}
        make = _gen.make_symile_m3_split if c.structure == "symile_m3" else _gen.make_split
        for k, (tfds_name, ours) in enumerate(_TFDS_SPLITS.items()):
            arrays = make(
                sizes[ours], scan_ids=scan_split[ours], clip_ids=ids[clip_split[ours]], seed=[c.seed, 3, k], **common
            )
            out[tfds_name] = self._generate_examples(arrays)
        return out

    def _generate_examples(self, arrays):
        n = next(iter(arrays.values())).shape[0]
        for i in range(n):
            yield i, {k: v[i] for k, v in arrays.items()}


def build(data_dir, config_name="default", *, config=None, clip_source=None, resampler="scipy", download_config=None):
    """Builds (downloads nothing; renders or reads clips) ``m3_digits`` into ``data_dir``.

    The entry point for ``tools/make_dataset.py m3_digits``. Preparing twice is a no-op.

    Args:
        data_dir: tfds data directory.
        config_name: one of :data:`CONFIGS`: pairwise structure ``default`` (= ``pairwise``,
            ``l5``), ``l2``, ``l10``, ``tiny``; Symile-M3 structure ``symile_m3_2``,
            ``symile_m3_5``, ``symile_m3_10``, ``symile_m3_tiny``.
        config: a custom :class:`M3DigitsConfig` instead of ``config_name``.
        clip_source: ``None``/``"espeak"`` (render with espeak-ng) or a clip library directory.
        resampler: ``"scipy"`` or ``"tfio"`` for live rendering.
        download_config: optional ``tfds.download.DownloadConfig``.

    Returns:
        The prepared :class:`Builder`; ``builder.as_dataset(split=...)`` reads it.

    Raises:
        ValueError: for an unknown config name or an inconsistent config.
        clips.EspeakNotFoundError: when rendering and espeak-ng is not installed.
        ImportError: when scikit-learn (or scipy, for rendering) is missing.
    """
    if config is None:
        if config_name not in CONFIGS:
            raise ValueError(f"Unknown m3_digits config {config_name!r}; known: {sorted(CONFIGS)}.")
        config = config_name
    builder = Builder(config=config, data_dir=os.fspath(data_dir), clip_source=clip_source, resampler=resampler)
    builder.download_and_prepare(download_config=download_config)
    return builder
