"""Experiment 5, noise robustness (ConFu poster's SNR table) on the audio-visual `m3_digits`.

The data, encoders and training budget are experiment 6b's (configs/reproduce/m3_digits_pairwise.py, read
from there so the two cannot drift apart); the methods are the poster's (ConFu, Symile, GRAM,
TRIANGLE, CLIP; CLIP also scored from one modality, its Tri-CLIP (V) / (A) rows). Trained on clean
data; at test time the image pixels or the audio waveform get Gaussian noise at 10 / 15 / 20 dB SNR.
"""

import importlib.util
from pathlib import Path

import ml_collections

_spec = importlib.util.spec_from_file_location("_reproduce_common", Path(__file__).with_name("common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def _method(label, objective, **options):
    return ml_collections.ConfigDict({"label": label, "objective": objective, "options": options})


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (experiment 6b's quick settings)."""
    # Data, encoders, budget and variants (quick) of experiment 6b.
    c = common.sibling("m3_digits_pairwise").get_config(arg)
    c.snr_dbs = [10, 15, 20]
    c.degraded = ["audio", "image"]
    c.methods = [
        _method("ConFu", "confu", lam=0.5),
        _method("Symile", "symile", negative_sampling="n"),
        _method("GRAM", "gram"),
        _method("TRIANGLE", "triangle"),
        _method("CLIP", "clip"),
    ]
    return c
