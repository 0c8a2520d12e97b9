"""Experiment 4, Negate or Embrace numerical simulation.

Generator exactly as the authors (10 semantic + 5 + 5 modality-specific latents, 3-layer
invertible mixing, change_prob 0.75). Training shrunk for 2 CPU cores (authors: batch 6144,
Adam 1e-4, 100k steps): batch 512, AdamW 1e-3, 15k steps (about 8 min for 3 seeds with --jobs=3);
MLP encoders.
"""

import importlib.util
from pathlib import Path

import ml_collections

_spec = importlib.util.spec_from_file_location("_reproduce_common", Path(__file__).with_name("common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (fewer seeds/steps/points)."""
    c = ml_collections.ConfigDict()
    c.num_seeds = 3
    c.semantics_n = 10
    c.modality_n = 5
    c.change_prob = 0.75
    c.cond_pool = 25000
    c.settings = [
        {"name": "selection bias", "selected": list(range(6)), "perturbed": []},
        {"name": "selection + perturbation bias", "selected": list(range(8)), "perturbed": [4, 5, 6, 7]},
    ]
    c.n_train, c.n_val, c.n_test = 20000, 1000, 4000
    c.encoder = {"hidden_units": (128, 128), "output_dim": 64}
    c.extra_embedding_dims = 1
    c.batch_size = 512
    c.steps = 15000
    c.learning_rate = 1e-3
    c.weight_decay = 0.0
    return common.variant(c, arg, quick={"num_seeds": 2, "steps": 500, "n_test": 2000, "cond_pool": 5000})
