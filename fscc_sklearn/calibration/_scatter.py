"""The support set's own within-class scatter as evidence for the shared covariance.

Everything here works in *whitened* coordinates, where the prior covariance
(from the base classes) is the identity. The support residuals ``R`` (each
feature minus its class mean, ``dof = n - n_classes`` degrees of freedom)
update it to ``S = (nu * I + R'R) / (nu + dof)``: ``nu = inf`` keeps the
prior, small ``nu`` lets the support's scatter down-weight the directions in
which its own classes vary most. A network pre-trained on unlike particles
puts much of its features' variance in such nuisance directions
(docs/calibration.md); with good features they carry class signal instead,
so ``nu`` is chosen per support set by leave-one-out.
"""

import numpy as np

from ..model_selection import beats_by_one_standard_error
from ._grouping import class_means
from ._temperature import best_inverse_temperature, tempered_log_likelihood

# Candidate prior strengths nu / d of support_scatter="auto"; the prior alone first
SCATTER_GRID = (np.inf, 4.0, 1.0, 0.25, 0.0625)


def scatter_gaussian(means, residuals, dof, nu):
    """Weights and intercepts of the shared-covariance Gaussian classifier with
    ``S = (nu I + R'R) / (nu + dof)`` (whitened coordinates).

    ``S^-1`` is applied through the Woodbury identity in the space of the
    ``n`` residuals, so the cost is ``O(n^2 d)``, never ``O(d^3)``.
    """
    if np.isinf(nu) or dof == 0:
        coef = means.copy()
    else:
        R = residuals
        inner = R @ R.T
        inner.flat[:: len(R) + 1] += nu
        coef = means - np.linalg.solve(inner, R @ means.T).T @ R
        coef *= (nu + dof) / nu
    return coef, -0.5 * np.einsum("ij,ij->i", coef, means)


def choose_strength(Z, y_idx, n_classes, grid=SCATTER_GRID):
    """Prior strength ``nu / d`` of ``grid`` chosen by leave-one-out on the support.

    Each support feature whose class keeps at least one other feature is left
    out in turn; the nearest-mean rule under every candidate covariance
    (fitted on the rest) scores it. Candidates are compared by the held-out
    log-likelihood at each candidate's own best softmax temperature (a
    sharper covariance must not win by confidence alone). The prior alone
    (``grid[0]``) is kept unless the best candidate beats it by more than one
    standard error of the paired per-feature differences.

    Returns ``grid[0]`` when no feature can be left out.
    """
    counts = np.bincount(y_idx, minlength=n_classes)
    held = np.flatnonzero(counts[y_idx] >= 2)
    n, d = Z.shape
    if len(held) < 2 or n - 1 - n_classes < 1:
        return grid[0]
    nus = np.asarray(grid, dtype=float) * d
    finite = np.isfinite(nus)
    scores = np.empty((len(grid), len(held), n_classes))
    for j, i in enumerate(held):
        keep = np.arange(n) != i
        Zk, yk = Z[keep], y_idx[keep]
        means = class_means(Zk, yk, n_classes)
        R = Zk - means[yk]
        dof = n - 1 - n_classes  # every class keeps a feature
        # all candidates at once, in the eigenbasis of R R' (Woodbury)
        eigval, U = np.linalg.eigh(R @ R.T)
        a = U.T @ (R @ Z[i])
        B = U.T @ (R @ means.T)
        weights = 1 / (np.maximum(eigval, 0)[None] + nus[finite, None])
        cross = Z[i] @ means.T - (weights * a) @ B
        quad = (means**2).sum(1) - weights @ (B**2)
        scale = (nus[finite] + dof) / nus[finite]
        scores[finite, j] = scale[:, None] * (cross - quad / 2)
        scores[~finite, j] = Z[i] @ means.T - (means**2).sum(1) / 2
    loglik = np.stack([_tempered_loglik(s, y_idx[held]) for s in scores])
    best = int(np.argmax(loglik.mean(1)))
    if best and beats_by_one_standard_error(loglik[best] - loglik[0]):
        return grid[best]
    return grid[0]


def _tempered_loglik(scores, y):
    """Per-row log-probability of the true class under ``softmax(t * scores)``,
    at the temperature ``t`` that maximises their sum."""
    s = scores - scores.max(1, keepdims=True)
    s /= max(float(np.abs(s).mean()), np.finfo(float).tiny)
    return tempered_log_likelihood(s, y, best_inverse_temperature(s, y))
