"""The ``Example:`` blocks of the layer and audio docstrings run and give what they show."""

import doctest

import pytest

from tf_mmcl.data import audio
from tf_mmcl.layers import encoders, fusion, heads


@pytest.mark.parametrize("module", [encoders, heads, fusion, audio], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
