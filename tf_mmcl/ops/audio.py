"""Log-mel spectrograms from core TensorFlow ops (the audio encoders' front end).

Core ops only (``tf.signal``, ``tf.math``), so it runs inside ``tf.data`` pipelines, inside Keras
layers and inside an exported SavedModel that TF Serving loads without any custom op library.
The recipe is the one in the ``tf.signal`` guide: a Hann-windowed STFT, the magnitude spectrum,
a triangular mel filter bank (``tf.signal.linear_to_mel_weight_matrix``, HTK mel scale) and
``log(mel + log_offset)``. It lives in ``ops`` so that the layers (``AudioEncoder``) need not
import ``tf_mmcl.data``; :mod:`tf_mmcl.data.audio` re-exports it beside the WAV decoder.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["log_mel_spectrogram", "num_frames", "validate_log_mel_args"]


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def validate_log_mel_args(
    sample_rate, frame_length, frame_step, fft_length, num_mel_bins, lower_edge_hertz, upper_edge_hertz, log_offset
):
    """Raises ``ValueError`` for inconsistent front-end settings; returns the upper edge in Hz.

    Shared by :func:`log_mel_spectrogram` and ``tf_mmcl.layers.AudioEncoder`` so that a bad
    setting fails when the layer is constructed, not when it is first called.
    """
    for name, value in (
        ("sample_rate", sample_rate),
        ("frame_length", frame_length),
        ("frame_step", frame_step),
        ("fft_length", fft_length),
        ("num_mel_bins", num_mel_bins),
    ):
        _check_positive_int(value, name)
    if fft_length < frame_length:
        raise ValueError(
            "`fft_length` must be at least `frame_length` (each frame is zero-padded to "
            f"`fft_length` before the FFT). Received: fft_length={fft_length}, "
            f"frame_length={frame_length}"
        )
    nyquist = sample_rate / 2.0
    upper = nyquist if upper_edge_hertz is None else float(upper_edge_hertz)
    lower = float(lower_edge_hertz)
    if lower < 0.0:
        raise ValueError(f"`lower_edge_hertz` must be >= 0. Received: {lower_edge_hertz}")
    if not lower < upper:
        raise ValueError(
            "`lower_edge_hertz` must be below `upper_edge_hertz`. Received: "
            f"lower_edge_hertz={lower_edge_hertz}, upper_edge_hertz={upper}"
        )
    if upper > nyquist:
        raise ValueError(
            f"`upper_edge_hertz` must be at most sample_rate / 2 = {nyquist}. "
            f"Received: upper_edge_hertz={upper_edge_hertz}"
        )
    if not float(log_offset) > 0.0:
        raise ValueError(f"`log_offset` must be > 0. Received: log_offset={log_offset}")
    return upper


def num_frames(num_samples, frame_length, frame_step, pad_end=True):
    """Number of STFT frames for a signal of ``num_samples`` samples (``None`` if unknown).

    Args:
        num_samples: int or ``None``.
        frame_length: samples per frame.
        frame_step: hop between frames, in samples.
        pad_end: whether the end of the signal is zero-padded to fill the last frame.

    Returns:
        ``ceil(num_samples / frame_step)`` with ``pad_end`` (0 for an empty signal), otherwise
        ``max(0, 1 + (num_samples - frame_length) // frame_step)``.

    Example:
        >>> num_frames(16000, 400, 160)
        100
        >>> num_frames(16000, 400, 160, pad_end=False)
        98
    """
    if num_samples is None:
        return None
    if pad_end:
        return -(-int(num_samples) // frame_step)
    return max(0, 1 + (int(num_samples) - frame_length) // frame_step)


def log_mel_spectrogram(
    waveform,
    sample_rate=16000,
    frame_length=400,
    frame_step=160,
    fft_length=512,
    num_mel_bins=64,
    lower_edge_hertz=20.0,
    upper_edge_hertz=None,
    log_offset=1e-6,
    pad_end=True,
):
    """Log-mel spectrogram of a batch of mono waveforms, in core TensorFlow ops.

    Computes ``log(|STFT(x)| @ W_mel + log_offset)`` where the STFT uses a periodic Hann window
    of ``frame_length`` samples, a hop of ``frame_step`` samples and an FFT of ``fft_length``
    points, and ``W_mel`` is ``tf.signal.linear_to_mel_weight_matrix`` (HTK mel scale,
    triangular filters). The defaults (25 ms window, 10 ms hop at 16 kHz, 64 bands) are the
    common speech / audio-event settings.

    The computation is always in float32 (half-precision input is upcast), so the function can
    sit in a mixed-precision model.

    Args:
        waveform: float tensor ``(..., T)`` of samples in ``[-1, 1]``; typically ``(N, T)``.
        sample_rate: samples per second of ``waveform``.
        frame_length: window length in samples.
        frame_step: hop length in samples.
        fft_length: FFT size (>= ``frame_length``); gives ``fft_length // 2 + 1`` linear bins.
        num_mel_bins: number of mel bands.
        lower_edge_hertz: lowest frequency of the filter bank.
        upper_edge_hertz: highest frequency; ``None`` means ``sample_rate / 2``.
        log_offset: added before the log so silence gives ``log(log_offset)``, not ``-inf``.
        pad_end: zero-pad the end so every sample lands in a frame (``ceil(T / frame_step)``
            frames); ``False`` keeps only whole frames.

    Returns:
        float32 tensor ``(..., frames, num_mel_bins)``.

    Raises:
        ValueError: for inconsistent settings, a non-float waveform or a rank-0 waveform.

    Example:
        >>> import numpy as np
        >>> x = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype("float32")
        >>> log_mel_spectrogram(x[None, :]).shape
        TensorShape([1, 100, 64])
    """
    upper = validate_log_mel_args(
        sample_rate, frame_length, frame_step, fft_length, num_mel_bins, lower_edge_hertz, upper_edge_hertz, log_offset
    )
    waveform = tf.convert_to_tensor(waveform)
    if not waveform.dtype.is_floating:
        raise ValueError(
            "`waveform` must be a float tensor of samples in [-1, 1] (decode integer PCM with "
            f"`decode_wav` first). Received dtype: {waveform.dtype.name}"
        )
    if waveform.shape.rank is not None and waveform.shape.rank < 1:
        raise ValueError(f"`waveform` must have shape (..., T); got a scalar of shape {waveform.shape}.")
    waveform = tf.cast(waveform, tf.float32)
    with tf.name_scope("log_mel_spectrogram"):
        stft = tf.signal.stft(
            waveform,
            frame_length=frame_length,
            frame_step=frame_step,
            fft_length=fft_length,
            window_fn=tf.signal.hann_window,
            pad_end=pad_end,
        )
        magnitude = tf.abs(stft)
        mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=num_mel_bins,
            num_spectrogram_bins=fft_length // 2 + 1,
            sample_rate=sample_rate,
            lower_edge_hertz=float(lower_edge_hertz),
            upper_edge_hertz=upper,
            dtype=tf.float32,
        )
        mel = tf.tensordot(magnitude, mel_matrix, axes=1)
        mel = tf.ensure_shape(mel, magnitude.shape[:-1].concatenate([num_mel_bins]))
        return tf.math.log(mel + log_offset)
