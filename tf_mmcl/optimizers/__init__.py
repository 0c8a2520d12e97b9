"""Optimizers that Keras does not ship.

* :class:`ScheduleFreeAdamW`: schedule-free AdamW (Defazio et al., 2024, "The Road Less
  Scheduled"), with :class:`ScheduleFreeEvaluation`, the callback that evaluates and saves the
  model at the averaged parameters.
"""

from tf_mmcl.optimizers.schedule_free import ScheduleFreeAdamW, ScheduleFreeEvaluation

__all__ = ["ScheduleFreeAdamW", "ScheduleFreeEvaluation"]
