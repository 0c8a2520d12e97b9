"""``ImageEncoder``: a convolutional encoder for channels-last images ``(N, H, W, C)``."""

from __future__ import annotations

import keras

from tf_mmcl.layers.sublayers import build_in_sequence, serialize_activation
from tf_mmcl.layers.validation import (
    check_rank,
    validate_choice,
    validate_optional_units,
    validate_rate,
    validate_tuple,
    validate_units,
)

__all__ = ["ImageEncoder"]


_NORMALIZATIONS = ("batch", "group", None)
_POOLINGS_2D = ("avg", "max")


@keras.saving.register_keras_serializable(package="tf_mmcl")
class ImageEncoder(keras.layers.Layer):
    """Convolutional encoder for images ``(N, H, W, C)`` (channels last).

    One stage per entry of ``filters``; a stage is ``convs_per_stage`` blocks of
    ``Conv2D -> normalisation -> activation``, the first of which downsamples with stride
    ``strides``. After the stages: global average (or max) pooling, optional dropout, and an
    optional linear ``Dense(output_dim)``.

    Args:
        filters: tuple of ints. Channels of each stage.
        kernel_size: int. Convolution kernel size.
        pooling: ``"avg"`` or ``"max"`` global pooling.
        output_dim: int or ``None``. Width of a final linear layer; ``None`` keeps
            ``filters[-1]`` features.
        strides: int >= 1. Stride of the first convolution of each stage.
        convs_per_stage: int >= 1. Convolution blocks per stage.
        normalization: ``"batch"`` (BatchNormalization), ``"group"`` (GroupNormalization with
            ``norm_groups`` groups, independent of the batch) or ``None``.
        norm_groups: int. Groups for ``normalization="group"``; every entry of ``filters`` must
            be divisible by it.
        activation: activation after each normalisation.
        dropout: float in ``[0, 1)``. Dropout on the pooled features.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float tensor ``(N, H, W, C)``.
        training: bool (dropout, batch-norm statistics).

    Returns:
        Tensor ``(N, output_dim or filters[-1])``.

    Example:
        >>> import numpy as np
        >>> encoder = ImageEncoder(filters=(8, 16), output_dim=12)
        >>> encoder(np.zeros((2, 28, 28, 1), "float32")).shape
        TensorShape([2, 12])
    """

    def __init__(
        self,
        filters=(16, 32),
        kernel_size=3,
        pooling="avg",
        output_dim=None,
        strides=2,
        convs_per_stage=1,
        normalization="batch",
        norm_groups=8,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = validate_tuple(filters, "filters")
        if not self.filters:
            raise ValueError("`filters` must name at least one stage. Received: ()")
        self.kernel_size = validate_units(kernel_size, "kernel_size")
        self.pooling = validate_choice(pooling, "pooling", _POOLINGS_2D)
        self.output_dim = validate_optional_units(output_dim, "output_dim")
        self.strides = validate_units(strides, "strides")
        self.convs_per_stage = validate_units(convs_per_stage, "convs_per_stage")
        self.normalization = validate_choice(normalization, "normalization", _NORMALIZATIONS)
        self.norm_groups = validate_units(norm_groups, "norm_groups")
        if self.normalization == "group":
            bad = [f for f in self.filters if f % self.norm_groups]
            if bad:
                raise ValueError(
                    f"With normalization='group', every entry of `filters` must be divisible by "
                    f"`norm_groups`={self.norm_groups}. Received: filters={self.filters}"
                )
        self.activation = serialize_activation(activation)
        self.dropout = validate_rate(dropout)

        # === Layers ===
        self.blocks = []
        for s, f in enumerate(self.filters):
            for b in range(self.convs_per_stage):
                name = f"stage{s}_block{b}"
                self.blocks.append(
                    keras.layers.Conv2D(
                        f,
                        self.kernel_size,
                        strides=self.strides if b == 0 else 1,
                        padding="same",
                        use_bias=self.normalization is None,
                        dtype=self.dtype_policy,
                        name=f"{name}_conv",
                    )
                )
                if self.normalization == "batch":
                    self.blocks.append(keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"{name}_bn"))
                elif self.normalization == "group":
                    self.blocks.append(
                        keras.layers.GroupNormalization(
                            groups=self.norm_groups, dtype=self.dtype_policy, name=f"{name}_gn"
                        )
                    )
                self.blocks.append(keras.layers.Activation(activation, dtype=self.dtype_policy, name=f"{name}_act"))
        pool_cls = keras.layers.GlobalAveragePooling2D if self.pooling == "avg" else keras.layers.GlobalMaxPooling2D
        self.pool = pool_cls(dtype=self.dtype_policy, name="pool")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(self.output_dim, dtype=self.dtype_policy, name="output_dense")

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.output_dim if self.output_dim is not None else self.filters[-1]

    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, "images (N, H, W, C)", rank=4)
        if input_shape[-1] is None:
            raise ValueError(f"Layer '{self.name}' needs a known channel count C; got shape {input_shape}.")
        shape = build_in_sequence(self.blocks, input_shape)
        self.pool.build(shape)
        shape = self.pool.compute_output_shape(shape)
        self.dropout_layer.build(shape)
        if self.output_dense is not None:
            self.output_dense.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for layer in self.blocks:
            x = layer(x, training=training)
        x = self.pool(x)
        x = self.dropout_layer(x, training=training)
        if self.output_dense is not None:
            x = self.output_dense(x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": list(self.filters),
                "kernel_size": self.kernel_size,
                "pooling": self.pooling,
                "output_dim": self.output_dim,
                "strides": self.strides,
                "convs_per_stage": self.convs_per_stage,
                "normalization": self.normalization,
                "norm_groups": self.norm_groups,
                "activation": self.activation,
                "dropout": self.dropout,
            }
        )
        return config
