"""Input validation shared by every similarity op and objective.

Bad input must fail loudly with a message that names the problem, never produce a silently
wrong loss. Static facts (rank, embedding width, batch size when known) are checked at trace
time for free. Batch sizes that are only known at run time are checked with
``tf.debugging`` assertions, which raise ``tf.errors.InvalidArgumentError`` inside a
``tf.function``.

Non-finite values are checked in eager mode (a host read of each input: cheap next to the loss
itself). Inside ``tf.function`` the check is off unless ``check_finite=True`` is passed to the
objective: it then adds one ``tf.debugging.assert_all_finite`` per input, a full extra read of
every embedding and a synchronisation point that blocks XLA fusion across it, which is why it is
opt-in there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
from keras import ops

__all__ = ["as_float32_list", "check_representations", "check_finite"]


def _static_dim(x, axis):
    dim = x.shape[axis]
    return None if dim is None else int(dim)


def as_float32_list(representations, name="representations"):
    """Returns the inputs as a list of float32 tensors (half precision is upcast).

    Similarities and softmax are always computed in float32, even under mixed precision.
    """
    if isinstance(representations, dict):
        raise TypeError(
            f"{name} must be a list or tuple of tensors; got a dict. The Keras Loss classes take "
            "dicts keyed by modality; the functional objectives take lists in modality order.")
    if not isinstance(representations, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of (N, d) tensors, got {type(representations).__name__}.")
    out = []
    for r in representations:
        r = ops.convert_to_tensor(r)
        if r.dtype != "float32":
            r = ops.cast(r, "float32")
        out.append(r)
    return out


def check_finite(tensors: Sequence, names: Sequence[str], force: bool = False):
    """Raises ``ValueError`` (eager) or adds graph assertions (``force=True``) for NaN/Inf."""
    if tf.executing_eagerly():
        for t, n in zip(tensors, names):
            arr = np.asarray(t)
            if not np.all(np.isfinite(arr)):
                bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                raise ValueError(f"{n} contains {bad} non-finite value(s) (NaN or Inf).")
        return list(tensors)
    if not force:
        return list(tensors)
    return [tf.debugging.assert_all_finite(t, f"{n} contains NaN or Inf.") for t, n in zip(tensors, names)]


def check_representations(representations, *, min_modalities=2, max_modalities=None,
                          name="representations", check_finite_values=False):
    """Validates a list of M (N, d) embedding tensors and returns them as float32.

    Args:
        representations: list of M tensors, each (N, d), aligned by row.
        min_modalities: the fewest modalities the objective accepts.
        max_modalities: the most it accepts (``None``: no limit).
        name: how the inputs are called in error messages.
        check_finite_values: inside ``tf.function``, also assert that values are finite.

    Returns:
        The list of float32 tensors (with graph assertions attached where needed).

    Raises:
        ValueError: fewer/more modalities than allowed, rank != 2, mismatched batch size or
            width, batch size < 2, or non-finite values (eager).
    """
    reps = as_float32_list(representations, name)
    m = len(reps)
    if m < min_modalities:
        raise ValueError(f"{name}: need at least {min_modalities} modalities, got {m}.")
    if max_modalities is not None and m > max_modalities:
        raise ValueError(f"{name}: this objective is defined for at most {max_modalities} modalities, got {m}.")
    for i, r in enumerate(reps):
        if len(r.shape) != 2:
            raise ValueError(f"{name}[{i}] must have rank 2 (N, d); got shape {tuple(r.shape)}.")
    widths = [_static_dim(r, 1) for r in reps]
    known = {w for w in widths if w is not None}
    if len(known) > 1:
        raise ValueError(f"{name}: embedding widths differ across modalities: {widths}.")
    sizes = [_static_dim(r, 0) for r in reps]
    known_n = {n for n in sizes if n is not None}
    if len(known_n) > 1:
        raise ValueError(f"{name}: batch sizes differ across modalities: {sizes}.")
    if known_n and min(known_n) < 2:
        raise ValueError(f"{name}: a contrastive loss needs a batch of at least 2 rows, got {min(known_n)}.")
    if None in sizes and not tf.executing_eagerly():
        # Run-time batch sizes (e.g. a partial last batch): assert inside the graph.
        n0 = tf.shape(reps[0])[0]
        deps = [tf.debugging.assert_greater_equal(n0, 2, message=f"{name}: batch size must be >= 2.")]
        for i, r in enumerate(reps[1:], start=1):
            deps.append(tf.debugging.assert_equal(
                tf.shape(r)[0], n0, message=f"{name}: batch size of modality {i} differs from modality 0."))
        with tf.control_dependencies(deps):
            reps = [tf.identity(r) for r in reps]
    return check_finite(reps, [f"{name}[{i}]" for i in range(m)], force=check_finite_values)
