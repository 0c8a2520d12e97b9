"""Fixtures shared by the tools' tests."""

import pytest


@pytest.fixture
def tiny_misalignment():
    """Overrides of configs/reproduce/misalignment.py:quick for a run of a few seconds: one setting,
    4 steps of batch 32, 2 evaluations, narrow encoders."""
    return {
        "steps": 4,
        "batch_size": 32,
        "n_test": 300,
        "cond_pool": 500,
        "eval_points": 2,
        "encoder": {"width_multipliers": (2, 2)},
        "settings": [{"name": "both biases", "selected": [0, 1, 2, 3], "perturbed": [3]}],
    }
