"""Experiment 6d, m3_digits_missing: Symile-M3's missing-modality runs (w = 2) at a larger budget.

The settings of configs/reproduce/m3_digits_wide.py (encoders, batch, optimizer, 10x recomposed
training rows) at w = 2, with each modality of each training row missing with probability 0.5
(the lowest rate the authors ran; the test stays complete), under both conventions the library
supports: "mask" (the objective leaves a missing modality out of the row's score) and "fill"
(Symile-M3's: the training mean for a missing image or audio, a MISSING token for a missing
text). Methods: Symile and CLIP (the paper's comparison) and Gated Symile (whose gate and NULL
option are meant for unreliable or missing modalities), each trained on the complete rows too.
The budget (below) is set by measurement, not by the paper (whose rows number millions, on
frozen pretrained encoders). Only 1 training row in 8 is complete at rate 0.5, and on m3_digits'
3000-step budget Symile stays on the text-only plateau under missingness. Measured here (seed 0,
Symile only, "mask", 2026-12-03, one of 2 shared cores; text-only limit 54.5 %), 2->1 by class
after each 6000 steps (24000-step run: each 3000):
- 24000 steps: complete rows 50.4 / 87.2 / 91.0 / 92.1 / 95.2 / 95.0 / 99.3 / 97.3 % (749 s), 50 %
  missing 52.1 / 55.3 / 51.6 / 48.4 / 54.2 / 51.2 / 53.9 / 52.8 % (572 s);
- 48000 steps: complete rows 87.2 / 92.1 / 95.0 / 97.3 / 95.0 / 96.5 / 79.6 / 82.3 % (1066 s), 50 %
  missing 55.3 / 48.4 / 51.2 / 52.8 / 51.9 / 52.3 / 50.1 / 51.8 % (926 s); same seed and a
  constant learning rate, so it repeats the 24000-step run step for step and continues it.
48000 steps of batch 128 hold 0.77 M complete rows, as many as the complete run had seen by step
6000, where it was at 87 %: the count of complete rows is not what holds the missing run back.
Our reading (not tested on its own): under "mask" a row missing the audio scores text x image
alone (the missing factor is the neutral ones vector), a pairwise term whose optimum is the
text-only solution, so the 1 row in 8 with only the audio missing holds the model on the plateau
that the 1 in 8 complete rows would take it off. The complete runs, for their part, start to
memorise their 60000 rows after 36000 steps (about 77 passes). 48000 steps is therefore a
measured "not enough" for "mask" at this scale; whether "fill", CLIP or the gate behave otherwise
is what the full run measures: 9 trainings per seed, about 4 h per seed on one core, a run for a
GPU or a long session (`--jobs=3`).
Quick: 2 seeds, 300 steps.
"""

import importlib.util
from pathlib import Path

_here = Path(__file__).parent


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_reproduce_{name}", _here / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load("common")


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (fewer seeds/steps)."""
    c = _load("m3_digits_wide").get_config()
    c.dataset_configs = ["symile_m3_2"]
    c.methods = [m for m in c.methods if m.label in ("Symile", "Gated Symile", "CLIP")]
    c.missing_rate = 0.5
    c.missing_conventions = ["mask", "fill"]
    c.missing_methods = []  # every method above
    c.steps = 48000  # measured: "mask" Symile still on the plateau here (docstring); the full run tests the rest
    c.eval_every = 6000
    return common.variant(c, arg, quick={"num_seeds": 2, "steps": 300, "train_pairings": 2, "eval_every": 100})
