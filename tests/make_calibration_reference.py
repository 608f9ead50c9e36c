"""Record what the calibrated classifiers predict (tests/test_calibration_reference.py).

The fixture ``tests/data/calibration_reference.npz`` was written by this script
from the code before the calibration estimators were split (issue 19), so the
test proves the split kept every prediction. Rerun it only to record a change
of behaviour on purpose: ``.venv/bin/python tests/make_calibration_reference.py``.
Every case builds its classifiers from ``CASES`` below (old spelling: ``method``
selects the recipe), seeded, on the data of :func:`make_data`.
"""

import warnings
from pathlib import Path

import numpy as np

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    CalibratedFewShotClassifierCV,
    evaluate_episodes,
)
from fscc_sklearn.report import episodic_evaluation

FIXTURE = Path(__file__).parent / "data" / "calibration_reference.npz"

# name: (classifier parameters, novel classes, shots per class)
CASES = {
    "bayes_5w1s": ({}, 5, 1),
    "bayes_5w3s": ({}, 5, 3),
    "bayes_5w5s": ({}, 5, 5),
    "bayes_2w5s": ({}, 2, 5),
    "bayes_kappa1_shrink05": ({"kappa": 1.0, "shrinkage": 0.5}, 5, 5),
    "bayes_scatter_off_pool0": (
        {"support_scatter": "off", "pool_radius_shots": 0},
        5,
        3,
    ),
    "bayes_no_proba": ({"calibrate_proba": None}, 5, 1),
    "paper_5w1s": ({"method": "paper", "n_samples": 60}, 5, 1),
    "paper_5w5s": ({"method": "paper", "n_samples": 60, "alpha": 0.5}, 5, 5),
    "paper_2w3s": ({"method": "paper", "n_samples": 60}, 2, 3),
    "paper_lbfgs_5w2s": ({"method": "paper", "n_samples": 40, "solver": "lbfgs"}, 5, 2),
    "paper_lbfgs_2w2s": ({"method": "paper", "n_samples": 40, "solver": "lbfgs"}, 2, 2),
    "paper_lbfgs_no_proba": (
        {
            "method": "paper",
            "n_samples": 40,
            "solver": "lbfgs",
            "calibrate_proba": None,
        },
        5,
        1,
    ),
}


def make_data(seed=0, n_base=8, n_novel=5, n_per_class=12, d=7):
    """Non-negative features of base and novel classes around random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, size=(n_base + n_novel, d))
    y = np.repeat(np.arange(n_base + n_novel), n_per_class)
    X = np.abs(centres[y] + rng.normal(scale=0.6, size=(len(y), d)))
    base = y < n_base
    return X[base], y[base], X[~base], y[~base]


def support_and_query(Xn, yn, n_way, n_shot):
    classes = np.unique(yn)[:n_way]
    support = np.concatenate([np.flatnonzero(yn == c)[:n_shot] for c in classes])
    query = np.flatnonzero(np.isin(yn, classes))
    query = np.setdiff1d(query, support)
    return support, query


def record():
    """Arrays to compare, keyed ``<case>/<what>``."""
    Xb, yb, Xn, yn = make_data()
    out = {}
    for name, (params, n_way, n_shot) in CASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            base = CalibratedFewShotClassifier(**params, random_state=0).fit(Xb, yb)
            few = CalibratedFewShotClassifier(base=base, **params, random_state=1)
        support, query = support_and_query(Xn, yn, n_way, n_shot)
        few.fit(Xn[support], yn[support])
        out[f"{name}/base_temperatures"] = np.asarray(
            base.base_statistics_.proba_temperatures, dtype=float
        ).reshape(-1, 2)
        out[f"{name}/base_proba"] = base.predict_proba(Xb)
        out[f"{name}/base_predict"] = base.predict(Xb)
        out[f"{name}/predict"] = few.predict(Xn[query])
        out[f"{name}/proba"] = few.predict_proba(Xn[query])
        out[f"{name}/decision"] = few.decision_function(Xn[query])
        out[f"{name}/temperature"] = np.asarray(few.temperature_)
    cv = CalibratedFewShotClassifierCV(
        param_grid={"k": [1, 2], "kappa": [0.0, "auto"]},
        n_shot=2,
        n_splits=3,
        n_episodes=4,
        random_state=0,
    ).fit(Xb, yb)
    out["cv/mean_test_score"] = cv.cv_results_["mean_test_score"]
    out["cv/split0_test_score"] = cv.cv_results_["split0_test_score"]
    out["cv/best_index"] = np.asarray(cv.best_index_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        paper_cv = CalibratedFewShotClassifierCV(
            param_grid={"k": [1, 2]},
            method="paper",
            n_shot=1,
            n_splits=2,
            n_episodes=2,
            random_state=0,
        ).fit(Xb, yb)
    out["paper_cv/mean_test_score"] = paper_cv.cv_results_["mean_test_score"]
    base = CalibratedFewShotClassifier(random_state=0).fit(Xb, yb)
    episodes = evaluate_episodes(
        base, Xn, yn, n_way=3, k_shot=2, n_query=5, n_episodes=6, random_state=0
    )
    out["episodes/accuracies"] = episodes.accuracies
    out["episodes/seeds"] = episodes.seeds
    report = episodic_evaluation(
        base, Xn, yn, n_way=3, k_shot=1, n_query=4, n_episodes=5, random_state=3
    )
    out["report/accuracies"] = report.accuracies
    out["report/confusion"] = report.confusion
    return out


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez(FIXTURE, **record())
    print(f"wrote {FIXTURE}")
