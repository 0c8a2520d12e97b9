"""Core-TensorFlow audio front end: WAV decoding and log-mel spectrograms.

Everything here is built from core TensorFlow ops (``tf.audio``, ``tf.signal``, ``tf.math``),
so it runs inside ``tf.data`` pipelines, inside Keras layers and inside an exported SavedModel
that TF Serving loads without any custom op library.

``tensorflow-io`` is deliberately not used: release 0.37.1 imports on TF 2.21 but every op
backed by its compiled library (``resample``, ``decode_flac``, ...) raises
``NotImplementedError`` there. :func:`tfio_available` tells whether a working build is present,
for code that wants to use it as an optional extra.

The log-mel recipe is the one in the ``tf.signal`` guide: a Hann-windowed STFT, the magnitude
spectrum, a triangular mel filter bank (``tf.signal.linear_to_mel_weight_matrix``, HTK mel
scale) and ``log(mel + log_offset)``.
"""

from __future__ import annotations

import functools
import warnings

import tensorflow as tf

from tf_mmcl.ops.audio import log_mel_spectrogram, num_frames, validate_log_mel_args  # noqa: F401 (re-exported)

__all__ = ["log_mel_spectrogram", "num_frames", "decode_wav", "tfio_available"]


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def decode_wav(contents, expected_sample_rate=None, desired_samples=-1):
    """Decodes 16-bit PCM WAV bytes to a mono float32 waveform and its sample rate.

    Multi-channel audio is averaged to mono. There is no resampling (core TF has no resampling
    op): pass ``expected_sample_rate`` to fail loudly when a file has a different rate, and
    resample such data once when the dataset is built.

    Args:
        contents: scalar string tensor (or ``bytes``) holding a WAV file.
        expected_sample_rate: if given, the file's rate must equal it. Eagerly this raises
            ``ValueError``; inside ``tf.function`` / ``tf.data`` a graph assertion raises
            ``tf.errors.InvalidArgumentError`` when the op runs.
        desired_samples: if ``>= 0``, crop or zero-pad to this many samples.

    Returns:
        ``(waveform, sample_rate)``: float32 ``(T,)`` in ``[-1, 1]`` and an int32 scalar.

    Raises:
        ValueError: eagerly, when the sample rate differs from ``expected_sample_rate``, or for
            a non-positive ``expected_sample_rate``.

    Example:
        >>> import tensorflow as tf
        >>> wav = tf.audio.encode_wav(tf.zeros([800, 2]), 8000)
        >>> x, rate = decode_wav(wav, expected_sample_rate=8000)
        >>> x.shape, int(rate)
        (TensorShape([800]), 8000)
    """
    if expected_sample_rate is not None:
        _check_positive_int(expected_sample_rate, "expected_sample_rate")
    audio, sample_rate = tf.audio.decode_wav(contents, desired_samples=desired_samples)
    waveform = tf.reduce_mean(audio, axis=-1)
    if expected_sample_rate is not None:
        if tf.executing_eagerly():
            if int(sample_rate) != expected_sample_rate:
                raise ValueError(
                    f"WAV sample rate is {int(sample_rate)} Hz but {expected_sample_rate} Hz "
                    "is expected; resample the data when building the dataset (no resampling "
                    "is done here)."
                )
        else:
            check = tf.debugging.assert_equal(
                sample_rate,
                tf.constant(expected_sample_rate, tf.int32),
                message=f"WAV sample rate differs from the expected {expected_sample_rate} Hz; "
                "resample the data when building the dataset.",
            )
            with tf.control_dependencies([check]):
                waveform = tf.identity(waveform)
    return waveform, sample_rate


@functools.cache
def tfio_available():
    """True only if ``tensorflow_io`` imports *and* its compiled ops run.

    Importing is not enough: tensorflow-io 0.37.1 imports on TF 2.21 (with warnings) but its
    native ops raise ``NotImplementedError``. The probe therefore runs one native op
    (``tfio.audio.resample`` on a tiny tensor). The result is cached;
    ``tfio_available.cache_clear()`` re-probes.

    Returns:
        bool.

    Example:
        >>> isinstance(tfio_available(), bool)
        True
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow_io as tfio  # noqa: PLC0415 (optional dependency)

            out = tfio.audio.resample(tf.zeros([32, 1], tf.float32), rate_in=16000, rate_out=8000)
            tf.convert_to_tensor(out).numpy()
        return True
    except Exception:  # noqa: BLE001 -- ImportError, NotImplementedError, op/load errors alike
        return False
