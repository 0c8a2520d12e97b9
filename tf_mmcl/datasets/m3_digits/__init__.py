"""tfds builder ``m3_digits``: handwritten digits x spoken language -> written digit name.

See :mod:`tf_mmcl.datasets.m3_digits.m3_digits_dataset_builder` and docs/m3_digits.md.
Importing registers the builder; :func:`build` is the programmatic entry point.
"""

from tf_mmcl.datasets.m3_digits.clips import EspeakNotFoundError
from tf_mmcl.datasets.m3_digits.languages import DIGIT_NAMES, LANGUAGE_SETS, VOCABULARY, decode_text, encode_text
from tf_mmcl.datasets.m3_digits.m3_digits_dataset_builder import CONFIGS, Builder, M3DigitsConfig, build

__all__ = [
    "Builder",
    "CONFIGS",
    "DIGIT_NAMES",
    "EspeakNotFoundError",
    "LANGUAGE_SETS",
    "M3DigitsConfig",
    "VOCABULARY",
    "build",
    "decode_text",
    "encode_text",
]
