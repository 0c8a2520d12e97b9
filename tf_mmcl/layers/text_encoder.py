"""``TextEncoder``: token ids -> pre-LN Transformer -> padding-aware pooling."""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.layers.transformer_block import TransformerEncoderBlock
from tf_mmcl.layers.validation import (
    check_rank,
    validate_choice,
    validate_optional_units,
    validate_rate,
    validate_units,
)

__all__ = ["TextEncoder"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
class TextEncoder(keras.layers.Layer):
    """Transformer text encoder over token ids with padding-aware pooling.

    ``ids -> token embedding (+ learned position embedding) -> num_layers pre-LN Transformer
    blocks (attention masked so padding tokens are never attended to) -> final LayerNorm ->
    masked pooling -> [Dense(output_dim)]``.

    Token ids equal to ``padding_id`` are padding: they never influence the features, so
    appending padding to a sequence leaves its features unchanged. Pooling:

    * ``"mean"``: mean over real tokens;
    * ``"max"``: element-wise max over real tokens;
    * ``"cls"``: the output at a learned ``[CLS]`` vector that the layer prepends itself
      (no special token id needed); requires ``num_layers >= 1``.

    A sequence made only of padding gives a zero feature vector for ``"mean"`` and ``"max"``.

    ``num_layers=0`` is a bag-of-tokens encoder: no position embedding and no attention, just
    the pooled token embeddings (order-invariant).

    Args:
        vocab_size: int. Number of token ids (ids must lie in ``[0, vocab_size)``).
        embed_dim: int. Model width (divisible by ``num_heads``).
        num_layers: int >= 0. Transformer blocks.
        num_heads: int. Attention heads per block.
        ff_dim: int. Feed-forward width per block.
        max_length: int. Longest sequence (without the ``[CLS]`` vector) accepted.
        pooling: ``"mean"``, ``"cls"`` or ``"max"``.
        dropout: float in ``[0, 1)``. Dropout on embeddings, attention and residual branches.
        padding_id: int. The padding token id.
        output_dim: int or ``None``. Width of a final linear layer (``None``: ``embed_dim``).
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: integer tensor ``(N, L)`` of token ids, ``L <= max_length`` (``input_dtype`` is
            ``"int32"``; float inputs raise ``ValueError`` instead of being truncated).
        training: bool.

    Returns:
        Tensor ``(N, output_dim or embed_dim)``.

    Example:
        >>> import numpy as np
        >>> encoder = TextEncoder(vocab_size=50, embed_dim=16, num_heads=2, ff_dim=32,
        ...                       max_length=8)
        >>> ids = np.array([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0]], "int32")
        >>> encoder(ids).shape
        TensorShape([2, 16])
    """

    def __init__(
        self,
        vocab_size,
        embed_dim=64,
        num_layers=1,
        num_heads=2,
        ff_dim=128,
        max_length=64,
        pooling="mean",
        dropout=0.0,
        padding_id=0,
        output_dim=None,
        **kwargs,
    ):
        # No input autocasting: token ids are integers, and a float input must be rejected in
        # `call`, not silently truncated to `input_dtype` (int32). Sublayers still autocast
        # their own variables under mixed precision.
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        self.vocab_size = validate_units(vocab_size, "vocab_size")
        self.embed_dim = validate_units(embed_dim, "embed_dim")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"`num_layers` must be an int >= 0. Received: {num_layers!r}")
        self.num_layers = num_layers
        self.num_heads = validate_units(num_heads, "num_heads")
        self.ff_dim = validate_units(ff_dim, "ff_dim")
        self.max_length = validate_units(max_length, "max_length")
        self.pooling = validate_choice(pooling, "pooling", ("mean", "cls", "max"))
        self.dropout = validate_rate(dropout)
        if isinstance(padding_id, bool) or not isinstance(padding_id, int) or not 0 <= padding_id < self.vocab_size:
            raise ValueError(
                f"`padding_id` must be an int in [0, vocab_size={self.vocab_size}). Received: padding_id={padding_id!r}"
            )
        self.padding_id = padding_id
        self.output_dim = validate_optional_units(output_dim, "output_dim")
        if self.pooling == "cls" and self.num_layers == 0:
            raise ValueError(
                "pooling='cls' needs num_layers >= 1 (without attention the [CLS] vector never "
                "sees the tokens). Use 'mean' or 'max' for a bag-of-tokens encoder."
            )
        if self.num_layers and self.embed_dim % self.num_heads:
            raise ValueError(
                f"`embed_dim` must be divisible by `num_heads`. Received: embed_dim={embed_dim}, num_heads={num_heads}"
            )

        # === Layers ===
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            self.vocab_size, self.embed_dim, dtype=policy, name="token_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="embedding_dropout")
        self.blocks = [
            TransformerEncoderBlock(
                self.embed_dim, self.num_heads, self.ff_dim, self.dropout, dtype=policy, name=f"block_{i}"
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = None
        if self.num_layers:
            self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="final_norm")
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(self.output_dim, dtype=policy, name="output_dense")

    @property
    def input_dtype(self):
        # Token ids, whatever the dtype policy (used e.g. for serving signatures).
        return "int32"

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.output_dim if self.output_dim is not None else self.embed_dim

    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, "token ids (N, L)", rank=2)
        length = input_shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"Layer '{self.name}' accepts sequences of at most max_length={self.max_length} "
                f"tokens; received shape {input_shape}."
            )
        self.token_embedding.build(input_shape)
        seq_len = self.max_length + (1 if self.pooling == "cls" else 0)
        seq_shape = (input_shape[0], None, self.embed_dim)
        self.embedding_dropout.build(seq_shape)
        if self.num_layers:
            self.position_embedding = self.add_weight(
                shape=(seq_len, self.embed_dim),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                dtype=self.variable_dtype,
                name="position_embedding",
            )
            if self.pooling == "cls":
                self.cls_embedding = self.add_weight(
                    shape=(self.embed_dim,),
                    initializer=keras.initializers.RandomNormal(stddev=0.02),
                    dtype=self.variable_dtype,
                    name="cls_embedding",
                )
            for block in self.blocks:
                block.build(seq_shape)
            self.final_norm.build(seq_shape)
        if self.output_dense is not None:
            self.output_dense.build((input_shape[0], self.embed_dim))
        self.built = True

    def compute_padding_mask(self, token_ids):
        """Bool ``(N, L)``: True where the token is not padding."""
        return ops.not_equal(token_ids, self.padding_id)

    def _check_ids_dtype(self, inputs):
        if "int" not in keras.backend.standardize_dtype(inputs.dtype):
            raise ValueError(f"Layer '{self.name}' expects integer token ids; received dtype {inputs.dtype}.")

    def call(self, inputs, training=None):
        self._check_ids_dtype(inputs)
        length = inputs.shape[1] if len(inputs.shape) == 2 else None
        if length is not None and length > self.max_length:
            raise ValueError(
                f"Layer '{self.name}' accepts sequences of at most max_length={self.max_length} "
                f"tokens; received shape {tuple(inputs.shape)}."
            )
        mask = self.compute_padding_mask(inputs)  # (N, L) bool
        x = self.token_embedding(inputs)  # (N, L, E)
        if self.num_layers:
            if self.pooling == "cls":
                cls = ops.cast(self.cls_embedding, x.dtype)
                cls = ops.broadcast_to(cls, (ops.shape(x)[0], 1, self.embed_dim))
                x = ops.concatenate([cls, x], axis=1)
                mask = ops.concatenate([ops.ones_like(mask[:, :1]), mask], axis=1)
            length = ops.shape(x)[1]
            positions = ops.cast(self.position_embedding[:length], x.dtype)
            x = x + positions[None, :, :]
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, padding_mask=mask, training=training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        x = self._pool(x, mask)
        if self.output_dense is not None:
            x = self.output_dense(x)
        return x

    def _pool(self, x, mask):
        if self.pooling == "cls":
            return x[:, 0, :]
        weights = ops.cast(ops.expand_dims(mask, -1), x.dtype)  # (N, L, 1)
        if self.pooling == "mean":
            total = ops.sum(x * weights, axis=1)
            count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, x.dtype))
            return total / count
        masked = ops.where(ops.expand_dims(mask, -1), x, ops.cast(float("-inf"), x.dtype))
        pooled = ops.max(masked, axis=1)
        has_token = ops.any(mask, axis=1, keepdims=True)
        return ops.where(has_token, pooled, ops.zeros_like(pooled))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def compute_output_spec(self, inputs, training=None):
        self._check_ids_dtype(inputs)  # fail when a functional model is wired, not at run time
        return super().compute_output_spec(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "embed_dim": self.embed_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "max_length": self.max_length,
                "pooling": self.pooling,
                "dropout": self.dropout,
                "padding_id": self.padding_id,
                "output_dim": self.output_dim,
            }
        )
        return config
