"""``TransformerEncoderBlock``: one pre-LayerNorm Transformer encoder block."""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.layers.validation import check_rank, validate_rate, validate_units

__all__ = ["TransformerEncoderBlock"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
class TransformerEncoderBlock(keras.layers.Layer):
    """Pre-LayerNorm Transformer encoder block (self-attention + feed-forward).

    ``x = x + Dropout(MHA(LN(x), mask)); x = x + Dropout(FFN(LN(x)))`` with
    ``FFN = Dense(ff_dim, gelu) -> Dense(embed_dim)``.

    Args:
        embed_dim: int. Model width (divisible by ``num_heads``).
        num_heads: int. Attention heads.
        ff_dim: int. Feed-forward hidden width.
        dropout: float in ``[0, 1)``. Dropout on attention weights and residual branches.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: tensor ``(N, L, embed_dim)``.
        padding_mask: optional bool ``(N, L)``, True for real tokens. Padding positions never
            act as keys, so they cannot influence real positions.
        training: bool.

    Returns:
        Tensor ``(N, L, embed_dim)``.

    Example:
        >>> import numpy as np
        >>> block = TransformerEncoderBlock(embed_dim=8, num_heads=2, ff_dim=16)
        >>> block(np.zeros((2, 5, 8), "float32")).shape
        TensorShape([2, 5, 8])
    """

    def __init__(self, embed_dim, num_heads, ff_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = validate_units(embed_dim, "embed_dim")
        self.num_heads = validate_units(num_heads, "num_heads")
        self.ff_dim = validate_units(ff_dim, "ff_dim")
        self.dropout = validate_rate(dropout)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"`embed_dim` must be divisible by `num_heads`. Received: embed_dim={embed_dim}, num_heads={num_heads}"
            )

        # === Layers ===
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="attention_norm")
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.embed_dim // self.num_heads,
            dropout=self.dropout,
            dtype=policy,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="attention_dropout")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="ffn_norm")
        self.ffn_inner = keras.layers.Dense(self.ff_dim, activation="gelu", dtype=policy, name="ffn_inner")
        self.ffn_outer = keras.layers.Dense(self.embed_dim, dtype=policy, name="ffn_outer")
        self.ffn_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="ffn_dropout")

    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, "sequences (N, L, embed_dim)", rank=3)
        if input_shape[-1] != self.embed_dim:
            raise ValueError(
                f"Layer '{self.name}' expects a last dimension of embed_dim={self.embed_dim}; "
                f"received shape {input_shape}."
            )
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.attention_dropout.build(input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_inner.build(input_shape)
        self.ffn_outer.build(input_shape[:-1] + (self.ff_dim,))
        self.ffn_dropout.build(input_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        attention_mask = None
        if padding_mask is not None:
            keys = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)  # (N, 1, L)
            queries = ops.ones_like(ops.expand_dims(keys[:, 0, :], -1), dtype="bool")
            attention_mask = ops.logical_and(queries, keys)  # (N, L, L)
        h = self.attention_norm(inputs)
        h = self.attention(h, h, attention_mask=attention_mask, training=training)
        x = inputs + self.attention_dropout(h, training=training)
        h = self.ffn_outer(self.ffn_inner(self.ffn_norm(x)))
        return x + self.ffn_dropout(h, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
            }
        )
        return config
