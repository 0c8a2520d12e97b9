"""Spoken-number clips for ``m3_digits``: espeak-ng synthesis, resampling, clip libraries.

A *clip library* is a directory of 16 kHz mono 16-bit PCM WAV files plus ``manifest.json``,
whose ``clips`` list has one record per file::

    {"clip_id": 0, "language": "en", "spoken": 13, "voice": "en+f3", "speed": 180,
     "pitch": 45, "file": "en_000.wav"}

Each clip is espeak-ng reading the numeral ``spoken`` (by default a number 10-19, so never a
single digit, drawn independently of any label) in its language, with a random voice variant,
speed (words per minute) and pitch. The clip therefore tells the language and nothing about the
digit of the example it is paired with.

Rendering (:func:`render_clip_library`) runs ``espeak-ng -w`` (22,050 Hz output), resamples to
16 kHz (``scipy.signal.resample_poly``, or ``tfio.audio.resample`` with ``resampler="tfio"``
where tensorflow-io's ops load), trims leading and trailing silence and optionally cuts to a
maximum duration. Reading (:func:`load_clip_library`) decodes every file with the core-TF
:func:`tf_mmcl.data.audio.decode_wav` and requires 16 kHz.

Regenerate the cached test sample (needs espeak-ng and scipy)::

    python -m tf_mmcl.datasets.m3_digits --config tiny --out tests/datasets/data/m3_digits_clips
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import wave

import numpy as np

from tf_mmcl.datasets.m3_digits.languages import DIGIT_NAMES

__all__ = [
    "ClipPlan",
    "EspeakNotFoundError",
    "SAMPLE_RATE",
    "ESPEAK_SAMPLE_RATE",
    "espeak_available",
    "load_clip_library",
    "plan_clips",
    "read_wav_int16",
    "render_clip_library",
    "resample",
    "synthesize",
    "trim_silence",
    "write_wav_int16",
]

SAMPLE_RATE = 16000
ESPEAK_SAMPLE_RATE = 22050
MANIFEST = "manifest.json"
_APT_HINT = (
    "Install the Debian/Ubuntu package: `apt-get install -y espeak-ng`, or build from "
    "pre-rendered clips with clip_source=<clip library directory> (see docs/m3_digits.md)."
)


class EspeakNotFoundError(RuntimeError):
    """Raised when the ``espeak-ng`` executable is needed but not found."""


def espeak_available(binary="espeak-ng"):
    """True if the ``espeak-ng`` executable is on ``PATH`` (or ``binary`` is an executable path)."""
    return shutil.which(binary) is not None


@dataclasses.dataclass(frozen=True)
class ClipPlan:
    """What one clip says and how: the espeak-ng arguments and the clip's identity."""

    clip_id: int
    language: str
    spoken: int
    voice: str
    speed: int
    pitch: int

    @property
    def file(self):
        """File name of the clip inside a library."""
        return f"{self.language}_{self.clip_id:04d}.wav"


def plan_clips(
    languages,
    clips_per_language,
    *,
    spoken_numbers=tuple(range(10, 20)),
    variants=("m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "klatt", "croak"),
    speed_range=(140, 220),
    pitch_range=(20, 80),
    seed=0,
):
    """Deterministic plan of a clip library: ``clips_per_language`` clips per language.

    Clip ids run ``0 .. len(languages) * clips_per_language - 1``, language by language. Each
    clip draws its spoken number, voice variant, speed and pitch independently from a generator
    seeded by ``(seed, language position, clip position)``, so adding languages or clips leaves
    the existing ones unchanged.

    Args:
        languages: language codes (keys of ``DIGIT_NAMES``, espeak-ng voices).
        clips_per_language: clips per language (>= 1).
        spoken_numbers: the numbers a clip may say.
        variants: espeak-ng voice variants (``<language>+<variant>``); ``""`` is the default voice.
        speed_range: ``(low, high)`` words per minute, ``high`` inclusive.
        pitch_range: ``(low, high)`` espeak-ng pitch 0-99, ``high`` inclusive.
        seed: int.

    Returns:
        list of :class:`ClipPlan`.

    Raises:
        ValueError: for unknown languages, empty choices or inverted ranges.
    """
    unknown = [lang for lang in languages if lang not in DIGIT_NAMES]
    if unknown:
        raise ValueError(f"Unknown languages {unknown}; known: {sorted(DIGIT_NAMES)}.")
    if int(clips_per_language) < 1:
        raise ValueError(f"`clips_per_language` must be >= 1. Received: {clips_per_language}")
    if not spoken_numbers or not variants:
        raise ValueError("`spoken_numbers` and `variants` must be non-empty.")
    for name, (lo, hi) in (("speed_range", speed_range), ("pitch_range", pitch_range)):
        if lo > hi:
            raise ValueError(f"`{name}` must be (low, high) with low <= high. Received: {(lo, hi)}")
    plans = []
    for li, lang in enumerate(languages):
        for k in range(int(clips_per_language)):
            rng = np.random.default_rng([int(seed), li, k])
            variant = str(variants[rng.integers(len(variants))])
            plans.append(
                ClipPlan(
                    clip_id=li * int(clips_per_language) + k,
                    language=lang,
                    spoken=int(spoken_numbers[rng.integers(len(spoken_numbers))]),
                    voice=f"{lang}+{variant}" if variant else lang,
                    speed=int(rng.integers(speed_range[0], speed_range[1] + 1)),
                    pitch=int(rng.integers(pitch_range[0], pitch_range[1] + 1)),
                )
            )
    return plans


def write_wav_int16(path, samples, sample_rate=SAMPLE_RATE):
    """Writes mono 16-bit PCM ``samples`` (int16 array) as a WAV file."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"`samples` must be a 1-D int16 array; got {samples.dtype} {samples.shape}.")
    with wave.open(os.fspath(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(samples.astype("<i2").tobytes())


def read_wav_int16(path):
    """Reads a mono 16-bit PCM WAV file; returns ``(int16 samples, sample_rate)``.

    Raises:
        ValueError: for a file that is not mono 16-bit PCM.
    """
    with wave.open(os.fspath(path), "rb") as f:
        if f.getnchannels() != 1 or f.getsampwidth() != 2:
            raise ValueError(
                f"{path}: expected mono 16-bit PCM, got {f.getnchannels()} channel(s) of {8 * f.getsampwidth()} bits."
            )
        rate = f.getframerate()
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.int16)
    return data, rate


def resample(samples, rate_in, rate_out=SAMPLE_RATE, resampler="scipy"):
    """Resamples int16 mono audio; returns int16.

    Args:
        samples: int16 array ``(T,)``.
        rate_in: input rate in Hz.
        rate_out: output rate in Hz.
        resampler: ``"scipy"`` (polyphase ``scipy.signal.resample_poly``, default) or ``"tfio"``
            (``tfio.audio.resample``; only where tensorflow-io's compiled ops load).

    Returns:
        int16 array ``(round(T * rate_out / rate_in),)`` (``samples`` itself if the rates agree).

    Raises:
        ImportError: if scipy is missing for ``"scipy"``.
        RuntimeError: for ``"tfio"`` where tensorflow-io's ops do not load.
        ValueError: for another ``resampler``.
    """
    samples = np.asarray(samples, np.int16)
    if int(rate_in) == int(rate_out):
        return samples
    x = samples.astype(np.float64) / 32768.0
    if resampler == "scipy":
        try:
            from scipy.signal import resample_poly  # noqa: PLC0415 (only needed when rendering)
        except ImportError as e:
            raise ImportError(
                "Resampling espeak-ng output needs scipy: `pip install scipy` "
                "(or pass resampler='tfio' where tensorflow-io works)."
            ) from e
        g = np.gcd(int(rate_in), int(rate_out))
        y = resample_poly(x, int(rate_out) // g, int(rate_in) // g)
    elif resampler == "tfio":
        from tf_mmcl.data.audio import tfio_available  # noqa: PLC0415

        if not tfio_available():
            raise RuntimeError(
                "resampler='tfio' needs a tensorflow-io whose compiled ops load on "
                "this TensorFlow (tf_mmcl.data.audio.tfio_available() is False); "
                "use resampler='scipy'."
            )
        import tensorflow as tf  # noqa: PLC0415
        import tensorflow_io as tfio  # noqa: PLC0415

        y = tfio.audio.resample(
            tf.constant(x[:, None], tf.float32), rate_in=int(rate_in), rate_out=int(rate_out)
        ).numpy()[:, 0]
    else:
        raise ValueError(f"`resampler` must be 'scipy' or 'tfio'. Received: {resampler!r}")
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def trim_silence(samples, threshold=0.02, margin=160):
    """Drops leading and trailing samples quieter than ``threshold`` of the peak.

    Args:
        samples: int16 array ``(T,)``.
        threshold: fraction of the absolute peak below which a sample counts as silence.
        margin: samples kept on each side of the loud part (160 = 10 ms at 16 kHz).

    Returns:
        int16 array, a slice of ``samples``.

    Raises:
        ValueError: for an all-silent clip.
    """
    samples = np.asarray(samples, np.int16)
    mag = np.abs(samples.astype(np.int32))
    peak = int(mag.max()) if mag.size else 0
    if peak == 0:
        raise ValueError("The clip is silent (all samples are zero).")
    loud = np.nonzero(mag >= threshold * peak)[0]
    return samples[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def synthesize(plan, *, binary="espeak-ng", resampler="scipy", max_seconds=None):
    """Renders one :class:`ClipPlan` with espeak-ng: 16 kHz int16 samples, silence trimmed.

    Args:
        plan: a :class:`ClipPlan`.
        binary: the espeak-ng executable.
        resampler: see :func:`resample`.
        max_seconds: if given, cut the clip to at most this duration.

    Returns:
        int16 array ``(T,)`` at :data:`SAMPLE_RATE`.

    Raises:
        EspeakNotFoundError: when espeak-ng is not installed (the message names the apt package).
        RuntimeError: when espeak-ng fails or writes no audio (e.g. an unknown voice).
    """
    exe = shutil.which(binary)
    if exe is None:
        raise EspeakNotFoundError(
            f"m3_digits needs the `{binary}` executable to synthesize speech but it is not on PATH. {_APT_HINT}"
        )
    with tempfile.TemporaryDirectory(prefix="m3_digits_") as tmp:
        path = os.path.join(tmp, "clip.wav")
        cmd = [exe, "-v", plan.voice, "-s", str(plan.speed), "-p", str(plan.pitch), "-w", path, str(plan.spoken)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) <= 44:
            raise RuntimeError(
                f"espeak-ng failed for {plan} (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip() or 'no audio written'}"
            )
        if "Failed to read voice" in proc.stderr or "Unknown voice" in proc.stderr:
            raise RuntimeError(f"espeak-ng does not know voice {plan.voice!r}: {proc.stderr.strip()}")
        samples, rate = read_wav_int16(path)
    samples = trim_silence(resample(samples, rate, SAMPLE_RATE, resampler=resampler))
    if max_seconds is not None:
        samples = samples[: int(round(max_seconds * SAMPLE_RATE))]
    return samples


def render_clip_library(out_dir, plans, *, binary="espeak-ng", resampler="scipy", max_seconds=None):
    """Synthesizes every plan into ``out_dir`` (WAV files + ``manifest.json``).

    Args:
        out_dir: directory (created if needed).
        plans: list of :class:`ClipPlan` (see :func:`plan_clips`).
        binary, resampler, max_seconds: see :func:`synthesize`.

    Returns:
        The manifest dict that was written.

    Raises:
        EspeakNotFoundError: when espeak-ng is not installed.
    """
    if not espeak_available(binary):
        raise EspeakNotFoundError(
            f"m3_digits needs the `{binary}` executable to synthesize speech but it is not on PATH. {_APT_HINT}"
        )
    os.makedirs(out_dir, exist_ok=True)
    version = subprocess.run(
        [shutil.which(binary), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    records = []
    for plan in plans:
        write_wav_int16(
            os.path.join(out_dir, plan.file),
            synthesize(plan, binary=binary, resampler=resampler, max_seconds=max_seconds),
        )
        records.append({**dataclasses.asdict(plan), "file": plan.file})
    manifest = {
        "sample_rate": SAMPLE_RATE,
        "espeak_ng": version,
        "resampler": resampler,
        "max_seconds": max_seconds,
        "clips": records,
    }
    with open(os.path.join(out_dir, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    return manifest


def load_clip_library(directory):
    """Reads a clip library with the core-TF ``decode_wav`` (16 kHz required).

    Args:
        directory: a directory holding ``manifest.json`` and the WAV files it names.

    Returns:
        ``(records, waveforms)``: the manifest's clip records and, per record, a float32
        waveform in ``[-1, 1]`` (``int16 / 32768``).

    Raises:
        FileNotFoundError: when the directory or its manifest is missing.
        ValueError: for a malformed manifest or a file that is not 16 kHz.
    """
    from tf_mmcl.data.audio import decode_wav  # noqa: PLC0415 (imports TensorFlow)

    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No clip library at {directory!r}: {MANIFEST} is missing. Render one "
            "with `python -m tf_mmcl.datasets.m3_digits --out DIR` (needs "
            "espeak-ng) or pass clip_source='espeak'."
        )
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    records = manifest.get("clips")
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a non-empty 'clips' list.")
    waveforms = []
    for rec in records:
        missing = {"clip_id", "language", "spoken", "file"} - set(rec)
        if missing:
            raise ValueError(f"{path}: clip record {rec} lacks {sorted(missing)}.")
        with open(os.path.join(os.fspath(directory), rec["file"]), "rb") as f:
            contents = f.read()
        try:
            waveform, _ = decode_wav(contents, expected_sample_rate=SAMPLE_RATE)
        except ValueError as e:
            raise ValueError(f"{rec['file']}: {e}") from e
        waveforms.append(waveform.numpy())
    ids = [int(r["clip_id"]) for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: clip ids are not unique.")
    return records, waveforms
