"""``MultimodalContrastiveModel``: one encoder per modality, a shared embedding space, and a
contrastive objective over all modalities, trained with ``model.fit``."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_mmcl import losses as losses_lib
from tf_mmcl import ops as sim
from tf_mmcl.layers.fusion import FusionHead
from tf_mmcl.layers.gate import ContrastiveGate
from tf_mmcl.layers.heads import L2Normalize, LogitScale, ProjectionHead
from tf_mmcl.losses.base import LOGIT_SCALE_KEY, fused_key, positive_int_or_none, positive_number, require_bool
from tf_mmcl.losses.gated import gated_symile_loss
from tf_mmcl.ops.checks import _check_one_mask, _Pending, check_unit_norm, require_float, suspend_value_checks

__all__ = ["MultimodalContrastiveModel", "OBJECTIVES"]

# Options each objective accepts (with defaults); anything else is a clear error.
_GATE_OPTIONS = {
    "mode": "attention", "gate_type": "softmax", "use_null": True, "neutral": "random_trainable",
    "key_dim": 256, "strength_logit_init": -6.0, "renormalize": True, "temperature_init": 1.0,
}
_OBJECTIVE_OPTIONS = {
    # similarity "lp": "Negate or Embrace"'s -||a - b||_p ** p (lp_power); normalize=False keeps
    # the embeddings unnormalised, as that paper's simulation.
    "clip": {"similarity": "cosine", "p": 2.0, "lp_power": True, "normalize": True},
    "symile": {"negative_sampling": "n", "seed": None, "block_size": None},
    "confu": {"lam": 0.5, "fusion_hidden_dim": None, "fusion_layers": 2, "fusion_dropout": 0.1,
              "mask_ratio": 0.0},
    "gram": {"eps": 1e-8},
    "triangle": {"squared": True, "eps": 1e-8},
    "gated_symile": dict({"negative_sampling": "pair", "num_negatives": None, "distill_weight": 0.0,
                          "variance_scaling": True, "seed": None}, **_GATE_OPTIONS),
}
OBJECTIVES = tuple(_OBJECTIVE_OPTIONS)
# Non-modality keys a dataset may carry for evaluation; the model ignores them.
_DEFAULT_PASSTHROUGH = ("label", "labels", "corruption", "latents")
_MASK_SUFFIX = "_mask"


@keras.saving.register_keras_serializable(package="tf_mmcl")
class MultimodalContrastiveModel(keras.Model):
    """Encoders per modality -> projection -> L2 normalise -> contrastive objective.

    The batch is a dict keyed by modality name, plus optional presence masks
    ``"<name>_mask"`` (bool (N,), True = present). ``call`` returns the L2-normalised
    embeddings keyed by modality, plus the fused pair embeddings ``"a+b"`` for ConFu and the
    gate weights ``"gate_weights/<target>"`` ((N, M), modality order) for Gated Symile.

    Objectives (``objective=``) and their options (``**objective_options``):

    * ``"clip"``: pairwise symmetric InfoNCE over every pair of modalities;
      ``similarity="cosine"`` (default) or ``"lp"`` (``-||a - b||_p ** p``, options ``p`` (2)
      and ``lp_power`` (True; False: the norm itself)), and ``normalize`` (True; False skips the
      L2 normalisation of the embeddings, as the Lp objective of "Negate or Embrace"). Missing:
      a pair's term uses the rows where both are present.
    * ``"symile"``: ``negative_sampling="n" | "n_squared"``, ``seed``, ``block_size``. Missing:
      the missing factor is the all-ones vector, the neutral element of the multilinear
      product; an anchor's loss averages over rows where it is present.
    * ``"confu"``: ``lam`` (0.5), ``fusion_hidden_dim``, ``fusion_layers`` (2),
      ``fusion_dropout`` (0.1), ``mask_ratio`` (0). One ``FusionHead`` per modality pair over
      the *encoder features*. The logit scale is fixed at 1/0.07 unless
      ``learn_logit_scale=True`` (as the authors' code). Missing: each term uses the rows
      where all the modalities it involves are present.
    * ``"gram"`` (``eps``) and ``"triangle"`` (``squared``, ``eps``; exactly 3 modalities):
      missing: only rows with every modality present take part.
    * ``"gated_symile"``: ``negative_sampling="pair" | "n" | "n_squared"``, ``num_negatives``,
      ``distill_weight``, ``variance_scaling``, ``seed`` and the gate's options (``mode``,
      ``gate_type``, ``use_null``, ``neutral``, ``key_dim``, ``strength_logit_init``,
      ``renormalize``, ``temperature_init``). Missing: a missing modality is replaced by its
      neutral direction (gate weight 0).

    A modality may be left out of a batch entirely if its mask is given (all False); its input
    is then zeros of the shape the model was built with.

    The model builds every sublayer it owns (encoders, projections, ConFu's fusion heads, Gated
    Symile's gate) as soon as it knows every modality's input shape: on its first call, on
    ``build({modality: shape})``, or once ``embed``/``score`` have seen every modality. Saving
    a model that is not built is an error (Keras would only warn and drop the unbuilt weights).

    Logged metrics: ``loss``, ``top1_<modality>`` (in-batch retrieval of each modality from all
    the others, by the objective's own score: a retrieved row whose input of that modality
    equals the query row's own is a hit, and ``t`` rows tied at the top score count as an
    expectation, ``hits / t``; see ``_in_batch_top1``) and ``logit_scale``.

    Args:
        encoders: dict modality name -> Keras layer mapping that modality's input to features.
        embedding_dim: width of the shared embedding space.
        objective: one of ``OBJECTIVES``.
        projection_hidden_units: hidden widths of the projection heads (empty: linear).
        logit_scale_init: initial logit scale (default 1/0.07).
        learn_logit_scale: train the log-scale (default True; False for ConFu).
        max_logit_scale: clamp of the scale (100).
        passthrough_keys: non-modality input keys to ignore (labels, corruption kinds, ...).
        global_negatives: under a multi-replica strategy, contrast against the global batch
            (all-gathered embeddings; the single-device objective). ``False`` keeps each
            replica's negatives local (a different objective; see ``tf_mmcl.distribute``).
        in_batch_metrics: log the in-batch ``top1_<modality>`` retrieval metrics in ``fit`` /
            ``evaluate``. On the small XOR benchmarks they cost as much as the loss; ``False``
            skips them (the loss and gradients are unchanged).
        **objective_options: the objective's options above.

    Example:
        >>> import numpy as np, keras, tf_mmcl
        >>> model = MultimodalContrastiveModel(
        ...     {m: tf_mmcl.layers.MLPEncoder(hidden_units=(8,)) for m in "abc"},
        ...     embedding_dim=4, objective="symile", negative_sampling="n_squared")
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-2))
        >>> x = {m: np.random.rand(16, 3).astype("float32") for m in "abc"}
        >>> _ = model.fit(x, epochs=1, batch_size=8, verbose=0)
        >>> model.embed("c", x["c"]).shape
        TensorShape([16, 4])
        >>> model.score({"a": x["a"], "b": x["b"]}, "c", x["c"]).shape
        TensorShape([16, 16])
    """

    def __init__(self, encoders, embedding_dim, objective="symile", projection_hidden_units=(),
                 logit_scale_init=1.0 / 0.07, learn_logit_scale=None, max_logit_scale=100.0,
                 passthrough_keys=_DEFAULT_PASSTHROUGH, global_negatives=True, in_batch_metrics=True, name=None,
                 **objective_options):
        # Keras passes these through from_config/Model internals; they are not objective options.
        base_kwargs = {k: objective_options.pop(k) for k in ("trainable", "dtype") if k in objective_options}
        super().__init__(name=name, **base_kwargs)
        if not isinstance(encoders, dict) or not encoders:
            raise ValueError("encoders must be a non-empty dict modality name -> Keras layer.")
        passthrough_keys = _check_passthrough_keys(passthrough_keys)
        names = [str(n) for n in encoders]
        for n in names:
            if "+" in n or "/" in n or n.endswith(_MASK_SUFFIX) or n == LOGIT_SCALE_KEY or n in passthrough_keys:
                raise ValueError(f"Invalid modality name {n!r}: no '+', '/', '{_MASK_SUFFIX}' suffix or reserved name.")
        if len(names) < 2:
            raise ValueError(f"A contrastive model needs at least 2 modalities, got {names}.")
        if objective not in _OBJECTIVE_OPTIONS:
            raise ValueError(f"Unknown objective {objective!r}; expected one of {OBJECTIVES}.")
        allowed = _OBJECTIVE_OPTIONS[objective]
        unknown = sorted(set(objective_options) - set(allowed))
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} for objective {objective!r}; "
                             f"allowed: {sorted(allowed)}.")
        if objective == "triangle" and len(names) != 3:
            raise ValueError(f"The triangle objective needs exactly 3 modalities, got {names}.")
        if objective in ("confu", "gated_symile") and len(names) < 3:
            raise ValueError(f"The {objective} objective needs at least 3 modalities, got {names}.")
        _check_objective_options(objective, objective_options)
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}.")
        for n, enc in encoders.items():
            if not isinstance(enc, keras.layers.Layer):
                raise ValueError(f"encoders[{n!r}] must be a Keras layer, got {type(enc).__name__}.")

        self.modalities = names
        self.embedding_dim = embedding_dim
        self.objective = objective
        self.options = dict(allowed, **objective_options)
        if objective == "clip":
            self.options["p"] = losses_lib.lp_clip.check_similarity(self.options["similarity"], self.options["p"])
            if not isinstance(self.options["normalize"], bool):
                raise ValueError(f"normalize must be True or False, got {self.options['normalize']!r}.")
            if not self.options["normalize"] and self.options["similarity"] != "lp":
                raise ValueError('normalize=False needs similarity="lp": the cosine objective takes '
                                 'L2-normalised embeddings (set similarity="lp" or keep normalize=True).')
        self.projection_hidden_units = tuple(projection_hidden_units)
        self.logit_scale_init = positive_number(logit_scale_init, "logit_scale_init")
        self.learn_logit_scale = ((objective != "confu") if learn_logit_scale is None
                                  else require_bool(learn_logit_scale, "learn_logit_scale"))
        self.max_logit_scale = positive_number(max_logit_scale, "max_logit_scale")
        self.passthrough_keys = passthrough_keys
        if not isinstance(global_negatives, bool):
            raise ValueError(f"global_negatives must be True or False, got {global_negatives!r}.")
        self.global_negatives = global_negatives
        if not isinstance(in_batch_metrics, bool):
            raise ValueError(f"in_batch_metrics must be True or False, got {in_batch_metrics!r}.")
        self.in_batch_metrics = in_batch_metrics
        # Set by tf_mmcl.training.fit for the duration of a run: the divergence guard.
        self.finite_monitor = None

        self.encoders = dict(encoders)
        self.projections = {n: ProjectionHead(embedding_dim, hidden_units=self.projection_hidden_units,
                                              name=f"projection_{n}") for n in names}
        self.normalize = L2Normalize(name="l2_normalize")
        self.logit_scale = LogitScale(self.logit_scale_init, self.max_logit_scale,
                                      trainable=self.learn_logit_scale, name="logit_scale")
        self.fusion_heads = {}
        if objective == "confu" and self.options["lam"] > 0:
            for i, j in itertools.combinations(range(len(names)), 2):
                key = fused_key(names[i], names[j])
                self.fusion_heads[key] = FusionHead(
                    embedding_dim, hidden_dim=self.options["fusion_hidden_dim"],
                    num_layers=self.options["fusion_layers"], dropout=self.options["fusion_dropout"],
                    mask_ratio=self.options["mask_ratio"], name=f"fusion_{names[i]}_{names[j]}")
        self.gate = None
        if objective == "gated_symile":
            self.gate = ContrastiveGate(names, seed=self.options["seed"], name="contrastive_gate",
                                        **{k: self.options[k] for k in _GATE_OPTIONS})
            # Fresh sampled negatives / permutations every step, reproducible from the seed.
            self._loss_seed = keras.random.SeedGenerator(self.options["seed"], name="loss_seed")
        self.loss_object = self._make_loss()
        self._modality_shapes = None
        self._seen_input_shapes = {}
        self._top1_trackers = {n: keras.metrics.Mean(name=f"top1_{n}") for n in names}
        self._scale_tracker = keras.metrics.Mean(name="logit_scale")

    # ------------------------------------------------------------------ construction
    def _make_loss(self):
        o = self.options
        common = {"modalities": self.modalities}
        if self.objective == "clip":
            return losses_lib.CLIPLoss(similarity=o["similarity"], p=o["p"], lp_power=o["lp_power"], **common)
        if self.objective == "symile":
            return losses_lib.SymileLoss(negative_sampling=o["negative_sampling"], seed=o["seed"],
                                         block_size=o["block_size"], **common)
        if self.objective == "confu":
            return losses_lib.ConFuLoss(lam=o["lam"], **common)
        if self.objective == "gram":
            return losses_lib.GRAMLoss(eps=o["eps"], **common)
        if self.objective == "triangle":
            return losses_lib.TriangleLoss(squared=o["squared"], eps=o["eps"], **common)
        return None  # gated_symile: the loss needs the gate layer, see compute_loss

    def build(self, input_shape):
        if not isinstance(input_shape, dict):
            raise ValueError(f"{type(self).__name__} takes a dict of inputs keyed by modality, "
                             f"got shape {input_shape!r}.")
        shapes = {}
        for n in self.modalities:
            if n not in input_shape:
                raise ValueError(f"Cannot build: no input for modality {n!r} (got {sorted(input_shape)}).")
            shapes[n] = tuple(input_shape[n])
        self._modality_shapes = shapes
        features = {}
        for n in self.modalities:
            enc = self.encoders[n]
            if not enc.built:
                enc.build(shapes[n])
            features[n] = tuple(enc.compute_output_shape(shapes[n]))
            # Sublayers may already be built by an earlier embed()/score() on one modality.
            _build_once(self.projections[n], features[n])
        _build_once(self.normalize, (None, self.embedding_dim))
        if not self.logit_scale.built:
            self.logit_scale.build()
        for key, head in self.fusion_heads.items():
            a, b = key.split("+")
            _build_once(head, [features[a], features[b]])
        if self.gate is not None:
            _build_once(self.gate, {n: (None, self.embedding_dim) for n in self.modalities})
        self.built = True

    # ------------------------------------------------------------------ inputs
    def _split_inputs(self, inputs, required=None):
        """Returns (values, masks) dicts, checking names; fills missing-but-masked modalities."""
        if not isinstance(inputs, dict):
            raise ValueError(f"{type(self).__name__} expects a dict keyed by modality name "
                             f"({self.modalities}), got {type(inputs).__name__}.")
        required = self.modalities if required is None else required
        known = set(self.modalities) | {n + _MASK_SUFFIX for n in self.modalities} | set(self.passthrough_keys)
        unknown = sorted(k for k in inputs if k not in known)
        if unknown:
            raise ValueError(f"Unknown input key(s) {unknown}; modalities are {self.modalities} "
                             f"(masks as '<name>{_MASK_SUFFIX}'; other keys via passthrough_keys).")
        values, masks = {}, {}
        for n in required:
            mask = inputs.get(n + _MASK_SUFFIX)
            if mask is not None:
                masks[n] = _check_one_mask(mask, f"{n}{_MASK_SUFFIX}", None, self._input_checks)
            if n in inputs:
                values[n] = inputs[n]
                self._check_input_shape(n, values[n])
            elif mask is not None:
                if self._modality_shapes is None:
                    raise ValueError(f"Modality {n!r} is absent and the model is not built yet: pass it "
                                     "(any placeholder values) with its mask at least once.")
                shape = (ops.shape(masks[n])[0],) + tuple(self._modality_shapes[n][1:])
                # Token-id encoders (input_dtype "int32") refuse float placeholders.
                dtype = getattr(self.encoders[n], "input_dtype", None) or self.encoders[n].compute_dtype
                values[n] = ops.zeros(shape, dtype=dtype)
            else:
                raise ValueError(f"Missing modality {n!r}: pass it, or pass '{n}{_MASK_SUFFIX}' "
                                 "(all False) to mark it missing.")
        batch = {int(v.shape[0]) for v in values.values() if getattr(v, "shape", None) is not None
                 and len(v.shape) and v.shape[0] is not None}
        if len(batch) > 1:
            raise ValueError(f"Modalities have different batch sizes: "
                             f"{ {n: tuple(v.shape) for n, v in values.items()} }; row i of every modality "
                             "is one example, so pass aligned rows.")
        # Every mask has one entry per row (static check, or a run-time one inside a graph).
        present = [n for n in required if n in inputs]
        rows = _rows(values[present[0]]) if present else None
        if rows is not None:
            for n, mk in masks.items():
                _check_one_mask(mk, f"{n}{_MASK_SUFFIX}", rows, self._input_checks)
            self._check_same_rows({n: values[n] for n in present}, "inputs")
        return values, masks

    def _check_input_shape(self, name, value, what=None):
        """Once built, each modality's input must keep its rank and known trailing sizes.

        Strings and bools are refused (no encoder takes them); float inputs must be finite
        (checked on the host in eager mode, by run-time assertions collected in
        ``self._input_checks`` inside a graph).
        """
        what = what or f"Input {name!r}"
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{what} must be an array of the modality's raw values, got a string.")
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            if isinstance(value, dict):
                return  # structured inputs (e.g. a backbone's dict of arrays): the encoder checks them
            value = ops.convert_to_tensor(value)
        dtype = str(getattr(value.dtype, "name", value.dtype))
        if dtype in ("string", "object", "bool") or dtype.startswith(("<U", "|S", "str", "bytes")):
            raise TypeError(f"{what} has dtype {dtype}; expected the numeric raw values the encoder of "
                            f"modality {name!r} takes (float features, or int ids for a text encoder).")
        if "float" in dtype and getattr(self, "finite_monitor", None) is None:  # the guard names it better
            self._input_checks.require(
                tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(value))),
                f"{what} contains NaN or Inf; clean or impute the raw inputs (a missing modality is "
                f"marked with '{name}{_MASK_SUFFIX}' = False).",
                details=lambda: f"{int(np.size(value) - np.count_nonzero(np.isfinite(np.asarray(value))))} value(s)")
        if self._modality_shapes is None:
            return
        expected = self._modality_shapes[name]
        shape = tuple(value.shape)
        if len(shape) != len(expected):
            raise ValueError(f"{what} has rank {len(shape)} (shape {shape}); the model was built "
                             f"for rank {len(expected)} (shape {expected}).")
        for got, want in zip(shape[1:], expected[1:]):
            if got is not None and want is not None and int(got) != int(want):
                raise ValueError(f"{what} has shape {shape}; the model was built for {expected}.")

    def _features(self, values, training=None):
        features = {n: self.encoders[n](x, training=training) for n, x in values.items()}
        if not self.built:
            self._build_when_every_shape_is_known(values)
        return features

    def _build_when_every_shape_is_known(self, values):
        # embed()/score() on some modalities build only their encoders and projections; once every
        # modality's input shape has been seen, build the rest (gate, fusion heads) so that save()
        # keeps every weight.
        for n, x in values.items():
            if getattr(x, "shape", None) is not None and len(x.shape):
                self._seen_input_shapes[n] = (None,) + tuple(x.shape[1:])
        if all(n in self._seen_input_shapes for n in self.modalities):
            self.build({n: self._seen_input_shapes[n] for n in self.modalities})

    def save_own_variables(self, store):
        # Keras saves an unbuilt model with a warning only, and its unbuilt sublayers' weights are
        # silently lost: refuse instead, saying how to build it.
        if not self.built:
            unseen = [n for n in self.modalities if n not in self._seen_input_shapes]
            example = {n: self._seen_input_shapes.get(n, (None, "...")) for n in self.modalities}
            raise ValueError(
                f"Cannot save {self.name}: it is not built, so the weights of the modality(ies) {unseen} "
                "(encoders, projections) and of the objective's gate / fusion heads would be lost. Build it "
                "first: call it on a batch with every modality (model(batch)), or "
                f"model.build({example}) with each modality's input shape.")
        super().save_own_variables(store)

    def _embed_features(self, features, training=None):
        if not self.options.get("normalize", True):
            return {n: self.projections[n](h, training=training) for n, h in features.items()}
        return {n: self.normalize(self.projections[n](h, training=training)) for n, h in features.items()}

    def _fused(self, features, training=None):
        """ConFu's normalised fused embeddings of every pair whose two modalities are in ``features``."""
        out = {}
        for key, head in self.fusion_heads.items():
            a, b = key.split("+")
            if a in features and b in features:
                out[key] = self.normalize(head([features[a], features[b]], training=training))
        return out

    @property
    def _input_checks(self):
        """Run-time input checks of the current trace (``_Pending``), attached to its outputs."""
        pending = getattr(self, "_pending_input_checks", None)
        if pending is None:
            pending = _Pending()
            object.__setattr__(self, "_pending_input_checks", pending)
        return pending

    def _attach_input_checks(self, out):
        """Attaches the collected run-time input checks to a dict of outputs (XLA: NaN poison)."""
        pending = getattr(self, "_pending_input_checks", None)
        object.__setattr__(self, "_pending_input_checks", None)
        if pending is None or not isinstance(out, dict):
            return out
        keys = list(out)
        return dict(zip(keys, pending.attach([out[k] for k in keys])))

    def call(self, inputs, training=None):
        object.__setattr__(self, "_pending_input_checks", None)
        values, masks = self._split_inputs(inputs)
        features = self._features(values, training)
        out = self._embed_features(features, training)
        out.update(self._fused(features, training))
        out = self._attach_input_checks(out)
        if self.gate is not None:
            weights = self.gate(dict((n, out[n]) for n in self.modalities), masks=masks or None)
            out.update({f"gate_weights/{t}": w for t, w in weights.items()})
        return out

    # ------------------------------------------------------------------ training
    def _masks_list(self, x):
        if not isinstance(x, dict):
            return None
        masks = [x.get(n + _MASK_SUFFIX) for n in self.modalities]
        if all(m is None for m in masks):
            return None
        return [None if m is None else ops.cast(m, "bool") for m in masks]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The objective over the global batch, as this replica's share (``loss / replicas``).

        Under a ``tf.distribute`` strategy every embedding (fused pairs and presence masks
        included) is all-gathered to the global batch (``tf_mmcl.distribute.gather_batch``), so
        the negatives of every objective span the global batch and each replica computes the
        same global loss; returning it divided by the number of replicas makes Keras' gradient
        all-reduce (SUM) give exactly the single-device gradient. ``global_negatives=False`` (a
        constructor option, saved in the config) keeps each replica's negatives local instead (a
        different objective).
        ``model.symile_permutations`` (int (M, M-1, N_global), optional) fixes the permutations
        of Symile's ``"n"`` negative sampling instead of drawing them from the seed.
        """
        from tf_mmcl import distribute  # TF-specific collectives live there

        if sample_weight is not None:
            raise ValueError("sample_weight is not supported: a contrastive objective is one scalar over the "
                             "whole batch (drop it; mask rows with '<modality>_mask' instead).")
        if y is not None:
            raise ValueError("MultimodalContrastiveModel takes no targets y (positives are the aligned rows): "
                             "pass only x; keep labels in x under a passthrough key such as 'label'.")
        scale = self.logit_scale.value()
        masks = self._masks_list(x)
        global_negatives = distribute.uses_global_negatives(self)
        local_rows = ops.shape(y_pred[self.modalities[0]])[0]
        keys = list(self.modalities) + list(self.fusion_heads)
        y_pred = distribute.gather_batch({k: y_pred[k] for k in keys}, enabled=global_negatives)
        masks = distribute.gather_batch(masks, enabled=global_negatives)
        with suspend_value_checks(getattr(self, "finite_monitor", None) is not None):
            loss = self._objective_loss(y_pred, masks, scale)
        # Keras sums gradients over replicas: each replica returns its share of the mean.
        if global_negatives:
            return distribute.scale_loss(loss)
        return distribute.local_share(loss, local_rows)

    def _objective_loss(self, y_pred, masks, scale):
        permutations = getattr(self, "symile_permutations", None)
        if permutations is not None and not (self.objective == "symile"
                                             and self.options["negative_sampling"] == "n"):
            raise ValueError('symile_permutations only apply to objective="symile" with negative_sampling="n".')
        if permutations is not None:
            loss = losses_lib.symile_loss([y_pred[n] for n in self.modalities], scale, "n",
                                          permutations=permutations, masks=masks)
        elif self.objective == "gated_symile":
            o = self.options
            reps = {n: y_pred[n] for n in self.modalities}
            mask_dict = None if masks is None else {n: m for n, m in zip(self.modalities, masks) if m is not None}
            loss = gated_symile_loss(reps, self.gate, scale, negative_sampling=o["negative_sampling"],
                                     num_negatives=o["num_negatives"], distill_weight=o["distill_weight"],
                                     variance_scaling=o["variance_scaling"], masks=mask_dict,
                                     seed=self._loss_seed, modalities=self.modalities)
        else:
            pred = {n: y_pred[n] for n in self.modalities}
            pred.update({k: y_pred[k] for k in self.fusion_heads})
            pred[LOGIT_SCALE_KEY] = scale
            if masks is not None:
                pred.update({n + _MASK_SUFFIX: m for n, m in zip(self.modalities, masks) if m is not None})
            loss = self.loss_object(None, pred)
        return loss

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` that refuses what the objective cannot use instead of dropping it.

        ``y``, ``sample_weight`` and ``class_weight`` are errors (Keras would silently drop a
        ``sample_weight`` without targets); a dict of arrays must have one row count.
        """
        names = ("batch_size", "epochs", "verbose", "callbacks", "validation_split", "validation_data",
                 "shuffle", "class_weight", "sample_weight")
        given = dict(zip(names, args))
        for key in ("sample_weight", "class_weight"):
            if given.get(key) is not None or kwargs.get(key) is not None:
                raise ValueError(f"fit: {key} is not supported: a contrastive objective is one scalar over the "
                                 "whole batch (drop it; mark missing rows with '<modality>_mask').")
        if y is not None:
            raise ValueError("fit: MultimodalContrastiveModel takes no targets y (positives are the aligned "
                             "rows): pass only x; keep labels in x under a passthrough key such as 'label'.")
        if isinstance(x, dict):
            rows = {k: len(v) for k, v in x.items() if isinstance(v, (np.ndarray, list))
                    or (hasattr(v, "shape") and len(getattr(v, "shape", ())) and v.shape[0] is not None)}
            if len(set(rows.values())) > 1:
                raise ValueError(f"fit: the arrays of x have different numbers of rows {rows}; row i of every "
                                 "modality is one example, so pass aligned arrays.")
        return super().fit(x, y, *args, **kwargs)

    def train_step(self, data):
        # tf_mmcl.training.fit's divergence guard: Keras' step plus finite checks of the inputs,
        # loss, gradients and weights (inside the compiled step, so it works under XLA).
        if self.finite_monitor is not None:
            return self.finite_monitor.train_step(self, data)
        return super().train_step(data)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        from tf_mmcl import distribute  # in-batch retrieval over the same batch as the loss

        if not self.in_batch_metrics:
            self._scale_tracker.update_state(self.logit_scale.value())
            return {m.name: m.result() for m in self.metrics}

        global_negatives = distribute.uses_global_negatives(self)
        keys = list(self.modalities) + list(self.fusion_heads)
        y_pred = distribute.gather_batch({k: y_pred[k] for k in keys}, enabled=global_negatives)
        masks = distribute.gather_batch(self._masks_list(x), enabled=global_negatives)
        valid = None
        if masks is not None:
            for m in masks:
                if m is not None:
                    valid = m if valid is None else ops.logical_and(valid, m)
        embeddings = {n: y_pred[n] for n in self.modalities}
        # Rows whose target input is the same value are the same candidate (see _in_batch_top1).
        prints = {n: _row_fingerprint(x[n]) for n in self.modalities if isinstance(x, dict) and n in x}
        prints = distribute.gather_batch(prints, enabled=global_negatives)
        for target in self.modalities:
            queries = {n: e for n, e in embeddings.items() if n != target}
            scores = self._similarity(queries, target, embeddings[target], fused=y_pred)
            same = _same_rows(prints[target]) if target in prints else None
            self._top1_trackers[target].update_state(_in_batch_top1(scores, valid, same))
        self._scale_tracker.update_state(self.logit_scale.value())
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        top1 = list(self._top1_trackers.values()) if self.in_batch_metrics else []
        return super().metrics + top1 + [self._scale_tracker]

    # ------------------------------------------------------------------ evaluation API
    def embed(self, modality, x, training=False):
        """Embeddings (N, embedding_dim) of raw inputs of one modality (L2-normalised unless
        the clip objective's ``normalize=False``)."""
        self._check_modality(modality)
        object.__setattr__(self, "_pending_input_checks", None)
        self._check_input_shape(modality, x, what=f"embed: x (raw {modality!r} inputs)")
        features = self._features({modality: x}, training)
        return self._attach_input_checks(self._embed_features(features, training))[modality]

    def score(self, queries, candidate_modality, candidates, query_masks=None):
        """Logits (B, C) of each candidate given each row of query inputs, raw inputs in.

        Scores follow the objective: MIP for Symile ((M-1)->1 and 1->1 alike), the fused pair
        embedding of two query modalities for ConFu (mean over query pairs for more than two;
        cosine for 1->1), the per-candidate gated MIP for Gated Symile, ``-volume`` / ``-area``
        for GRAM / TRIANGLE, and the sum of pairwise cosines for CLIP; all times the logit
        scale. Query modalities left out are treated as missing.

        Args:
            queries: dict modality -> raw inputs (B, ...), not including the candidate modality.
            candidate_modality: name of the modality to retrieve.
            candidates: raw inputs (C, ...) of the candidate modality.
            query_masks: optional dict modality -> bool (B,) presence.
        """
        self._check_modality(candidate_modality, "candidate modality")
        object.__setattr__(self, "_pending_input_checks", None)
        self._check_input_shape(candidate_modality, candidates,
                                what=f"candidates (raw {candidate_modality!r} inputs)")
        object.__setattr__(self, "_pending_input_checks", None)
        return self.score_candidate_embeddings(queries, candidate_modality,
                                               self.embed(candidate_modality, candidates),
                                               query_masks=query_masks)

    def score_candidate_embeddings(self, queries, candidate_modality, candidate_embeddings, query_masks=None):
        """Like :meth:`score` with precomputed candidate embeddings (C, embedding_dim).

        This is what a retrieval service runs per request: candidates are embedded once
        (``embed``), queries arrive raw.
        """
        self._check_modality(candidate_modality, "candidate modality")
        if not isinstance(queries, dict) or not queries:
            raise ValueError("queries must be a non-empty dict modality -> inputs.")
        bad = sorted(set(queries) - set(self.modalities))
        if bad:
            raise ValueError(f"Unknown query modality(ies) {bad}; expected among {self.modalities}.")
        if candidate_modality in queries:
            raise ValueError(f"The candidate modality {candidate_modality!r} cannot also be a query.")
        names = [n for n in self.modalities if n in queries]
        object.__setattr__(self, "_pending_input_checks", None)
        for n in names:
            self._check_input_shape(n, queries[n], what=f"queries[{n!r}]")
        self._check_same_rows({n: queries[n] for n in names}, "queries")
        cand = self._check_candidate_embeddings(candidate_embeddings)
        features = self._features({n: queries[n] for n in names}, training=False)
        q_emb = self._embed_features(features, training=False)
        fused = self._fused(features, training=False)
        checked = self._attach_input_checks(dict(q_emb, **fused, **{"candidates": cand}))
        cand = checked.pop("candidates")
        q_emb = {n: checked[n] for n in q_emb}
        fused = {k: checked[k] for k in fused}
        return self.logit_scale.value() * self._similarity(q_emb, candidate_modality, cand, fused=fused,
                                                           query_masks=query_masks)

    def _check_same_rows(self, values, what):
        """Query modalities must have one row count: a 1-row query is never broadcast."""
        rows = {n: _rows(v) for n, v in values.items()}
        static = {n: r for n, r in rows.items() if isinstance(r, int)}
        if len(set(static.values())) > 1:
            raise ValueError(f"{what}: the modalities have different numbers of rows {static}; row i of every "
                             "query modality is one query tuple, so pass aligned rows.")
        dynamic = [r for r in rows.values() if r is not None and not isinstance(r, int)]
        if dynamic and len(rows) > 1:
            first = next(iter(rows.values()))
            for n, r in rows.items():
                self._input_checks.require(tf.equal(tf.cast(r, tf.int32), tf.cast(first, tf.int32)),
                                           f"{what}: modality {n!r} has a different number of rows; pass "
                                           "aligned rows (row i of every query modality is one query).")

    def _check_candidate_embeddings(self, candidate_embeddings, name="candidate_embeddings"):
        cand = require_float(candidate_embeddings, name, hint="embeddings from model.embed")
        if len(cand.shape) != 2 or (cand.shape[-1] is not None and int(cand.shape[-1]) != self.embedding_dim):
            raise ValueError(f"{name} must be (C, {self.embedding_dim}) embeddings from model.embed(), got shape "
                             f"{tuple(cand.shape)}; pass raw candidates to model.score() instead.")
        if cand.shape[0] == 0:
            raise ValueError(f"{name} is empty: pass at least one candidate.")
        if not self.options.get("normalize", True):
            return cand  # the clip objective with normalize=False embeds without normalising
        return check_unit_norm([cand], [name])[0]

    def _check_modality(self, name, what="modality"):
        if name not in self.modalities:
            raise ValueError(f"Unknown {what} {name!r}; expected one of {self.modalities}.")

    def score_embeddings(self, query_embeddings, candidate_modality, candidate_embeddings,
                         fused_embeddings=None, query_masks=None):
        """Like :meth:`score` on precomputed embeddings (raw similarity, no logit scale).

        ConFu's (M-1)->1 scores need the fused query embeddings (``call``'s ``"a+b"`` outputs)
        in ``fused_embeddings``.
        """
        return self._similarity(query_embeddings, candidate_modality, candidate_embeddings,
                                fused=fused_embeddings, query_masks=query_masks)

    def _similarity(self, queries, target, candidates, fused=None, query_masks=None):
        pending = _Pending()
        query_masks = self._checked_query_masks(queries, target, query_masks, pending)
        scores = self._raw_similarity(queries, target, candidates, fused, query_masks)
        return pending.attach([scores])[0]

    def _checked_query_masks(self, queries, target, query_masks, pending):
        """Validates ``query_masks``: a dict over query modalities of (B,) bool (or int 0/1) masks."""
        if query_masks is None:
            return None
        if not isinstance(query_masks, dict):
            raise TypeError(f"query_masks must be a dict query modality -> (B,) bool mask, "
                            f"got {type(query_masks).__name__}.")
        unknown = sorted(str(k) for k in query_masks if k not in self.modalities)
        if unknown:
            raise ValueError(f"query_masks has unknown modality(ies) {unknown}; expected among {self.modalities}.")
        if target in query_masks and query_masks[target] is not None:
            raise ValueError(f"query_masks[{target!r}]: the candidate modality has no query mask; "
                             "mask candidates by leaving them out.")
        rows = next((_rows(v) for n, v in queries.items() if n != target), None)
        return {n: None if m is None else _check_one_mask(m, f"query_masks[{n!r}]", rows, pending)
                for n, m in query_masks.items()}

    def _raw_similarity(self, queries, target, candidates, fused=None, query_masks=None):
        if not isinstance(queries, dict) or not queries:
            raise ValueError("queries must be a non-empty dict modality -> embeddings.")
        bad = sorted(str(k) for k in queries if k not in self.modalities)
        if bad:
            raise ValueError(f"Unknown query modality(ies) {bad}; expected among {self.modalities}.")
        names = [n for n in self.modalities if n in queries and n != target]
        if not names:
            raise ValueError(f"queries must hold at least one modality other than the candidate modality {target!r}.")
        qs = [queries[n] for n in names]
        if self.objective == "gated_symile":
            # Query modalities left out are missing: the gate puts their neutral direction in.
            b = ops.shape(qs[0])[0]
            full, masks = {}, dict(query_masks or {})
            for n in self.modalities:
                if n == target:
                    continue
                if n in queries:
                    full[n] = queries[n]
                else:
                    full[n] = ops.zeros((b, self.embedding_dim), "float32")
                    masks[n] = ops.zeros((b,), "bool")
            return self.gate.gated_scores(target, full, candidates, query_masks=masks or None)
        if query_masks:
            # A missing query row is the neutral element of the score: ones for the MIP product,
            # zeros for the additive (CLIP, ConFu) scores. Volume scores need every vector.
            if self.objective in ("gram", "triangle"):
                raise ValueError(f"The {self.objective} score needs every query modality; "
                                 "query_masks are not supported for it.")
            neutral = 1.0 if self.objective == "symile" else 0.0
            qs = [q if query_masks.get(n) is None else
                  ops.where(ops.cast(query_masks[n], "bool")[:, None], ops.cast(q, "float32"), neutral)
                  for n, q in zip(names, qs)]
            if fused:
                fused = dict(fused)
                for key in list(fused):
                    a, b = key.split("+")
                    present = [ops.cast(query_masks[x], "bool") for x in (a, b) if query_masks.get(x) is not None]
                    for p_ in present:
                        fused[key] = ops.where(p_[:, None], fused[key], 0.0)
        if self.objective == "clip" and self.options["similarity"] == "lp":
            # Sum over query modalities of -||q - c||_p^p; an absent query row adds 0.
            total = 0.0
            for n, q in zip(names, qs):
                s = -sim.lp_distance_matrix(q, candidates, p=self.options["p"], power=self.options["lp_power"])
                if query_masks and query_masks.get(n) is not None:
                    s = ops.where(ops.cast(query_masks[n], "bool")[:, None], s, 0.0)
                total = total + s
            return total
        if len(qs) == 1 or self.objective == "symile":
            # Symile: MIP with absent queries as the neutral element; 1->1 is the cosine for all.
            return sim.mip_scores(qs, candidates)
        if self.objective == "confu" and self.fusion_heads:
            pair_keys = [fused_key(a, b) for a, b in itertools.combinations(names, 2)]
            if fused is None or any(k not in fused for k in pair_keys):
                raise ValueError(f"ConFu (M-1)->1 scores need the fused embeddings {pair_keys}.")
            total = 0.0
            for k in pair_keys:
                total = total + sim.dot_scores(fused[k], candidates)
            return total / len(pair_keys)
        if self.objective == "gram":
            return -ops.transpose(sim.gram_volume_matrix(candidates, qs, eps=self.options["eps"]))
        if self.objective == "triangle":
            return -ops.transpose(sim.triangle_area_matrix(candidates, qs[0], qs[1],
                                                           squared=self.options["squared"], eps=self.options["eps"]))
        # clip, and ConFu with lam = 0 (no fusion heads: its objective is then CLIP's pairwise
        # InfoNCE, so it scores like CLIP): sum of pairwise cosine similarities.
        total = 0.0
        for q in qs:
            total = total + sim.dot_scores(q, candidates)
        return total

    # ------------------------------------------------------------------ serialisation
    def get_config(self):
        config = {
            "name": self.name,
            "encoders": {n: keras.saving.serialize_keras_object(e) for n, e in self.encoders.items()},
            "embedding_dim": self.embedding_dim,
            "objective": self.objective,
            "projection_hidden_units": list(self.projection_hidden_units),
            "logit_scale_init": self.logit_scale_init,
            "learn_logit_scale": self.learn_logit_scale,
            "max_logit_scale": self.max_logit_scale,
            "passthrough_keys": list(self.passthrough_keys),
            "global_negatives": self.global_negatives,
            "in_batch_metrics": self.in_batch_metrics,
        }
        config.update(self.options)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoders"] = {n: keras.saving.deserialize_keras_object(e) for n, e in config["encoders"].items()}
        return cls(**config)


def _rows(value):
    """Static row count of an input, or its run-time row count inside a graph."""
    shape = getattr(value, "shape", None)
    if shape is None or not len(shape):
        return None
    if shape[0] is not None:
        return int(shape[0])
    return tf.shape(value)[0]


def _check_passthrough_keys(keys):
    if isinstance(keys, (str, bytes)):
        raise TypeError(f"passthrough_keys must be a list or tuple of key names, got the string {keys!r} "
                        f"(it would be read letter by letter): pass ({keys!r},).")
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"passthrough_keys must be a list or tuple of key names (str), got {keys!r}.")
    return tuple(keys)


def _check_objective_options(objective, options):
    """Type checks of the options that would otherwise fail late (first step) or be coerced."""
    o = options
    for key in ("seed",):
        if o.get(key) is not None and (isinstance(o[key], bool) or not isinstance(o[key], (int, np.integer))):
            raise TypeError(f"{key} must be an int or None, got {type(o[key]).__name__} {o[key]!r}.")
    for key in ("block_size", "num_negatives", "fusion_hidden_dim", "fusion_layers", "key_dim"):
        if key in o:
            positive_int_or_none(o[key], key)
    for key in ("renormalize", "use_null", "variance_scaling", "squared"):
        if key in o:
            require_bool(o[key], key)
    if "lam" in o:
        lam = positive_number(o["lam"], "lam", allow_zero=True)
        if lam > 1.0:
            raise ValueError(f"lam must be in [0, 1] (the weight of ConFu's fused terms), got {o['lam']!r}.")
    if "distill_weight" in o:
        positive_number(o["distill_weight"], "distill_weight", allow_zero=True)
    for key in ("fusion_dropout", "mask_ratio"):
        if key in o:
            v = positive_number(o[key], key, allow_zero=True)
            if v >= 1.0:
                raise ValueError(f"{key} must be in [0, 1), got {o[key]!r}.")
    for key in ("negative_sampling", "mode", "gate_type", "neutral"):
        if key in o and not isinstance(o[key], str):
            raise TypeError(f"{key} must be a string, got {type(o[key]).__name__} {o[key]!r}.")
    if objective == "gated_symile":
        from tf_mmcl.losses.gated import GATED_NEGATIVE_SAMPLING

        sampling = o.get("negative_sampling", "pair")
        if sampling not in GATED_NEGATIVE_SAMPLING:
            raise ValueError(f"Unknown negative_sampling {sampling!r}; expected one of {GATED_NEGATIVE_SAMPLING}.")
        if o.get("num_negatives") is not None and sampling != "pair":
            raise ValueError('num_negatives only applies to negative_sampling="pair".')


def _build_once(layer, shape):
    if not layer.built:
        layer.build(shape)


def _num_replicas():
    from tf_mmcl import distribute  # distribution is TF-specific; kept out of the math above

    return distribute.num_replicas()


def _row_fingerprint(x):
    """(N, 4) float32 summary of each row of an input: equal rows give equal summaries.

    The sum, the sum of squares and two fixed-weight sums of the flattened row; rows that differ
    give different summaries except on a measure-zero set (exact ties in all four).
    """
    x = ops.cast(x, "float32")
    x = ops.reshape(x, (ops.shape(x)[0], -1))
    pos = ops.cast(ops.arange(ops.shape(x)[1]), "float32")
    weights = ops.stack([ops.ones_like(pos), ops.sin(1.7 * pos + 0.3), ops.cos(2.3 * pos + 0.5)], axis=1)
    return ops.concatenate([ops.matmul(x, weights), ops.sum(ops.square(x), axis=1, keepdims=True)], axis=1)


def _same_rows(fingerprint, rtol=1e-5):
    """(N, N) bool: rows i and j hold the same input (their fingerprints agree to ``rtol``)."""
    a, b = fingerprint[:, None, :], fingerprint[None, :, :]
    close = ops.abs(a - b) <= rtol * (ops.abs(a) + ops.abs(b)) + 1e-6
    return ops.all(close, axis=-1)


def _in_batch_top1(scores, valid=None, same=None):
    """In-batch top-1 of retrieving each row's own candidate, ties as an honest expectation.

    Row ``i`` retrieves the candidate(s) with the highest score; the retrieved row is a hit if
    its target input equals row ``i``'s own (``same[i, j]``; a batch of discrete values repeats
    them, and an identical candidate is the right answer). With ``t`` candidates tied at the top
    score, ``h`` of them hits, the row counts ``h / t``: the top-1 accuracy expected when ties
    are broken at random. A perfect model scores 1 and a model at chance about
    ``1 / (distinct candidates in the batch)``; a collapsed model (all scores equal) scores the
    share of the batch equal to each row, not 1.

    Args:
        scores: (N, N) scores of query ``i`` against candidate ``j``.
        valid: optional (N,) bool, rows with every modality present (others neither query nor
            compete).
        same: optional (N, N) bool, rows holding the same target input (default: only ``i``).
    """
    scores = ops.cast(scores, "float32")
    n = ops.shape(scores)[0]
    eye = ops.eye(n, dtype="bool")
    same = eye if same is None else ops.logical_or(same, eye)
    if valid is not None:
        scores = ops.where(valid[None, :], scores, -math.inf)
    top = ops.max(scores, axis=1, keepdims=True)
    at_top = ops.greater_equal(scores, top)
    tied = ops.sum(ops.cast(at_top, "float32"), axis=1)
    hits = ops.sum(ops.cast(ops.logical_and(at_top, same), "float32"), axis=1)
    correct = hits / ops.maximum(tied, 1.0)
    if valid is None:
        return ops.mean(correct)
    w = ops.cast(valid, "float32")
    return ops.sum(correct * w) / ops.maximum(ops.sum(w), 1.0)
