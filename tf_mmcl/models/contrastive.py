"""``MultimodalContrastiveModel``: one encoder per modality, a shared embedding space, and a
contrastive objective over all modalities, trained with ``model.fit``."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_mmcl import objectives as objectives_lib
from tf_mmcl.keys import MASK_SUFFIX, check_modality_name, mask_key
from tf_mmcl.layers.heads import L2Normalize, LogitScale, ProjectionHead
from tf_mmcl.losses.base import positive_number, require_bool
from tf_mmcl.ops.checks import PendingChecks, check_mask, check_unit_norm, require_float, suspend_value_checks

__all__ = ["MultimodalContrastiveModel", "OBJECTIVES"]

#: The built-in objective names (``tf_mmcl.objectives.names()`` lists every registered one).
OBJECTIVES = objectives_lib.BUILTIN
# Non-modality keys a dataset may carry for evaluation; the model ignores them.
_DEFAULT_PASSTHROUGH = ("label", "labels", "corruption", "latents")
# The model's own constructor arguments (an objective option of one of these names is kept in
# a nested objective config instead of flat).
_MODEL_ARGUMENTS = (
    "name",
    "encoders",
    "embedding_dim",
    "objective",
    "projection_hidden_units",
    "logit_scale_init",
    "learn_logit_scale",
    "max_logit_scale",
    "passthrough_keys",
    "global_negatives",
    "in_batch_metrics",
    "trainable",
    "dtype",
)


@keras.saving.register_keras_serializable(package="tf_mmcl")
class MultimodalContrastiveModel(keras.Model):
    """Encoders per modality -> projection -> L2 normalise -> contrastive objective.

    The batch is a dict keyed by modality name, plus optional presence masks
    ``"<name>_mask"`` (bool (N,), True = present). ``call`` returns the L2-normalised
    embeddings keyed by modality, plus the fused pair embeddings ``"a+b"`` for ConFu and the
    gate weights ``"gate_weights/<target>"`` ((N, M), modality order) for Gated Symile.

    The objective (``objective=``) is a :class:`tf_mmcl.objectives.Objective`: a registered
    name with its options as keyword arguments (``objective="symile",
    negative_sampling="n_squared"``) or an instance (``objective=tf_mmcl.objectives.Symile(...)``).
    The model owns encoders, projections, normalisation and the logit scale, and delegates the
    rest to the objective: the layers it adds (ConFu's fusion heads as ``model.fusion_heads``,
    Gated Symile's gate as ``model.gate``), the loss, the scores and how a missing query
    modality is filled. The built-in objectives and their options (see each module of
    ``tf_mmcl.objectives``):

    * ``"clip"``: pairwise symmetric InfoNCE; ``similarity="cosine"`` (default) or ``"lp"``
      (options ``p``, ``lp_power``, ``lp_negatives``), and ``normalize`` (False needs
      ``similarity="lp"``).
    * ``"symile"``: ``negative_sampling="n" | "n_squared"``, ``seed``, ``block_size``.
    * ``"confu"``: ``lam`` (0.5), ``fusion_hidden_dim``, ``fusion_layers`` (2),
      ``fusion_dropout`` (0.1), ``mask_ratio`` (0); the logit scale is fixed at 1/0.07 unless
      ``learn_logit_scale=True``.
    * ``"gram"`` (``eps``) and ``"triangle"`` (``squared``, ``eps``; exactly 3 modalities).
    * ``"gated_symile"``: ``negative_sampling="pair" | "n" | "n_squared"``, ``num_negatives``,
      ``distill_weight``, ``variance_scaling``, ``seed`` and the gate's options (``mode``,
      ``gate_type``, ``use_null``, ``neutral``, ``key_dim``, ``strength_logit_init``,
      ``renormalize``, ``temperature_init``).

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
        objective: a registered objective name (``tf_mmcl.objectives.names()``), an
            :class:`~tf_mmcl.objectives.Objective` instance, or its serialised config.
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
        **objective_options: the objective's options (with a name only).

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

    def __init__(
        self,
        encoders,
        embedding_dim,
        objective="symile",
        projection_hidden_units=(),
        logit_scale_init=1.0 / 0.07,
        learn_logit_scale=None,
        max_logit_scale=100.0,
        passthrough_keys=_DEFAULT_PASSTHROUGH,
        global_negatives=True,
        in_batch_metrics=True,
        name=None,
        **objective_options,
    ):
        # Keras passes these through from_config/Model internals; they are not objective options.
        base_kwargs = {k: objective_options.pop(k) for k in ("trainable", "dtype") if k in objective_options}
        super().__init__(name=name, **base_kwargs)
        if not isinstance(encoders, dict) or not encoders:
            raise ValueError("encoders must be a non-empty dict modality name -> Keras layer.")
        passthrough_keys = _check_passthrough_keys(passthrough_keys)
        names = [check_modality_name(n, passthrough_keys) for n in encoders]
        if len(names) < 2:
            raise ValueError(f"A contrastive model needs at least 2 modalities, got {names}.")
        objective = objectives_lib.get(objective, **objective_options)
        objective.check_modalities(names)
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}.")
        for n, enc in encoders.items():
            if not isinstance(enc, keras.layers.Layer):
                raise ValueError(f"encoders[{n!r}] must be a Keras layer, got {type(enc).__name__}.")

        self.modalities = names
        self.embedding_dim = embedding_dim
        self.objective = objective
        self.projection_hidden_units = tuple(projection_hidden_units)
        self.logit_scale_init = positive_number(logit_scale_init, "logit_scale_init")
        self.learn_logit_scale = (
            objective.learn_logit_scale
            if learn_logit_scale is None
            else require_bool(learn_logit_scale, "learn_logit_scale")
        )
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
        self.projections = {
            n: ProjectionHead(embedding_dim, hidden_units=self.projection_hidden_units, name=f"projection_{n}")
            for n in names
        }
        self.normalize = L2Normalize(name="l2_normalize")
        self.logit_scale = LogitScale(
            self.logit_scale_init, self.max_logit_scale, trainable=self.learn_logit_scale, name="logit_scale"
        )
        # The objective's own layers (ConFu's fusion heads, Gated Symile's gate), under the
        # attribute names it gives: that is also where .keras files keep their weights.
        self._objective_attributes = []
        for attribute, value in objective.make_layers(names, embedding_dim).items():
            setattr(self, attribute, value)
            self._objective_attributes.append(attribute)
        self.loss_object = objective.make_loss(names)
        self._modality_shapes = None
        self._seen_input_shapes = {}
        self._top1_trackers = {n: keras.metrics.Mean(name=f"top1_{n}") for n in names}
        self._scale_tracker = keras.metrics.Mean(name="logit_scale")

    # ------------------------------------------------------------------ construction
    @property
    def options(self):
        """The objective's options (every one, defaults included)."""
        return self.objective.options

    def objective_layers(self):
        """The layers the objective added (fusion heads, gate), in a stable order.

        (A method, not a property: Keras' saving walks properties and would store them again.)
        """
        found = []
        for attribute in self._objective_attributes:
            value = getattr(self, attribute)
            values = value.values() if isinstance(value, dict) else [value]
            found += [v for v in values if isinstance(v, keras.layers.Layer)]
        return found

    def build(self, input_shape):
        if not isinstance(input_shape, dict):
            raise ValueError(
                f"{type(self).__name__} takes a dict of inputs keyed by modality, got shape {input_shape!r}."
            )
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
        self.objective.build(self, features)
        self.built = True

    # ------------------------------------------------------------------ inputs
    def _split_inputs(self, inputs, required=None):
        """Returns (values, masks) dicts, checking names; fills missing-but-masked modalities."""
        if not isinstance(inputs, dict):
            raise ValueError(
                f"{type(self).__name__} expects a dict keyed by modality name "
                f"({self.modalities}), got {type(inputs).__name__}."
            )
        required = self.modalities if required is None else required
        known = set(self.modalities) | {mask_key(n) for n in self.modalities} | set(self.passthrough_keys)
        unknown = sorted(k for k in inputs if k not in known)
        if unknown:
            raise ValueError(
                f"Unknown input key(s) {unknown}; modalities are {self.modalities} "
                f"(masks as '<name>{MASK_SUFFIX}'; other keys via passthrough_keys)."
            )
        values, masks = {}, {}
        for n in required:
            mask = inputs.get(mask_key(n))
            if mask is not None:
                masks[n] = check_mask(mask, mask_key(n), None, self._input_checks)
            if n in inputs:
                values[n] = inputs[n]
                self._check_input_shape(n, values[n])
            elif mask is not None:
                if self._modality_shapes is None:
                    raise ValueError(
                        f"Modality {n!r} is absent and the model is not built yet: pass it "
                        "(any placeholder values) with its mask at least once."
                    )
                shape = (ops.shape(masks[n])[0],) + tuple(self._modality_shapes[n][1:])
                # Token-id encoders (input_dtype "int32") refuse float placeholders.
                dtype = getattr(self.encoders[n], "input_dtype", None) or self.encoders[n].compute_dtype
                values[n] = ops.zeros(shape, dtype=dtype)
            else:
                raise ValueError(
                    f"Missing modality {n!r}: pass it, or pass '{mask_key(n)}' (all False) to mark it missing."
                )
        batch = {
            int(v.shape[0])
            for v in values.values()
            if getattr(v, "shape", None) is not None and len(v.shape) and v.shape[0] is not None
        }
        if len(batch) > 1:
            raise ValueError(
                f"Modalities have different batch sizes: "
                f"{ {n: tuple(v.shape) for n, v in values.items()} }; row i of every modality "
                "is one example, so pass aligned rows."
            )
        # Every mask has one entry per row (static check, or a run-time one inside a graph).
        present = [n for n in required if n in inputs]
        rows = _rows(values[present[0]]) if present else None
        if rows is not None:
            for n, mk in masks.items():
                check_mask(mk, mask_key(n), rows, self._input_checks)
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
            raise TypeError(
                f"{what} has dtype {dtype}; expected the numeric raw values the encoder of "
                f"modality {name!r} takes (float features, or int ids for a text encoder)."
            )
        if "float" in dtype and getattr(self, "finite_monitor", None) is None:  # the guard names it better
            self._input_checks.require(
                tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(value))),
                f"{what} contains NaN or Inf; clean or impute the raw inputs (a missing modality is "
                f"marked with '{mask_key(name)}' = False).",
                details=lambda: f"{int(np.size(value) - np.count_nonzero(np.isfinite(np.asarray(value))))} value(s)",
            )
        if self._modality_shapes is None:
            return
        expected = self._modality_shapes[name]
        shape = tuple(value.shape)
        if len(shape) != len(expected):
            raise ValueError(
                f"{what} has rank {len(shape)} (shape {shape}); the model was built "
                f"for rank {len(expected)} (shape {expected})."
            )
        if not _same_known_sizes(shape[1:], expected[1:]):
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
                f"model.build({example}) with each modality's input shape."
            )
        super().save_own_variables(store)

    def _embed_features(self, features, training=None):
        if not self.objective.normalize_embeddings:
            return {n: self.projections[n](h, training=training) for n, h in features.items()}
        return {n: self.normalize(self.projections[n](h, training=training)) for n, h in features.items()}

    def _fused(self, features, training=None):
        """The objective's outputs from encoder features (ConFu's normalised fused pairs)."""
        return self.objective.feature_outputs(self, features, training)

    @property
    def _input_checks(self):
        """Run-time input checks of the current trace (``PendingChecks``), attached to its outputs."""
        pending = getattr(self, "_pending_input_checks", None)
        if pending is None:
            pending = PendingChecks()
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
        out.update(self.objective.embedding_outputs(self, out, masks))
        return out

    # ------------------------------------------------------------------ training
    def _masks_list(self, x):
        if not isinstance(x, dict):
            return None
        masks = [x.get(mask_key(n)) for n in self.modalities]
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
        of Symile's ``"n"`` negative sampling instead of drawing them from the seed (handed to
        the objective, which refuses it unless it is Symile with ``negative_sampling="n"``).
        """
        from tf_mmcl import distribute  # TF-specific collectives live there

        if sample_weight is not None:
            raise ValueError(
                "sample_weight is not supported: a contrastive objective is one scalar over the "
                "whole batch (drop it; mask rows with '<modality>_mask' instead)."
            )
        if y is not None:
            raise ValueError(
                "MultimodalContrastiveModel takes no targets y (positives are the aligned rows): "
                "pass only x; keep labels in x under a passthrough key such as 'label'."
            )
        scale = self.logit_scale.value()
        masks = self._masks_list(x)
        global_negatives = distribute.uses_global_negatives(self)
        local_rows = ops.shape(y_pred[self.modalities[0]])[0]
        keys = list(self.modalities) + self.objective.loss_keys(self)
        y_pred = distribute.gather_batch({k: y_pred[k] for k in keys}, enabled=global_negatives)
        masks = distribute.gather_batch(masks, enabled=global_negatives)
        with suspend_value_checks(getattr(self, "finite_monitor", None) is not None):
            loss = self.objective.loss(
                self, y_pred, masks, scale, permutations=getattr(self, "symile_permutations", None)
            )
        # Keras sums gradients over replicas: each replica returns its share of the mean.
        if global_negatives:
            return distribute.scale_loss(loss)
        return distribute.local_share(loss, local_rows)

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` that refuses what the objective cannot use instead of dropping it.

        ``y``, ``sample_weight`` and ``class_weight`` are errors (Keras would silently drop a
        ``sample_weight`` without targets); a dict of arrays must have one row count.
        """
        names = (
            "batch_size",
            "epochs",
            "verbose",
            "callbacks",
            "validation_split",
            "validation_data",
            "shuffle",
            "class_weight",
            "sample_weight",
        )
        given = dict(zip(names, args))
        for key in ("sample_weight", "class_weight"):
            if given.get(key) is not None or kwargs.get(key) is not None:
                raise ValueError(
                    f"fit: {key} is not supported: a contrastive objective is one scalar over the "
                    "whole batch (drop it; mark missing rows with '<modality>_mask')."
                )
        if y is not None:
            raise ValueError(
                "fit: MultimodalContrastiveModel takes no targets y (positives are the aligned "
                "rows): pass only x; keep labels in x under a passthrough key such as 'label'."
            )
        if isinstance(x, dict):
            rows = {
                k: len(v)
                for k, v in x.items()
                if isinstance(v, (np.ndarray, list))
                or (hasattr(v, "shape") and len(getattr(v, "shape", ())) and v.shape[0] is not None)
            }
            if len(set(rows.values())) > 1:
                raise ValueError(
                    f"fit: the arrays of x have different numbers of rows {rows}; row i of every "
                    "modality is one example, so pass aligned arrays."
                )
        self._check_data_shapes(x, "fit: x")
        validation = kwargs.get("validation_data", given.get("validation_data"))
        self._check_data_shapes(validation, "fit: validation_data")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """``keras.Model.evaluate``, with the inputs' widths checked against the built model first."""
        self._check_data_shapes(x, "evaluate: x")
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """``keras.Model.predict``, with the inputs' widths checked against the built model first."""
        self._check_data_shapes(x, "predict: x")
        return super().predict(x, *args, **kwargs)

    def _check_data_shapes(self, data, where):
        """Once built, the data's modalities must have the built trailing sizes; checked on the host.

        Keras reuses a train/test/predict step traced with relaxed shapes (a second ``fit`` with
        other data), so inside the step a wrong width is unknown at trace time and would surface
        as a matrix-size error deep inside an encoder. A dict of arrays and a ``tf.data.Dataset``
        (its ``element_spec``) are checked here, before any step runs; other sources (generators,
        ``PyDataset``) keep the checks inside the step.
        """
        if self._modality_shapes is None or data is None:
            return
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            features = spec[0] if isinstance(spec, tuple) and spec else spec
            if isinstance(features, dict):
                for n in self.modalities:
                    if n in features and isinstance(features[n], tf.TensorSpec):
                        self._check_built_width(n, tuple(features[n].shape)[1:], f"{where} (a tf.data.Dataset)")
            return
        if isinstance(data, tuple) and data and isinstance(data[0], dict):  # validation_data=(x,) or (x, y)
            data = data[0]
        if isinstance(data, dict):
            for n in self.modalities:
                shape = getattr(data.get(n), "shape", None)
                if shape is not None and len(shape):
                    self._check_built_width(n, tuple(shape)[1:], where)

    def _check_built_width(self, name, trailing, where):
        expected = self._modality_shapes[name]
        want = tuple(expected[1:])
        if _same_known_sizes(trailing, want):
            return
        got = ", ".join("?" if d is None else str(int(d)) for d in trailing)
        built = ", ".join("?" if d is None else str(int(d)) for d in want)
        raise ValueError(
            f"{where}: modality {name!r} has rows of shape ({got}); the model was built for rows of shape "
            f"({built}). Pass {name!r} with the width the model was built with, or build a new model for "
            "the new inputs."
        )

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
        keys = list(self.modalities) + self.objective.loss_keys(self)
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
        self._check_input_shape(candidate_modality, candidates, what=f"candidates (raw {candidate_modality!r} inputs)")
        object.__setattr__(self, "_pending_input_checks", None)
        return self.score_candidate_embeddings(
            queries, candidate_modality, self.embed(candidate_modality, candidates), query_masks=query_masks
        )

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
        return self.logit_scale.value() * self._similarity(
            q_emb, candidate_modality, cand, fused=fused, query_masks=query_masks
        )

    def _check_same_rows(self, values, what):
        """Query modalities must have one row count: a 1-row query is never broadcast."""
        rows = {n: _rows(v) for n, v in values.items()}
        static = {n: r for n, r in rows.items() if isinstance(r, int)}
        if len(set(static.values())) > 1:
            raise ValueError(
                f"{what}: the modalities have different numbers of rows {static}; row i of every "
                "query modality is one query tuple, so pass aligned rows."
            )
        dynamic = [r for r in rows.values() if r is not None and not isinstance(r, int)]
        if dynamic and len(rows) > 1:
            first = next(iter(rows.values()))
            for n, r in rows.items():
                self._input_checks.require(
                    tf.equal(tf.cast(r, tf.int32), tf.cast(first, tf.int32)),
                    f"{what}: modality {n!r} has a different number of rows; pass "
                    "aligned rows (row i of every query modality is one query).",
                )

    def _check_candidate_embeddings(self, candidate_embeddings, name="candidate_embeddings"):
        cand = require_float(candidate_embeddings, name, hint="embeddings from model.embed")
        if len(cand.shape) != 2 or (cand.shape[-1] is not None and int(cand.shape[-1]) != self.embedding_dim):
            raise ValueError(
                f"{name} must be (C, {self.embedding_dim}) embeddings from model.embed(), got shape "
                f"{tuple(cand.shape)}; pass raw candidates to model.score() instead."
            )
        if cand.shape[0] == 0:
            raise ValueError(f"{name} is empty: pass at least one candidate.")
        if not self.objective.normalize_embeddings:
            return cand  # e.g. the clip objective with normalize=False embeds without normalising
        return check_unit_norm([cand], [name])[0]

    def _check_modality(self, name, what="modality"):
        if name not in self.modalities:
            raise ValueError(f"Unknown {what} {name!r}; expected one of {self.modalities}.")

    def score_embeddings(
        self, query_embeddings, candidate_modality, candidate_embeddings, fused_embeddings=None, query_masks=None
    ):
        """Like :meth:`score` on precomputed embeddings (raw similarity, no logit scale).

        ConFu's (M-1)->1 scores need the fused query embeddings (``call``'s ``"a+b"`` outputs)
        in ``fused_embeddings``.
        """
        return self._similarity(
            query_embeddings, candidate_modality, candidate_embeddings, fused=fused_embeddings, query_masks=query_masks
        )

    def _similarity(self, queries, target, candidates, fused=None, query_masks=None):
        pending = PendingChecks()
        query_masks = self._checked_query_masks(queries, target, query_masks, pending)
        scores = self._raw_similarity(queries, target, candidates, fused, query_masks)
        return pending.attach([scores])[0]

    def _checked_query_masks(self, queries, target, query_masks, pending):
        """Validates ``query_masks``: a dict over query modalities of (B,) bool (or int 0/1) masks."""
        if query_masks is None:
            return None
        if not isinstance(query_masks, dict):
            raise TypeError(
                f"query_masks must be a dict query modality -> (B,) bool mask, got {type(query_masks).__name__}."
            )
        unknown = sorted(str(k) for k in query_masks if k not in self.modalities)
        if unknown:
            raise ValueError(f"query_masks has unknown modality(ies) {unknown}; expected among {self.modalities}.")
        if target in query_masks and query_masks[target] is not None:
            raise ValueError(
                f"query_masks[{target!r}]: the candidate modality has no query mask; "
                "mask candidates by leaving them out."
            )
        rows = next((_rows(v) for n, v in queries.items() if n != target), None)
        return {
            n: None if m is None else check_mask(m, f"query_masks[{n!r}]", rows, pending)
            for n, m in query_masks.items()
        }

    def _raw_similarity(self, queries, target, candidates, fused=None, query_masks=None):
        if not isinstance(queries, dict) or not queries:
            raise ValueError("queries must be a non-empty dict modality -> embeddings.")
        bad = sorted(str(k) for k in queries if k not in self.modalities)
        if bad:
            raise ValueError(f"Unknown query modality(ies) {bad}; expected among {self.modalities}.")
        names = [n for n in self.modalities if n in queries and n != target]
        if not names:
            raise ValueError(f"queries must hold at least one modality other than the candidate modality {target!r}.")
        return self.objective.similarity(
            self, {n: queries[n] for n in names}, target, candidates, fused=fused, query_masks=query_masks
        )

    # ------------------------------------------------------------------ serialisation
    def get_config(self):
        config = {
            "name": self.name,
            "encoders": {n: keras.saving.serialize_keras_object(e) for n, e in self.encoders.items()},
            "embedding_dim": self.embedding_dim,
            "objective": self._objective_config(),
            "projection_hidden_units": list(self.projection_hidden_units),
            "logit_scale_init": self.logit_scale_init,
            "learn_logit_scale": self.learn_logit_scale,
            "max_logit_scale": self.max_logit_scale,
            "passthrough_keys": list(self.passthrough_keys),
            "global_negatives": self.global_negatives,
            "in_batch_metrics": self.in_batch_metrics,
        }
        if isinstance(config["objective"], str):
            config.update(self.objective.get_config())
        return config

    def _objective_config(self):
        """The objective's name when the registry rebuilds it from its options (which the config
        then holds flat, as model keyword arguments); its serialised config otherwise."""
        name = self.objective.name
        registered = name in objectives_lib.names() and objectives_lib.get_class(name) is type(self.objective)
        clash = set(self.objective.get_config()) & set(_MODEL_ARGUMENTS)
        if registered and not clash:
            return name
        return keras.saving.serialize_keras_object(self.objective)

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


def _same_known_sizes(got, want) -> bool:
    """Same rank, and every size known on both sides equal (an unknown size matches any)."""
    return len(got) == len(want) and all(g is None or w is None or int(g) == int(w) for g, w in zip(got, want))


def _check_passthrough_keys(keys):
    if isinstance(keys, (str, bytes)):
        raise TypeError(
            f"passthrough_keys must be a list or tuple of key names, got the string {keys!r} "
            f"(it would be read letter by letter): pass ({keys!r},)."
        )
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"passthrough_keys must be a list or tuple of key names (str), got {keys!r}.")
    return tuple(keys)


def _build_once(layer, shape):
    if not layer.built:
        layer.build(shape)


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
