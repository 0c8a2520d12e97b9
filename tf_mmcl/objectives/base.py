"""The :class:`Objective` interface: everything objective-specific a model delegates.

A :class:`~tf_mmcl.models.MultimodalContrastiveModel` owns encoders, projections, L2
normalisation and the logit scale. Its objective owns the rest:

* its options: defaults (:attr:`Objective.defaults`) and validation (:meth:`Objective.validate`);
* which modality sets it accepts (:meth:`Objective.check_modalities`);
* the layers it adds to the model (:meth:`Objective.make_layers`, :meth:`Objective.build`,
  e.g. ConFu's fusion heads, Gated Symile's gate) and the extra outputs they produce
  (:meth:`Objective.feature_outputs`, :meth:`Objective.embedding_outputs`);
* its loss (:meth:`Objective.make_loss`, :meth:`Objective.loss`);
* its scores: 1->1 (:meth:`Objective.pair_score`) and (M-1)->1 (:meth:`Objective.tuple_score`),
  and how an absent query modality is filled (:attr:`Objective.absent_query_value`,
  :meth:`Objective.fill_absent`);
* for a retrieval index, the reduction of a query tuple to one vector
  (:meth:`Objective.reduces_exactly`, :meth:`Objective.reduce_queries`).

An objective instance holds options only, no weights: the layers it makes live on the model
(under the attribute names :meth:`Objective.make_layers` gives), and every method that needs
them takes the model. One instance can therefore configure several models.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_mmcl import ops as sim
from tf_mmcl.keys import split_fused_key
from tf_mmcl.losses.base import positive_int_or_none, positive_number, require_bool

__all__ = ["Objective", "check_fraction", "check_seed", "require_str"]


def check_seed(value, name="seed"):
    """Refuses ``value`` unless ``None`` or an int (bools are not ints here)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}.")
    return value


def require_str(value, name):
    """Refuses ``value`` unless a string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}.")
    return value


def check_fraction(value, name):
    """Refuses ``value`` unless a number in [0, 1)."""
    v = positive_number(value, name, allow_zero=True)
    if v >= 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
    return value


def fill_absent(q, mask, fill):
    """Rows of ``q`` (N, d) whose ``mask`` is False replaced by ``fill`` (d,); ``mask=None``: ``q``."""
    if mask is None:
        return q
    return tf.where(tf.cast(mask, tf.bool)[:, None], q, tf.cast(fill, q.dtype))


@keras.saving.register_keras_serializable(package="tf_mmcl")
class Objective:
    """Base class of the contrastive objectives (see the module docstring for the contract).

    Subclasses set :attr:`defaults` (every option and its default), extend :meth:`validate`
    and implement :meth:`make_loss` (or :meth:`loss`) and :meth:`tuple_score`; the other hooks
    have defaults that fit an objective over the modality embeddings alone. Register a
    subclass with :func:`tf_mmcl.objectives.register` (its name) and
    ``keras.saving.register_keras_serializable`` (so that a model holding it saves and loads).

    Args:
        **options: the objective's options; an unknown one is an error naming the allowed ones.
    """

    #: Registered name (set by :func:`tf_mmcl.objectives.register`).
    name = None
    #: Every option with its default.
    defaults = {}
    #: Fewest modalities the objective takes.
    min_modalities = 2
    #: Exact number of modalities the objective takes (``None``: any number >= min_modalities).
    num_modalities = None
    #: Default of the model's ``learn_logit_scale``.
    learn_logit_scale = True
    #: Value an absent query row is replaced by before scoring: the neutral element of the
    #: score (0 for additive scores, 1 for the multilinear product). ``None``: the score needs
    #: every query modality, so ``query_masks`` are refused.
    absent_query_value = 0.0

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"Unknown option(s) {unknown} for objective {self.name!r}; allowed: {sorted(self.defaults)}."
            )
        self.options = self.validate(dict(self.defaults, **options))

    # ------------------------------------------------------------------ options
    def validate(self, options):
        """Checks the merged options and returns them (possibly normalised). Override to extend."""
        return options

    def get_config(self):
        """The options (every one, defaults included)."""
        return dict(self.options)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"

    def check_modalities(self, modalities):
        """Refuses a modality list the objective cannot train on."""
        if self.num_modalities is not None and len(modalities) != self.num_modalities:
            raise ValueError(
                f"The {self.name} objective needs exactly {self.num_modalities} modalities, got {list(modalities)}."
            )
        if len(modalities) < self.min_modalities:
            raise ValueError(
                f"The {self.name} objective needs at least {self.min_modalities} modalities, got {list(modalities)}."
            )

    @property
    def normalize_embeddings(self):
        """Whether the model L2-normalises the projected embeddings (default True)."""
        return True

    # ------------------------------------------------------------------ layers
    def make_layers(self, modalities, embedding_dim):
        """The layers the objective adds to the model: dict model attribute -> layer or dict of layers.

        The model sets each under its attribute name (which is also where ``.keras`` files
        keep the weights). Default: none.
        """
        return {}

    def build(self, model, feature_shapes):
        """Builds the objective's layers once every modality's encoder output shape is known."""

    def feature_outputs(self, model, features, training=None):
        """Extra per-row embeddings computed from the encoder features (dict key -> (N, D)).

        Called by ``call``, the scoring methods and the exports with the features of the
        modalities at hand; returns the outputs that those modalities allow. Default: none.
        """
        return {}

    def embedding_outputs(self, model, embeddings, masks):
        """Extra outputs of ``call`` computed from every modality's embedding. Default: none."""
        return {}

    def loss_keys(self, model):
        """Keys of the model outputs, beyond the modalities, that the loss and scores read.

        Under a distribution strategy they are all-gathered with the embeddings.
        """
        return []

    def export_endpoints(self, model):
        """Extra SavedModel endpoints: dict name -> function(embeddings of every modality) -> dict."""
        return {}

    # ------------------------------------------------------------------ loss
    def make_loss(self, modalities):
        """The Keras loss object the model holds (``model.loss_object``), or ``None``."""
        return None

    def loss(self, model, y_pred, masks, scale, permutations=None):
        """The objective over a batch.

        Args:
            model: the model (for the objective's layers).
            y_pred: dict of (global-batch) outputs: every modality and :meth:`loss_keys`.
            masks: list of optional (N,) bool presence masks in modality order, or ``None``.
            scale: the logit scale (float32 scalar).
            permutations: fixed permutations for Symile's ``"n"`` sampling (the model's
                ``symile_permutations`` hook); only Symile accepts them.

        Returns:
            The scalar loss.
        """
        self.check_permutations(permutations)
        from tf_mmcl.keys import LOGIT_SCALE_KEY, mask_key

        pred = {n: y_pred[n] for n in model.modalities}
        pred.update({k: y_pred[k] for k in self.loss_keys(model)})
        pred[LOGIT_SCALE_KEY] = scale
        if masks is not None:
            pred.update({mask_key(n): m for n, m in zip(model.modalities, masks) if m is not None})
        return model.loss_object(None, pred)

    def check_permutations(self, permutations):
        if permutations is not None:
            raise ValueError('symile_permutations only apply to objective="symile" with negative_sampling="n".')

    # ------------------------------------------------------------------ scores
    def similarity(self, model, queries, target, candidates, fused=None, query_masks=None):
        """Raw scores (B, C) (no logit scale) of candidates given query embeddings.

        Args:
            model: the model.
            queries: dict query modality -> (B, D) embeddings, in the model's modality order,
                without ``target``.
            target: the candidate modality.
            candidates: (C, D) candidate embeddings.
            fused: dict of :meth:`feature_outputs` of the query modalities (ConFu), or ``None``.
            query_masks: dict query modality -> (B,) bool presence (or ``None`` entries), or ``None``.
        """
        names = list(queries)
        qs = [queries[n] for n in names]
        if query_masks:
            qs, fused = self.fill_absent(names, qs, fused, query_masks)
        if len(qs) == 1:
            return self.pair_score(model, qs[0], candidates)
        return self.tuple_score(model, names, qs, candidates, fused)

    def fill_absent(self, names, qs, fused, query_masks):
        """Replaces absent query rows by :attr:`absent_query_value` (fused pairs with a member absent by 0)."""
        if self.absent_query_value is None:
            raise ValueError(f"The {self.name} score needs every query modality; query_masks are not supported for it.")
        neutral = self.absent_query_value
        qs = [
            q
            if query_masks.get(n) is None
            else ops.where(ops.cast(query_masks[n], "bool")[:, None], ops.cast(q, "float32"), neutral)
            for n, q in zip(names, qs)
        ]
        if fused:
            fused = dict(fused)
            for key in list(fused):
                present = [
                    ops.cast(query_masks[x], "bool") for x in split_fused_key(key) if query_masks.get(x) is not None
                ]
                for p_ in present:
                    fused[key] = ops.where(p_[:, None], fused[key], 0.0)
        return qs, fused

    def pair_score(self, model, query, candidates):
        """1->1 score (B, C): the cosine of L2-normalised embeddings."""
        return sim.mip_scores([query], candidates)

    def tuple_score(self, model, names, qs, candidates, fused):
        """(M-1)->1 score (B, C) of two or more query modalities."""
        raise NotImplementedError(f"{type(self).__name__} must implement tuple_score.")

    # ------------------------------------------------------------------ retrieval
    def reduces_exactly(self, model, names):
        """True if :meth:`reduce_queries` reproduces the score for the query modalities ``names``.

        Then ``similarity(queries, c) == <reduce_queries(queries), c>`` for every candidate and
        an index's top-k of the inner product *is* the model's top-k; otherwise the vector only
        proposes a shortlist that the index re-scores with the model.
        """
        return False

    def reduce_queries(self, model, target, embeddings, fused, masks):
        """One (B, D) float32 vector per query row for maximum-inner-product search.

        Args:
            model: the model.
            target: the candidate modality.
            embeddings: dict present query modality -> (B, D) embeddings.
            fused: dict of :meth:`feature_outputs` (possibly empty).
            masks: dict modality -> (B,) bool presence (possibly empty).

        Default: the sum of the queries (absent rows as :attr:`absent_query_value`), exact for
        a score additive in the query embeddings.
        """
        return self._sum(model, embeddings, masks)

    @staticmethod
    def _ordered(model, embeddings):
        return [n for n in model.modalities if n in embeddings]

    def _sum(self, model, embeddings, masks, fill=0.0):
        total = None
        for n in self._ordered(model, embeddings):
            q = fill_absent(tf.cast(embeddings[n], tf.float32), masks.get(n), fill)
            total = q if total is None else total + q
        return total

    def _product(self, model, embeddings, masks):
        prod = None
        for n in self._ordered(model, embeddings):
            q = fill_absent(tf.cast(embeddings[n], tf.float32), masks.get(n), 1.0)
            prod = q if prod is None else prod * q
        return prod


def check_options(options, ints=(), bools=(), strings=(), fractions=(), seeds=()):
    """Type checks shared by the objectives (each option named in its error)."""
    for key in seeds:
        check_seed(options[key], key)
    for key in ints:
        positive_int_or_none(options[key], key)
    for key in bools:
        require_bool(options[key], key)
    for key in fractions:
        check_fraction(options[key], key)
    for key in strings:
        require_str(options[key], key)
