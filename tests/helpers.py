"""Helpers shared by tests in several folders (import as ``from tests.helpers import ...``).

Fixtures live in ``tests/conftest.py``; nothing imports ``conftest``. Helpers used by one folder
only stay beside their tests (``tests/layers/layer_test_utils.py``, ``tests/export/export_utils.py``,
...), imported by their package path (``from tests.layers.layer_test_utils import ...``).
"""

import numpy as np


def unit_rows(rng, n, d, dtype="float32"):
    """``n`` random rows of width ``d`` from ``rng``, normalised to unit L2 length."""
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)
