"""Input validation shared by every similarity op and objective.

Bad input must fail loudly with a one-line message (what was wrong, which argument, what was
expected, how to fix it), never produce a silently wrong loss, in eager mode *and* inside
``tf.function``, XLA and ``model.fit``:

* Static facts (types, dtypes, ranks, widths, batch sizes when known, Python scalars) are
  checked when the call is traced, in every mode: a ``TypeError``/``ValueError``.
* Facts only known at run time (values of tensors: the unit norm of every present row, which
  also rejects NaN/Inf; a logit scale that is a tensor; run-time batch sizes; 0/1 integer
  masks) are checked in eager mode on the host (``ValueError`` naming the rows), and inside a
  ``tf.function`` by a NaN-valued scalar per failed check, added to the checked tensors and
  passed through ``tf.debugging.check_numerics`` (``tf.errors.InvalidArgumentError`` carrying
  the same message).
* Under XLA (``jit_compile=True``) TensorFlow compiles ``check_numerics`` and ``Assert`` to
  nothing, so a failed check *poisons* its tensors: they (and so the loss) become NaN, which
  the training loop's NaN guard reports. Static checks still raise.

The unit-norm precondition: every present row must satisfy ``| ||r||^2 - 1 | <= UNIT_NORM_TOLERANCE``
(0.05, i.e. a norm within about 2.5 % of 1) or be exactly zero (what ``L2Normalize`` returns
for an all-zero input). That is loose enough for embeddings normalised in
float16/bfloat16 (rounding moves ``||r||^2`` by well under 1 %) and tight enough to catch every
forgotten normalisation or wrong tensor (random unnormalised embeddings are off by orders of
magnitude). Rows whose presence mask is False are exempt (their values are replaced anyway).
``docs/validation.md`` tabulates what is checked where, ``docs/benchmarks.md`` the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from keras import ops

__all__ = [
    "UNIT_NORM_TOLERANCE",
    "as_float32_list",
    "check_finite",
    "check_logit_scale",
    "check_presence_masks",
    "check_representations",
    "check_unit_norm",
    "in_xla_context",
    "require_float",
]

#: Allowed deviation of a present row's squared L2 norm from 1.
UNIT_NORM_TOLERANCE = 0.05

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Set (at trace time) while a model traces its loss under tf_mmcl.training's divergence guard:
# that guard already checks inputs, loss, gradients and weights for NaN/Inf every step and names
# the feature / weight and the step, so the value checks of model-made tensors (unit norm,
# finiteness, a positive logit scale) stand aside for its better message.
_value_checks_suspended = False


class suspend_value_checks:
    """Context manager: skip the run-time unit-norm and logit-scale value checks while tracing."""

    def __init__(self, suspend=True):
        self.suspend = bool(suspend)

    def __enter__(self):
        global _value_checks_suspended
        self.previous = _value_checks_suspended
        _value_checks_suspended = self.previous or self.suspend
        return self

    def __exit__(self, *exc):
        global _value_checks_suspended
        _value_checks_suspended = self.previous
        return False


def in_xla_context():
    """Whether ops are being traced into an XLA cluster (``tf.function(jit_compile=True)``)."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))
    except Exception:  # pragma: no cover - private API moved
        return False


def _static_dim(x, axis):
    dim = x.shape[axis]
    return None if dim is None else int(dim)


def _dtype_name(x):
    return str(getattr(x.dtype, "name", x.dtype))


def require_float(x, name, hint="L2-normalised float embeddings"):
    """Converts ``x`` to a tensor and refuses non-float dtypes (int ids, bool, strings).

    Returns the tensor as float32 (half precision is upcast: similarities are float32).
    """
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a float tensor ({hint}), got the string {x!r}.")
    try:
        t = ops.convert_to_tensor(x)
    except (ValueError, TypeError) as e:
        raise TypeError(
            f"{name} must be a float tensor ({hint}); cannot convert {type(x).__name__}: {e}".splitlines()[0]
        ) from None
    dt = _dtype_name(t)
    if dt not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} has dtype {dt}; expected {hint} (float16/bfloat16/float32/float64): "
            "embed ids with the model (or cast and L2-normalise) before passing them."
        )
    return t if dt == "float32" else ops.cast(t, "float32")


def as_float32_list(representations, name="representations"):
    """Returns the inputs as a list of float32 tensors (half precision is upcast).

    Similarities and softmax are always computed in float32, even under mixed precision.
    Non-float inputs (int ids, bool, strings) are a ``TypeError``, never a silent cast.
    """
    if isinstance(representations, dict):
        raise TypeError(
            f"{name} must be a list or tuple of tensors; got a dict. The Keras Loss classes take "
            "dicts keyed by modality; the functional objectives take lists in modality order."
        )
    if not isinstance(representations, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of (N, d) tensors, got {type(representations).__name__}.")
    return [require_float(r, f"{name}[{i}]") for i, r in enumerate(representations)]


class PendingChecks:
    """Run-time checks collected while tracing, attached to tensors in one place.

    Inside a graph each failed check becomes a NaN scalar that is added to the checked float
    tensors; ``tf.debugging.check_numerics`` on that scalar raises the check's message
    (``InvalidArgumentError``) in ``tf.function``/``fit``. Under XLA ``check_numerics`` compiles
    to nothing and the NaN flows into the result (the loss becomes NaN). A data dependency, not
    a control dependency on an ``Assert`` (a ``tf.cond``): control edges measurably slowed the
    streamed Symile kernel in ``tf.function`` (``docs/benchmarks.md``).
    """

    def __init__(self):
        self.flags = []  # graph: (ok, message)

    def require(self, ok, message, details=None):
        """``ok``: bool scalar tensor; ``details``: callable giving eager-only extra text."""
        if tf.executing_eagerly():
            if not bool(ok):
                extra = details() if details is not None else ""
                raise ValueError(message + (f" ({extra})" if extra else ""))
            return
        self.flags.append((ok, message))

    def attach(self, tensors):
        if not self.flags:
            return list(tensors)
        poison = None
        for ok, message in self.flags:
            p = tf.debugging.check_numerics(tf.where(ok, 0.0, float("nan")), message)
            poison = p if poison is None else poison + p
        out = []
        for t in tensors:
            t = tf.convert_to_tensor(t)
            if t.dtype.is_floating:
                t = t + tf.cast(poison, t.dtype)
            elif not any(x.dtype.is_floating for x in map(tf.convert_to_tensor, tensors)):
                with tf.control_dependencies([poison]):
                    t = tf.identity(t)
            out.append(t)
        self.flags = []
        return out


def check_finite(tensors: Sequence, names: Sequence[str], force: bool = False):
    """Raises ``ValueError`` (eager) or adds graph assertions (``force=True``) for NaN/Inf."""
    if tf.executing_eagerly():
        for t, n in zip(tensors, names):
            arr = np.asarray(t)
            if not np.all(np.isfinite(arr)):
                bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
                raise ValueError(
                    f"{n} contains {bad} non-finite value(s) (NaN or Inf); "
                    "expected finite embeddings: check the encoder and its inputs."
                )
        return list(tensors)
    if not force:
        return list(tensors)
    pending = PendingChecks()
    for t, n in zip(tensors, names):
        pending.require(tf.reduce_all(tf.math.is_finite(t)), f"{n} contains NaN or Inf.")
    return pending.attach(tensors)


def check_logit_scale(logit_scale, name="logit_scale"):
    """The multiplier applied to similarities as a float32 scalar, refused unless finite and > 0.

    A Python or NumPy number (or an eager tensor) is checked at once; a tensor inside a
    ``tf.function`` by a run-time assertion (NaN-poisoned under XLA).
    """
    if isinstance(logit_scale, bool) or isinstance(logit_scale, (str, bytes)) or logit_scale is None:
        raise TypeError(f"{name} must be a positive finite number or float scalar tensor, got {logit_scale!r}.")
    if isinstance(logit_scale, (int, float, np.number)):
        if not np.isfinite(logit_scale) or logit_scale <= 0:
            raise ValueError(
                f"{name} must be a positive finite number, got {logit_scale!r}: pass e.g. "
                "1/0.07 (or exp of a learned log-scale)."
            )
    s = ops.convert_to_tensor(logit_scale)
    if _dtype_name(s) not in _FLOAT_DTYPES and not _dtype_name(s).startswith("int"):
        raise TypeError(f"{name} must be a float scalar, got dtype {_dtype_name(s)}.")
    s = ops.cast(s, "float32")
    if len(s.shape) > 1 or (len(s.shape) == 1 and s.shape[0] not in (1, None)):
        raise ValueError(f"{name} must be a scalar, got shape {tuple(s.shape)}: pass one number.")
    s = ops.reshape(s, ())
    if _value_checks_suspended and not tf.executing_eagerly():
        return s
    pending = PendingChecks()
    pending.require(
        tf.logical_and(s > 0.0, tf.math.is_finite(s)),
        f"{name} must be a positive finite number (a scale <= 0 or NaN inverts or voids "
        "the similarities): pass exp() of a log-scale, or a constant such as 1/0.07.",
        details=lambda: f"got {float(s)}",
    )
    return pending.attach([s])[0]


def check_presence_masks(masks, num_modalities, batch_sizes=None, name="masks", _pending=None):
    """Validates a list of optional (N,) presence masks, one per modality; returns bool tensors.

    A mask must be bool, or integer 0/1 (``tf_mmcl.distribute`` ships masks as int32); float
    masks are refused (0.3 is neither present nor absent). Its length must be the batch size of
    its modality (``batch_sizes[i]``: static int, scalar tensor or None).
    """
    if masks is None:
        return None
    if not isinstance(masks, (list, tuple)) or len(masks) != num_modalities:
        got = type(masks).__name__ if not isinstance(masks, (list, tuple)) else f"{len(masks)} entries"
        raise ValueError(
            f"{name} must be a list of {num_modalities} (N,) bool tensors or None entries "
            f"(one per modality), got {got}."
        )
    pending = PendingChecks() if _pending is None else _pending
    out = []
    for i, m in enumerate(masks):
        if m is None:
            out.append(None)
            continue
        out.append(check_mask(m, f"{name}[{i}]", None if batch_sizes is None else batch_sizes[i], pending))
    return out if _pending is not None else _attach_optional(pending, out)


def _attach_optional(pending, tensors):
    present = [t for t in tensors if t is not None]
    attached = iter(pending.attach(present))
    return [None if t is None else next(attached) for t in tensors]


def check_mask(m, name, n, pending):
    """A presence mask checked as a (N,) bool vector: ``m`` as bool, or a clear error.

    Args:
        m: the mask (bool, or int 0/1: cast to bool; never a string or a float).
        name: how errors name the argument, e.g. ``"masks['audio']"``.
        n: the expected number of rows, or ``None`` to skip that check.
        pending: the trace's :class:`PendingChecks`; value checks that need the tensor's data
            (int values other than 0/1, a row count known only at run time) are added to it.

    Returns:
        ``m`` as a bool tensor of shape (N,).
    """
    if isinstance(m, (str, bytes)):
        raise TypeError(f"{name} must be a (N,) bool presence mask, got a string.")
    m = ops.convert_to_tensor(m)
    dt = _dtype_name(m)
    if len(m.shape) != 1:
        raise ValueError(f"{name} must be a (N,) boolean vector (True = present), got shape {tuple(m.shape)}.")
    if dt != "bool" and not dt.startswith(("int", "uint")):
        raise TypeError(
            f"{name} has dtype {dt}; a presence mask must be bool (or integer 0/1): "
            "use m > 0.5 / tf.cast(m, tf.bool) on purpose if you hold probabilities."
        )
    length = _static_dim(m, 0)
    if isinstance(n, (int, np.integer)) and length is not None and int(n) != length:
        raise ValueError(f"{name} has {length} entries but the batch has {int(n)} rows: one entry per row.")
    if n is not None and not isinstance(n, (int, np.integer)) or (n is not None and length is None):
        got = tf.shape(m)[0]
        pending.require(
            tf.equal(got, tf.cast(n, got.dtype)),
            f"{name}: the mask length differs from the batch size; one entry per row.",
            details=lambda: f"{int(got)} entries, {int(n)} rows",
        )
    if dt != "bool":
        pending.require(
            tf.reduce_all(tf.logical_or(tf.equal(m, 0), tf.equal(m, 1))),
            f"{name}: an integer presence mask must hold only 0 and 1; pass a bool mask.",
            details=lambda: f"values {sorted(set(np.asarray(m).tolist()))[:5]}",
        )
        m = tf.cast(m, tf.bool)
    return m


def check_unit_norm(reps, names, masks=None, tolerance=UNIT_NORM_TOLERANCE):
    """Checks that every present row is L2-normalised (``| ||r||^2 - 1 | <= tolerance``) and finite.

    ``masks``: optional list of bool (N,) tensors or None (rows with False are exempt).
    Returns the tensors (with run-time checks attached inside a graph).
    """
    if _value_checks_suspended and not tf.executing_eagerly():
        return list(reps)
    pending = PendingChecks()
    masks = masks or [None] * len(reps)
    for r, n, mk in zip(reps, names, masks):
        sq = tf.reduce_sum(tf.square(r), axis=-1)
        dev = tf.abs(sq - 1.0)
        # False for NaN/Inf rows too. An all-zero row is what L2Normalize returns for an all-zero
        # input (e.g. a missing modality's zeros): it scores 0 against everything, so it passes.
        good = tf.logical_or(dev <= tolerance, tf.equal(sq, 0.0))
        if mk is not None:
            good = tf.logical_or(good, tf.logical_not(mk))

        def details(sq=sq, good=good):
            bad = ~np.asarray(good)
            norms = np.sqrt(np.asarray(sq)[bad])
            return f"{int(bad.sum())} row(s), e.g. row {int(np.argmax(bad))} with norm {norms[0]:.4g}"

        pending.require(
            tf.reduce_all(good),
            f"{n} must be L2-normalised and finite (every present row of norm 1 within "
            f"tolerance {tolerance} on the squared norm, or all-zero): normalise with "
            "tf.math.l2_normalize(x, axis=-1) / tf_mmcl.layers.L2Normalize, or fix NaN/Inf.",
            details=details,
        )
    return pending.attach(reps)


def check_representations(
    representations,
    *,
    min_modalities=2,
    max_modalities=None,
    name="representations",
    check_finite_values=False,
    masks=None,
    unit_norm=True,
):
    """Validates a list of M (N, d) embedding tensors (and their masks) and returns them as float32.

    Args:
        representations: list of M float tensors, each (N, d), aligned by row, L2-normalised.
        min_modalities: the fewest modalities the objective accepts.
        max_modalities: the most it accepts (``None``: no limit).
        name: how the inputs are called in error messages.
        check_finite_values: inside ``tf.function``, also assert that *every* value is finite
            (absent rows included; present rows are covered by the unit-norm check).
        masks: optional list of M (N,) presence masks (``None`` entries: all present); pass it
            so that absent rows are exempt from the unit-norm check.
        unit_norm: check the L2-normalisation precondition (see the module docstring).

    Returns:
        The list of float32 tensors (with graph assertions attached where needed), or
        ``(tensors, masks)`` when ``masks`` is given (masks as bool tensors, validated).

    Raises:
        TypeError: not a list, or a non-float input.
        ValueError: fewer/more modalities than allowed, rank != 2, mismatched batch size or
            width, batch size < 2, empty width, unnormalised or non-finite rows (eager).
    """
    reps = as_float32_list(representations, name)
    m = len(reps)
    if m < min_modalities:
        raise ValueError(f"{name}: need at least {min_modalities} modalities, got {m}.")
    if max_modalities is not None and m > max_modalities:
        raise ValueError(f"{name}: this objective is defined for at most {max_modalities} modalities, got {m}.")
    for i, r in enumerate(reps):
        if len(r.shape) != 2:
            raise ValueError(
                f"{name}[{i}] must have rank 2 (N, d); got shape {tuple(r.shape)}: pass one (N, d) matrix per modality."
            )
    widths = [_static_dim(r, 1) for r in reps]
    known = {w for w in widths if w is not None}
    if len(known) > 1:
        raise ValueError(
            f"{name}: embedding widths differ across modalities: {widths}; every modality "
            "must be embedded in the same d-dimensional space."
        )
    if 0 in known:
        raise ValueError(f"{name}: embeddings have width 0; expected (N, d) with d >= 1.")
    sizes = [_static_dim(r, 0) for r in reps]
    known_n = {n for n in sizes if n is not None}
    if len(known_n) > 1:
        raise ValueError(
            f"{name}: batch sizes differ across modalities: {sizes}; rows must be aligned "
            "(row i of every modality is one example)."
        )
    if known_n and min(known_n) < 2:
        raise ValueError(f"{name}: a contrastive loss needs a batch of at least 2 rows, got {min(known_n)}.")
    pending = PendingChecks()
    if None in sizes and not tf.executing_eagerly():
        # Run-time batch sizes (e.g. a partial last batch): assert inside the graph.
        n0 = tf.shape(reps[0])[0]
        pending.require(
            n0 >= 2,
            f"{name}: batch size must be >= 2 (a contrastive loss needs negatives); "
            "drop or pad a 1-row last batch (drop_remainder=True).",
        )
        for i, r in enumerate(reps[1:], start=1):
            pending.require(
                tf.equal(tf.shape(r)[0], n0),
                f"{name}: batch size of modality {i} differs from modality 0; rows must be aligned.",
            )
    n_static = next(iter(known_n)) if known_n else tf.shape(reps[0])[0]
    checked_masks = None
    if masks is not None:  # run-time mask checks guard the embeddings (XLA: poison them)
        checked_masks = check_presence_masks(masks, m, [n_static] * m, _pending=pending)
    reps = pending.attach(reps)
    reps = check_finite(reps, [f"{name}[{i}]" for i in range(m)], force=check_finite_values)
    if unit_norm:
        reps = check_unit_norm(reps, [f"{name}[{i}]" for i in range(m)], checked_masks)
    if masks is not None:
        return reps, checked_masks
    return reps
