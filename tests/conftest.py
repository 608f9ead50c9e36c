import pytest
from sklearn.pipeline import Pipeline

from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder
from fscc_sklearn.datasets._toy import make_toy_volumes


def tiny_embedder(**params):
    """A Conv-6 small enough for unit tests (16^3 boxes, width 8, 8 features)."""
    defaults = dict(module__width=8, max_epochs=3, batch_size=48, random_state=0)
    return Conv6Embedder(**{**defaults, **params})


@pytest.fixture(name="tiny_embedder", scope="session")
def tiny_embedder_factory():
    return tiny_embedder


@pytest.fixture(scope="session")
def toy_data():
    """10 toy classes of 16^3 volumes: 0-5 are base classes, 6-9 novel."""
    X, y = make_toy_volumes(
        n_classes=10, n_per_class=30, box=16, noise=0.8, random_state=0
    )
    base = y < 6
    return X[base], y[base], X[~base], y[~base]


@pytest.fixture(scope="session")
def fitted_pipeline(toy_data):
    X_base, y_base, _, _ = toy_data
    pipe = Pipeline(
        [
            ("embed", tiny_embedder(max_epochs=8, lr=0.01, module__width=16)),
            ("clf", CalibratedFewShotClassifier(random_state=0)),
        ]
    )
    return pipe.fit(X_base, y_base)
