"""Modality encoders: vectors (MLP), images (CNN), audio (log-mel + CNN), text (Transformer).

Every encoder maps a batch to un-normalised float features ``(N, D)`` in the layer's compute
dtype; a :class:`~tf_mmcl.layers.ProjectionHead` and :class:`~tf_mmcl.layers.L2Normalize` turn
them into embeddings. Sizes are constructor arguments, from the tiny settings of the tests to
realistic ones. All encoders honour Keras dtype policies (``mixed_float16`` /
``mixed_bfloat16``: float32 variables, half-precision compute).
"""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.ops.audio import log_mel_spectrogram, num_frames, validate_log_mel_args

__all__ = ["MLPEncoder", "ImageEncoder", "AudioEncoder", "TextEncoder", "TransformerEncoderBlock"]


# --------------------------------------------------------------------------------------------
# Validation helpers (shared with heads.py / fusion.py)
# --------------------------------------------------------------------------------------------

def _validate_units(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must contain positive ints. Received: {name}={value!r}")
    return int(value)


def _validate_optional_units(value, name):
    if value is None:
        return None
    return _validate_units(value, name)


def _validate_tuple(values, name):
    if isinstance(values, int) and not isinstance(values, bool):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"`{name}` must be a tuple of positive ints. Received: {values!r}") from None
    return tuple(_validate_units(v, name) for v in values)


def _validate_rate(value, name="dropout"):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
    return float(value)


def _validate_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def _check_rank(layer, input_shape, what, rank=None, min_rank=None):
    input_shape = tuple(input_shape)
    if rank is not None and len(input_shape) != rank:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) expects {what}, i.e. rank {rank}; "
            f"received input of shape {input_shape} (rank {len(input_shape)}).")
    if min_rank is not None and len(input_shape) < min_rank:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) expects {what}, i.e. rank >= "
            f"{min_rank}; received input of shape {input_shape} (rank {len(input_shape)}).")
    return input_shape


def _dense_stack_build(layers, input_shape):
    """Builds a list of layers in sequence and returns the final output shape."""
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def _serialize_activation(activation):
    return keras.activations.serialize(keras.activations.get(activation))


# --------------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------------

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

    def __init__(self, hidden_units=(64,), output_dim=None, activation="relu", dropout=0.0,
                 use_layer_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = _validate_tuple(hidden_units, "hidden_units")
        self.output_dim = _validate_optional_units(output_dim, "output_dim")
        if not self.hidden_units and self.output_dim is None:
            raise ValueError(
                "MLPEncoder needs at least one layer: give `hidden_units` or `output_dim` "
                "(hidden_units=() with output_dim=D is a linear encoder).")
        self.activation = _serialize_activation(activation)
        self.dropout = _validate_rate(dropout)
        self.use_layer_norm = bool(use_layer_norm)

        # === Layers ===
        self.hidden_layers = []
        for i, units in enumerate(self.hidden_units):
            self.hidden_layers.append(
                keras.layers.Dense(units, dtype=self.dtype_policy, name=f"dense_{i}"))
            if self.use_layer_norm:
                self.hidden_layers.append(keras.layers.LayerNormalization(
                    dtype=self.dtype_policy, name=f"layer_norm_{i}"))
            self.hidden_layers.append(
                keras.layers.Activation(activation, dtype=self.dtype_policy, name=f"activation_{i}"))
            if self.dropout > 0:
                self.hidden_layers.append(
                    keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"dropout_{i}"))
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(
                self.output_dim, dtype=self.dtype_policy, name="output_dense")

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.output_dim if self.output_dim is not None else self.hidden_units[-1]

    def build(self, input_shape):
        input_shape = _check_rank(self, input_shape, "feature vectors (N, F)", rank=2)
        if input_shape[-1] is None:
            raise ValueError(f"Layer '{self.name}' needs a known feature width F; got shape "
                             f"{input_shape}.")
        shape = _dense_stack_build(self.hidden_layers, input_shape)
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
        config.update({
            "hidden_units": list(self.hidden_units),
            "output_dim": self.output_dim,
            "activation": self.activation,
            "dropout": self.dropout,
            "use_layer_norm": self.use_layer_norm,
        })
        return config


# --------------------------------------------------------------------------------------------
# Image CNN
# --------------------------------------------------------------------------------------------

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

    def __init__(self, filters=(16, 32), kernel_size=3, pooling="avg", output_dim=None,
                 strides=2, convs_per_stage=1, normalization="batch", norm_groups=8,
                 activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = _validate_tuple(filters, "filters")
        if not self.filters:
            raise ValueError("`filters` must name at least one stage. Received: ()")
        self.kernel_size = _validate_units(kernel_size, "kernel_size")
        self.pooling = _validate_choice(pooling, "pooling", _POOLINGS_2D)
        self.output_dim = _validate_optional_units(output_dim, "output_dim")
        self.strides = _validate_units(strides, "strides")
        self.convs_per_stage = _validate_units(convs_per_stage, "convs_per_stage")
        self.normalization = _validate_choice(normalization, "normalization", _NORMALIZATIONS)
        self.norm_groups = _validate_units(norm_groups, "norm_groups")
        if self.normalization == "group":
            bad = [f for f in self.filters if f % self.norm_groups]
            if bad:
                raise ValueError(
                    f"With normalization='group', every entry of `filters` must be divisible by "
                    f"`norm_groups`={self.norm_groups}. Received: filters={self.filters}")
        self.activation = _serialize_activation(activation)
        self.dropout = _validate_rate(dropout)

        # === Layers ===
        self.blocks = []
        for s, f in enumerate(self.filters):
            for b in range(self.convs_per_stage):
                name = f"stage{s}_block{b}"
                self.blocks.append(keras.layers.Conv2D(
                    f, self.kernel_size, strides=self.strides if b == 0 else 1, padding="same",
                    use_bias=self.normalization is None, dtype=self.dtype_policy,
                    name=f"{name}_conv"))
                if self.normalization == "batch":
                    self.blocks.append(keras.layers.BatchNormalization(
                        dtype=self.dtype_policy, name=f"{name}_bn"))
                elif self.normalization == "group":
                    self.blocks.append(keras.layers.GroupNormalization(
                        groups=self.norm_groups, dtype=self.dtype_policy, name=f"{name}_gn"))
                self.blocks.append(keras.layers.Activation(
                    activation, dtype=self.dtype_policy, name=f"{name}_act"))
        pool_cls = (keras.layers.GlobalAveragePooling2D if self.pooling == "avg"
                    else keras.layers.GlobalMaxPooling2D)
        self.pool = pool_cls(dtype=self.dtype_policy, name="pool")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy,
                                                  name="dropout")
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(
                self.output_dim, dtype=self.dtype_policy, name="output_dense")

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.output_dim if self.output_dim is not None else self.filters[-1]

    def build(self, input_shape):
        input_shape = _check_rank(self, input_shape, "images (N, H, W, C)", rank=4)
        if input_shape[-1] is None:
            raise ValueError(f"Layer '{self.name}' needs a known channel count C; got shape "
                             f"{input_shape}.")
        shape = _dense_stack_build(self.blocks, input_shape)
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
        config.update({
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
        })
        return config


# --------------------------------------------------------------------------------------------
# Audio: log-mel front end + CNN
# --------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="tf_mmcl")
class AudioEncoder(keras.layers.Layer):
    """Audio encoder: (waveform ->) log-mel spectrogram -> 2-D CNN -> pooled features.

    With ``input_type="waveform"`` the input ``(N, T)`` goes through
    :func:`tf_mmcl.data.audio.log_mel_spectrogram` (core TF ops only, so the layer exports to a
    SavedModel that TF Serving loads) to ``(N, frames, num_mel_bins)``. The front end always
    runs in float32, even under a mixed-precision policy: the layer's ``input_dtype`` is
    float32, and the spectrogram is cast to the compute dtype before the CNN. With
    ``input_type="log_mel"`` the input is already ``(N, frames, num_mel_bins)``.

    The spectrogram is treated as a one-channel image (time x mel) and encoded by an
    :class:`ImageEncoder` with the given CNN settings.

    Args:
        input_type: ``"waveform"`` or ``"log_mel"``.
        sample_rate, frame_length, frame_step, fft_length, num_mel_bins, lower_edge_hertz,
            upper_edge_hertz, log_offset: front-end settings, see
            :func:`tf_mmcl.data.audio.log_mel_spectrogram`. With ``"log_mel"`` input only
            ``num_mel_bins`` is used (to check the input width).
        filters: tuple of ints. CNN stage widths.
        kernel_size: int. CNN kernel size.
        pooling: ``"avg"`` or ``"max"`` global pooling over time and frequency.
        output_dim: int or ``None``. Width of a final linear layer (``None``: ``filters[-1]``).
        strides: int. Stride of the first convolution of each CNN stage.
        convs_per_stage: int. Convolution blocks per stage.
        normalization: ``"batch"``, ``"group"`` or ``None`` (see :class:`ImageEncoder`).
        norm_groups: int. Groups for group normalisation.
        activation: CNN activation.
        dropout: float in ``[0, 1)``. Dropout on the pooled features.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        inputs: float ``(N, T)`` waveforms, or ``(N, frames, num_mel_bins)`` log-mels.
        training: bool.

    Returns:
        Tensor ``(N, output_dim or filters[-1])``.

    Example:
        >>> import numpy as np
        >>> encoder = AudioEncoder(sample_rate=8000, frame_length=200, frame_step=80,
        ...                        fft_length=256, num_mel_bins=16, filters=(8,), output_dim=4)
        >>> encoder(np.zeros((2, 4000), "float32")).shape
        TensorShape([2, 4])
    """

    def __init__(self, input_type="waveform", sample_rate=16000, frame_length=400,
                 frame_step=160, fft_length=512, num_mel_bins=64, lower_edge_hertz=20.0,
                 upper_edge_hertz=None, log_offset=1e-6, filters=(16, 32), kernel_size=3,
                 pooling="avg", output_dim=None, strides=2, convs_per_stage=1,
                 normalization="batch", norm_groups=8, activation="relu", dropout=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_type = _validate_choice(input_type, "input_type", ("waveform", "log_mel"))
        validate_log_mel_args(sample_rate, frame_length, frame_step, fft_length, num_mel_bins,
                              lower_edge_hertz, upper_edge_hertz, log_offset)
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.frame_step = frame_step
        self.fft_length = fft_length
        self.num_mel_bins = num_mel_bins
        self.lower_edge_hertz = float(lower_edge_hertz)
        self.upper_edge_hertz = None if upper_edge_hertz is None else float(upper_edge_hertz)
        self.log_offset = float(log_offset)

        # === Layers ===
        self.cnn = ImageEncoder(
            filters=filters, kernel_size=kernel_size, pooling=pooling, output_dim=output_dim,
            strides=strides, convs_per_stage=convs_per_stage, normalization=normalization,
            norm_groups=norm_groups, activation=activation, dropout=dropout,
            dtype=self.dtype_policy, name="cnn")

    @property
    def input_dtype(self):
        # Waveforms stay float32 under mixed precision: the STFT is done in float32.
        return "float32" if self.input_type == "waveform" else self.compute_dtype

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.cnn.feature_dim

    def spectrogram_shape(self, input_shape):
        """Shape ``(N, frames, num_mel_bins)`` the CNN sees for a given input shape."""
        input_shape = tuple(input_shape)
        if self.input_type == "log_mel":
            return input_shape
        return (input_shape[0],
                num_frames(input_shape[1], self.frame_length, self.frame_step),
                self.num_mel_bins)

    def build(self, input_shape):
        if self.input_type == "waveform":
            _check_rank(self, input_shape, "waveforms (N, T)", rank=2)
        else:
            _check_rank(self, input_shape, "log-mel spectrograms (N, frames, num_mel_bins)",
                        rank=3)
            if input_shape[-1] is not None and input_shape[-1] != self.num_mel_bins:
                raise ValueError(
                    f"Layer '{self.name}' expects log-mel inputs with num_mel_bins="
                    f"{self.num_mel_bins} on the last axis; received shape "
                    f"{tuple(input_shape)}.")
        self.cnn.build(self.spectrogram_shape(input_shape) + (1,))
        self.built = True

    def log_mel(self, waveform):
        """The front end alone: float32 ``(N, T)`` -> float32 ``(N, frames, num_mel_bins)``."""
        return log_mel_spectrogram(
            waveform, sample_rate=self.sample_rate, frame_length=self.frame_length,
            frame_step=self.frame_step, fft_length=self.fft_length,
            num_mel_bins=self.num_mel_bins, lower_edge_hertz=self.lower_edge_hertz,
            upper_edge_hertz=self.upper_edge_hertz, log_offset=self.log_offset)

    def call(self, inputs, training=None):
        x = self.log_mel(inputs) if self.input_type == "waveform" else inputs
        x = ops.cast(x, self.compute_dtype)
        x = ops.expand_dims(x, axis=-1)
        return self.cnn(x, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.feature_dim)

    def get_config(self):
        config = super().get_config()
        cnn = self.cnn
        config.update({
            "input_type": self.input_type,
            "sample_rate": self.sample_rate,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_length": self.fft_length,
            "num_mel_bins": self.num_mel_bins,
            "lower_edge_hertz": self.lower_edge_hertz,
            "upper_edge_hertz": self.upper_edge_hertz,
            "log_offset": self.log_offset,
            "filters": list(cnn.filters),
            "kernel_size": cnn.kernel_size,
            "pooling": cnn.pooling,
            "output_dim": cnn.output_dim,
            "strides": cnn.strides,
            "convs_per_stage": cnn.convs_per_stage,
            "normalization": cnn.normalization,
            "norm_groups": cnn.norm_groups,
            "activation": cnn.activation,
            "dropout": cnn.dropout,
        })
        return config


# --------------------------------------------------------------------------------------------
# Text: token ids -> pre-LN Transformer -> masked pooling
# --------------------------------------------------------------------------------------------

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
        self.embed_dim = _validate_units(embed_dim, "embed_dim")
        self.num_heads = _validate_units(num_heads, "num_heads")
        self.ff_dim = _validate_units(ff_dim, "ff_dim")
        self.dropout = _validate_rate(dropout)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                "`embed_dim` must be divisible by `num_heads`. Received: "
                f"embed_dim={embed_dim}, num_heads={num_heads}")

        # === Layers ===
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=policy, name="attention_norm")
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=self.embed_dim // self.num_heads,
            dropout=self.dropout, dtype=policy, name="attention")
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy,
                                                      name="attention_dropout")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy,
                                                        name="ffn_norm")
        self.ffn_inner = keras.layers.Dense(self.ff_dim, activation="gelu", dtype=policy,
                                            name="ffn_inner")
        self.ffn_outer = keras.layers.Dense(self.embed_dim, dtype=policy, name="ffn_outer")
        self.ffn_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="ffn_dropout")

    def build(self, input_shape):
        input_shape = _check_rank(self, input_shape, "sequences (N, L, embed_dim)", rank=3)
        if input_shape[-1] != self.embed_dim:
            raise ValueError(
                f"Layer '{self.name}' expects a last dimension of embed_dim={self.embed_dim}; "
                f"received shape {input_shape}.")
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
            keys = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)      # (N, 1, L)
            queries = ops.ones_like(ops.expand_dims(keys[:, 0, :], -1), dtype="bool")
            attention_mask = ops.logical_and(queries, keys)                      # (N, L, L)
        h = self.attention_norm(inputs)
        h = self.attention(h, h, attention_mask=attention_mask, training=training)
        x = inputs + self.attention_dropout(h, training=training)
        h = self.ffn_outer(self.ffn_inner(self.ffn_norm(x)))
        return x + self.ffn_dropout(h, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        })
        return config


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

    def __init__(self, vocab_size, embed_dim=64, num_layers=1, num_heads=2, ff_dim=128,
                 max_length=64, pooling="mean", dropout=0.0, padding_id=0, output_dim=None,
                 **kwargs):
        # No input autocasting: token ids are integers, and a float input must be rejected in
        # `call`, not silently truncated to `input_dtype` (int32). Sublayers still autocast
        # their own variables under mixed precision.
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        self.vocab_size = _validate_units(vocab_size, "vocab_size")
        self.embed_dim = _validate_units(embed_dim, "embed_dim")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"`num_layers` must be an int >= 0. Received: {num_layers!r}")
        self.num_layers = num_layers
        self.num_heads = _validate_units(num_heads, "num_heads")
        self.ff_dim = _validate_units(ff_dim, "ff_dim")
        self.max_length = _validate_units(max_length, "max_length")
        self.pooling = _validate_choice(pooling, "pooling", ("mean", "cls", "max"))
        self.dropout = _validate_rate(dropout)
        if (isinstance(padding_id, bool) or not isinstance(padding_id, int)
                or not 0 <= padding_id < self.vocab_size):
            raise ValueError(
                f"`padding_id` must be an int in [0, vocab_size={self.vocab_size}). "
                f"Received: padding_id={padding_id!r}")
        self.padding_id = padding_id
        self.output_dim = _validate_optional_units(output_dim, "output_dim")
        if self.pooling == "cls" and self.num_layers == 0:
            raise ValueError(
                "pooling='cls' needs num_layers >= 1 (without attention the [CLS] vector never "
                "sees the tokens). Use 'mean' or 'max' for a bag-of-tokens encoder.")
        if self.num_layers and self.embed_dim % self.num_heads:
            raise ValueError(
                "`embed_dim` must be divisible by `num_heads`. Received: "
                f"embed_dim={embed_dim}, num_heads={num_heads}")

        # === Layers ===
        policy = self.dtype_policy
        self.token_embedding = keras.layers.Embedding(
            self.vocab_size, self.embed_dim, dtype=policy, name="token_embedding")
        self.embedding_dropout = keras.layers.Dropout(self.dropout, dtype=policy,
                                                      name="embedding_dropout")
        self.blocks = [
            TransformerEncoderBlock(self.embed_dim, self.num_heads, self.ff_dim, self.dropout,
                                    dtype=policy, name=f"block_{i}")
            for i in range(self.num_layers)
        ]
        self.final_norm = None
        if self.num_layers:
            self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy,
                                                              name="final_norm")
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(self.output_dim, dtype=policy,
                                                   name="output_dense")

    @property
    def input_dtype(self):
        # Token ids, whatever the dtype policy (used e.g. for serving signatures).
        return "int32"

    @property
    def feature_dim(self):
        """Width ``D`` of the features."""
        return self.output_dim if self.output_dim is not None else self.embed_dim

    def build(self, input_shape):
        input_shape = _check_rank(self, input_shape, "token ids (N, L)", rank=2)
        length = input_shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"Layer '{self.name}' accepts sequences of at most max_length={self.max_length} "
                f"tokens; received shape {input_shape}.")
        self.token_embedding.build(input_shape)
        seq_len = self.max_length + (1 if self.pooling == "cls" else 0)
        seq_shape = (input_shape[0], None, self.embed_dim)
        self.embedding_dropout.build(seq_shape)
        if self.num_layers:
            self.position_embedding = self.add_weight(
                shape=(seq_len, self.embed_dim),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                dtype=self.variable_dtype, name="position_embedding")
            if self.pooling == "cls":
                self.cls_embedding = self.add_weight(
                    shape=(self.embed_dim,),
                    initializer=keras.initializers.RandomNormal(stddev=0.02),
                    dtype=self.variable_dtype, name="cls_embedding")
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
            raise ValueError(
                f"Layer '{self.name}' expects integer token ids; received dtype {inputs.dtype}.")

    def call(self, inputs, training=None):
        self._check_ids_dtype(inputs)
        length = inputs.shape[1] if len(inputs.shape) == 2 else None
        if length is not None and length > self.max_length:
            raise ValueError(
                f"Layer '{self.name}' accepts sequences of at most max_length={self.max_length} "
                f"tokens; received shape {tuple(inputs.shape)}.")
        mask = self.compute_padding_mask(inputs)                          # (N, L) bool
        x = self.token_embedding(inputs)                                  # (N, L, E)
        if self.num_layers:
            if self.pooling == "cls":
                cls = ops.cast(self.cls_embedding, x.dtype)
                cls = ops.broadcast_to(cls, (ops.shape(x)[0], 1, self.embed_dim))
                x = ops.concatenate([cls, x], axis=1)
                mask = ops.concatenate(
                    [ops.ones_like(mask[:, :1]), mask], axis=1)
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
        weights = ops.cast(ops.expand_dims(mask, -1), x.dtype)           # (N, L, 1)
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
        config.update({
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
        })
        return config
