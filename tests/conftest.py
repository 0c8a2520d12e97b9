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


def pytest_collection_modifyitems(session, config, items):
    """Runs the files that hold `slow` tests first, the rest after them, each group in its order.

    `make test` hands whole files to two workers (`--dist loadfile`) in collection order. The
    reproduction and CLI files take a minute or more each and sort late by name
    (`tests/tools/`); started last, one of them keeps a worker busy after the other has run
    out of files. Long jobs first, short ones filling the gaps, keeps both workers busy to the end.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: False (slow files) first
