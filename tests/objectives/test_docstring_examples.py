"""The ``Example:`` blocks of the objectives, the registry and the key protocol run as shown."""

import doctest

import pytest

import tf_mmcl.objectives
from tf_mmcl import keys
from tf_mmcl.objectives import base, clip, confu, gated_symile, gram, registry, symile, triangle

MODULES = [tf_mmcl.objectives, base, clip, confu, gated_symile, gram, registry, symile, triangle, keys]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0 or module is base
