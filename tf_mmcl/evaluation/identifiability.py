"""Identifiability: how much of each true latent a representation holds (Negate or Embrace).

For a representation h (N, D) and true latents z (N, k), fit a regressor h -> z on a training
split and report R² = 1 - SS_res / SS_tot per latent column on the held-out split (as the
authors: standardise h with the training statistics, then a linear regression and a nonlinear
one). R² ≈ 1: the latent is (block-)identified; ≈ 0: the representation holds nothing of it.

* ``"linear"``: least squares with intercept (a tiny ridge for numerical stability).
* ``"nonlinear"``: kernel ridge regression with an RBF kernel, approximated by seeded random
  Fourier features; the kernel width and ridge strength are chosen by K-fold cross-validation on
  the training split over the authors' grid (alpha in {1, 0.1, 0.01, 0.001}, gamma in
  logspace(-2, 2, 4) divided by D).

:func:`identifiability_report` fits all blocks at once (one regression per regressor; each block
keeps its own grid choice), with the numbers of fitting each block alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["identifiability_r2", "identifiability_report", "r2_score"]

_ALPHAS = (1.0, 0.1, 0.01, 0.001)
_GAMMAS = tuple(np.logspace(-2, 2, 4))


def r2_score(y_true, y_pred) -> np.ndarray:
    """R² per column: ``1 - sum (y - y_hat)^2 / sum (y - mean y)^2`` (can be negative).

    Example:
        >>> import numpy as np
        >>> r2_score(np.array([1., 2., 3.]), np.array([1., 2., 3.])).tolist()
        [1.0]
    """
    y = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    if y.ndim == 1:
        y, p = y[:, None], p[:, None]
    ss_res = np.sum((y - p) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)


def _ridge_fit_predict(x_tr, y_tr, x_te, alphas):
    """Ridge with intercept for several alphas via one eigendecomposition of the smaller Gram matrix."""
    mx, my = x_tr.mean(axis=0), y_tr.mean(axis=0)
    xc, yc, xt = x_tr - mx, y_tr - my, x_te - mx
    out = []
    if xc.shape[0] <= xc.shape[1]:  # dual form: n x n kernel
        lam, u = np.linalg.eigh(xc @ xc.T)
        uty, cross = u.T @ yc, xt @ xc.T @ u
        for a in alphas:
            out.append(cross @ (uty / (np.maximum(lam, 0.0) + a)[:, None]) + my)
    else:  # primal form: p x p covariance
        lam, v = np.linalg.eigh(xc.T @ xc)
        vtxy, proj = v.T @ (xc.T @ yc), xt @ v
        for a in alphas:
            out.append(proj @ (vtxy / (np.maximum(lam, 0.0) + a)[:, None]) + my)
    return out


def _rff(x, gamma, omega, phase):
    # exp(-gamma |x - y|^2) = E[2 cos(w.x + b) cos(w.y + b)], w ~ N(0, 2 gamma I), b ~ U(0, 2 pi).
    return np.sqrt(2.0 / omega.shape[1]) * np.cos(np.sqrt(2.0 * gamma) * (x @ omega) + phase)


def _nonlinear_fit_predict(x_tr, y_tr, x_te, rng, num_features, folds, groups):
    """Kernel ridge predictions of every column of ``y_tr``, with (gamma, alpha) chosen per group.

    ``groups`` lists the column indices of each block; each block gets the grid point with the
    lowest cross-validated mean squared error over its own columns, exactly as if it were fitted
    alone (the features, folds and ridge solutions do not depend on the targets, so they are
    shared by all blocks).
    """
    d = x_tr.shape[1]
    omega = rng.normal(size=(d, num_features))
    phase = rng.uniform(0, 2 * np.pi, size=num_features)
    gammas = [g / d for g in _GAMMAS]
    n = x_tr.shape[0]
    fold_of = rng.permutation(n) % folds
    # Ridge on the features = kernel ridge: sum (y - f)^2 + alpha ||f||_H^2 (sklearn's KernelRidge).
    # err[g, a, c]: summed over folds, the validation MSE of column c.
    err = np.zeros((len(gammas), len(_ALPHAS), y_tr.shape[1]))
    for g, gamma in enumerate(gammas):
        feats = _rff(x_tr, gamma, omega, phase)
        for f in range(folds):
            tr, va = fold_of != f, fold_of == f
            preds = _ridge_fit_predict(feats[tr], y_tr[tr], feats[va], _ALPHAS)
            err[g] += [np.mean((p - y_tr[va]) ** 2, axis=0) for p in preds]
    choice = {}
    for cols in groups:
        block_err = err[:, :, cols].mean(axis=-1)
        # The first minimum in (gamma, alpha) order, as a loop keeping only strict improvements.
        g, a = np.unravel_index(int(np.argmin(block_err)), block_err.shape)
        choice.setdefault(g, {}).setdefault(a, []).extend(cols)
    out = np.zeros((x_te.shape[0], y_tr.shape[1]))
    for g, by_alpha in choice.items():
        alphas = sorted(by_alpha)
        preds = _ridge_fit_predict(
            _rff(x_tr, gammas[g], omega, phase), y_tr, _rff(x_te, gammas[g], omega, phase), [_ALPHAS[a] for a in alphas]
        )
        for a, pred in zip(alphas, preds):
            out[:, by_alpha[a]] = pred[:, by_alpha[a]]
    return out


def _check_latents(latents, n):
    z = np.asarray(latents, np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise ValueError(f"latents must be (N,) or (N, k), got shape {z.shape}.")
    if z.shape[0] != n:
        raise ValueError(f"representation has {n} rows but latents have {z.shape[0]}.")
    return z


def identifiability_r2(
    representation,
    latents,
    regressor: str = "linear",
    test_fraction: float = 0.5,
    seed: int = 0,
    num_features: int = 256,
    folds: int = 3,
) -> np.ndarray:
    """R² of predicting each latent column from the representation, on a held-out split.

    Args:
        representation: (N, D) learned representation (e.g. encoder outputs of fresh samples).
        latents: (N,) or (N, k) true latents.
        regressor: ``"linear"`` or ``"nonlinear"`` (RBF kernel ridge, random Fourier features).
        test_fraction: fraction of rows held out for scoring (the rest fits the regressor).
        seed: the split, the random features and the CV folds.
        num_features: random Fourier features of the nonlinear regressor.
        folds: cross-validation folds of the nonlinear regressor's grid search.

    Returns:
        (k,) float64 R² per latent column.

    Example:
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(400, 2))
        >>> np.round(identifiability_r2(z @ np.array([[1., 2.], [0., 1.]]), z), 3).tolist()
        [1.0, 1.0]
    """
    return _r2_blocks(representation, [latents], regressor, test_fraction, seed, num_features, folds)[0]


def _r2_blocks(representation, blocks, regressor, test_fraction=0.5, seed=0, num_features=256, folds=3):
    """R² per column of every block (a list of (N,) or (N, k)), one regressor fit for all of them.

    The same as :func:`identifiability_r2` on each block in turn (same split, features, folds
    and per-block grid choice), at the cost of one fit.
    """
    if regressor not in ("linear", "nonlinear"):
        raise ValueError(f"regressor must be 'linear' or 'nonlinear', got {regressor!r}.")
    h = np.asarray(representation, np.float64)
    if h.ndim != 2:
        raise ValueError(f"representation must be (N, D), got shape {h.shape}.")
    zs = [_check_latents(z, h.shape[0]) for z in blocks]
    z = np.concatenate(zs, axis=1)
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(z))):
        raise ValueError("representation or latents contain NaN or Inf.")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}.")
    if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
        raise ValueError(f"num_features must be a positive integer, got {num_features!r}.")
    n = h.shape[0]
    n_test = int(round(n * float(test_fraction)))
    if n_test < 2 or n - n_test < max(4, folds * 2):
        raise ValueError(f"too few rows ({n}) for a train/test split with test_fraction={test_fraction}.")
    bounds = np.cumsum([0] + [b.shape[1] for b in zs])
    groups = [list(range(bounds[k], bounds[k + 1])) for k in range(len(zs))]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    te, tr = order[:n_test], order[n_test:]
    mean, std = h[tr].mean(axis=0), h[tr].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    hs = (h - mean) / std
    if regressor == "linear":
        pred = _ridge_fit_predict(hs[tr], z[tr], hs[te], [1e-8 * len(tr)])[0]
    else:
        pred = _nonlinear_fit_predict(hs[tr], z[tr], hs[te], rng, int(num_features), int(folds), groups)
    r2 = r2_score(z[te], pred)
    return [r2[cols] for cols in groups]


def identifiability_report(
    representation, latent_blocks: Mapping[str, np.ndarray], regressors=("linear", "nonlinear"), **kwargs
) -> dict:
    """Mean R² per latent block and regressor (the Negate-or-Embrace table).

    Args:
        representation: (N, D).
        latent_blocks: ``{block name: (N,) or (N, k)}``, e.g. from
            :func:`tf_mmcl.data.synthetic.latent_blocks`.
        regressors: which regressors to run.
        **kwargs: passed to :func:`identifiability_r2` (seed, test_fraction, ...).

    Returns:
        ``{block: {regressor: mean R² over the block's columns}}``.

    Example:
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(300, 2))
        >>> rep = identifiability_report(z[:, :1], {"kept": z[:, 0], "lost": z[:, 1]}, ("linear",))
        >>> rep["kept"]["linear"] > 0.99, rep["lost"]["linear"] < 0.05
        (True, True)
    """
    if not latent_blocks:
        raise ValueError("latent_blocks must name at least one block.")
    if isinstance(regressors, str):
        regressors = (regressors,)
    names = list(latent_blocks)
    # One fit per regressor for all blocks (each block keeps its own grid choice): the same
    # numbers as fitting each block alone, about as many times faster as there are blocks.
    r2 = {r: _r2_blocks(representation, [latent_blocks[k] for k in names], r, **kwargs) for r in regressors}
    return {name: {r: float(np.mean(r2[r][k])) for r in regressors} for k, name in enumerate(names)}
