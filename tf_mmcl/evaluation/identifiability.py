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


def _nonlinear_fit_predict(x_tr, y_tr, x_te, rng, num_features, folds):
    d = x_tr.shape[1]
    omega = rng.normal(size=(d, num_features))
    phase = rng.uniform(0, 2 * np.pi, size=num_features)
    gammas = [g / d for g in _GAMMAS]
    n = x_tr.shape[0]
    fold_of = rng.permutation(n) % folds
    # Ridge on the features = kernel ridge: sum (y - f)^2 + alpha ||f||_H^2 (sklearn's KernelRidge).
    best, best_err = None, np.inf
    for gamma in gammas:
        feats = _rff(x_tr, gamma, omega, phase)
        err = np.zeros(len(_ALPHAS))
        for f in range(folds):
            tr, va = fold_of != f, fold_of == f
            preds = _ridge_fit_predict(feats[tr], y_tr[tr], feats[va], _ALPHAS)
            err += [np.mean((p - y_tr[va]) ** 2) for p in preds]
        j = int(np.argmin(err))
        if err[j] < best_err:
            best, best_err = (gamma, _ALPHAS[j]), err[j]
    gamma, alpha = best
    return _ridge_fit_predict(_rff(x_tr, gamma, omega, phase), y_tr, _rff(x_te, gamma, omega, phase), [alpha])[0]


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
    if regressor not in ("linear", "nonlinear"):
        raise ValueError(f"regressor must be 'linear' or 'nonlinear', got {regressor!r}.")
    h = np.asarray(representation, np.float64)
    z = np.asarray(latents, np.float64)
    if h.ndim != 2:
        raise ValueError(f"representation must be (N, D), got shape {h.shape}.")
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise ValueError(f"latents must be (N,) or (N, k), got shape {z.shape}.")
    if z.shape[0] != h.shape[0]:
        raise ValueError(f"representation has {h.shape[0]} rows but latents have {z.shape[0]}.")
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
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    te, tr = order[:n_test], order[n_test:]
    mean, std = h[tr].mean(axis=0), h[tr].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    hs = (h - mean) / std
    if regressor == "linear":
        pred = _ridge_fit_predict(hs[tr], z[tr], hs[te], [1e-8 * len(tr)])[0]
    else:
        pred = _nonlinear_fit_predict(hs[tr], z[tr], hs[te], rng, int(num_features), int(folds))
    return r2_score(z[te], pred)


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
    return {
        name: {r: float(np.mean(identifiability_r2(representation, block, regressor=r, **kwargs))) for r in regressors}
        for name, block in latent_blocks.items()
    }
