"""``MLPEncoder``: a multi-layer perceptron over feature vectors ``(N, F)``."""

from __future__ import annotations

import keras

from tf_mmcl.layers.sublayers import build_in_sequence, serialize_activation
from tf_mmcl.layers.validation import check_rank, validate_optional_units, validate_rate, validate_tuple

__all__ = ["MLPEncoder"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
class MLPEncoder(keras.layers.Layer):
    """Multi-layer perceptron encoder for feature vectors ``(N, F)``.

    Each hidden layer is ``Dense -> [LayerNormalization] -> activation -> [Dropout]``. If
    ``output_dim`` is given, a final linear ``Dense(output_dim)`` follows; otherwise the last
    hidden layer's (activated) output is the feature. ``hidden_units=()`` with ``output_dim``
    gives a purely linear encoder (the Symile XOR experiments use one linear layer per
    modality).

    Args:
        hidden_units: tuple of ints. Widths of the hidden layers.
        output_dim: int or ``None``. Width of a final linear layer; ``None`` uses the last
            hidden width as the feature width.
        activation: activation of the hidden layers.
        dropout: float in ``[0, 1)``. Dropout after each hidden activation.
        use_layer_norm: bool. Layer-normalise each hidden layer before its activation.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(N, F)``.
        training: bool, whether dropout is active.

    Returns:
        Tensor ``(N, D)`` with ``D = output_dim or hidden_units[-1]``.

    Example:
        >>> import numpy as np
        >>> encoder = MLPEncoder(hidden_units=(32,), output_dim=16)
        >>> encoder(np.zeros((4, 10), "float32")).shape
        TensorShape([4, 16])
        >>> MLPEncoder(hidden_units=(), output_dim=8)(np.zeros((4, 10), "float32")).shape
        TensorShape([4, 8])
    """

    def __init__(
        self, hidden_units=(64,), output_dim=None, activation="relu", dropout=0.0, use_layer_norm=False, **kwargs
    ):
        super().__init__(**kwargs)
        self.hidden_units = validate_tuple(hidden_units, "hidden_units")
        self.output_dim = validate_optional_units(output_dim, "output_dim")
        if not self.hidden_units and self.output_dim is None:
            raise ValueError(
                "MLPEncoder needs at least one layer: give `hidden_units` or `output_dim` "
                "(hidden_units=() with output_dim=D is a linear encoder)."
            )
        self.activation = serialize_activation(activation)
        self.dropout = validate_rate(dropout)
        self.use_layer_norm = bool(use_layer_norm)

        # === Layers ===
        self.hidden_layers = []
        for i, units in enumerate(self.hidden_units):
            self.hidden_layers.append(keras.layers.Dense(units, dtype=self.dtype_policy, name=f"dense_{i}"))
            if self.use_layer_norm:
                self.hidden_layers.append(
                    keras.layers.LayerNormalization(dtype=self.dtype_policy, name=f"layer_norm_{i}")
                )
            self.hidden_layers.append(
                keras.layers.Activation(activation, dtype=self.dtype_policy, name=f"activation_{i}")
            )
            if self.dropout > 0:
                self.hidden_layers.append(
                    keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"dropout_{i}")
                )
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(self.output_dim, dtype=self.dtype_policy, name="output_dense")

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.output_dim if self.output_dim is not None else self.hidden_units[-1]

    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, "feature vectors (N, F)", rank=2)
        if input_shape[-1] is None:
            raise ValueError(f"Layer '{self.name}' needs a known feature width F; got shape {input_shape}.")
        shape = build_in_sequence(self.hidden_layers, input_shape)
        if self.output_dense is not None:
            self.output_dense.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.hidden_layers:
            x = layer(x, training=training)
        if self.output_dense is not None:
            x = self.output_dense(x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "output_dim": self.output_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "use_layer_norm": self.use_layer_norm,
            }
        )
        return config
