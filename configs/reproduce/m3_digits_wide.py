"""Experiment 6c, m3_digits_wide: Symile-M3-5 and -10 (the image from text + audio, w = 5 and 10).

The settings of configs/reproduce/m3_digits.py (same encoders, batch, optimizer and methods),
with what the wider texts need. On the fixed 6000-row split of `symile_m3_5` Symile memorises
(training loss 4.18 -> 2.54 between steps 1000 and 12000, test 2->1 at 38-44 %, text-only limit
36 %); with `train_pairings=10` (60000 rows composed afresh by the same rule from the train
split's own scans and clips; the test split stays disjoint) it leaves the plateau: 43 / 54 / 60 /
63 % after 2000 / 6000 / 9000 / 12000 steps (seed 0). Full: both widths, 12000 steps, learning
curve every 2000 steps, 3 seeds: about 40 min per seed at w = 5 and 85 min at w = 10 (its
100000 rows and 10-word texts; 14-19 min per method) on 2 shared CPU cores, so
`--config.dataset_configs="['symile_m3_10']"` runs one width alone and joins it into the record
of the other (docs/cli.md, "One part at a time"). Quick: 2 seeds, 300 steps.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_reproduce_common", Path(__file__).with_name("common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def get_config(arg=None):
    """The experiment's config; ``arg="quick"``: the quick variant (fewer seeds/steps)."""
    c = common.sibling("m3_digits").get_config()
    c.dataset_configs = ["symile_m3_5", "symile_m3_10"]
    c.train_pairings = 10
    c.steps = 12000
    c.eval_every = 2000
    return common.variant(c, arg, quick={"num_seeds": 2, "steps": 300, "train_pairings": 2, "eval_every": 100})
