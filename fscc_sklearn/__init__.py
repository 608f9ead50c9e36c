"""Few-shot classification of cryo-ET subtomograms (FSCC) as scikit-learn estimators."""

__version__ = "0.1.0"
