"""Corruption transforms usable on any batched dataset of modality dicts.

Each transform is a callable ``transform(batch, seed=None) -> batch`` on a dict whose values
have a leading batch axis (a ``tf.data`` batch or a whole numpy split). Randomness is stateless:
``seed`` is a shape-(2,) integer tensor (``make_pipeline`` passes one derived from its seed and
the batch index); without it the transform's own ``seed`` is used, so one call is reproducible.

* :class:`GaussianNoise`: additive white noise at a target SNR (dB) per example.
* :class:`ModalityDropout`: marks a modality missing (``"<name>_mask"`` = False) at a rate.
* :class:`Misalign`: replaces a fraction of one modality's rows with other rows of the batch.

``transform.apply(ds)`` maps a transform over a batched dataset with a per-batch seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_mmcl.data.pipeline import mask_key

__all__ = ["GaussianNoise", "ModalityDropout", "Misalign", "snr_db"]


def snr_db(clean, noisy, axis=None):
    """Measured signal-to-noise ratio ``10 log10(sum clean^2 / sum (noisy - clean)^2)`` in dB.

    Args:
        clean, noisy: arrays of the same shape.
        axis: reduce over these axes (default: all), e.g. ``axis=1`` for one SNR per row.

    Example:
        >>> import numpy as np
        >>> round(float(snr_db(np.ones(4), np.ones(4) * 1.1)), 3)
        20.0
    """
    clean = np.asarray(clean, np.float64)
    noise = np.asarray(noisy, np.float64) - clean
    return 10.0 * np.log10(np.sum(clean**2, axis=axis) / np.sum(noise**2, axis=axis))


def _as_seed(seed, default):
    if seed is None:
        return tf.constant([int(default), 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.cast(seed, tf.int64)


def _check_modality(batch, modality, who):
    if not isinstance(batch, dict):
        raise ValueError(f"{who} expects a dict of modalities, got {type(batch).__name__}.")
    if modality not in batch:
        raise ValueError(f"{who}: modality {modality!r} is not in the batch; keys are {sorted(batch)}.")
    x = tf.convert_to_tensor(batch[modality])
    if x.shape.rank is not None and x.shape.rank < 1:
        raise ValueError(f"{who}: {modality!r} needs a leading batch axis, got a scalar.")
    return x


def _check_seed_arg(seed, who):
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"{who}: seed must be an integer, got {seed!r}.")


class _Transform:
    def apply(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """Maps the transform over a *batched* dataset, one stateless seed per batch."""
        base = tf.constant(int(self.seed), tf.int64)
        return ds.enumerate().map(
            lambda i, b: self(b, seed=tf.stack([base, i])), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )


class GaussianNoise(_Transform):
    """Adds Gaussian noise to one modality at a target signal-to-noise ratio.

    For each example (row) the signal power P is the mean square of its values; the noise is
    ``N(0, P / 10^(snr_db / 10))`` per value, so every row's expected SNR is ``snr_db`` (the
    convention of the ConFu noise table: 10/15/20 dB). Rows whose mask is False are left alone.

    Args:
        modality: the modality to corrupt (float values).
        snr_db: target SNR in dB (any finite value; lower is noisier).
        seed: default seed of the noise draw.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(256, 64)).astype("float32")
        >>> y = GaussianNoise("a", snr_db=10.0)({"a": x})["a"].numpy()
        >>> bool(abs(snr_db(x, y) - 10.0) < 0.2)
        True
    """

    def __init__(self, modality: str, snr_db: float, seed: int = 0):
        snr = float(snr_db)
        if not np.isfinite(snr):
            raise ValueError(f"GaussianNoise: snr_db must be finite, got {snr_db!r}.")
        _check_seed_arg(seed, "GaussianNoise")
        self.modality, self.snr_db, self.seed = modality, snr, int(seed)

    def __call__(self, batch, seed=None):
        x = _check_modality(batch, self.modality, "GaussianNoise")
        if not x.dtype.is_floating:
            raise ValueError(
                f"GaussianNoise: {self.modality!r} must be floating point (got {x.dtype.name}); "
                "noise on token ids is meaningless."
            )
        out = dict(batch)
        xf = tf.cast(x, tf.float32)
        axes = list(range(1, xf.shape.rank))
        power = tf.reduce_mean(tf.square(xf), axis=axes, keepdims=True) if axes else tf.square(xf)
        std = tf.sqrt(power / (10.0 ** (self.snr_db / 10.0)))
        noise = tf.random.stateless_normal(tf.shape(xf), seed=_as_seed(seed, self.seed), dtype=tf.float32)
        noisy = xf + std * noise
        key = mask_key(self.modality)
        if key in batch:
            present = tf.cast(tf.convert_to_tensor(batch[key]), tf.bool)
            present = tf.reshape(present, tf.concat([tf.shape(present), tf.ones([len(axes)], tf.int32)], 0))
            noisy = tf.where(present, noisy, xf)
        out[self.modality] = tf.cast(noisy, x.dtype)
        return out


class ModalityDropout(_Transform):
    """Marks one modality missing for a random subset of rows.

    Each row is dropped independently with probability ``rate``: its ``"<modality>_mask"`` becomes
    False (an existing mask is AND-ed, so missing rows stay missing) and, unless
    ``fill_value=None``, its values are replaced by ``fill_value`` (default 0, the neutral input;
    the Symile-M3 convention of a training-set mean or a MISSING token is ``fill_value=<mean>`` /
    ``fill_value=<token id>``). ``mask=False`` fills the values without marking the rows missing:
    the objective then scores the filled input like any other (Symile-M3's "fill" convention).
    For Symile this matters: a masked row's absent factor is the fixed all-ones vector, which on
    m3_digits_missing kept the model on the pairwise (text-only) plateau where filling without a
    mask did not (docs/m3_digits.md).

    Args:
        modality: the modality to drop.
        rate: drop probability in [0, 1].
        fill_value: the value written into dropped rows (scalar or an array broadcastable to one
            row), or None to keep the values and only set the mask.
        seed: default seed of the draw.
        mask: write ``"<modality>_mask"`` (True, default) or only fill the values (False; needs a
            ``fill_value``).

    Example:
        >>> import numpy as np
        >>> out = ModalityDropout("a", rate=1.0)({"a": np.ones((3, 2), "float32")})
        >>> out["a_mask"].numpy().tolist(), float(out["a"].numpy().sum())
        ([False, False, False], 0.0)
    """

    def __init__(self, modality: str, rate: float, fill_value=0.0, seed: int = 0, mask: bool = True):
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"ModalityDropout: rate must be in [0, 1], got {rate}.")
        _check_seed_arg(seed, "ModalityDropout")
        if not isinstance(mask, (bool, np.bool_)):
            raise ValueError(f"ModalityDropout: mask must be True or False, got {mask!r}.")
        if not mask and fill_value is None:
            raise ValueError(
                "ModalityDropout: mask=False with fill_value=None would change nothing; pass the value that "
                "replaces a missing row (e.g. the training mean) or keep mask=True."
            )
        self.modality, self.rate, self.fill_value, self.seed = modality, rate, fill_value, int(seed)
        self.mask = bool(mask)

    def __call__(self, batch, seed=None):
        x = _check_modality(batch, self.modality, "ModalityDropout")
        out = dict(batch)
        n = tf.shape(x)[0]
        u = tf.random.stateless_uniform([n], seed=_as_seed(seed, self.seed))
        drop = u < self.rate
        key = mask_key(self.modality)
        present = tf.logical_not(drop)
        if key in batch:
            present = tf.logical_and(tf.cast(tf.convert_to_tensor(batch[key]), tf.bool), present)
        if self.mask:
            out[key] = present
        if self.fill_value is not None:
            fill = tf.cast(tf.convert_to_tensor(self.fill_value), x.dtype)
            fill = tf.broadcast_to(fill, tf.shape(x))
            rank = x.shape.rank
            d = tf.reshape(drop, tf.concat([[n], tf.ones([rank - 1], tf.int32)], 0))
            out[self.modality] = tf.where(d, fill, x)
        return out


class Misalign(_Transform):
    """Replaces a stated fraction of one modality's rows by rows of other examples.

    ``k = round(fraction * B)`` rows of the batch are chosen at random and rotated among
    themselves (row ``chosen[j]`` receives the value of ``chosen[j + 1]``, cyclically), so every
    chosen row comes from another example (misaligned but plausible, like the Gated Symile
    benchmark's swap) and the other rows are untouched. A single row cannot be moved, so
    ``k = 1`` is raised to 2 when the batch has two rows. The mask moves with the values.

    Args:
        modality: the modality to misalign.
        fraction: fraction of rows to misalign, in [0, 1].
        record_key: if set, a boolean ``(B,)`` entry under this key marks the moved rows.
        seed: default seed of the draw.

    Example:
        >>> import numpy as np
        >>> out = Misalign("a", 0.5, record_key="moved")({"a": np.arange(8, dtype="float32")})
        >>> int(out["moved"].numpy().sum()), int((out["a"].numpy() != np.arange(8)).sum())
        (4, 4)
    """

    def __init__(self, modality: str, fraction: float, record_key: str | None = None, seed: int = 0):
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"Misalign: fraction must be in [0, 1], got {fraction}.")
        _check_seed_arg(seed, "Misalign")
        self.modality, self.fraction, self.record_key, self.seed = modality, fraction, record_key, int(seed)

    def permutation(self, n, seed=None):
        """The gather indices (length ``n``) and the boolean moved-row mask for a batch of ``n``."""
        n = tf.convert_to_tensor(n, tf.int32)
        k = tf.cast(tf.round(self.fraction * tf.cast(n, tf.float32)), tf.int32)
        k = tf.where(tf.logical_and(tf.equal(k, 1), n >= 2), 2, k)
        k = tf.minimum(k, n)
        order = tf.argsort(tf.random.stateless_uniform([n], seed=_as_seed(seed, self.seed)))
        chosen = order[:k]
        source = tf.roll(chosen, shift=-1, axis=0)
        perm = tf.tensor_scatter_nd_update(tf.range(n), chosen[:, None], source)
        moved = tf.tensor_scatter_nd_update(tf.zeros([n], tf.bool), chosen[:, None], tf.fill([k], k >= 2))
        return perm, moved

    def __call__(self, batch, seed=None):
        x = _check_modality(batch, self.modality, "Misalign")
        out = dict(batch)
        perm, moved = self.permutation(tf.shape(x)[0], seed)
        out[self.modality] = tf.gather(x, perm)
        key = mask_key(self.modality)
        if key in batch:
            out[key] = tf.gather(tf.convert_to_tensor(batch[key]), perm)
        if self.record_key is not None:
            out[self.record_key] = moved
        return out
