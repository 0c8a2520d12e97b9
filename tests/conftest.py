"""Shared test setup: quiet TF logs, fixed seeds, and the default float32 policy after each test.

Only fixtures and hooks belong here; helper functions go in ``tests/helpers.py``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")
