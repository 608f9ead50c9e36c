"""Same data and seed give bit-identical features and predictions on CPU."""

import numpy as np
import torch
from sklearn.pipeline import Pipeline

from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder, adapt
from fscc_sklearn.datasets._toy import make_toy_volumes


def _pipeline(seed):
    return Pipeline(
        [
            (
                "embed",
                Conv6Embedder(
                    module__width=4, max_epochs=2, batch_size=12, random_state=seed,
                    device="cpu",
                ),
            ),
            ("clf", CalibratedFewShotClassifier(method="paper", n_samples=20,
                                                random_state=seed)),
        ]
    )  # fmt: skip


def test_pipeline_and_adaptation_are_bit_identical_across_runs():
    X, y = make_toy_volumes(n_classes=5, n_per_class=6, box=8, random_state=0)
    base, novel = y < 3, y >= 3
    torch.manual_seed(123)  # the global torch RNG must not matter
    runs = []
    for _ in range(2):
        pipe = _pipeline(seed=0).fit(X[base], y[base])
        few = adapt(pipe, X[novel][::3], y[novel][::3])
        runs.append((pipe[0].transform(X), few.predict_proba(X[novel])))
        torch.rand(10)  # move the global RNG between runs
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = _pipeline(seed=1).fit(X[base], y[base])[0].transform(X)
    assert not np.array_equal(other, runs[0][0])  # the seed does matter
