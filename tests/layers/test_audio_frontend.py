"""Core-TF audio front end (tf_mmcl/data/audio.py) and AudioEncoder."""

import os
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.layer_test_utils import (
    functional_model,
    run_fit_test,
    run_precision_test,
    run_saving_test,
    run_serialization_test,
    run_shape_test,
)
from tf_mmcl.data.audio import decode_wav, log_mel_spectrogram, num_frames, tfio_available
from tf_mmcl.layers import AudioEncoder

SMALL_FRONT_END = {"sample_rate": 8000, "frame_length": 200, "frame_step": 80, "fft_length": 256, "num_mel_bins": 16}
SMALL_ENCODER = dict(SMALL_FRONT_END, filters=(4, 8), output_dim=3)
PY_FUNC_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def _signal(n=3, t=4000, rate=8000, seed=0):
    rng = np.random.default_rng(seed)
    time = np.arange(t) / rate
    tones = np.sin(2 * np.pi * np.array([[440.0], [1000.0], [2500.0]])[:n] * time)
    return (0.5 * tones + 0.1 * rng.normal(size=(n, t))).astype("float32")


# ----------------------------------------------------------------- numpy reference front end


def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def _numpy_mel_matrix(num_mel_bins, num_spectrogram_bins, sample_rate, lower, upper):
    """Triangular HTK mel filters over the linear bins, DC bin zeroed (as tf.signal)."""
    freqs = np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins)[1:]
    mels = _hz_to_mel(freqs)[:, None]
    edges = np.linspace(_hz_to_mel(lower), _hz_to_mel(upper), num_mel_bins + 2)
    lo, center, hi = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    weights = np.maximum(0.0, np.minimum((mels - lo) / (center - lo), (hi - mels) / (hi - center)))
    return np.pad(weights, [[1, 0], [0, 0]])


def _numpy_log_mel(
    x,
    sample_rate,
    frame_length,
    frame_step,
    fft_length,
    num_mel_bins,
    lower_edge_hertz=20.0,
    upper_edge_hertz=None,
    log_offset=1e-6,
    pad_end=True,
):
    x = np.asarray(x, np.float64)
    t = x.shape[-1]
    frames = num_frames(t, frame_length, frame_step, pad_end)
    padded = np.zeros(x.shape[:-1] + (max(t, (frames - 1) * frame_step + frame_length),))
    padded[..., :t] = x
    n = np.arange(frame_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / frame_length)  # periodic Hann
    framed = np.stack([padded[..., i * frame_step : i * frame_step + frame_length] for i in range(frames)], axis=-2)
    magnitude = np.abs(np.fft.rfft(framed * window, n=fft_length, axis=-1))
    upper = sample_rate / 2.0 if upper_edge_hertz is None else upper_edge_hertz
    mel = magnitude @ _numpy_mel_matrix(num_mel_bins, fft_length // 2 + 1, sample_rate, lower_edge_hertz, upper)
    return np.log(mel + log_offset)


def test_numpy_mel_matrix_matches_tf():
    tf_matrix = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 20.0, 8000.0).numpy()
    np.testing.assert_allclose(
        tf_matrix, _numpy_mel_matrix(64, 257, 16000, 20.0, 8000.0), atol=5e-5
    )  # tf.signal builds the filters in float32


@pytest.mark.parametrize("t, pad_end", [(4000, True), (4037, True), (4037, False), (150, True)])
def test_log_mel_matches_numpy_reference(t, pad_end):
    x = _signal(t=t)
    got = log_mel_spectrogram(x, **SMALL_FRONT_END, pad_end=pad_end).numpy()
    ref = _numpy_log_mel(x, **SMALL_FRONT_END, pad_end=pad_end)
    assert got.shape == ref.shape == (3, num_frames(t, 200, 80, pad_end), 16)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_log_mel_defaults_match_numpy_reference():
    x = _signal(n=2, t=16000, rate=16000)
    got = log_mel_spectrogram(x).numpy()
    assert got.shape == (2, 100, 64)
    ref = _numpy_log_mel(x, 16000, 400, 160, 512, 64)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_log_mel_options_and_silence():
    x = _signal()
    got = log_mel_spectrogram(
        x, **SMALL_FRONT_END, lower_edge_hertz=100.0, upper_edge_hertz=3000.0, log_offset=1e-3
    ).numpy()
    ref = _numpy_log_mel(x, **SMALL_FRONT_END, lower_edge_hertz=100.0, upper_edge_hertz=3000.0, log_offset=1e-3)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    silence = log_mel_spectrogram(np.zeros((1, 800), "float32"), **SMALL_FRONT_END).numpy()
    np.testing.assert_allclose(silence, np.log(1e-6), rtol=1e-6)
    # Single waveform (rank 1) and half-precision input.
    assert log_mel_spectrogram(x[0], **SMALL_FRONT_END).shape == (50, 16)
    half = log_mel_spectrogram(tf.constant(x, tf.float16), **SMALL_FRONT_END)
    assert half.dtype == tf.float32


def _op_types(graph_def):
    types_ = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types_ |= {node.op for node in function.node_def}
    return types_


def test_log_mel_traces_with_dynamic_shape_and_core_ops_only():
    fn = tf.function(
        lambda x: log_mel_spectrogram(x, **SMALL_FRONT_END), input_signature=[tf.TensorSpec([None, None], tf.float32)]
    )
    concrete = fn.get_concrete_function()
    assert concrete.structured_outputs.shape.as_list() == [None, None, 16]
    op_types = _op_types(concrete.graph.as_graph_def())
    assert "RFFT" in op_types
    assert not op_types & PY_FUNC_OPS
    missing = sorted(op for op in op_types if not hasattr(tf.raw_ops, op))
    assert not missing, missing
    x = _signal(t=1234)
    np.testing.assert_allclose(fn(x).numpy(), log_mel_spectrogram(x, **SMALL_FRONT_END).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fft_length": 128}, "fft_length"),
        ({"upper_edge_hertz": 5000.0}, "upper_edge_hertz"),
        ({"lower_edge_hertz": 4000.0}, "lower_edge_hertz"),
        ({"lower_edge_hertz": -1.0}, "lower_edge_hertz"),
        ({"num_mel_bins": 0}, "num_mel_bins"),
        ({"frame_step": 0}, "frame_step"),
        ({"sample_rate": 8000.5}, "sample_rate"),
        ({"log_offset": 0.0}, "log_offset"),
    ],
)
def test_log_mel_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        log_mel_spectrogram(_signal(), **dict(SMALL_FRONT_END, **kwargs))


def test_log_mel_bad_waveforms():
    with pytest.raises(ValueError, match="float"):
        log_mel_spectrogram(np.zeros((2, 800), "int16"), **SMALL_FRONT_END)
    with pytest.raises(ValueError, match="scalar"):
        log_mel_spectrogram(np.float32(1.0), **SMALL_FRONT_END)


# ----------------------------------------------------------------------------- decode_wav


def test_decode_wav_mono_and_rate():
    stereo = np.stack([np.linspace(-0.5, 0.5, 800), np.full(800, 0.25)], axis=1).astype("float32")
    contents = tf.audio.encode_wav(stereo, 8000)
    waveform, rate = decode_wav(contents, expected_sample_rate=8000)
    assert waveform.dtype == tf.float32 and waveform.shape == (800,)
    assert int(rate) == 8000
    np.testing.assert_allclose(waveform.numpy(), stereo.mean(axis=1), atol=1 / 2**14)
    cropped, _ = decode_wav(contents, desired_samples=500)
    assert cropped.shape == (500,)
    padded, _ = decode_wav(contents.numpy(), desired_samples=1000)
    np.testing.assert_array_equal(padded.numpy()[800:], 0.0)


def test_decode_wav_rate_mismatch():
    contents = tf.audio.encode_wav(np.zeros((100, 1), "float32"), 22050)
    with pytest.raises(ValueError, match="22050 Hz but 16000 Hz"):
        decode_wav(contents, expected_sample_rate=16000)
    with pytest.raises(ValueError, match="expected_sample_rate"):
        decode_wav(contents, expected_sample_rate=0)
    graph_fn = tf.function(lambda c: decode_wav(c, expected_sample_rate=16000)[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="16000"):
        graph_fn(contents)
    ok = tf.function(lambda c: decode_wav(c, expected_sample_rate=22050)[0])
    assert ok(contents).shape == (100,)


# ----------------------------------------------------------------------------- tfio probe


def test_tfio_probe_false_without_tensorflow_io(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)  # makes the import fail
    tfio_available.cache_clear()
    try:
        assert tfio_available() is False
    finally:
        tfio_available.cache_clear()


def _fake_tfio(resample):
    module = types.ModuleType("tensorflow_io")
    module.audio = types.SimpleNamespace(resample=resample)
    return module


def test_tfio_probe_false_when_native_ops_broken(monkeypatch):
    def broken(*args, **kwargs):
        raise NotImplementedError("unable to open file: libtensorflow_io.so")

    monkeypatch.setitem(sys.modules, "tensorflow_io", _fake_tfio(broken))
    tfio_available.cache_clear()
    try:
        assert tfio_available() is False
    finally:
        tfio_available.cache_clear()


def test_tfio_probe_true_when_native_ops_run(monkeypatch):
    def works(x, rate_in, rate_out):
        return x[:: rate_in // rate_out]

    monkeypatch.setitem(sys.modules, "tensorflow_io", _fake_tfio(works))
    tfio_available.cache_clear()
    try:
        assert tfio_available() is True
    finally:
        tfio_available.cache_clear()


def test_tfio_probe_matches_environment():
    tfio_available.cache_clear()
    try:
        import tensorflow_io  # noqa: F401
    except ImportError:
        assert tfio_available() is False  # the state of this environment
    else:
        assert isinstance(tfio_available(), bool)


# ----------------------------------------------------------------------------- AudioEncoder


def test_audio_encoder_waveform_equals_log_mel_path():
    x = _signal()
    wave_encoder = AudioEncoder(**SMALL_ENCODER)
    mel_encoder = AudioEncoder(**SMALL_ENCODER, input_type="log_mel")
    out = run_shape_test(wave_encoder, x, (3, 3))
    mel = log_mel_spectrogram(x, **SMALL_FRONT_END).numpy()
    assert tuple(wave_encoder.spectrogram_shape(x.shape)) == mel.shape
    mel_encoder.build(mel.shape)
    mel_encoder.set_weights(wave_encoder.get_weights())
    np.testing.assert_allclose(mel_encoder(mel).numpy(), out.numpy(), atol=1e-5)
    run_shape_test(mel_encoder, mel, (3, 3))


def test_audio_encoder_config_and_precision():
    x = _signal()
    encoder = AudioEncoder(
        **SMALL_ENCODER,
        lower_edge_hertz=50.0,
        upper_edge_hertz=3500.0,
        normalization="group",
        norm_groups=2,
        pooling="max",
        dropout=0.1,
    )
    run_serialization_test(encoder, x)
    run_precision_test(AudioEncoder, SMALL_ENCODER, x)
    mel = log_mel_spectrogram(x, **SMALL_FRONT_END).numpy()
    run_precision_test(AudioEncoder, dict(SMALL_ENCODER, input_type="log_mel"), mel)


def test_audio_encoder_front_end_stays_float32_under_mixed_precision():
    x = _signal()
    reference = log_mel_spectrogram(x, **SMALL_FRONT_END).numpy()
    encoder = AudioEncoder(**SMALL_ENCODER, dtype="mixed_float16")
    assert encoder.input_dtype == "float32"
    np.testing.assert_allclose(encoder.log_mel(x).numpy(), reference, atol=1e-5)
    assert AudioEncoder(**SMALL_ENCODER, input_type="log_mel", dtype="mixed_float16").input_dtype == "float16"


def test_audio_encoder_fit_and_save(tmp_path):
    x = _signal()
    model = functional_model(AudioEncoder(**SMALL_ENCODER), x)
    run_fit_test(model, x, np.ones((3, 3), "float32"))
    run_saving_test(model, x, tmp_path, AudioEncoder, atol=1e-6)


def test_audio_encoder_exports_saved_model_with_core_ops(tmp_path):
    x = _signal(t=2000)
    inp = keras.Input((None,), dtype="float32")
    model = keras.Model(inp, AudioEncoder(**SMALL_ENCODER, name="audio")(inp))
    expected = model(x, training=False).numpy()
    path = os.path.join(str(tmp_path), "export")
    model.export(path, format="tf_saved_model", verbose=False)

    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    op_types = set()
    for meta_graph in proto.meta_graphs:
        op_types |= _op_types(meta_graph.graph_def)
    assert "RFFT" in op_types
    assert not op_types & PY_FUNC_OPS
    missing = sorted(op for op in op_types if not hasattr(tf.raw_ops, op))
    assert not missing, missing

    reloaded = tf.saved_model.load(path)
    serve = reloaded.signatures["serving_default"]
    (out,) = serve(tf.constant(x)).values()
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    # A different length goes through the same signature.
    (longer,) = serve(tf.constant(_signal(t=3000))).values()
    assert longer.shape == (3, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_type": "spectrogram"}, "input_type"),
        ({"fft_length": 100}, "fft_length"),
        ({"upper_edge_hertz": 9000.0}, "upper_edge_hertz"),
        ({"filters": ()}, "filters"),
        ({"pooling": "sum"}, "pooling"),
    ],
)
def test_audio_encoder_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioEncoder(**dict(SMALL_ENCODER, **kwargs))


def test_audio_encoder_bad_inputs():
    with pytest.raises(ValueError, match="waveforms"):
        AudioEncoder(**SMALL_ENCODER)(np.zeros((2, 50, 16), "float32"))
    with pytest.raises(ValueError, match="log-mel"):
        AudioEncoder(**SMALL_ENCODER, input_type="log_mel")(np.zeros((2, 800), "float32"))
    with pytest.raises(ValueError, match="num_mel_bins=16"):
        AudioEncoder(**SMALL_ENCODER, input_type="log_mel")(np.zeros((2, 50, 20), "float32"))
