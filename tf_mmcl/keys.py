"""The batch-key protocol: how non-modality entries of a batch or output dict are named.

A batch is a dict keyed by modality name. Beside the modalities it may carry:

* presence masks ``"<modality>_mask"`` (bool (N,), True = present): :func:`mask_key`;
* ConFu's fused pair embeddings ``"<a>+<b>"`` (model outputs and loss inputs):
  :func:`fused_key`;
* Gated Symile's gate weights ``"gate_weights/<target>"`` (model outputs): :func:`gate_weights_key`;
* the logit scale a model hands its loss, :data:`LOGIT_SCALE_KEY`.

Every module builds and parses these keys through this one module (no string slicing
elsewhere), and :func:`check_modality_name` refuses modality names that would collide with
them.

Example:
    >>> mask_key("audio"), mask_modality("audio_mask"), mask_modality("audio")
    ('audio_mask', 'audio', None)
    >>> fused_key("image", "audio"), split_fused_key("image+audio")
    ('image+audio', ('image', 'audio'))
    >>> gate_weights_key("text"), gate_weights_target("gate_weights/text")
    ('gate_weights/text', 'text')
"""

from __future__ import annotations

__all__ = [
    "FUSED_SEPARATOR",
    "GATE_WEIGHTS_PREFIX",
    "LOGIT_SCALE_KEY",
    "MASK_SUFFIX",
    "check_modality_name",
    "fused_key",
    "gate_weights_key",
    "gate_weights_target",
    "is_fused_key",
    "is_mask_key",
    "mask_key",
    "mask_modality",
    "split_fused_key",
]

#: Suffix of a modality's presence-mask key.
MASK_SUFFIX = "_mask"
#: Separator of the two modality names in a fused-pair key.
FUSED_SEPARATOR = "+"
#: Prefix of the gate-weight outputs, followed by the target modality.
GATE_WEIGHTS_PREFIX = "gate_weights/"
#: Key under which a model passes its (clamped, exponentiated) logit scale in ``y_pred``.
LOGIT_SCALE_KEY = "logit_scale"


def mask_key(modality: str) -> str:
    """The presence-mask key of a modality: ``"<modality>_mask"``."""
    return f"{modality}{MASK_SUFFIX}"


def is_mask_key(key: str) -> bool:
    """True if ``key`` names a presence mask."""
    return str(key).endswith(MASK_SUFFIX)


def mask_modality(key: str):
    """The modality of a presence-mask key, or ``None`` if ``key`` is not one."""
    key = str(key)
    return key[: -len(MASK_SUFFIX)] if key.endswith(MASK_SUFFIX) else None


def fused_key(first: str, second: str) -> str:
    """Name of the ConFu fused embedding of two modalities, e.g. ``"image+audio"``."""
    return f"{first}{FUSED_SEPARATOR}{second}"


def is_fused_key(key: str) -> bool:
    """True if ``key`` names a fused pair embedding (modality names never hold the separator)."""
    return FUSED_SEPARATOR in str(key)


def split_fused_key(key: str) -> tuple:
    """The two modality names of a fused-pair key: ``"a+b"`` -> ``("a", "b")``."""
    parts = str(key).split(FUSED_SEPARATOR)
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{key!r} is not a fused-pair key '<a>{FUSED_SEPARATOR}<b>'.")
    return parts[0], parts[1]


def gate_weights_key(target: str) -> str:
    """Output key of the gate weights for one target modality: ``"gate_weights/<target>"``."""
    return f"{GATE_WEIGHTS_PREFIX}{target}"


def gate_weights_target(key: str):
    """The target modality of a gate-weights key, or ``None`` if ``key`` is not one."""
    key = str(key)
    return key[len(GATE_WEIGHTS_PREFIX) :] if key.startswith(GATE_WEIGHTS_PREFIX) else None


def check_modality_name(name: str, reserved=()) -> str:
    """Refuses a modality name that would collide with the protocol's keys.

    Args:
        name: the modality name.
        reserved: further names a caller reserves (e.g. passthrough keys).

    Returns:
        ``name`` as a str.

    Raises:
        ValueError: the name holds ``"+"`` or ``"/"``, ends in ``"_mask"``, or is reserved.
    """
    name = str(name)
    if FUSED_SEPARATOR in name or "/" in name or is_mask_key(name) or name == LOGIT_SCALE_KEY or name in reserved:
        raise ValueError(
            f"Invalid modality name {name!r}: no '{FUSED_SEPARATOR}', '/', '{MASK_SUFFIX}' suffix or reserved name."
        )
    return name
