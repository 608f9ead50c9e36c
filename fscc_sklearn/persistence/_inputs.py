"""Whether subtomograms fit a model: box and voxel size, checked where used."""

from __future__ import annotations

import numpy as np


class ModelInputError(ValueError):
    """Subtomograms whose box or voxel size differ from a model's.

    Attributes
    ----------
    option : {"box", "voxel_size"}
        What differs.
    expected, actual : int or float
        The model's value and the input's.
    source : str
        The input, as named by the caller.
    """

    def __init__(self, message, *, option, expected, actual, source):
        super().__init__(message)
        self.option = option
        self.expected = expected
        self.actual = actual
        self.source = source


def check_model_input(
    metadata: dict,
    box: int,
    voxel_size: float | None,
    *,
    source: str = "input",
    rtol: float = 1e-3,
) -> None:
    """Refuse subtomograms whose box or voxel size differ from the model's.

    Parameters
    ----------
    metadata : dict
        From ``load_model(..., return_metadata=True)``.
    box : int
        Box edge of the subtomograms in voxels.
    voxel_size : float or None
        Their voxel size in Angstrom (None when unknown).
    source : str
        Names the input in the message.
    rtol : float
        Relative tolerance on the voxel size.

    Raises
    ------
    ModelInputError
        A ValueError, on a box or voxel size mismatch (a voxel size unknown on
        one side is accepted); its ``option`` says which.
    """
    want_box = metadata.get("box_size")
    if want_box is not None and int(box) != int(want_box):
        raise ModelInputError(
            f"{source}: box {box}^3 voxels, but the model was trained on "
            f"{want_box}^3 (resample the subtomograms to the model's box and voxel "
            "size).",
            option="box",
            expected=int(want_box),
            actual=int(box),
            source=source,
        )
    want_vs = metadata.get("voxel_size")
    if want_vs is not None and voxel_size is not None:
        if not np.isclose(float(voxel_size), float(want_vs), rtol=rtol, atol=0):
            raise ModelInputError(
                f"{source}: voxel size {voxel_size:g} A, but the model was trained "
                f"on {float(want_vs):g} A (resample the subtomograms to the model's "
                "voxel size).",
                option="voxel_size",
                expected=float(want_vs),
                actual=float(voxel_size),
                source=source,
            )
