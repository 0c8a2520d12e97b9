"""ConFu fusion head: an MLP over the concatenated encoder features of several modalities.

ConFu (Koutoupis et al., 2025) contrasts the *fusion* of two modalities against the third. The
fused embedding is an MLP over the concatenation ``[h_i; h_j]`` of the two modalities'
**encoder features** (before their unimodal projections); the model L2-normalises its output.

Layer layout, following the authors' ``MLP`` (``src/modules/encoders/mlp.py`` in
github.com/estafons/confu) for ``num_layers`` Linear layers::

    [Dense(hidden_dim) -> activation -> Dropout] x (num_layers - 1)
    -> Dense(output_dim) -> LeakyReLU(0.2) -> Dropout

i.e. for the default ``num_layers=2``: Linear -> ReLU -> Dropout -> Linear -> LeakyReLU(0.2)
-> Dropout. The authors apply the LeakyReLU and the dropout to the output layer as well; we
keep that by default (``output_activation="leaky_relu"``, ``output_dropout=True``) and make
both switchable. The authors' constructor default ``hidden_dim=None`` is not usable
(``nn.Linear`` rejects it) and every one of their experiments passes 512, so
``hidden_dim=None`` here means 512.

Feature masking (``mask_ratio > 0``, training only). The authors' code keeps a feature where
``rand < mask_ratio``, so ``mask_ratio=0.1`` would *keep* only 10 % of the features and
``mask_ratio -> 0`` would drop almost all of them, the opposite of "masking a fraction
``mask_ratio``" that the parameter's name and the paper describe (and the default 0 bypasses
the code path, which is why it goes unnoticed). We treat it as a bug and follow the intent:
each feature of each input is zeroed independently with probability ``mask_ratio`` (kept
where ``rand >= mask_ratio``). As in the authors' code the kept features are not rescaled
(unlike dropout), and masking is off at inference. Each fusion head draws its own masks (the
authors share one masked copy of a modality between the two heads it feeds; the expected
effect is the same).
"""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.layers.sublayers import serialize_activation
from tf_mmcl.layers.validation import check_rank, validate_optional_units, validate_rate, validate_units

__all__ = ["FusionHead", "CONFU_DEFAULT_HIDDEN_DIM"]

#: Hidden width used when ``hidden_dim=None`` (the value of every ConFu experiment).
CONFU_DEFAULT_HIDDEN_DIM = 512


@keras.saving.register_keras_serializable(package="tf_mmcl")
class FusionHead(keras.layers.Layer):
    """ConFu fusion head: MLP over concatenated encoder features, with optional feature masking.

    See the module docstring for the exact layer layout and the masking convention.

    Args:
        output_dim: int. Width of the fused embedding (the shared ``embed_dim``).
        hidden_dim: int or ``None``. Hidden width; ``None`` means 512 (the authors' setting).
        num_layers: int >= 1. Number of Dense layers (1: a single Dense to ``output_dim``).
        dropout: float in ``[0, 1)``. Dropout after every layer (authors: 0.1).
        mask_ratio: float in ``[0, 1)``. Training-time probability of zeroing each input
            feature (0: no masking, the authors' default).
        activation: activation of the hidden layers (authors: ReLU).
        output_activation: ``"leaky_relu"`` (LeakyReLU with slope 0.2, as the authors), or any
            Keras activation identifier, or ``None`` for a linear output.
        output_dropout: bool. Whether dropout also follows the output layer (authors: yes).
        seed: int or ``None``. Seed of the masking random generator.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: list of >= 2 float tensors ``(N, D_m)`` (widths may differ): the encoder
            features of the modalities to fuse, in a fixed order.
        training: bool. Enables dropout and feature masking.

    Returns:
        Tensor ``(N, output_dim)``, not normalised.

    Example:
        >>> import numpy as np
        >>> head = FusionHead(output_dim=8, hidden_dim=16)
        >>> h_image, h_audio = np.ones((4, 6), "float32"), np.ones((4, 10), "float32")
        >>> head([h_image, h_audio]).shape
        TensorShape([4, 8])
    """

    def __init__(
        self,
        output_dim,
        hidden_dim=None,
        num_layers=2,
        dropout=0.1,
        mask_ratio=0.0,
        activation="relu",
        output_activation="leaky_relu",
        output_dropout=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_dim = validate_units(output_dim, "output_dim")
        self.hidden_dim = validate_optional_units(hidden_dim, "hidden_dim")
        self.num_layers = validate_units(num_layers, "num_layers")
        self.dropout = validate_rate(dropout)
        self.mask_ratio = validate_rate(mask_ratio, "mask_ratio")
        self.activation = serialize_activation(activation)
        self.output_activation = (
            "leaky_relu"
            if output_activation == "leaky_relu"
            else None
            if output_activation is None
            else serialize_activation(output_activation)
        )
        self.output_dropout = bool(output_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        self.seed = seed

        # === Layers ===
        policy = self.dtype_policy
        width = self.hidden_dim if self.hidden_dim is not None else CONFU_DEFAULT_HIDDEN_DIM
        self.hidden_layers = []
        for i in range(self.num_layers - 1):
            self.hidden_layers.append(keras.layers.Dense(width, dtype=policy, name=f"dense_{i}"))
            self.hidden_layers.append(keras.layers.Activation(activation, dtype=policy, name=f"activation_{i}"))
            self.hidden_layers.append(keras.layers.Dropout(self.dropout, dtype=policy, name=f"dropout_{i}"))
        self.output_dense = keras.layers.Dense(self.output_dim, dtype=policy, name="output_dense")
        if self.output_activation == "leaky_relu":
            self.output_act = keras.layers.LeakyReLU(negative_slope=0.2, dtype=policy, name="output_activation")
        elif self.output_activation is None:
            self.output_act = None
        else:
            self.output_act = keras.layers.Activation(output_activation, dtype=policy, name="output_activation")
        self.output_dropout_layer = None
        if self.output_dropout:
            self.output_dropout_layer = keras.layers.Dropout(self.dropout, dtype=policy, name="output_dropout")
        self.seed_generator = keras.random.SeedGenerator(seed, name="mask_seed_generator")

    @property
    def effective_hidden_dim(self):
        """Hidden width actually used (``hidden_dim`` or 512)."""
        return self.hidden_dim if self.hidden_dim is not None else CONFU_DEFAULT_HIDDEN_DIM

    def _check_inputs(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or not input_shape
            or not all(isinstance(s, (list, tuple)) or s is None for s in input_shape)
        ):
            raise ValueError(
                f"Layer '{self.name}' (FusionHead) expects a list of >= 2 feature tensors "
                f"[h_i, h_j, ...]; received a single input of shape {input_shape}."
            )
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2:
            raise ValueError(
                f"Layer '{self.name}' (FusionHead) fuses >= 2 modalities; received {len(shapes)} input(s)."
            )
        for k, shape in enumerate(shapes):
            check_rank(self, shape, f"features (N, D) for input {k}", rank=2)
            if shape[-1] is None:
                raise ValueError(f"Layer '{self.name}': input {k} needs a known width; got shape {shape}.")
        batch = {s[0] for s in shapes if s[0] is not None}
        if len(batch) > 1:
            raise ValueError(
                f"Layer '{self.name}': all inputs must have the same batch size; received shapes {shapes}."
            )
        return shapes

    def build(self, input_shape):
        shapes = self._check_inputs(input_shape)
        shape = (shapes[0][0], sum(s[-1] for s in shapes))
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        self.output_dense.build(shape)
        shape = (shape[0], self.output_dim)
        if self.output_act is not None:
            self.output_act.build(shape)
        if self.output_dropout_layer is not None:
            self.output_dropout_layer.build(shape)
        self.built = True

    def mask_features(self, features):
        """Zeroes each feature independently with probability ``mask_ratio`` (no rescaling)."""
        noise = keras.random.uniform(ops.shape(features), dtype="float32", seed=self.seed_generator)
        keep = ops.cast(ops.greater_equal(noise, self.mask_ratio), features.dtype)
        return features * keep

    def call(self, inputs, training=None):
        inputs = list(inputs)
        if training and self.mask_ratio > 0.0:
            inputs = [self.mask_features(h) for h in inputs]
        x = ops.concatenate(inputs, axis=-1)
        for layer in self.hidden_layers:
            x = layer(x, training=training)
        x = self.output_dense(x)
        if self.output_act is not None:
            x = self.output_act(x)
        if self.output_dropout_layer is not None:
            x = self.output_dropout_layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shapes = self._check_inputs(input_shape)
        return (shapes[0][0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
                "mask_ratio": self.mask_ratio,
                "activation": self.activation,
                "output_activation": self.output_activation,
                "output_dropout": self.output_dropout,
                "seed": self.seed,
            }
        )
        return config
