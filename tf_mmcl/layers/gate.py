"""Contrastive gating for unreliable modalities (Gated Symile; Rheude et al., 2026).

For every target modality t and every other modality m the gate produces a weight
``w[t, m]`` in [0, 1] (``w[t, t] = 1``) and pulls the embedding of m toward a neutral direction
by ``1 - w[t, m]``:

    G_m = w[t, m] * E_m + (1 - w[t, m]) * n_m          (neutral interpolation)
    G_m <- (1 - alpha) * E_m + alpha * G_m              (gate strength alpha = sigmoid(logit))
    G_m <- G_m / ||G_m||                                (``renormalize``, only with a neutral)

so a modality the gate distrusts contributes a fixed, uninformative factor to the Symile
product instead of a corrupted one. Weights come either from a learned global M x M table
(``mode="matrix"``) or from attention between the target and the other modalities
(``mode="attention"``, the paper's gate): ``score[t, m] = <q_t(E_t), k_m(E_m)> / T`` with
L2-normalised linear projections, a NULL score ``(MLP(LayerNorm(E_t)) + null_logit[t]) / T``, and a
softmax over the other modalities plus NULL whose NULL part is dropped (the kept weights sum to
``1 - p_null``). ``gate_type="sigmoid"`` uses independent sigmoids times ``1 - sigmoid(NULL)``.

Because the query comes from the *target* embedding, scoring candidate c of target t gates the
tuple (candidate c, the query row's other modalities): the weights differ for every candidate
(:meth:`ContrastiveGate.gated_scores`). That per-candidate score is computed by
:mod:`tf_mmcl.ops.gated` (the layer holds the weights and calls it) without the
(B, C, D) tensor of gated tuples: each gated vector is ``a * E_m + b * n_m`` with (B, C)
coefficients ``a = 1 - alpha + alpha * w`` and ``b = alpha * (1 - w)``, so the MIP with a candidate
expands into 2^(M-1) matrix products of fixed (B, D) row products with the candidates, and the
renormalisation divides by ``||a E + b n||`` from ``|E|^2``, ``<E, n>`` and ``|n|^2``. Cost
O(2^(M-1) B C D + M B C d_k), memory O(2^(M-1) B C).

Missing modalities (masks False) are replaced by the modality's neutral direction and excluded
from the softmax (weight exactly 0), so their gated embedding is exactly the neutral direction,
whatever alpha. With ``neutral=None`` there is no neutral direction; a missing modality is then
replaced by the constant unit vector ``1 / sqrt(D)`` (a zero vector would zero the whole product).

All gate math (scores, softmax, interpolation, norms) runs in float32, also under mixed precision;
only the linear projections run in the layer's compute dtype.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tf_mmcl.ops import gated as gated_ops

__all__ = ["ContrastiveGate", "GATE_MODES", "GATE_TYPES", "NEUTRAL_TYPES"]

GATE_MODES = ("attention", "matrix")
GATE_TYPES = gated_ops.GATE_TYPES
NEUTRAL_TYPES = ("random_trainable", "random_frozen", "ones", None)

# Added to the temperature, as the authors: T = softplus(log_temperature) + 0.1.
_TEMPERATURE_FLOOR = 0.1


def _f32(x):
    x = ops.convert_to_tensor(x)
    return x if x.dtype == "float32" else ops.cast(x, "float32")


def _seed(seed, offset):
    return None if seed is None else int(seed) + offset


@keras.saving.register_keras_serializable(package="tf_mmcl")
class ContrastiveGate(keras.layers.Layer):
    """Per-target modality gate with NULL option and neutral interpolation (Gated Symile).

    Args:
        modalities: the M >= 3 modality names, in the order of the weight columns. (With two
            modalities a softmax over the single other modality is constant; gating is defined
            here for multimodal tuples beyond pairs.)
        mode: ``"attention"`` (per-sample, per-candidate weights from query/key projections; the
            paper's gate) or ``"matrix"`` (a learned global M x M logit table, the baseline).
        gate_type: ``"softmax"`` (over the other modalities plus NULL; NULL mass dropped) or
            ``"sigmoid"`` (independent weights, times ``1 - p_null``).
        use_null: add the NULL option (a learned logit per target; in attention mode plus an MLP
            on the target embedding).
        neutral: ``"random_trainable"`` (random unit vectors, trained, re-normalised when used),
            ``"random_frozen"``, ``"ones"`` (``1/sqrt(D)``, frozen) or ``None`` (no neutral: the
            gate only scales, ``G = w * E``, and no renormalisation is done, as the authors).
        key_dim: width d_k of the query/key projections and of the NULL MLP's hidden layer.
        strength_logit_init: initial gate-strength logit; ``alpha = sigmoid(logit)``, -6 gives
            alpha ~= 0.0025 (training starts almost ungated).
        renormalize: L2-normalise the gated embeddings (only when a neutral direction is used).
        temperature_init: initial value of ``exp(log_temperature)``; the temperature is
            ``softplus(log_temperature) + 0.1`` (so 1.0 gives T ~= 0.793 at init, as the
            authors). Divides the attention scores and the NULL logit (in matrix mode only the
            NULL logit, as the authors).
        epsilon: floor of every norm (as ``max(||x||, epsilon)``), so zero vectors give finite
            values and gradients.
        seed: int seed for the initialisers (projections, neutral directions, matrix logits).
        **kwargs: standard layer arguments (``name``, ``dtype``, ``trainable``).

    Call arguments:
        embeddings: dict name -> (N, D) L2-normalised embeddings, one entry per modality.
        masks: optional dict name -> (N,) bool (True = present); absent names are present.

    Returns (``call``): dict target -> (N, M) float32 weights, columns in ``modalities`` order.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> emb = {}
        >>> for m in ["a", "b", "c"]:
        ...     x = rng.normal(size=(4, 8)).astype("float32")
        ...     emb[m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        >>> gate = ContrastiveGate(["a", "b", "c"], key_dim=16, seed=1)
        >>> w = gate(emb)
        >>> tuple(w["a"].shape), float(w["a"][0, 0])
        ((4, 3), 1.0)
        >>> gate.gated_scores("a", {"b": emb["b"], "c": emb["c"]}, emb["a"]).shape
        TensorShape([4, 4])
    """

    def __init__(
        self,
        modalities,
        mode="attention",
        gate_type="softmax",
        use_null=True,
        neutral="random_trainable",
        key_dim=256,
        strength_logit_init=-6.0,
        renormalize=True,
        temperature_init=1.0,
        epsilon=1e-6,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(modalities, str) or not isinstance(modalities, (list, tuple)):
            raise ValueError(f"modalities must be a list of modality names, got {modalities!r}.")
        modalities = [str(m) for m in modalities]
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities contains duplicates: {modalities}.")
        if len(modalities) < 3:
            raise ValueError(
                f"ContrastiveGate needs at least 3 modalities (it weighs the other modalities of a "
                f"tuple against each other), got {len(modalities)}: {modalities}."
            )
        if mode not in GATE_MODES:
            raise ValueError(f"Unknown gate mode {mode!r}; expected one of {GATE_MODES}.")
        if gate_type not in GATE_TYPES:
            raise ValueError(f"Unknown gate_type {gate_type!r}; expected one of {GATE_TYPES}.")
        if isinstance(neutral, str) and neutral.lower() == "none":
            neutral = None
        if neutral not in NEUTRAL_TYPES:
            raise ValueError(f"Unknown neutral {neutral!r}; expected one of {NEUTRAL_TYPES}.")
        if isinstance(key_dim, bool) or not isinstance(key_dim, int) or key_dim < 1:
            raise ValueError(f"key_dim must be a positive integer, got {key_dim!r}.")
        for arg, value in (
            ("strength_logit_init", strength_logit_init),
            ("temperature_init", temperature_init),
            ("epsilon", epsilon),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{arg} must be a finite number, got {value!r}.")
        if temperature_init <= 0:
            raise ValueError(f"temperature_init must be > 0, got {temperature_init!r}.")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}.")

        self.modalities = modalities
        self.mode = mode
        self.gate_type = gate_type
        self.use_null = bool(use_null)
        self.neutral = neutral
        self.key_dim = int(key_dim)
        self.strength_logit_init = float(strength_logit_init)
        self.renormalize = bool(renormalize)
        self.temperature_init = float(temperature_init)
        self.epsilon = float(epsilon)
        self.seed = seed
        self.embedding_dim = None

        m = len(modalities)
        self.query_projections = []
        self.key_projections = []
        self.null_norm = self.null_hidden = self.null_output = None
        if mode == "attention":
            for i in range(m):
                self.query_projections.append(
                    keras.layers.Dense(
                        self.key_dim,
                        use_bias=False,
                        dtype=self.dtype_policy,
                        name=f"query_projection_{i}",
                        kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 10 + i)),
                    )
                )
                self.key_projections.append(
                    keras.layers.Dense(
                        self.key_dim,
                        use_bias=False,
                        dtype=self.dtype_policy,
                        name=f"key_projection_{i}",
                        kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 100 + i)),
                    )
                )
            if self.use_null:
                self.null_norm = keras.layers.LayerNormalization(
                    epsilon=1e-5, dtype=self.dtype_policy, name="null_norm"
                )
                self.null_hidden = keras.layers.Dense(
                    self.key_dim,
                    activation="relu",
                    dtype=self.dtype_policy,
                    name="null_hidden",
                    kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 1)),
                )
                self.null_output = keras.layers.Dense(
                    1,
                    dtype=self.dtype_policy,
                    name="null_output",
                    kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, 2)),
                )

    # ------------------------------------------------------------------ build / config
    def build(self, input_shape):
        if not isinstance(input_shape, dict):
            raise ValueError(
                f"ContrastiveGate expects a dict of embeddings keyed by modality, got shape {input_shape!r}."
            )
        self._check_names(input_shape.keys(), "embeddings")
        widths = []
        for name in self.modalities:
            shape = tuple(input_shape[name])
            if len(shape) != 2:
                raise ValueError(f"embeddings[{name!r}] must have rank 2 (N, D); got shape {shape}.")
            widths.append(shape[1])
        known = {w for w in widths if w is not None}
        if not known:
            raise ValueError("ContrastiveGate needs a static embedding width D.")
        if len(known) > 1:
            raise ValueError(f"embeddings: widths differ across modalities: {dict(zip(self.modalities, widths))}.")
        d = int(known.pop())
        self.embedding_dim = d
        m = len(self.modalities)
        for layer in self.query_projections + self.key_projections:
            layer.build((None, d))
        if self.null_norm is not None:
            self.null_norm.build((None, d))
            self.null_hidden.build((None, d))
            self.null_output.build((None, self.key_dim))

        self.log_temperature = self.add_weight(
            shape=(),
            name="log_temperature",
            dtype=self.variable_dtype,
            initializer=keras.initializers.Constant(math.log(self.temperature_init)),
        )
        self.strength_logit = self.add_weight(
            shape=(),
            name="strength_logit",
            dtype=self.variable_dtype,
            initializer=keras.initializers.Constant(self.strength_logit_init),
        )
        self.null_logit = None
        if self.use_null:
            self.null_logit = self.add_weight(
                shape=(m,), name="null_logit", dtype=self.variable_dtype, initializer="zeros"
            )
        self.gate_logits = None
        if self.mode == "matrix":
            # Softmax: tiny noise breaks the symmetry (uniform weights); sigmoid: logit 0 (w = 0.5).
            init = (
                keras.initializers.RandomNormal(stddev=0.01, seed=_seed(self.seed, 3))
                if self.gate_type == "softmax"
                else "zeros"
            )
            self.gate_logits = self.add_weight(
                shape=(m, m), name="gate_logits", dtype=self.variable_dtype, initializer=init
            )
        self.neutral_directions = None
        if self.neutral == "ones":
            self.neutral_directions = self.add_weight(
                shape=(m, d),
                name="neutral_directions",
                dtype=self.variable_dtype,
                trainable=False,
                initializer=keras.initializers.Constant(1.0 / math.sqrt(d)),
            )
        elif self.neutral is not None:
            seed = _seed(self.seed, 4)

            def unit_rows(shape, dtype=None):
                x = keras.random.normal(shape, seed=seed, dtype="float32")
                x = x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), 1e-12))
                return ops.cast(x, dtype or "float32")

            self.neutral_directions = self.add_weight(
                shape=(m, d),
                name="neutral_directions",
                dtype=self.variable_dtype,
                trainable=self.neutral == "random_trainable",
                initializer=unit_rows,
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "modalities": list(self.modalities),
                "mode": self.mode,
                "gate_type": self.gate_type,
                "use_null": self.use_null,
                "neutral": self.neutral,
                "key_dim": self.key_dim,
                "strength_logit_init": self.strength_logit_init,
                "renormalize": self.renormalize,
                "temperature_init": self.temperature_init,
                "epsilon": self.epsilon,
                "seed": self.seed,
            }
        )
        return config

    # ------------------------------------------------------------------ small pieces
    def _check_names(self, names, what):
        names = list(names)
        unknown = sorted(str(n) for n in names if n not in self.modalities)
        if unknown:
            raise ValueError(f"{what}: unknown modality name(s) {unknown}; this gate has {self.modalities}.")
        missing = [m for m in self.modalities if m not in names]
        if missing and what == "embeddings":
            raise ValueError(f"embeddings: missing modality(ies) {missing}; the gate needs all of {self.modalities}.")

    def _target_index(self, target):
        if target not in self.modalities:
            raise ValueError(f"Unknown target modality {target!r}; this gate has {self.modalities}.")
        return self.modalities.index(target)

    def _ensure_built(self, shapes):
        if not self.built:
            self._build_shapes_dict = {"input_shape": shapes}
            self.build(shapes)

    def temperature(self):
        """The current attention temperature ``softplus(log_temperature) + 0.1`` (float32)."""
        return ops.softplus(_f32(self.log_temperature)) + _TEMPERATURE_FLOOR

    def strength(self):
        """The current gate strength ``alpha = sigmoid(strength_logit)`` (float32)."""
        return ops.sigmoid(_f32(self.strength_logit))

    def _normalize(self, x):
        sq = ops.sum(x * x, axis=-1, keepdims=True)
        return x * ops.rsqrt(ops.maximum(sq, self.epsilon**2))

    def _neutral_vectors(self):
        """(M, D) float32 unit neutral directions, or None."""
        if self.neutral_directions is None:
            return None
        return self._normalize(_f32(self.neutral_directions))

    def _fill_vector(self, index, neutral):
        """What a missing embedding of modality ``index`` is replaced with: (D,) float32."""
        if neutral is not None:
            return neutral[index]
        d = self.embedding_dim
        return ops.ones((d,), "float32") / math.sqrt(d)

    def _query(self, index, x):
        return self._normalize(_f32(self.query_projections[index](x)))

    def _key(self, index, x):
        return self._normalize(_f32(self.key_projections[index](x)))

    def _null_head(self, x):
        h = self.null_output(self.null_hidden(self.null_norm(x)))
        return _f32(h)[..., 0]

    # ------------------------------------------------------------------ input handling
    def fill_missing(self, embeddings, masks=None, what="embeddings", required=None):
        """Validates a dict of embeddings (+ masks) and fills the missing rows.

        Args:
            embeddings: dict name -> (N, D) embeddings; by default every gate modality.
            masks: optional dict name -> (N,) bool (or 0/1), True = present.
            what: the argument's name in error messages.
            required: the modality names ``embeddings`` must hold (default: all).

        Returns:
            ``(filled, presence)``: dict name -> (N, D) float32 embeddings whose missing rows are
            replaced by the modality's fill vector (its neutral direction, or ``1/sqrt(D)``
            without one), and dict name -> None (all present) or (N,) float32 0/1 presence.

        Example:
            >>> import numpy as np
            >>> gate = ContrastiveGate(["a", "b", "c"], key_dim=4, neutral="ones")
            >>> emb = {m: np.eye(2, 4, dtype="float32") for m in "abc"}
            >>> filled, presence = gate.fill_missing(emb, {"b": np.array([True, False])})
            >>> np.asarray(filled["b"]).tolist(), presence["a"] is None
            ([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]], True)
        """
        if not isinstance(embeddings, dict):
            raise ValueError(
                f"{what} must be a dict of (N, D) embeddings keyed by modality, got {type(embeddings).__name__}."
            )
        unknown = sorted(str(n) for n in embeddings if n not in self.modalities)
        if unknown:
            raise ValueError(f"{what}: unknown modality name(s) {unknown}; this gate has {self.modalities}.")
        required = self.modalities if required is None else required
        missing = [m for m in required if m not in embeddings]
        if missing:
            raise ValueError(f"{what}: missing modality(ies) {missing}; expected {list(required)}.")
        extra = sorted(str(n) for n in embeddings if n not in required)
        if extra:
            raise ValueError(f"{what}: unexpected modality(ies) {extra}; expected exactly {list(required)}.")
        tensors = {}
        for name in required:
            x = _f32(embeddings[name])
            if len(x.shape) != 2:
                raise ValueError(f"{what}[{name!r}] must have rank 2 (N, D); got shape {tuple(x.shape)}.")
            tensors[name] = x
        self._ensure_built(
            {name: tuple(tensors[name].shape) for name in required}
            if required == self.modalities
            else {name: tuple(tensors[required[0]].shape) for name in self.modalities}
        )
        for name, x in tensors.items():
            if x.shape[1] is not None and int(x.shape[1]) != self.embedding_dim:
                raise ValueError(
                    f"{what}[{name!r}] has width {int(x.shape[1])}; the gate was built for D = {self.embedding_dim}."
                )
        sizes = {name: x.shape[0] for name, x in tensors.items() if x.shape[0] is not None}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"{what}: batch sizes differ across modalities: {sizes}.")

        presence = {name: None for name in required}
        if masks is not None:
            if not isinstance(masks, dict):
                raise ValueError(f"masks must be a dict name -> (N,) bool, got {type(masks).__name__}.")
            unknown = sorted(str(n) for n in masks if n not in self.modalities)
            if unknown:
                raise ValueError(f"masks: unknown modality name(s) {unknown}; this gate has {self.modalities}.")
            neutral = self._neutral_vectors()
            for name, mask in masks.items():
                if mask is None or name not in required:  # e.g. the target's mask in gated_scores
                    continue
                from tf_mmcl.ops.checks import PendingChecks, check_mask

                pending = PendingChecks()
                n = tensors[name].shape[0]
                n = int(n) if n is not None else ops.shape(tensors[name])[0]
                mask = check_mask(mask, f"masks[{name!r}]", n, pending)  # bool or int 0/1, one per row
                tensors[name] = pending.attach([tensors[name]])[0]
                present = ops.cast(mask, "float32")
                fill = self._fill_vector(self.modalities.index(name), neutral)
                p = present[:, None]
                tensors[name] = p * tensors[name] + (1.0 - p) * fill[None, :]
                presence[name] = present
        return tensors, presence

    # ------------------------------------------------------------------ weights
    def _presence_matrix(self, presence):
        """(N, K) float32 0/1 presence of a list of K entries (None = all present), or None."""
        if all(p is None for p in presence):
            return None
        like = next(p for p in presence if p is not None)
        return ops.stack([ops.ones_like(like) if p is None else p for p in presence], axis=-1)

    def _row_weights(self, t, tensors, presence):
        """Row-wise (each row's own tuple) weights for target index t: dict over other modalities."""
        names = self.modalities
        others = [i for i in range(len(names)) if i != t]
        null_raw = None
        if self.mode == "attention":
            temp = self.temperature()
            q = self._query(t, tensors[names[t]])
            keys = ops.stack([self._key(m, tensors[names[m]]) for m in others], axis=1)  # (N, K, d_k)
            logits = ops.sum(q[:, None, :] * keys, axis=-1) / temp
            if self.use_null:
                null_raw = (self._null_head(tensors[names[t]]) + _f32(self.null_logit)[t]) / temp
        else:
            base = ops.zeros_like(tensors[names[t]][:, :1])
            logits = base + ops.take(_f32(self.gate_logits)[t], others)[None, :]
            if self.use_null:
                null_raw = base[:, 0] + _f32(self.null_logit)[t] / self.temperature()
        weights, p_null = gated_ops.gate_weights(
            logits, null_raw, self._presence_matrix([presence[names[m]] for m in others]), self.gate_type
        )
        return {names[m]: weights[:, i] for i, m in enumerate(others)}, p_null

    def gate_weights(self, embeddings, masks=None, return_null=False):
        """Gate weights of every row's own tuple, per target.

        Args:
            embeddings: dict name -> (N, D) embeddings (all modalities).
            masks: optional dict name -> (N,) bool, True = present. A missing modality gets
                weight 0 (it is replaced by its neutral direction).
            return_null: also return the NULL probability per target.

        Returns:
            dict target -> (N, M) float32 weights ``w[t, m]`` in ``modalities`` order with
            ``w[t, t] = 1``; with ``return_null`` a pair (weights, dict target -> (N,) p_null).
            In softmax mode the off-target weights of a row sum to ``1 - p_null``.
        """
        tensors, presence = self.fill_missing(embeddings, masks)
        out, nulls = {}, {}
        for t, target in enumerate(self.modalities):
            w, p_null = self._row_weights(t, tensors, presence)
            ones = ops.ones_like(p_null)
            out[target] = ops.stack([ones if m == target else w[m] for m in self.modalities], axis=-1)
            nulls[target] = p_null
        if return_null:
            return out, nulls
        return out

    def call(self, embeddings, masks=None):
        return self.gate_weights(embeddings, masks=masks)

    def compute_output_spec(self, embeddings, masks=None):
        n = embeddings[self.modalities[0]].shape[0]
        spec = keras.KerasTensor((n, len(self.modalities)), dtype="float32")
        return {m: spec for m in self.modalities}

    # ------------------------------------------------------------------ gated embeddings
    def gate_tuple(self, target, embeddings, masks=None):
        """Gated embeddings of each row's own tuple for one target (candidate-independent).

        Args:
            target: the target (anchor) modality name.
            embeddings: dict name -> (N, D) (all modalities).
            masks: optional dict name -> (N,) bool; a missing modality is replaced by its
                neutral direction with weight 0, so its gated embedding is the neutral direction.

        Returns:
            dict m -> (N, D) float32 gated embedding for every m != target.
        """
        t = self._target_index(target)
        tensors, presence = self.fill_missing(embeddings, masks)
        weights, _ = self._row_weights(t, tensors, presence)
        alpha = self.strength()
        neutral = self._neutral_vectors()
        out = {}
        for m, w in weights.items():
            n = None if neutral is None else neutral[self.modalities.index(m)]
            out[m] = gated_ops.interpolate(tensors[m], w, alpha, n, self.renormalize, self.epsilon)
        return out

    # ------------------------------------------------------------------ per-candidate scores
    def gated_scores(self, target, queries, candidates, query_masks=None, return_weights=False, candidate_indices=None):
        """Per-candidate gated MIP scores: ``MIP(c, gated others of row b given candidate c)``.

        For every query row b and candidate c of the target modality, the gate runs on the tuple
        (c, the other modalities of row b), and the score is ``<c, prod_m G_m(b, c)>``. Raw scores:
        no logit scale and no variance scaling. The math is :mod:`tf_mmcl.ops.gated`.

        Args:
            target: the target modality name (the candidates' modality).
            queries: dict of every non-target modality -> (B, D).
            candidates: (C, D) candidates shared by all rows, or (B, K, D) per-row candidates.
            query_masks: optional dict m -> (B,) bool for the query modalities (True = present);
                a missing one is replaced by its neutral direction with weight 0. An entry for
                the target modality is ignored (the candidates are taken as present).
            return_weights: also return the per-candidate weights.
            candidate_indices: optional (B, K) int indices into (C, D) ``candidates``: row b is
                scored against ``candidates[candidate_indices[b]]`` only. Same scores as passing
                the gathered (B, K, D) candidates, but the candidates' projections are computed
                once per pool row instead of once per (row, candidate) pair.

        Returns:
            (B, C) (or (B, K)) float32 scores; with ``return_weights`` also the weights
            (B, C, M) (or (B, K, M)) in ``modalities`` order, 1 in the target column.
        """
        t = self._target_index(target)
        names = self.modalities
        others = [names[i] for i in range(len(names)) if i != t]
        if isinstance(queries, dict) and target in queries:
            raise ValueError(f"queries must hold only the non-target modalities {others}; got the target {target!r}.")
        tensors, presence = self.fill_missing(queries, query_masks, what="queries", required=others)
        cands = _f32(candidates)
        if len(cands.shape) not in (2, 3):
            raise ValueError(f"candidates must be (C, D) or (B, K, D); got shape {tuple(cands.shape)}.")
        if cands.shape[-1] is not None and int(cands.shape[-1]) != self.embedding_dim:
            raise ValueError(
                f"candidates have width {int(cands.shape[-1])}; the gate was built for D = {self.embedding_dim}."
            )
        b = tensors[others[0]].shape[0]
        if len(cands.shape) == 3 and cands.shape[0] is not None and b is not None and int(cands.shape[0]) != int(b):
            raise ValueError(f"per-row candidates have {int(cands.shape[0])} rows, queries have {int(b)}.")
        if candidate_indices is not None:
            candidate_indices = ops.convert_to_tensor(candidate_indices)
            if "int" not in str(candidate_indices.dtype):
                raise ValueError(f"candidate_indices must be integers, got dtype {candidate_indices.dtype}.")
            if len(candidate_indices.shape) != 2:
                raise ValueError(f"candidate_indices must be (B, K), got shape {tuple(candidate_indices.shape)}.")
            if len(cands.shape) != 2:
                raise ValueError(
                    "candidate_indices index a (C, D) candidate pool; got per-row candidates "
                    f"of shape {tuple(cands.shape)}."
                )
            rows_i = candidate_indices.shape[0]
            if rows_i is not None and b is not None and int(rows_i) != int(b):
                raise ValueError(f"candidate_indices have {int(rows_i)} rows, queries have {int(b)}.")
            candidate_indices = ops.cast(candidate_indices, "int32")
        return self._candidate_scores(t, tensors, presence, cands, return_weights, candidate_indices)

    def _candidate_scores(self, t, tensors, presence, cands, return_weights=False, candidate_indices=None):
        # Everything per (row, candidate) is laid out (B, K, C): modalities before candidates, the
        # layout of the keys-queries matrix product, so no transpose is needed.
        names = self.modalities
        others = [i for i in range(len(names)) if i != t]
        per_row = len(cands.shape) == 3
        rows = ops.stack([tensors[names[m]] for m in others], axis=1)  # (B, K, D)
        null_raw = None
        if self.mode == "attention":
            temp = self.temperature()
            keys = ops.stack([self._key(m, tensors[names[m]]) for m in others], axis=1)  # (B, K, d_k)
            logits = gated_ops.candidate_attention_logits(
                keys, self._query(t, cands), temp, candidate_indices, modality_axis=1
            )
            if self.use_null:
                null_c = (self._null_head(cands) + _f32(self.null_logit)[t]) / temp  # (C,) or (B, K)
                null_raw = null_c if candidate_indices is None else ops.take(null_c, candidate_indices, axis=0)
        else:
            if candidate_indices is not None:
                base = ops.zeros_like(ops.cast(candidate_indices, "float32"))
            elif per_row:
                base = ops.zeros_like(cands[..., 0])
            else:
                base = ops.zeros_like(rows[:, 0, :1]) + ops.zeros_like(cands[:, 0])[None, :]
            logits = base[:, None, :] + ops.take(_f32(self.gate_logits)[t], others)[None, :, None]
            if self.use_null:
                null_raw = base + _f32(self.null_logit)[t] / self.temperature()
        present = self._presence_matrix([presence[names[m]] for m in others])
        weights, _ = gated_ops.gate_weights(
            logits, null_raw, None if present is None else present[:, :, None], self.gate_type, axis=1
        )  # (B, K, C)
        neutral = self._neutral_vectors()
        if neutral is not None:
            neutral = ops.take(neutral, others, axis=0)
        scores = gated_ops.gated_candidate_scores(
            rows,
            weights,
            cands,
            self.strength(),
            neutral,
            self.renormalize,
            self.epsilon,
            candidate_indices,
            modality_axis=1,
        )
        if not return_weights:
            return scores
        per_modality = ops.unstack(weights, num=len(others), axis=1)
        ones = ops.ones_like(scores)
        cols = [ones if i == t else per_modality[others.index(i)] for i in range(len(names))]
        return scores, ops.stack(cols, axis=-1)
