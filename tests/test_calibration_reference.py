"""The split calibration estimators predict what the single class predicted.

``tests/data/calibration_reference.npz`` holds predictions, probabilities,
scores and temperatures recorded by tests/make_calibration_reference.py from
the code before ``CalibratedFewShotClassifier`` was split into one estimator
per method (issue 19); every case here rebuilds them with the new classes.
"""

import numpy as np
import pytest
from make_calibration_reference import CASES, FIXTURE, make_data, support_and_query

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    CalibratedFewShotClassifierCV,
    DistributionCalibrationClassifier,
    evaluate_episodes,
)
from fscc_sklearn.report import episodic_evaluation

REFERENCE = np.load(FIXTURE)
# recorded when pooling one- and two-shot radii was the default; "auto" (the
# default since) keeps every radius on these 7-d toy features
RECORDED_POOLING = {"pool_radius_shots": 2}
# bit for bit: the same arithmetic in the same order
RTOL, ATOL = 0, 0


def new_classifier(params, **extra):
    """The new spelling of a case's classifier (``method`` picks the class)."""
    params = dict(params)
    method = params.pop("method", "bayes")
    cls = (
        DistributionCalibrationClassifier
        if method == "paper"
        else CalibratedFewShotClassifier
    )
    if cls is CalibratedFewShotClassifier:
        params = {**RECORDED_POOLING, **params}
    return cls(**params, **extra)


def assert_matches(name, got):
    want = REFERENCE[name]
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_predictions_probabilities_and_scores(case):
    params, n_way, n_shot = CASES[case]
    Xb, yb, Xn, yn = make_data()
    base = new_classifier(params, random_state=0).fit(Xb, yb)
    few = new_classifier(params, base=base, random_state=1)
    support, query = support_and_query(Xn, yn, n_way, n_shot)
    few.fit(Xn[support], yn[support])
    temperatures = base.base_statistics_.proba_temperatures
    assert_matches(
        f"{case}/base_temperatures", np.asarray(temperatures, float).reshape(-1, 2)
    )
    assert_matches(f"{case}/base_proba", base.predict_proba(Xb))
    assert_matches(f"{case}/base_predict", base.predict(Xb))
    assert_matches(f"{case}/predict", few.predict(Xn[query]))
    assert_matches(f"{case}/proba", few.predict_proba(Xn[query]))
    assert_matches(f"{case}/decision", few.decision_function(Xn[query]))
    assert_matches(f"{case}/temperature", few.temperature_)


@pytest.mark.parametrize("case", ["paper_5w1s", "paper_lbfgs_2w2s", "bayes_5w3s"])
def test_deprecated_method_spelling_gives_the_same_classifier(case):
    params, n_way, n_shot = CASES[case]
    # the old class took every parameter; the Bayesian rule ignored alpha
    params = (
        params
        if "method" in params
        else {**RECORDED_POOLING, **params, "method": "bayes", "alpha": 0.5}
    )
    Xb, yb, Xn, yn = make_data()
    with pytest.warns(FutureWarning, match="deprecated"):
        base = CalibratedFewShotClassifier(**params, random_state=0)
    with pytest.warns(FutureWarning, match="deprecated"):
        few = CalibratedFewShotClassifier(base=base.fit(Xb, yb), **params)
    paper = params["method"] == "paper"
    assert type(few) is (
        DistributionCalibrationClassifier if paper else CalibratedFewShotClassifier
    )
    support, query = support_and_query(Xn, yn, n_way, n_shot)
    few.set_params(random_state=1).fit(Xn[support], yn[support])
    assert_matches(f"{case}/proba", few.predict_proba(Xn[query]))


def test_cv_scores_and_choice():
    Xb, yb, _, _ = make_data()
    cv = CalibratedFewShotClassifierCV(
        param_grid={"k": [1, 2], "kappa": [0.0, "auto"]},
        n_shot=2,
        n_splits=3,
        n_episodes=4,
        random_state=0,
    ).fit(Xb, yb)
    assert_matches("cv/mean_test_score", cv.cv_results_["mean_test_score"])
    assert_matches("cv/split0_test_score", cv.cv_results_["split0_test_score"])
    assert cv.best_index_ == int(REFERENCE["cv/best_index"])
    paper = CalibratedFewShotClassifierCV(
        param_grid={"k": [1, 2]},
        method="paper",
        n_shot=1,
        n_splits=2,
        n_episodes=2,
        random_state=0,
    ).fit(Xb, yb)
    assert isinstance(paper.best_estimator_, DistributionCalibrationClassifier)
    assert_matches("paper_cv/mean_test_score", paper.cv_results_["mean_test_score"])


def test_episodes_and_report_confusion():
    Xb, yb, Xn, yn = make_data()
    base = CalibratedFewShotClassifier(random_state=0, **RECORDED_POOLING)
    base.fit(Xb, yb)
    episodes = evaluate_episodes(
        base, Xn, yn, n_way=3, k_shot=2, n_query=5, n_episodes=6, random_state=0
    )
    assert_matches("episodes/accuracies", episodes.accuracies)
    assert_matches("episodes/seeds", episodes.seeds)
    report = episodic_evaluation(
        base, Xn, yn, n_way=3, k_shot=1, n_query=4, n_episodes=5, random_state=3
    )
    assert_matches("report/accuracies", report.accuracies)
    assert_matches("report/confusion", report.confusion)
