"""Objects the Dask tests send to worker processes (importable there by name)."""

from sklearn.base import BaseEstimator

LOADS = {"n": 0}


class CountingModel(BaseEstimator):
    """Wraps a fitted model and counts how often a process unpickles it."""

    def __init__(self, model=None):
        self.model = model

    def fit(self, X=None, y=None):
        self.model_ = self.model
        self.classes_ = self.model.classes_
        return self

    def __setstate__(self, state):
        LOADS["n"] += 1
        self.__dict__.update(state)

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def loads():
    return LOADS["n"]
