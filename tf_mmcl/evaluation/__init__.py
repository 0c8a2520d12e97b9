"""Evaluation: retrieval (1->1, (M-1)->1), zero-shot classification, linear probe,
identifiability (R² per latent block) and robustness sweeps.

Everything works on embeddings (numpy arrays or tensors); scores come from :mod:`tf_mmcl.ops`
or a model's own scoring callable (fusion head, gate).
"""

from tf_mmcl.evaluation.identifiability import identifiability_r2, identifiability_report, r2_score
from tf_mmcl.evaluation.instance_and_class import class_ranks, distinct_candidates, instance_and_class_metrics
from tf_mmcl.evaluation.probe import LogisticRegressionProbe, few_shot_indices, linear_probe
from tf_mmcl.evaluation.retrieval import (
    metrics_by_group,
    metrics_from_ranks,
    resolve_ks,
    retrieval_metrics,
    retrieve,
    retrieve_all_directions,
    target_ranks,
    zero_shot_classification,
)
from tf_mmcl.evaluation.sweeps import (
    SweepResult,
    corruption_sweep,
    misalignment_sweep,
    missing_sweep,
    snr_sweep,
    sweep,
)

__all__ = [
    "class_ranks",
    "distinct_candidates",
    "instance_and_class_metrics",
    "LogisticRegressionProbe",
    "SweepResult",
    "corruption_sweep",
    "few_shot_indices",
    "identifiability_r2",
    "identifiability_report",
    "linear_probe",
    "metrics_by_group",
    "metrics_from_ranks",
    "misalignment_sweep",
    "missing_sweep",
    "r2_score",
    "resolve_ks",
    "retrieval_metrics",
    "retrieve",
    "retrieve_all_directions",
    "snr_sweep",
    "sweep",
    "target_ranks",
    "zero_shot_classification",
]
