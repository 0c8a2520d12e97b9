"""Deprecated: the query reductions now belong to the objectives.

Each :class:`tf_mmcl.objectives.Objective` reduces a query tuple to one vector for
maximum-inner-product search (:meth:`~tf_mmcl.objectives.Objective.reduce_queries`) and says
whether that vector reproduces its score exactly
(:meth:`~tf_mmcl.objectives.Objective.reduces_exactly`); :class:`~tf_mmcl.retrieval.CandidateIndex`
and the serving export call ``model.objective`` directly. :func:`reduction_for` and
:data:`REDUCTIONS` remain as thin adapters (with a ``DeprecationWarning``) for code written
against the old interface (``exact(model, names)``, ``vector(model, target, embeddings, fused,
masks)``).
"""

from __future__ import annotations

import warnings

from tf_mmcl import objectives as _objectives

__all__ = ["QueryReduction", "REDUCTIONS", "reduction_for"]


class QueryReduction:
    """Deprecated adapter: the old reduction interface over an objective.

    Args:
        objective: a registered objective name or an :class:`~tf_mmcl.objectives.Objective`.
    """

    def __init__(self, objective):
        self.objective = _objectives.get(objective)
        self.name = self.objective.name

    def exact(self, model, names):
        """True if :meth:`vector` reproduces the model's similarity for the query modalities ``names``."""
        return model.objective.reduces_exactly(model, names)

    def vector(self, model, target, embeddings, fused, masks):
        """(B, D) query vectors (the model's objective's :meth:`~tf_mmcl.objectives.Objective.reduce_queries`)."""
        return model.objective.reduce_queries(model, target, embeddings, fused, masks)


def reduction_for(objective):
    """Deprecated: use ``model.objective`` (its ``reduces_exactly`` / ``reduce_queries``).

        Example:
            >>> import warnings

    from tf_mmcl import objectives as _objectives
            >>> with warnings.catch_warnings():
            ...     warnings.simplefilter("ignore", DeprecationWarning)
            ...     reduction_for("symile").name
            'symile'
    """
    warnings.warn(
        "tf_mmcl.retrieval.reduction_for is deprecated: the objective reduces its queries "
        "(model.objective.reduces_exactly / reduce_queries).",
        DeprecationWarning,
        stacklevel=2,
    )
    if not isinstance(objective, _objectives.Objective) and objective not in _objectives.names():
        raise ValueError(f"No query reduction for objective {objective!r}; known: {sorted(_objectives.names())}.")
    return QueryReduction(objective)


REDUCTIONS = {name: QueryReduction(name) for name in _objectives.BUILTIN}
"""Deprecated: built-in objective name -> :class:`QueryReduction` adapter."""
