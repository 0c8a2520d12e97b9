"""``AudioEncoder``: (waveform ->) log-mel spectrogram -> 2-D CNN -> pooled features."""

from __future__ import annotations

import keras
from keras import ops

from tf_mmcl.layers.image_encoder import ImageEncoder
from tf_mmcl.layers.validation import check_rank, validate_choice
from tf_mmcl.ops.audio import log_mel_spectrogram, num_frames, validate_log_mel_args

__all__ = ["AudioEncoder"]


@keras.saving.register_keras_serializable(package="tf_mmcl")
class AudioEncoder(keras.layers.Layer):
    """Audio encoder: (waveform ->) log-mel spectrogram -> 2-D CNN -> pooled features.

    With ``input_type="waveform"`` the input ``(N, T)`` goes through
    :func:`tf_mmcl.ops.audio.log_mel_spectrogram` (core TF ops only, so the layer exports to a
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
            :func:`tf_mmcl.ops.audio.log_mel_spectrogram`. With ``"log_mel"`` input only
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

    def __init__(
        self,
        input_type="waveform",
        sample_rate=16000,
        frame_length=400,
        frame_step=160,
        fft_length=512,
        num_mel_bins=64,
        lower_edge_hertz=20.0,
        upper_edge_hertz=None,
        log_offset=1e-6,
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
        self.input_type = validate_choice(input_type, "input_type", ("waveform", "log_mel"))
        validate_log_mel_args(
            sample_rate,
            frame_length,
            frame_step,
            fft_length,
            num_mel_bins,
            lower_edge_hertz,
            upper_edge_hertz,
            log_offset,
        )
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
            filters=filters,
            kernel_size=kernel_size,
            pooling=pooling,
            output_dim=output_dim,
            strides=strides,
            convs_per_stage=convs_per_stage,
            normalization=normalization,
            norm_groups=norm_groups,
            activation=activation,
            dropout=dropout,
            dtype=self.dtype_policy,
            name="cnn",
        )

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
        return (input_shape[0], num_frames(input_shape[1], self.frame_length, self.frame_step), self.num_mel_bins)

    def build(self, input_shape):
        if self.input_type == "waveform":
            check_rank(self, input_shape, "waveforms (N, T)", rank=2)
        else:
            check_rank(self, input_shape, "log-mel spectrograms (N, frames, num_mel_bins)", rank=3)
            if input_shape[-1] is not None and input_shape[-1] != self.num_mel_bins:
                raise ValueError(
                    f"Layer '{self.name}' expects log-mel inputs with num_mel_bins="
                    f"{self.num_mel_bins} on the last axis; received shape "
                    f"{tuple(input_shape)}."
                )
        self.cnn.build(self.spectrogram_shape(input_shape) + (1,))
        self.built = True

    def log_mel(self, waveform):
        """The front end alone: float32 ``(N, T)`` -> float32 ``(N, frames, num_mel_bins)``."""
        return log_mel_spectrogram(
            waveform,
            sample_rate=self.sample_rate,
            frame_length=self.frame_length,
            frame_step=self.frame_step,
            fft_length=self.fft_length,
            num_mel_bins=self.num_mel_bins,
            lower_edge_hertz=self.lower_edge_hertz,
            upper_edge_hertz=self.upper_edge_hertz,
            log_offset=self.log_offset,
        )

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
        config.update(
            {
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
            }
        )
        return config
