"""Wrote the version-1 model files here (fscc-sklearn at commit 379663b, format 1).

Kept for the record: today's save_model writes version 2; the tests check that
these files still load with the predictions stored in expected.npz. Run it
(python tests/data/model_v1/make_files.py) only from a checkout of that commit.
"""

import numpy as np
from sklearn.pipeline import Pipeline

from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder, adapt, save_model
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.io import SubtomogramNormalizer


def main():
    X, y = make_toy_volumes(n_classes=6, n_per_class=10, box=8, random_state=0)
    y = np.array([f"c{v}" for v in y])
    base = np.isin(y, ["c0", "c1", "c2", "c3"])
    Xb, yb, Xn, yn = X[base], y[base], X[~base], y[~base]
    out = "tests/data/model_v1/"

    def pipe(**clf):
        return Pipeline(
            [
                ("normalize", SubtomogramNormalizer()),
                ("embed", Conv6Embedder(module__width=4, max_epochs=1, random_state=0)),
                ("clf", CalibratedFewShotClassifier(random_state=0, **clf)),
            ]
        )

    pre = pipe().fit(Xb, yb)
    ad = adapt(pre, Xn[::2], yn[::2])
    paper = pipe(method="paper", solver="lbfgs", n_samples=20).fit(Xb, yb)
    pad = adapt(paper, Xn[::2], yn[::2])
    expected = {}
    for name, m in [
        ("bayes_base", pre),
        ("bayes_adapted", ad),
        ("paper_base", paper),
        ("paper_adapted", pad),
    ]:
        save_model(
            m,
            out + name + ".safetensors",
            {"voxel_size": 10.0, "seed": 0},
            overwrite=True,
        )
        expected[name] = m.predict_proba(X)
        expected[name + "_features"] = m[:-1].transform(X)
    np.savez_compressed(out + "expected.npz", **expected)


if __name__ == "__main__":
    main()
