"""Experiment 2, ConFu XOR (poster 'Synthetic XOR Experiment').

d = 5 bits per modality (2^5 = 32 candidates: the poster's ~3 % chance). The poster gives no
training budget; we use one budget for every method: linear encoders, 16-d embeddings, batch 256,
AdamW lr 1e-2 / wd 0.01. ConFu: lam 0.5, fusion MLP (2 layers, hidden 512, dropout 0.1), fixed
temperature 0.07 (the authors' code). The poster's bound for GRAM and TRIANGLE holds "even with
1024-dim embeddings": the full run adds both at 1024 dimensions (the quick run keeps 16).
"""

import importlib.util
from pathlib import Path

import ml_collections

_spec = importlib.util.spec_from_file_location("_reproduce_common", Path(__file__).with_name("common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def _method(label, objective, embedding_dim=None, **options):
    spec = {"label": label, "objective": objective, "options": options}
    if embedding_dim is not None:
        spec["embedding_dim"] = embedding_dim
    return ml_collections.ConfigDict(spec)


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (fewer seeds/steps/points)."""
    c = ml_collections.ConfigDict()
    c.num_seeds = 3
    c.d = 5
    c.p_hats = [0.0, 0.25, 0.5, 0.75, 1.0]
    c.n_train, c.n_val, c.n_test = 10000, 1000, 2000
    c.embedding_dim = 16
    c.batch_size = 256
    c.steps = 600
    c.learning_rate = 1e-2
    c.weight_decay = 0.01
    c.methods = [
        _method("ConFu", "confu", lam=0.5),
        _method("Symile", "symile", negative_sampling="n"),
        _method("GRAM", "gram"),
        _method("TRIANGLE", "triangle"),
        _method("CLIP", "clip"),
        _method("GRAM (1024-d)", "gram", embedding_dim=1024),
        _method("TRIANGLE (1024-d)", "triangle", embedding_dim=1024),
    ]
    return common.variant(c, arg, quick={"num_seeds": 2, "p_hats": [0.5, 1.0], "steps": 120, "methods": c.methods[:5]})
