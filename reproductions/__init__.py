"""Reproductions of the papers' experiments, run by ``tools/reproduce.py``.

Registered experiments (each with a config in ``configs/reproduce/<name>.py``: ``get_config()`` the
full run, ``get_config("quick")`` its quick variant; ``run_experiment`` and ``load_config`` take the
file, e.g. ``run_experiment("configs/reproduce/symile_xor.py:quick", {"steps": 50})``):

* ``symile_xor``: Symile vs CLIP on Symile's binary XOR over p_hat.
* ``confu_xor``: ConFu, Symile, GRAM, TRIANGLE and CLIP on ConFu's XOR.
* ``gated_fragility``: Gated Symile vs Symile vs CLIP as unreliable modalities grow.
* ``misalignment``: Negate-or-Embrace identifiability R² per latent block.
* ``misalignment_long``: ``misalignment`` at 32x the pairs (one seed), as far as a CPU run goes.
* ``noise_robustness``: accuracy with one modality degraded at 10/15/20 dB SNR.
* ``m3_digits``: Symile-M3's image from text + audio (w = 2) on the offline ``m3_digits``.
* ``m3_digits_pairwise``: the pairwise contrast, text from image + audio on ``m3_digits/default``.
* ``m3_digits_wide``: ``m3_digits`` at w = 5 and 10, on recomposed training rows, with their budget.
* ``m3_digits_missing``: Symile-M3's missing-modality runs (w = 2) with a larger budget.

A run killed part-way resumes from its finished seeds (:mod:`reproductions.seed_store`); a run of
some parts of an experiment (m3's widths) is joined into its record (:mod:`reproductions.record_parts`).

Add one by subclassing :class:`~reproductions.base.Experiment`, decorating it with
:func:`~reproductions.base.register`, importing its module here and writing its config.
"""

from reproductions import (  # noqa: F401  (importing registers them)
    confu_xor,
    gated_fragility,
    m3_digits,
    m3_digits_pairwise,
    misalignment,
    noise_robustness,
    symile_xor,
)
from reproductions.base import EXPERIMENTS, Experiment, get_experiment, register
from reproductions.runner import assemble_markdown, load_config, run_experiment

# Report order: the four synthetic studies, then noise robustness and the three m3_digits
# experiments (noise_robustness imports them, so they register first).
for _name in (
    "symile_xor",
    "confu_xor",
    "gated_fragility",
    "misalignment",
    "misalignment_long",
    "noise_robustness",
    "m3_digits",
    "m3_digits_pairwise",
    "m3_digits_wide",
    "m3_digits_missing",
):
    EXPERIMENTS[_name] = EXPERIMENTS.pop(_name)
del _name

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "get_experiment",
    "register",
    "assemble_markdown",
    "load_config",
    "run_experiment",
]
