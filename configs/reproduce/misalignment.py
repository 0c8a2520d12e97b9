"""Experiment 4, Negate or Embrace numerical simulation.

Generator exactly as the authors (10 semantic + 5 + 5 modality-specific latents, 3-layer
invertible mixing, change_prob 0.75). Methods: the paper's objective (Lp-distance InfoNCE with
independent same-modality negatives, ``lp_negatives="independent"``) and the library's cosine
InfoNCE. The authors' encoders (hidden widths (10, 50, 50, 50, 50, 10) x input width,
leaky-ReLU 0.01), Adam lr 1e-4 with the global gradient norm clipped at 2.0 (torch's
``clip_grad_norm_`` over all weights = Keras' ``global_clipnorm``).

Budget SCALED DOWN for a shared 2-core CPU: batch 256 pairs x 512 steps (131 k pairs per run,
2 settings x 2 objectives x 3 seeds within 30 minutes); the authors train batch 6144 x 100k steps
(614 M pairs) on a GPU. The full budget (on a GPU):
``python tools/reproduce.py --config=configs/reproduce/misalignment.py --config.batch_size=6144
--config.steps=100000 --config.n_train=20000000``. The largest budget run on this CPU is the
experiment misalignment_long (configs/reproduce/misalignment_long.py): the same at 32x the pairs,
one seed, about 70 min on 2 cores.
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
    # The first method is the paper's (the verdict is about it).
    c.methods = [
        {
            "label": "Lp InfoNCE (paper)",
            "objective": "clip",
            "options": {"similarity": "lp", "normalize": False, "lp_negatives": "independent"},
            "logit_scale_init": 1.0,
            "learn_logit_scale": False,
            "extra_embedding_dims": 0,
        },
        # One extra dimension: the unit sphere has one degree of freedom fewer.
        {"label": "cosine InfoNCE (tf_mmcl)", "objective": "clip", "options": {}, "extra_embedding_dims": 1},
    ]
    # Training rows generated: one fresh row per row trained on (steps x batch, x 2 for the
    # independent negatives), at most n_train (then rows are revisited).
    c.n_train, c.n_val, c.n_test = 4000000, 1000, 4000
    c.encoder = {"width_multipliers": (10, 50, 50, 50, 50, 10)}
    c.batch_size = 256  # pairs per step (authors: 6144)
    c.steps = 512  # authors: 100000
    c.learning_rate = 1e-4
    c.global_clipnorm = 2.0
    c.eval_points = 8  # R² measured at steps / 2^k, k < eval_points
    c.pass_threshold = 0.9
    return common.variant(
        c,
        arg,
        quick={"num_seeds": 2, "steps": 40, "batch_size": 128, "n_test": 2000, "cond_pool": 5000, "eval_points": 4},
    )
