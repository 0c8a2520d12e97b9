"""Assembly of ``m3_digits`` examples from digit scans and a clip library (pure numpy).

An example pairs a handwritten digit scan (digit ``d``), a spoken-number clip in language
``w`` and the text ``name(d, w)``. ``d`` and ``w`` are drawn independently and uniformly, the
scan uniformly among the split's scans of digit ``d`` and the clip uniformly among the split's
clips of language ``w``. So the image alone fixes ``d`` but not ``w``, the audio alone fixes
``w`` but not ``d``, and only both together fix the text.

Splits are disjoint in scans and in clips: the scans of each digit and the clips of each
language are divided train / val / test by fixed fractions before any pairing.
"""

from __future__ import annotations

import numpy as np

from tf_mmcl.datasets.m3_digits.languages import MAX_TEXT_LENGTH, digit_name, encode_text

__all__ = [
    "SPLITS",
    "load_digit_scans",
    "make_split",
    "make_symile_m3_split",
    "split_counts",
    "split_indices",
    "text_table",
]

SPLITS = ("train", "val", "test")


def load_digit_scans():
    """scikit-learn's bundled handwritten digits: ``(images, labels)``.

    Returns:
        ``images`` float32 ``(1797, 8, 8, 1)`` scaled from the 0..16 gray levels to ``[0, 1]``
        and ``labels`` int32 ``(1797,)``; the row index is the scan id.

    Raises:
        ImportError: when scikit-learn is not installed (the message says how to install it).
    """
    try:
        from sklearn.datasets import load_digits  # noqa: PLC0415 (heavy, optional)
    except ImportError as e:
        raise ImportError(
            "m3_digits takes its image scans from scikit-learn's bundled digits set "
            "(sklearn.datasets.load_digits, offline): `pip install scikit-learn`."
        ) from e
    digits = load_digits()
    images = (np.asarray(digits.images, np.float32) / 16.0)[..., None]
    return images, np.asarray(digits.target, np.int32)


def split_counts(n, fractions):
    """Sizes of the train / val / test parts of ``n`` items: each >= 1, summing to ``n``.

    Args:
        n: number of items (>= 3).
        fractions: ``(train, val, test)`` positive fractions (normalized to sum 1).

    Returns:
        tuple of three ints.

    Raises:
        ValueError: for ``n < 3`` or bad fractions.

    Example:
        >>> split_counts(10, (0.6, 0.2, 0.2))
        (6, 2, 2)
    """
    fractions = np.asarray(fractions, np.float64)
    if fractions.shape != (3,) or not np.all(fractions > 0):
        raise ValueError(f"`split_fractions` must be three positive numbers. Received: {fractions.tolist()}")
    if n < 3:
        raise ValueError(f"Need at least 3 items to split train/val/test disjointly; got {n}.")
    fractions = fractions / fractions.sum()
    n_val = max(1, int(round(n * fractions[1])))
    n_test = max(1, int(round(n * fractions[2])))
    n_train = n - n_val - n_test
    if n_train < 1:
        n_train, n_val, n_test = 1, max(1, n_val - 1), n - 1 - max(1, n_val - 1)
    return n_train, n_val, n_test


def split_indices(groups, fractions, seed):
    """Divides item indices into disjoint train / val / test sets, stratified by group.

    Args:
        groups: int array ``(n,)``; items of each group are split separately (a digit for
            scans, a language for clips).
        fractions: ``(train, val, test)``.
        seed: int or sequence for ``np.random.default_rng``.

    Returns:
        dict split name -> sorted int array of item indices.
    """
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SPLITS}
    for g in np.unique(groups):
        idx = rng.permutation(np.nonzero(groups == g)[0])
        counts = split_counts(len(idx), fractions)
        starts = np.cumsum((0,) + counts)
        for s, a, b in zip(SPLITS, starts[:-1], starts[1:]):
            out[s].append(idx[a:b])
    return {s: np.sort(np.concatenate(v)) for s, v in out.items()}


def text_table(languages):
    """Token ids of every candidate text: int32 ``(len(languages), 10, MAX_TEXT_LENGTH)``.

    Entry ``[w, d]`` is the text of digit ``d`` in language ``languages[w]``; ``text_id`` in the
    examples is ``w * 10 + d``, the row of ``text_table(languages).reshape(-1, MAX_TEXT_LENGTH)``.
    """
    return np.stack([np.stack([encode_text(digit_name(d, lang)) for d in range(10)]) for lang in languages]).astype(
        np.int32
    )


def _fit(waveform, length):
    out = np.zeros(length, np.float32)
    n = min(length, len(waveform))
    out[:n] = waveform[:n]
    return out


def make_split(
    n,
    *,
    scan_ids,
    scan_images,
    scan_labels,
    clip_ids,
    clip_waveforms,
    clip_languages,
    clip_spoken,
    languages,
    audio_length,
    seed,
):
    """``n`` examples of one split as a dict of numpy arrays.

    Args:
        n: number of examples.
        scan_ids: int array, the split's scan ids (rows of ``scan_images``).
        scan_images: float32 ``(N, 8, 8, 1)``, all scans.
        scan_labels: int ``(N,)``, all scans' digits.
        clip_ids: int array, the split's clip ids.
        clip_waveforms: dict clip id -> float32 waveform.
        clip_languages: dict clip id -> language index (into ``languages``).
        clip_spoken: dict clip id -> spoken number.
        languages: language codes.
        audio_length: samples per ``audio`` (zero-padded or cut at the end).
        seed: int or sequence for ``np.random.default_rng``.

    Returns:
        dict with ``image`` float32 ``(n, 8, 8, 1)``, ``audio`` float32 ``(n, audio_length)``,
        ``text`` int32 ``(n, MAX_TEXT_LENGTH)`` and int32 ``(n,)`` ``label``, ``language``,
        ``text_id``, ``image_id``, ``audio_id``, ``spoken``.

    Raises:
        ValueError: when a digit has no scan or a language no clip in this split.
    """
    rng = np.random.default_rng(seed)
    scans_by_digit = {d: scan_ids[scan_labels[scan_ids] == d] for d in range(10)}
    clips_by_lang = {
        w: np.asarray([c for c in clip_ids if clip_languages[c] == w], np.int64) for w in range(len(languages))
    }
    for d, ids in scans_by_digit.items():
        if len(ids) == 0:
            raise ValueError(f"No scan of digit {d} in this split.")
    for w, ids in clips_by_lang.items():
        if len(ids) == 0:
            raise ValueError(f"No clip of language {languages[w]!r} in this split.")
    table = text_table(languages)
    label = rng.integers(0, 10, size=n).astype(np.int32)
    language = rng.integers(0, len(languages), size=n).astype(np.int32)
    image_id = np.array([rng.choice(scans_by_digit[d]) for d in label], np.int32).reshape(n)
    audio_id = np.array([rng.choice(clips_by_lang[w]) for w in language], np.int32).reshape(n)
    return {
        "image": scan_images[image_id].astype(np.float32).reshape(n, 8, 8, 1),
        "audio": np.stack([_fit(clip_waveforms[c], audio_length) for c in audio_id]).reshape(n, audio_length)
        if n
        else np.zeros((0, audio_length), np.float32),
        "text": table[language, label].reshape(n, MAX_TEXT_LENGTH),
        "label": label,
        "language": language,
        "text_id": (language * 10 + label).astype(np.int32),
        "image_id": image_id,
        "audio_id": audio_id,
        "spoken": np.array([clip_spoken[c] for c in audio_id], np.int32).reshape(n),
    }


def make_symile_m3_split(
    n,
    *,
    scan_ids,
    scan_images,
    scan_labels,
    clip_ids,
    clip_waveforms,
    clip_languages,
    clip_spoken,
    languages,
    audio_length,
    seed,
):
    """``n`` examples with Symile-M3's structure, as a dict of numpy arrays.

    With ``w = len(languages)``: the image is a scan of a digit ``d``; the audio is a clip in a
    language ``L`` (it says a number unrelated to ``d``); the text is ``w`` words, one per
    language, in a random order, where the word in ``L`` names ``d`` and every other word names
    a digit drawn uniformly (independently of ``d``; it may be ``d`` too). So the text alone
    leaves up to ``w`` candidate digits, the audio alone only the language, and only the pair
    (text, audio) fixes the image's digit: the task is to retrieve the image from both.

    Args: as :func:`make_split`.

    Returns:
        dict with ``image`` float32 ``(n, 8, 8, 1)``, ``audio`` float32 ``(n, audio_length)``,
        ``text`` int32 ``(n, w * MAX_TEXT_LENGTH)`` (word ``k`` in slots
        ``[k * MAX_TEXT_LENGTH, (k + 1) * MAX_TEXT_LENGTH)``, each zero-padded),
        ``text_languages`` and ``text_digits`` int32 ``(n, w)`` (the language of each word and
        the digit it names, in text order), and int32 ``(n,)`` ``label`` (``d``),
        ``language`` (``L``), ``answer_position`` (the word of ``L`` in the text),
        ``image_id``, ``audio_id``, ``spoken``.

    Raises:
        ValueError: when a digit has no scan or a language no clip in this split.
    """
    w = len(languages)
    base = make_split(
        n,
        scan_ids=scan_ids,
        scan_images=scan_images,
        scan_labels=scan_labels,
        clip_ids=clip_ids,
        clip_waveforms=clip_waveforms,
        clip_languages=clip_languages,
        clip_spoken=clip_spoken,
        languages=languages,
        audio_length=audio_length,
        seed=seed,
    )
    # A separate stream for the text, so the image / audio pairing is that of make_split.
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 7])
    table = text_table(languages)  # (w, 10, MAX_TEXT_LENGTH)
    order = np.argsort(rng.random((n, w)), axis=1).astype(np.int32)  # language of each word slot
    digits_by_language = rng.integers(0, 10, size=(n, w)).astype(np.int32)
    rows = np.arange(n)
    digits_by_language[rows, base["language"]] = base["label"]
    text_digits = np.take_along_axis(digits_by_language, order, axis=1)
    text = table[order, text_digits].reshape(n, w * MAX_TEXT_LENGTH)
    answer_position = np.argmax(order == base["language"][:, None], axis=1).astype(np.int32)
    return {
        "image": base["image"],
        "audio": base["audio"],
        "text": text.astype(np.int32),
        "text_languages": order,
        "text_digits": text_digits.astype(np.int32),
        "label": base["label"],
        "language": base["language"],
        "answer_position": answer_position.reshape(n),
        "image_id": base["image_id"],
        "audio_id": base["audio_id"],
        "spoken": base["spoken"],
    }
