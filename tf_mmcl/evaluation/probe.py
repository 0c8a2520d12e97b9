"""Linear probe: k-shot-per-class multinomial logistic regression on frozen features.

Pure numpy (no scikit-learn): L2-regularised softmax regression fitted by L-BFGS from a zero
start on standardised features, so a fit is deterministic. The regularisation follows the
``C`` convention of the ConFu probe (loss = mean cross-entropy + ||W||^2 / (2 C N)).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LogisticRegressionProbe", "few_shot_indices", "linear_probe"]


def _softmax_xent(w, b, x, y_onehot, l2):
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -np.sum(y_onehot * logp) / n + 0.5 * l2 * np.sum(w * w)
    p = np.exp(logp)
    g = (p - y_onehot) / n
    return loss, x.T @ g + l2 * w, g.sum(axis=0)


def _lbfgs(fun, x0, max_iter=500, tol=1e-6, memory=10):
    """Minimises ``fun(x) -> (f, grad)`` with L-BFGS and Armijo backtracking."""
    x = x0.copy()
    f, g = fun(x)
    s_hist, y_hist = [], []
    for _ in range(max_iter):
        if np.max(np.abs(g)) < tol:
            break
        q = g.copy()
        alphas = []
        for s, y in reversed(list(zip(s_hist, y_hist))):
            a = s @ q / (y @ s)
            alphas.append(a)
            q -= a * y
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        for (s, y), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += s * (a - y @ q / (y @ s))
        d = -q
        slope = g @ d
        if slope >= 0:
            d, slope = -g, -(g @ g)
            s_hist, y_hist = [], []
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = x_new - x, g_new - g
        if abs(f - f_new) <= tol * max(1.0, abs(f)) and np.max(np.abs(g_new)) < 10 * tol:
            x, f, g = x_new, f_new, g_new
            break
        if s @ y > 1e-12:
            s_hist.append(s)
            y_hist.append(y)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        x, f, g = x_new, f_new, g_new
    return x


class LogisticRegressionProbe:
    """Multinomial logistic regression on frozen features (numpy, deterministic).

    Args:
        C: inverse L2 strength (larger = weaker regularisation).
        max_iter: L-BFGS iterations.
        standardize: z-score the features with the training statistics.

    Example:
        >>> import numpy as np
        >>> x = np.array([[-2.], [-1.], [1.], [2.]]); y = np.array([0, 0, 1, 1])
        >>> LogisticRegressionProbe().fit(x, y).predict(np.array([[-3.], [3.]])).tolist()
        [0, 1]
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500, standardize: bool = True):
        if isinstance(C, bool) or not isinstance(C, (int, float, np.number)) or not np.isfinite(C) or C <= 0:
            raise ValueError(f"C must be a positive number, got {C!r}.")
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
        if not isinstance(standardize, (bool, np.bool_)):
            raise TypeError(f"standardize must be True or False, got {standardize!r}.")
        self.C, self.max_iter, self.standardize = float(C), int(max_iter), bool(standardize)
        self.classes_ = self.coef_ = self.intercept_ = None

    def _prep(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"features must be a numeric (N, d) array, got dtype {x.dtype}.")
        x = x.astype(np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, d), got shape {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or Inf.")
        return x

    def fit(self, features, labels):
        """Fits the probe; returns ``self``."""
        x = self._prep(features)
        y = np.asarray(labels)
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must be (N,) with N = {x.shape[0]}, got shape {y.shape}.")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError("the probe needs at least two classes in the training labels.")
        self.mean_ = x.mean(axis=0) if self.standardize else np.zeros(x.shape[1])
        std = x.std(axis=0) if self.standardize else np.ones(x.shape[1])
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        xs = (x - self.mean_) / self.scale_
        n, d = xs.shape
        k = self.classes_.size
        onehot = np.eye(k)[y_idx]
        l2 = 1.0 / (self.C * n)

        def fun(theta):
            w, b = theta[: d * k].reshape(d, k), theta[d * k :]
            f, gw, gb = _softmax_xent(w, b, xs, onehot, l2)
            return f, np.concatenate([gw.ravel(), gb])

        theta = _lbfgs(fun, np.zeros(d * k + k), max_iter=self.max_iter)
        self.coef_, self.intercept_ = theta[: d * k].reshape(d, k), theta[d * k :]
        return self

    def decision_function(self, features):
        """(N, K) logits."""
        if self.coef_ is None:
            raise ValueError("the probe must be fitted before predicting.")
        x = self._prep(features)
        if x.shape[0] == 0:
            raise ValueError("features are empty: pass at least one (N >= 1) row.")
        if x.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"features have width {x.shape[1]}; the probe was fitted on {self.coef_.shape[0]}.")
        return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, features):
        """(N, K) class probabilities (columns in the order of ``classes_``)."""
        z = self.decision_function(features)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, features):
        """(N,) predicted labels."""
        return self.classes_[np.argmax(self.decision_function(features), axis=1)]

    def score(self, features, labels):
        """Accuracy on (features, labels); one label per row (never broadcast)."""
        pred = self.predict(features)
        y = np.asarray(labels)
        if y.ndim != 1 or y.shape[0] != pred.shape[0]:
            raise ValueError(
                f"labels must be (N,) with one label per feature row (N = {pred.shape[0]}), got shape {y.shape}."
            )
        return float(np.mean(pred == y))


def few_shot_indices(labels, shots: int, seed: int = 0) -> np.ndarray:
    """Indices of ``shots`` examples per class, drawn without replacement with a seed (sorted).

    Example:
        >>> few_shot_indices([0, 0, 1, 1, 1], shots=1, seed=0).shape
        (2,)
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}.")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}.")
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(y):
        idx = np.nonzero(y == c)[0]
        if idx.size < shots:
            raise ValueError(f"class {c!r} has {idx.size} examples, fewer than shots={shots}.")
        out.append(rng.choice(idx, size=shots, replace=False))
    return np.sort(np.concatenate(out))


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    shots: int | None = None,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 500,
) -> dict:
    """Fits a logistic-regression probe (optionally k-shot per class) and scores it.

    Args:
        train_features, train_labels: (N, d) frozen features and (N,) labels.
        test_features, test_labels: the held-out set.
        shots: examples per class drawn from the training set (None: all).
        seed: the k-shot draw.
        C, max_iter: probe settings (:class:`LogisticRegressionProbe`).

    Returns:
        ``{"accuracy": test accuracy, "train_accuracy", "num_train", "shots"}``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, 200)
        >>> x = rng.normal(size=(200, 3)) + 4 * y[:, None]
        >>> linear_probe(x[:100], y[:100], x[100:], y[100:], shots=5)["accuracy"] > 0.95
        True
    """
    x_tr, y_tr = np.asarray(train_features), np.asarray(train_labels)
    x_te, y_te = np.asarray(test_features), np.asarray(test_labels)
    if y_te.ndim != 1 or x_te.ndim != 2 or y_te.shape[0] != x_te.shape[0]:
        raise ValueError(
            f"test_labels must be (N,) with one label per row of test_features (N = "
            f"{x_te.shape[0] if x_te.ndim else '?'}), got shapes {x_te.shape} and {y_te.shape}."
        )
    if y_te.shape[0] == 0:
        raise ValueError("test_features/test_labels are empty: the accuracy of 0 examples is undefined.")
    if shots is not None:
        idx = few_shot_indices(y_tr, shots, seed)
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    probe = LogisticRegressionProbe(C=C, max_iter=max_iter).fit(x_tr, y_tr)
    return {
        "accuracy": probe.score(test_features, test_labels),
        "train_accuracy": probe.score(x_tr, y_tr),
        "num_train": int(y_tr.shape[0]),
        "shots": shots,
    }
