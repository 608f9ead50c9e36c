"""The package version (one place, read by ``fscc_sklearn.__version__``)."""

__version__ = "0.1.0"
