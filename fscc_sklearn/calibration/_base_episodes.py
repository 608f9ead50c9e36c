"""Pseudo-novel episodes of the base classes: what a base fit can measure itself.

Some base classes play novel classes and the others their base classes, so a
base-mode classifier can try few-shot fits before it ever sees a novel class:
to fit softmax temperatures (:mod:`._temperature`) and to choose whether one-shot
class means pool their radius (``pool_radius_shots="auto"``).
"""

import numpy as np

# Splits of the base classes into pseudo-novel and pseudo-base, queries per
# class, and the most pseudo-novel classes per split
N_SPLITS = 6
N_QUERY = 15
MAX_WAY = 5


def pseudo_novel_splits(make_classifier, X, y_idx, k, rng, *, half=False):
    """``(classifier, members)`` of ``N_SPLITS`` random splits of the classes.

    Each split holds out up to ``MAX_WAY`` classes as pseudo-novel, leaving at
    least ``k`` pseudo-base classes (or 1 if too few remain), or with ``half``
    half of the classes (at least 2);
    ``make_classifier(X_rest, y_rest)`` returns a few-shot classifier with the
    statistics of the remaining classes only, so no class is its own prior.
    ``members`` are the sample indices of each held-out class. Empty with
    fewer than 3 classes.
    """
    n_classes = int(y_idx.max()) + 1
    if n_classes < 3:
        return []
    if half:
        n_way = max(2, min(MAX_WAY, n_classes // 2))
    else:
        n_way = min(MAX_WAY, n_classes - min(k, n_classes - 2))
    splits = []
    for _ in range(N_SPLITS):
        novel = np.sort(rng.permutation(n_classes)[:n_way])
        rest = ~np.isin(y_idx, novel)
        members = [np.flatnonzero(y_idx == c) for c in novel]
        splits.append((make_classifier(X[rest], y_idx[rest]), members))
    return splits


def pseudo_novel_episodes(members, n_shot, n_query, n_episodes, rng):
    """``(support, query, seed)`` of ``n_episodes`` episodes of the classes
    whose sample indices are ``members``: ``n_shot`` support samples and up to
    ``n_query`` queries per class, disjoint, and a seed for the classifier."""
    for _ in range(n_episodes):
        support, query = [], []
        for idx in members:
            picked = rng.permutation(idx)
            support.append(picked[:n_shot])
            query.append(picked[n_shot : n_shot + n_query])
        seed = rng.randint(np.iinfo(np.int32).max)
        yield np.concatenate(support), np.concatenate(query), seed


def paired_gain(splits, X, y_idx, rng, params, reference, *, n_shot, n_episodes):
    """Accuracy of the splits' classifiers with ``params`` minus with
    ``reference`` (dicts of parameters), in points, per pseudo-novel episode.

    Both settings classify the same ``n_shot``-shot episodes, so the
    difference is paired. ``None`` when a held-out class has no sample left
    for a query.
    """
    if not splits or min(len(m) for _, ms in splits for m in ms) <= n_shot:
        return None
    gains = []
    for clf, members in splits:
        for support, query, seed in pseudo_novel_episodes(
            members, n_shot, N_QUERY, n_episodes, rng
        ):
            accuracy = []
            for setting in (params, reference):
                clf.set_params(random_state=seed, **setting)
                predicted = clf.fit(X[support], y_idx[support]).predict(X[query])
                accuracy.append(np.mean(predicted == y_idx[query]))
            gains.append(100 * (accuracy[0] - accuracy[1]))
    return np.array(gains)
