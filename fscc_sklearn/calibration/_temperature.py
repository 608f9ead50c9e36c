"""Softmax temperatures of few-shot scores, fitted on pseudo-novel episodes.

A few-shot classifier's linear scores are far too confident as probabilities:
its Gaussian rule assumes a covariance the features do not have, and with
hundreds of dimensions small errors in the class means add up to large score
gaps. Dividing the scores by a temperature ``T`` keeps every ``argmax`` and
makes the probabilities honest. ``T`` is fitted by maximum likelihood on
episodes that treat some base classes as novel, with statistics of the
other base classes only, at a few numbers of shots; other shot counts
interpolate in log-log (docs/calibration.md).
"""

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from ._base_episodes import N_QUERY, pseudo_novel_episodes

# Shots per class of the pseudo-novel episodes, and episodes per split
CALIBRATION_SHOTS = (1, 5)
N_EPISODES = 4


def best_inverse_temperature(scores, y, bounds=(-10, 10)):
    """Factor ``t`` maximising the summed log-probability of the true classes
    under ``softmax(t * scores)``, searched on ``log t`` within ``bounds``.

    ``scores`` must have their row maxima subtracted (all ``<= 0``).
    """
    log_t = minimize_scalar(
        lambda v: -tempered_log_likelihood(scores, y, np.exp(v)).sum(),
        bounds=bounds,
        method="bounded",
    ).x
    return float(np.exp(log_t))


def tempered_log_likelihood(scores, y, t):
    """Per-row log-probability of class ``y`` under ``softmax(t * scores)``
    (``scores`` with their row maxima subtracted)."""
    true = scores[np.arange(len(scores)), y]
    return t * true - np.log(np.exp(t * scores).sum(1))


def fit_temperature(scores, y):
    """Temperature ``T`` minimising the negative log-likelihood of
    ``softmax(scores / T)`` for the true classes ``y`` (column indices).

    Examples
    --------
    >>> scores = np.array([[10.0, 0.0], [0.0, 10.0], [10.0, 0.0], [10.0, 0.0]])
    >>> T = fit_temperature(scores, np.array([0, 1, 0, 1]))  # 3 of 4 right
    >>> round(float(np.exp(10 / T) / (1 + np.exp(10 / T))), 3)
    0.75
    """
    s = scores - scores.max(1, keepdims=True)
    # search in units of the typical score gap, so the bounds fit any scale
    scale = float(np.abs(s).mean())
    if not scale > 0:  # tied scores: every temperature gives the same softmax
        return 1.0
    return scale / best_inverse_temperature(s / scale, y)


def mean_log_loss(scores, y, temperature=1.0):
    """Mean negative log-likelihood of ``softmax(scores / temperature)``."""
    return float(
        -log_softmax(scores / temperature, axis=1)[np.arange(len(y)), y].mean()
    )


def base_episode_temperatures(splits, X, y_idx, rng):
    """Temperature of few-shot scores per number of shots, from base classes.

    On the ``(classifier, members)`` splits of :func:`pseudo_novel_splits`,
    every shot count of ``CALIBRATION_SHOTS`` that the smallest held-out class
    allows (``n_shot`` + 1 samples) gets one temperature fitted on the pooled
    query scores of its episodes.

    Returns
    -------
    tuple of (int, float)
        ``(n_shot, temperature)`` pairs; empty without splits (fewer than 3
        classes).
    """
    if not splits:
        return ()
    counts = np.bincount(y_idx)
    table = []
    for n_shot in CALIBRATION_SHOTS:
        if n_shot >= counts.min():
            continue
        scores, targets = [], []
        for clf, members in splits:
            for support, query, seed in pseudo_novel_episodes(
                members, n_shot, N_QUERY, N_EPISODES, rng
            ):
                clf.set_params(random_state=seed).fit(X[support], y_idx[support])
                scores.append(clf._logits(X[query]))
                targets.append(np.searchsorted(clf.classes_, y_idx[query]))
        table.append(
            (n_shot, fit_temperature(np.vstack(scores), np.concatenate(targets)))
        )
    return tuple(table)


def temperature_for_shots(table, n_shot):
    """Temperature at ``n_shot`` shots from ``(shots, temperature)`` pairs:
    linear in log-log between them, constant beyond; 1 for an empty table."""
    if not table:
        return 1.0
    shots, temps = np.log(np.asarray(table, dtype=float)).T
    return float(np.exp(np.interp(np.log(n_shot), shots, temps)))
