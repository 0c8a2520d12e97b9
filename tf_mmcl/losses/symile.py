"""Symile: contrastive learning with the multilinear inner product (Saporta et al., 2024)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_mmcl.losses.base import ContrastiveLoss, as_logit_scale, checked_inputs, masked_mean, positive_int_or_none
from tf_mmcl.ops import mip
from tf_mmcl.ops.checks import PendingChecks
from tf_mmcl.ops.symile_logits import joint_streamed_logsumexps, shuffled_lse_unchecked

__all__ = ["symile_loss", "SymileLoss", "NEGATIVE_SAMPLING"]

NEGATIVE_SAMPLING = ("n", "n_squared")


def _check_permutations(permutations, m, n):
    perms = ops.convert_to_tensor(permutations)
    if "int" not in str(perms.dtype):
        raise ValueError(f"permutations must be an integer array (M, M-1, N), got dtype {perms.dtype}.")
    expected = (m, m - 1, n)
    shape = tuple(perms.shape)
    if len(shape) != 3 or any(e is not None and s is not None and s != e for s, e in zip(shape, expected)):
        raise ValueError(f"permutations must have shape (M, M-1, N) = {expected}, got {shape}.")
    if tf.executing_eagerly():
        arr = np.asarray(perms)
        if n is not None:
            if not np.array_equal(np.sort(arr, axis=-1), np.broadcast_to(np.arange(n), arr.shape)):
                raise ValueError(
                    "permutations: every (anchor, modality) row must be a permutation of range(N) "
                    "(each row index exactly once), e.g. rng.permutation(N) per row."
                )
    return ops.cast(perms, "int32")


def draw_permutations(m, n, seed):
    """(M, M-1, N) random permutations from a Keras RNG (int seed or ``SeedGenerator``).

    The negatives of ``negative_sampling="n"``: for anchor modality m, its M-1 other modalities
    are each shuffled by its own permutation of the N rows. Shared with the Gated Symile loss so
    both draw the same negatives from the same seed.
    """
    rows = []
    for _ in range(m * (m - 1)):
        rows.append(keras.random.shuffle(ops.arange(n, dtype="int32"), seed=seed))
    return ops.reshape(ops.stack(rows), (m, m - 1, n))


def symile_loss(
    representations,
    logit_scale,
    negative_sampling="n",
    permutations=None,
    seed=None,
    block_size=None,
    masks=None,
    check_finite=False,
    check_unit_norm=True,
):
    """The Symile objective, equal to the reference ``symile.Symile`` for every M >= 2.

    For each modality m as anchor, cross-entropy of ``logit_scale * MIP(anchor_i, candidate)``
    with the positive candidate (the aligned rows of the other modalities); the loss is the
    mean of the M anchor losses.

    * ``"n"``: each non-anchor modality's rows are shuffled by a permutation; the candidates of
      row i are row j of the shuffled product (j != i) plus the positive on the diagonal.
      O(N^2 d) per anchor. ``permutations[m, k]`` is the permutation of the k-th non-anchor
      modality (index order) for anchor m, as the reference draws them; without it a Keras RNG
      draws them from ``seed`` (an int gives the same draw every call, a
      ``keras.random.SeedGenerator`` a fresh one each step).
    * ``"n_squared"``: every tuple of non-anchor rows is a candidate (N^(M-1) per row). All M
      anchors' logits are entries of one tensor ``s * MIP(r_0[i], r_1[j], ...)``, so
      :func:`tf_mmcl.ops.symile_logits.joint_streamed_logsumexps` computes it once, in blocks,
      updating every anchor's running log-sum-exp from each block, with a streamed custom
      gradient: the same loss and gradients as the reference (2 N^M d FLOPs forward instead of
      the reference's 2 M N^M d) without its (N^(M-1), d) product. Peak memory about
      ``3 * b * N * max(N, d)`` float32 values for a block of b prefix tuples (block logits kept
      within 4 MiB by default) plus O(M N d) for inputs and gradients; the reference holds
      (N^(M-1), d) + (N, N^(M-1)) values per anchor (at N = 256, d = 256, M = 3: 64 MiB + 64 MiB,
      plus its list of N blocks and their gradients; ~0.9 GiB measured, ``docs/benchmarks.md``).
      Unlike the reference, M = 2 works (it is then one-directional InfoNCE per anchor).

    Missing modalities: a missing row's embedding is replaced by the neutral element of the
    multilinear product, the all-ones vector, so ``MIP`` reduces to the product of the present
    modalities; anchor m's loss averages only over rows where m is present.

    Args:
        representations: list of M >= 2 (N, d) L2-normalised embeddings.
        logit_scale: multiplier applied to the MIP scores (scalar).
        negative_sampling: ``"n"`` or ``"n_squared"``.
        permutations: optional int array (M, M-1, N) for ``"n"``.
        seed: int or ``keras.random.SeedGenerator`` for the ``"n"`` permutations.
        block_size: prefix tuples per block for ``"n_squared"`` (``None``: automatic).
        masks: optional list of M bool (N,) presence masks (``None`` entries: all present).
        check_finite: assert finiteness of every value inside ``tf.function`` too.
        check_unit_norm: refuse rows that are not L2-normalised (see
            :data:`tf_mmcl.ops.checks.UNIT_NORM_TOLERANCE`); ``False`` for deliberately
            unnormalised inputs (e.g. comparisons with reference code on raw vectors).

    Returns:
        Scalar float32 loss.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> r = [rng.normal(size=(8, 4)).astype("float32") for _ in range(3)]
        >>> r = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in r]  # L2-normalised rows
        >>> a = symile_loss(r, 2.0, "n_squared")
        >>> b = symile_loss(r, 2.0, "n_squared", block_size=3)
        >>> bool(abs(float(a) - float(b)) < 1e-5)
        True
    """
    if not isinstance(negative_sampling, str) or negative_sampling not in NEGATIVE_SAMPLING:
        raise ValueError(f"Unknown negative_sampling {negative_sampling!r}; expected one of {NEGATIVE_SAMPLING}.")
    positive_int_or_none(block_size, "block_size")
    reps, masks = checked_inputs(representations, masks, unit_norm=check_unit_norm, check_finite_values=check_finite)
    scale = as_logit_scale(logit_scale)
    m = len(reps)
    if masks is not None:
        reps = [r if mk is None else ops.where(mk[:, None], r, ops.ones_like(r)) for r, mk in zip(reps, masks)]
    else:
        masks = [None] * m
    n_static = reps[0].shape[0]
    if negative_sampling == "n":
        if permutations is not None:
            perms = _check_permutations(permutations, m, n_static)
            if not tf.executing_eagerly():  # values unknown at trace time: check them at run time
                pending = PendingChecks()
                n = ops.shape(reps[0])[0]
                pending.require(
                    tf.reduce_all(tf.equal(tf.sort(perms, axis=-1), tf.range(n, dtype=perms.dtype))),
                    "permutations: every (anchor, modality) row must be a permutation of "
                    "range(N) (each row index exactly once).",
                )
                pending.require(
                    tf.equal(tf.shape(perms)[-1], n), "permutations: the last axis must have the batch size N."
                )
                checked = pending.attach(list(reps) + [perms])  # XLA: a failed check makes the loss NaN
                reps, perms = checked[:m], checked[m]
        else:
            perms = draw_permutations(m, ops.shape(reps[0])[0], seed)
    elif permutations is not None:
        raise ValueError('permutations only apply to negative_sampling="n".')
    if negative_sampling == "n_squared":  # one shared streamed pass for every anchor
        lses = joint_streamed_logsumexps(reps, scale, block_size=block_size)
        positive = scale * mip(reps)
        return ops.sum(ops.stack([masked_mean(lse - positive, mk) for lse, mk in zip(lses, masks)])) / m
    losses = []
    positive = mip(reps)  # every anchor's positive logit, unscaled
    for a in range(m):  # "n": one shuffled-negative logit matrix per anchor
        others = [r for j, r in enumerate(reps) if j != a]
        lse = shuffled_lse_unchecked(reps[a], others, perms[a], scale, positive)
        # Columns are shuffled products, not rows of the anchor: mask rows only.
        losses.append(masked_mean(lse - scale * positive, masks[a]))
    return ops.sum(ops.stack(losses)) / m


@keras.saving.register_keras_serializable(package="tf_mmcl")
class SymileLoss(ContrastiveLoss):
    """Keras loss for :func:`symile_loss` over a dict of embeddings keyed by modality.

    For ``"n"`` it keeps a ``keras.random.SeedGenerator`` so every step draws fresh
    permutations (reproducibly for a given ``seed``).

    Example:
        >>> import numpy as np
        >>> r = np.eye(4, dtype="float32")
        >>> loss = SymileLoss(negative_sampling="n_squared")
        >>> float(loss(None, {"a": r, "b": r, "c": r, "logit_scale": 100.0})) < 1e-3
        True
    """

    def __init__(
        self,
        negative_sampling="n",
        modalities=None,
        logit_scale=1.0 / 0.07,
        seed=None,
        block_size=None,
        check_finite=False,
        name="symile_loss",
        **kwargs,
    ):
        super().__init__(modalities=modalities, logit_scale=logit_scale, check_finite=check_finite, name=name, **kwargs)
        if negative_sampling not in NEGATIVE_SAMPLING:
            raise ValueError(f"Unknown negative_sampling {negative_sampling!r}; expected one of {NEGATIVE_SAMPLING}.")
        positive_int_or_none(block_size, "block_size")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}.")
        self.negative_sampling = negative_sampling
        self.seed = seed
        self.block_size = block_size
        self._seed_generator = keras.random.SeedGenerator(seed) if negative_sampling == "n" else None

    def call(self, y_true, y_pred):
        _, reps, scale, masks = self.split(y_pred)
        return symile_loss(
            reps,
            scale,
            self.negative_sampling,
            seed=self._seed_generator,
            block_size=self.block_size,
            masks=masks,
            check_finite=self.check_finite,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"negative_sampling": self.negative_sampling, "seed": self.seed, "block_size": self.block_size})
        return config
