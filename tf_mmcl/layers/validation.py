"""Argument and input-shape checks shared by the layers of :mod:`tf_mmcl.layers`.

Each check returns the normalised value, so a constructor reads
``self.dropout = validate_rate(dropout)``, and raises ``ValueError`` with a message that names
the argument and repeats what was received (``"`name` must ... Received: name=value"``).
"""

from __future__ import annotations

__all__ = [
    "check_rank",
    "validate_choice",
    "validate_optional_units",
    "validate_rate",
    "validate_tuple",
    "validate_units",
]


def validate_units(value, name):
    """A positive int (a layer width, a kernel size, ...); ``bool`` is rejected.

    Example:
        >>> validate_units(8, "output_dim")
        8
        >>> validate_units(0, "output_dim")
        Traceback (most recent call last):
        ...
        ValueError: `output_dim` must contain positive ints. Received: output_dim=0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must contain positive ints. Received: {name}={value!r}")
    return int(value)


def validate_optional_units(value, name):
    """``None`` or a positive int (see :func:`validate_units`)."""
    if value is None:
        return None
    return validate_units(value, name)


def validate_tuple(values, name):
    """A tuple of positive ints; a single int ``k`` means ``(k,)``.

    Example:
        >>> validate_tuple([16, 32], "filters")
        (16, 32)
        >>> validate_tuple(8, "hidden_units")
        (8,)
    """
    if isinstance(values, int) and not isinstance(values, bool):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"`{name}` must be a tuple of positive ints. Received: {values!r}") from None
    return tuple(validate_units(v, name) for v in values)


def validate_rate(value, name="dropout"):
    """A float in ``[0, 1)`` (a dropout or masking rate)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
    return float(value)


def validate_choice(value, name, choices):
    """One of ``choices`` (compared with ``in``)."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def check_rank(layer, input_shape, what, rank=None, min_rank=None):
    """Checks the rank of an input shape in ``build``; returns the shape as a tuple.

    Args:
        layer: the layer being built (its name and class go into the message).
        input_shape: the shape passed to ``build``.
        what: what the layer expects, e.g. ``"images (N, H, W, C)"``.
        rank: exact rank required, or ``None``.
        min_rank: smallest rank accepted, or ``None``.

    Raises:
        ValueError: the rank does not match.
    """
    input_shape = tuple(input_shape)
    if rank is not None and len(input_shape) != rank:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) expects {what}, i.e. rank {rank}; "
            f"received input of shape {input_shape} (rank {len(input_shape)})."
        )
    if min_rank is not None and len(input_shape) < min_rank:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) expects {what}, i.e. rank >= "
            f"{min_rank}; received input of shape {input_shape} (rank {len(input_shape)})."
        )
    return input_shape
