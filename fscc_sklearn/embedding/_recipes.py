"""Named pre-training recipes: parameter sets for :class:`Conv6Embedder`."""

import copy

_RECIPES = {
    # Gao et al. (2022): Adam at lr 0.05, batch 128, 5 epochs, lambda 0.05,
    # no augmentation, constant learning rate.
    "paper": {
        "lr": 0.05,
        "max_epochs": 5,
        "batch_size": 128,
        "sup_con_weight": 0.05,
        "temperature": 0.07,
        "augment": None,
        "lr_schedule": None,
    },
    # Wedge-preserving flips and shifts, more steps (smaller batches, 8 epochs)
    # and warm-up + cosine decay; see docs/pretraining.md for the measurements.
    "transfer": {
        "lr": 1e-3,
        "max_epochs": 8,
        "batch_size": 64,
        "sup_con_weight": 0.05,
        "temperature": 0.07,
        "augment": "flip_shift",
        "lr_schedule": "cosine",
        "warmup_epochs": 1.0,
    },
}


def pretraining_recipe(name: str) -> dict:
    """Parameters of a named pre-training recipe for :class:`Conv6Embedder`.

    Parameters
    ----------
    name : {"paper", "transfer"}
        ``"paper"`` reproduces the settings stated by Gao et al. (2022);
        ``"transfer"`` is the recipe measured in ``docs/pretraining.md``.

    Returns
    -------
    params : dict
        Keyword arguments, e.g. ``Conv6Embedder(**pretraining_recipe("paper"))``.

    Examples
    --------
    >>> pretraining_recipe("paper")["lr"]
    0.05
    """
    if name not in _RECIPES:
        raise ValueError(
            f"Unknown pre-training recipe {name!r}; expected one of {sorted(_RECIPES)}."
        )
    return copy.deepcopy(_RECIPES[name])
