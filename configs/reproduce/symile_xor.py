"""Experiment 1, Symile XOR: the reference `binary_xor` run (rajesh-lab/symile main.sbatch).

Full: d_v = 5, d = 16, 10000/1000/5000 examples, batch 1000, 100 epochs (= 1000 steps), AdamW
lr 0.1, weight decay 0.01, logit scale initialised at exp(-0.3) and learned, "n" negative
sampling, p_hat in {0.0, 0.1, ..., 1.0}, 3 seeds (the paper bootstraps one run 10 times).
Protocol "paper" (default): b from (a, c), best-validation checkpoint, 10 bootstrap test sets.
"""

import importlib.util
import math
from pathlib import Path

import ml_collections

_spec = importlib.util.spec_from_file_location("_reproduce_common", Path(__file__).with_name("common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (fewer seeds/steps/points)."""
    c = ml_collections.ConfigDict()
    c.num_seeds = 3
    c.d_v = 5
    c.p_hats = [round(0.1 * k, 1) for k in range(11)]
    c.n_train, c.n_val, c.n_test = 10000, 1000, 5000
    c.embedding_dim = 16
    c.batch_size = 1000
    c.steps = 1000
    c.learning_rate = 0.1
    c.weight_decay = 0.01
    c.logit_scale_init = math.exp(-0.3)
    c.methods = [
        ml_collections.ConfigDict({"label": "Symile", "objective": "symile", "options": {"negative_sampling": "n"}}),
        ml_collections.ConfigDict({"label": "CLIP", "objective": "clip"}),
    ]
    # "paper": the main table is the paper's protocol (b from (a, c), best-validation checkpoint,
    # bootstrap test sets); the a-from-(b, c) table comes from the same runs' final weights.
    # "section1": only the a-from-(b, c) table, trained by the experiments' own loop.
    c.protocol = "paper"
    c.val_every = 10  # steps between validations: one epoch of 10000 / 1000
    c.bootstrap = 10  # bootstrap test sets
    return common.variant(c, arg, quick={"num_seeds": 2, "p_hats": [0.0, 0.5, 1.0], "steps": 120, "n_test": 2000})
