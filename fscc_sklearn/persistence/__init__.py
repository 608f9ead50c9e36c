"""Model files: safe safetensors files by default, joblib/pickle only on request."""

from ._model_file import (
    ModelFileError,
    ModelInputError,
    UnsafeModelFileWarning,
    check_model_input,
    load_model,
    model_metadata,
    save_model,
)

__all__ = [
    "ModelFileError",
    "ModelInputError",
    "UnsafeModelFileWarning",
    "check_model_input",
    "load_model",
    "model_metadata",
    "save_model",
]
