"""Digit names per language and the character vocabulary of the ``text`` modality.

The language codes are espeak-ng voice names (``espeak-ng --voices`` lists them), so one code
both selects the speech voice and the row of :data:`DIGIT_NAMES`. Names are the cardinal
numbers 0-9 as written in running text, lower case, Unicode NFC.

Several languages share written words (``zero`` in en/it/pt/pl, ``six`` in en/fr, ``acht`` and
``vier`` in de/nl, ``uno`` in es/it, ...). Within such a set the text would still be a function
of (digit, language) but two classes would carry one text; :func:`shared_words` finds them and
the builder refuses such a language set unless told otherwise. The predefined configs use
collision-free sets (:data:`LANGUAGE_SETS`).
"""

from __future__ import annotations

import unicodedata

import numpy as np

__all__ = [
    "DIGIT_NAMES",
    "LANGUAGE_SETS",
    "MAX_TEXT_LENGTH",
    "VOCABULARY",
    "decode_text",
    "digit_name",
    "encode_text",
    "shared_words",
]

_RAW_NAMES = {
    "en": "zero one two three four five six seven eight nine",
    "de": "null eins zwei drei vier fünf sechs sieben acht neun",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve",
    "fi": "nolla yksi kaksi kolme neljä viisi kuusi seitsemän kahdeksan yhdeksän",
    "tr": "sıfır bir iki üç dört beş altı yedi sekiz dokuz",
    "cs": "nula jedna dva tři čtyři pět šest sedm osm devět",
    "hu": "nulla egy kettő három négy öt hat hét nyolc kilenc",
    "el": "μηδέν ένα δύο τρία τέσσερα πέντε έξι επτά οκτώ εννέα",
    "ru": "ноль один два три четыре пять шесть семь восемь девять",
    "sv": "noll ett två tre fyra fem sex sju åtta nio",
    "fr": "zéro un deux trois quatre cinq six sept huit neuf",
    "it": "zero uno due tre quattro cinque sei sette otto nove",
    "nl": "nul een twee drie vier vijf zes zeven acht negen",
    "pt": "zero um dois três quatro cinco seis sete oito nove",
    "pl": "zero jeden dwa trzy cztery pięć sześć siedem osiem dziewięć",
}

#: language code -> tuple of the ten digit names (index = digit).
DIGIT_NAMES = {
    lang: tuple(unicodedata.normalize("NFC", w) for w in words.split()) for lang, words in _RAW_NAMES.items()
}

#: Collision-free language sets, the analogues of Symile-M3-2, -5 and -10.
LANGUAGE_SETS = {
    2: ("en", "de"),
    5: ("en", "de", "es", "fi", "tr"),
    10: ("en", "de", "es", "fi", "tr", "cs", "hu", "el", "ru", "sv"),
}

#: Token id 0 is padding; ids 1.. are the characters of every name in the table, sorted, so a
#: token id means the same character in every config.
VOCABULARY = ("<pad>",) + tuple(sorted({c for names in DIGIT_NAMES.values() for w in names for c in w}))
_CHAR_TO_ID = {c: i for i, c in enumerate(VOCABULARY) if i > 0}

#: Fixed length of the ``text`` feature (the longest name has 9 characters).
MAX_TEXT_LENGTH = 12


def _check_language(language):
    if language not in DIGIT_NAMES:
        raise ValueError(
            f"Unknown language {language!r}; known: {sorted(DIGIT_NAMES)} "
            "(add its 0-9 names to DIGIT_NAMES in tf_mmcl/datasets/m3_digits/languages.py)."
        )


def digit_name(digit, language):
    """The written name of ``digit`` in ``language``.

    Args:
        digit: int in 0..9.
        language: a key of :data:`DIGIT_NAMES` (an espeak-ng voice code).

    Returns:
        str.

    Raises:
        ValueError: for an unknown language or a digit outside 0..9.

    Example:
        >>> digit_name(7, "de")
        'sieben'
    """
    _check_language(language)
    if not 0 <= int(digit) <= 9:
        raise ValueError(f"`digit` must be in 0..9. Received: {digit!r}")
    return DIGIT_NAMES[language][int(digit)]


def encode_text(word, length=MAX_TEXT_LENGTH):
    """Character token ids of ``word``, zero-padded to ``length``.

    Args:
        word: str made of characters in :data:`VOCABULARY`.
        length: output length; ``word`` must not be longer.

    Returns:
        int32 array ``(length,)``.

    Raises:
        ValueError: for an unknown character or a word longer than ``length``.

    Example:
        >>> decode_text(encode_text("neun"))
        'neun'
    """
    word = unicodedata.normalize("NFC", word)
    if len(word) > length:
        raise ValueError(f"{word!r} has {len(word)} characters, more than length={length}.")
    unknown = sorted({c for c in word if c not in _CHAR_TO_ID})
    if unknown:
        raise ValueError(f"Characters {unknown} of {word!r} are not in the m3_digits vocabulary.")
    ids = np.zeros(length, np.int32)
    ids[: len(word)] = [_CHAR_TO_ID[c] for c in word]
    return ids


def decode_text(ids):
    """Inverse of :func:`encode_text`: token ids (padding 0 ignored) back to a string.

    Args:
        ids: sequence of int token ids.

    Returns:
        str.
    """
    return "".join(VOCABULARY[int(i)] for i in np.asarray(ids).reshape(-1) if int(i) != 0)


def shared_words(languages):
    """Written words that name a digit in more than one of ``languages``.

    Args:
        languages: iterable of language codes.

    Returns:
        dict ``word -> sorted list of (language, digit)``, only for words used more than once;
        empty when every (language, digit) has its own text.

    Example:
        >>> shared_words(["en", "fr"])
        {'six': [('en', 6), ('fr', 6)]}
    """
    seen = {}
    for lang in languages:
        _check_language(lang)
        for digit, word in enumerate(DIGIT_NAMES[lang]):
            seen.setdefault(word, []).append((lang, digit))
    return {w: sorted(v) for w, v in seen.items() if len(v) > 1}
