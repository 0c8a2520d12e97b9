"""Robustness sweeps: a metric as a function of SNR, misalignment rate or missing rate.

A sweep corrupts a fixed evaluation set (a dict of numpy arrays, e.g. one split of a
benchmark) at each value of the corruption parameter with the transforms of
:mod:`tf_mmcl.data.corruptions`, and calls ``evaluate(corrupted_arrays) -> {metric: value}``
(typically: embed with the model, then :func:`tf_mmcl.evaluation.retrieve`). The same seed
gives the same corruptions at every value, so curves are comparable across models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tf_mmcl.data.corruptions import GaussianNoise, Misalign, ModalityDropout

__all__ = ["SweepResult", "sweep", "corruption_sweep", "snr_sweep", "misalignment_sweep", "missing_sweep"]


class SweepResult:
    """The metrics of a sweep: ``param`` name, its ``values`` and ``metrics[name]`` arrays.

    Example:
        >>> r = sweep("x", [1, 2], lambda v: {"m": 10 * v})
        >>> r.metrics["m"].tolist(), r.rows()[1]
        ([10.0, 20.0], {'x': 2, 'm': 20.0})
    """

    def __init__(self, param: str, values: Sequence, rows: Sequence[Mapping[str, float]]):
        self.param = param
        self.values = list(values)
        self._rows = [dict(r) for r in rows]
        names = []
        for r in self._rows:
            names.extend(k for k in r if k not in names)
        self.metrics = {k: np.array([float(r.get(k, np.nan)) for r in self._rows]) for k in names}

    def rows(self) -> list:
        """One dict per value: ``{param: value, metric: ...}``."""
        return [{self.param: v, **r} for v, r in zip(self.values, self._rows)]

    def to_markdown(self, metrics: Sequence[str] | None = None, digits: int = 4) -> str:
        """A markdown table with one row per value."""
        metrics = list(self.metrics) if metrics is None else list(metrics)
        head = f"| {self.param} | " + " | ".join(metrics) + " |"
        sep = "|" + "---|" * (len(metrics) + 1)
        lines = [head, sep]
        for v, r in zip(self.values, self._rows):
            lines.append(f"| {v} | " + " | ".join(f"{float(r.get(m, np.nan)):.{digits}f}" for m in metrics) + " |")
        return "\n".join(lines)

    def __repr__(self):
        return f"SweepResult(param={self.param!r}, values={self.values}, metrics={sorted(self.metrics)})"


def _flatten(metrics, prefix=""):
    out = {}
    for k, v in metrics.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}/"))
        elif np.ndim(v) == 0 and isinstance(v, (int, float, np.integer, np.floating)):
            out[f"{prefix}{k}"] = float(v)
    return out


def sweep(param: str, values: Sequence, evaluate: Callable[[object], Mapping]) -> SweepResult:
    """Calls ``evaluate(value)`` for every value and collects its scalar metrics.

    Nested metric dicts are flattened with ``/`` (e.g. ``"b,c->a/top1"``); non-scalar entries are
    dropped.
    """
    values = list(values)
    if not values:
        raise ValueError("sweep needs at least one value.")
    if not callable(evaluate):
        raise ValueError("evaluate must be callable.")
    rows = []
    for v in values:
        metrics = evaluate(v)
        if not isinstance(metrics, Mapping):
            raise ValueError(f"evaluate must return a dict of metrics, got {type(metrics).__name__} at {param}={v}.")
        rows.append(_flatten(metrics))
    return SweepResult(param, values, rows)


def corruption_sweep(
    arrays: Mapping[str, np.ndarray],
    make_transform: Callable[[object], Callable],
    values: Sequence,
    evaluate: Callable[[dict], Mapping],
    param: str = "value",
    seed: int = 0,
) -> SweepResult:
    """Corrupts ``arrays`` (one batch: the whole evaluation set) at each value and evaluates.

    Args:
        arrays: the clean evaluation set, a dict of equally long arrays.
        make_transform: ``value -> transform`` (a corruption of :mod:`tf_mmcl.data.corruptions`).
        values: the parameter values.
        evaluate: ``corrupted arrays (numpy dict) -> metrics dict``.
        param: the parameter's name in the result.
        seed: the corruption seed (the same at every value).
    """
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError("arrays must be a non-empty dict of arrays.")
    clean = {k: np.asarray(v) for k, v in arrays.items()}
    seed_pair = np.array([int(seed), 0], np.int64)

    def run(value):
        transform = make_transform(value)
        out = transform(dict(clean), seed=seed_pair)
        return evaluate({k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in out.items()})

    return sweep(param, values, run)


def snr_sweep(arrays, modality: str, snr_dbs: Sequence[float], evaluate, seed: int = 0) -> SweepResult:
    """The metric as a function of the SNR (dB) of Gaussian noise on one modality.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        >>> err = lambda a: {"mse": float(np.mean((a["a"] - x) ** 2))}
        >>> r = snr_sweep({"a": x}, "a", [20.0, 0.0], err)
        >>> bool(r.metrics["mse"][0] < r.metrics["mse"][1])
        True
    """
    if modality not in arrays:
        raise ValueError(f"snr_sweep: modality {modality!r} is not in the arrays; keys are {sorted(arrays)}.")
    return corruption_sweep(
        arrays, lambda v: GaussianNoise(modality, v, seed=seed), snr_dbs, evaluate, param="snr_db", seed=seed
    )


def misalignment_sweep(arrays, modality: str, fractions: Sequence[float], evaluate, seed: int = 0) -> SweepResult:
    """The metric as a function of the fraction of one modality's rows misaligned."""
    if modality not in arrays:
        raise ValueError(f"misalignment_sweep: modality {modality!r} is not in the arrays; keys are {sorted(arrays)}.")
    return corruption_sweep(
        arrays, lambda v: Misalign(modality, v, seed=seed), fractions, evaluate, param="misaligned_fraction", seed=seed
    )


def missing_sweep(
    arrays, modality: str, rates: Sequence[float], evaluate, fill_value=0.0, seed: int = 0
) -> SweepResult:
    """The metric as a function of the rate at which one modality is missing (mask False)."""
    if modality not in arrays:
        raise ValueError(f"missing_sweep: modality {modality!r} is not in the arrays; keys are {sorted(arrays)}.")
    return corruption_sweep(
        arrays,
        lambda v: ModalityDropout(modality, v, fill_value=fill_value, seed=seed),
        rates,
        evaluate,
        param="missing_rate",
        seed=seed,
    )
