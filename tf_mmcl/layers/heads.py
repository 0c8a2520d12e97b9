"""Heads between encoders and objectives: projection, L2 normalisation, learnable logit scale.

The data flow is ``encoder features -> ProjectionHead -> L2Normalize -> objective``, with a
``LogitScale`` supplying the multiplier of the similarity scores. ``L2Normalize`` and
``LogitScale`` always return float32, so the similarity matmul and the softmax of the objective
run in float32 even under a mixed-precision policy.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tf_mmcl.layers.sublayers import build_in_sequence, serialize_activation
from tf_mmcl.layers.validation import check_rank, validate_rate, validate_tuple, validate_units

__all__ = ["ProjectionHead", "L2Normalize", "LogitScale"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
class ProjectionHead(keras.layers.Layer):
    """Maps encoder features to the shared embedding width.

    With the default ``hidden_units=()`` the head is one linear ``Dense`` layer (CLIP, Symile,
    ConFu's unimodal projections). With hidden units it is an MLP: ``Dense -> activation ->
    Dropout`` per hidden layer, then a linear ``Dense(output_dim)``. The output is not
    normalised; follow it with :class:`L2Normalize`.

    Args:
        output_dim: int. Width of the shared embedding space.
        hidden_units: tuple of ints. Widths of the hidden layers (empty: linear head).
        activation: activation of the hidden layers (any Keras activation identifier).
        dropout: float in ``[0, 1)``. Dropout rate after each hidden layer.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor ``(..., F)``, usually ``(N, F)``.
        training: bool, whether dropout is active.

    Returns:
        Tensor ``(..., output_dim)`` in the layer's compute dtype.

    Example:
        >>> import numpy as np
        >>> head = ProjectionHead(8, hidden_units=(16,))
        >>> head(np.ones((2, 5), "float32")).shape
        TensorShape([2, 8])
    """

    def __init__(self, output_dim, hidden_units=(), activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        validate_units(output_dim, "output_dim")
        self.hidden_units = validate_tuple(hidden_units, "hidden_units")
        self.output_dim = int(output_dim)
        self.activation = serialize_activation(activation)
        self.dropout = validate_rate(dropout)

        # === Layers ===
        self.hidden_layers = []
        for i, units in enumerate(self.hidden_units):
            self.hidden_layers.append(keras.layers.Dense(units, dtype=self.dtype_policy, name=f"hidden_{i}"))
            self.hidden_layers.append(
                keras.layers.Activation(activation, dtype=self.dtype_policy, name=f"activation_{i}")
            )
            self.hidden_layers.append(keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"dropout_{i}"))
        self.output_dense = keras.layers.Dense(self.output_dim, dtype=self.dtype_policy, name="output_dense")

    def build(self, input_shape):
        check_rank(self, input_shape, min_rank=2, what="features (N, F)")
        shape = build_in_sequence(self.hidden_layers, input_shape)
        self.output_dense.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.hidden_layers:
            x = layer(x, training=training)
        return self.output_dense(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_dim": self.output_dim,
                "hidden_units": list(self.hidden_units),
                "activation": self.activation,
                "dropout": self.dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tf_mmcl")
class L2Normalize(keras.layers.Layer):
    """Scales vectors to unit L2 norm; the output is always float32.

    Computes ``x * rsqrt(max(sum(x**2, axis), epsilon))`` in float32 (half-precision inputs are
    upcast first). A row whose squared norm is below ``epsilon`` is scaled by
    ``1 / sqrt(epsilon)`` instead of by its inverse norm: an all-zero row therefore stays an
    all-zero row (never NaN), and the gradient stays finite.

    Args:
        axis: int. The axis along which to normalise.
        epsilon: float > 0. Lower bound on the squared norm.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor of any rank >= 1.

    Returns:
        float32 tensor of the input's shape.

    Example:
        >>> import numpy as np
        >>> L2Normalize()(np.array([[3.0, 4.0], [0.0, 0.0]], "float32")).numpy().tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an int. Received: axis={axis!r}")
        if not float(epsilon) > 0.0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon}")
        self.axis = axis
        self.epsilon = float(epsilon)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"`axis`={self.axis} is out of range for inputs of rank {rank} "
                f"(shape {tuple(input_shape)}) in layer '{self.name}'."
            )
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        squared_norm = ops.sum(ops.square(x), axis=self.axis, keepdims=True)
        return x * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="tf_mmcl")
class LogitScale(keras.layers.Layer):
    """A learnable multiplier for similarity scores, stored as its logarithm (CLIP).

    Holds one float32 variable ``log_scale`` initialised to ``log(init_value)``. The scale is
    ``exp(min(log_scale, log(max_value)))``: the clamp keeps training from blowing the
    temperature up (CLIP clamps at 100); beyond it the gradient with respect to ``log_scale``
    is zero. With ``trainable=False`` the scale is a fixed constant (ConFu uses a fixed
    temperature 0.07, i.e. ``LogitScale(1 / 0.07, trainable=False)``).

    Args:
        init_value: float > 0. Initial scale (1 / temperature).
        max_value: float >= ``init_value``. Upper clamp of the scale.
        trainable: bool. Whether ``log_scale`` is updated by training.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: any tensor (optional). Its values are ignored; passing one lets the layer sit
            in a functional model. ``layer()`` without inputs also works once built, and
            :meth:`value` returns the same scalar.

    Returns:
        float32 scalar tensor, the clamped scale.

    Example:
        >>> scale = LogitScale(init_value=10.0)
        >>> round(float(scale(None)), 4)
        10.0
        >>> round(float(scale.value()), 4)
        10.0
    """

    def __init__(self, init_value=1.0 / 0.07, max_value=100.0, trainable=True, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if not float(init_value) > 0.0:
            raise ValueError(f"`init_value` must be > 0. Received: init_value={init_value}")
        if not float(max_value) >= float(init_value):
            raise ValueError(
                "`max_value` must be >= `init_value` (the scale is clamped at max_value). "
                f"Received: init_value={init_value}, max_value={max_value}"
            )
        self.init_value = float(init_value)
        self.max_value = float(max_value)
        self._allow_non_tensor_positional_args = True

    def build(self, input_shape=None):
        self.log_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.init_value)),
            dtype=self.variable_dtype,
            trainable=True,
            name="log_scale",
        )
        self.built = True

    def value(self):
        """Returns the clamped scale as a float32 scalar (builds the layer if needed)."""
        if not self.built:
            self.build()
        log_scale = ops.cast(self.log_scale, "float32")
        return ops.exp(ops.minimum(log_scale, math.log(self.max_value)))

    def call(self, inputs=None):
        return self.value()

    def compute_output_shape(self, input_shape=None):
        return ()

    def compute_output_spec(self, inputs=None):
        return keras.KerasTensor((), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"init_value": self.init_value, "max_value": self.max_value})
        return config
