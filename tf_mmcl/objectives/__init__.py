"""Contrastive objectives as objects: one module per objective and a registry of names.

An objective (:class:`Objective`) owns its options (defaults, validation), the layers it adds
to a model (ConFu's fusion heads, Gated Symile's gate), its loss, its 1->1 and (M-1)->1 scores,
how an absent query modality is filled, and the reduction of a query tuple to one vector for a
retrieval index. :class:`~tf_mmcl.models.MultimodalContrastiveModel` takes a registered name
(``objective="symile"``, options as keyword arguments) or an instance and delegates all of it.

Built in (registration order): ``clip`` (:class:`CLIP`), ``symile`` (:class:`Symile`),
``confu`` (:class:`ConFu`), ``gram`` (:class:`GRAM`), ``triangle`` (:class:`TRIANGLE`),
``gated_symile`` (:class:`GatedSymile`). A new objective is one module: subclass
:class:`Objective`, decorate it with :func:`register` and
``keras.saving.register_keras_serializable``; see docs/objectives.md.

Example:
    >>> import tf_mmcl
    >>> tf_mmcl.objectives.BUILTIN
    ('clip', 'symile', 'confu', 'gram', 'triangle', 'gated_symile')
    >>> tf_mmcl.objectives.get("confu", lam=0.25)
    ConFu(lam=0.25, fusion_hidden_dim=None, fusion_layers=2, fusion_dropout=0.1, mask_ratio=0.0)
"""

from tf_mmcl.objectives.base import Objective
from tf_mmcl.objectives.registry import get, get_class, names, register, unregister

# Importing each module registers its objective, in this order.
from tf_mmcl.objectives.clip import CLIP  # noqa: E402  isort: skip
from tf_mmcl.objectives.symile import Symile  # noqa: E402  isort: skip
from tf_mmcl.objectives.confu import ConFu  # noqa: E402  isort: skip
from tf_mmcl.objectives.gram import GRAM  # noqa: E402  isort: skip
from tf_mmcl.objectives.triangle import TRIANGLE  # noqa: E402  isort: skip
from tf_mmcl.objectives.gated_symile import GatedSymile  # noqa: E402  isort: skip

#: The built-in objective names (the registry may hold more: see :func:`names`).
BUILTIN = names()


def defaults(name):
    """A copy of the default options of the objective registered as ``name``.

    Example:
        >>> defaults("gram")
        {'eps': 1e-08}
    """
    return dict(get_class(name).defaults)


__all__ = [
    "BUILTIN",
    "CLIP",
    "ConFu",
    "GRAM",
    "GatedSymile",
    "Objective",
    "Symile",
    "TRIANGLE",
    "defaults",
    "get",
    "get_class",
    "names",
    "register",
    "unregister",
]
