"""Experiment 5, noise robustness (ConFu poster's SNR table) on ConFu XOR in continuous coordinates.

p_hat = 0.5 so that z1 carries pairwise and synergistic information and z3 only synergistic
information; inputs are the ±1 bits rotated into 32 dims (+ N(0, 0.1²) noise in training too).
Same training budget and encoders for every method (linear, 16-d), trained on clean data.
"""

import ml_collections


def _method(label, objective, **options):
    return ml_collections.ConfigDict({"label": label, "objective": objective, "options": options})


def get_config():
    """The experiment's config; `quick` holds the overrides of `--quick`."""
    c = ml_collections.ConfigDict()
    c.num_seeds = 3
    c.d = 5
    c.p_hat = 0.5
    c.embed_dim = 32
    c.noise_std = 0.1
    c.n_train, c.n_val, c.n_test = 10000, 500, 2000
    c.embedding_dim = 16
    c.batch_size = 256
    c.steps = 600
    c.learning_rate = 1e-2
    c.weight_decay = 0.01
    c.snr_dbs = [10, 15, 20]
    c.degraded = ["z1", "z3"]
    c.methods = [
        _method("ConFu", "confu", lam=0.5),
        _method("Symile", "symile", negative_sampling="n"),
        _method("GRAM", "gram"),
        _method("TRIANGLE", "triangle"),
        _method("CLIP", "clip"),
    ]
    c.quick = ml_collections.ConfigDict({"num_seeds": 2, "steps": 120})
    return c
