"""Crash-safe checkpoints of pre-training, and resuming to the identical model."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.history import History

from ..io._write import atomic_output

__all__ = ["AtomicCheckpoint", "load_checkpoint"]

# 2: the batch sampler's own state (format 1 held the generator that seeds it)
_FORMAT = 2
# Parameters that may change between the interrupted and the resumed run
# without changing the model (or that hold the checkpoint callback itself).
_IGNORED_PARAMS = ("callbacks", "max_epochs", "verbose", "device", "warm_start")


class AtomicCheckpoint(Callback):
    """Save the training state after every epoch; resume from it in ``fit``.

    After each epoch the network weights, optimizer and criterion state, the
    history and the state of the training batch sampler are written to
    ``dirname/filename`` atomically: into a temporary file in the same folder
    that then replaces the checkpoint with :func:`os.replace`. A process
    killed while writing leaves the previous checkpoint intact.

    When :meth:`Conv6Embedder.fit <fscc_sklearn.Conv6Embedder.fit>` starts and
    a checkpoint is found (``resume=True``), it restores that state
    (:meth:`restore`) and trains only the epochs missing to ``max_epochs``
    (skorch's ``partial_fit(..., epochs=...)``). On CPU the resumed model is
    bit-identical to the model an uninterrupted ``fit`` with the same data and
    ``random_state`` gives. The checkpoint records a fingerprint of the data and
    the hyper-parameters; resuming with different ones raises instead of mixing
    two trainings. ``max_epochs``, ``device`` and ``verbose`` may change.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoint (created if missing).
    resume : bool, default=True
        Whether ``fit`` continues from an existing checkpoint. With False an
        existing checkpoint is replaced after the first epoch.
    filename : str, default="fscc_checkpoint.pt"
        File name of the checkpoint inside ``dirname``.

    Attributes
    ----------
    resumed_from_ : int
        Epochs already done when the last ``fit`` started (0 for a fresh run).

    Notes
    -----
    The checkpoint is a :func:`torch.save` file of tensors plus a JSON string,
    read back with ``weights_only=True``, so loading an untrusted checkpoint
    cannot run code. Other callbacks that keep their own state (e.g. learning
    rate schedulers) are not saved. Use with ``fit``; ``partial_fit`` and
    ``warm_start`` continue training on their own and need no resume.

    Give every training run its own folder: inside a cross-validation every fit
    sees other data, so a shared folder makes the second fit refuse to resume
    the first one's checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> from fscc_sklearn import Conv6Embedder
    >>> from fscc_sklearn.datasets._toy import make_toy_volumes
    >>> X, y = make_toy_volumes(n_classes=2, n_per_class=4, box=16, random_state=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     emb = Conv6Embedder(module__width=4, max_epochs=2, batch_size=8,
    ...                         random_state=0, callbacks=[AtomicCheckpoint(tmp)])
    ...     _ = emb.fit(X, y)            # saves after epochs 1 and 2
    ...     load_checkpoint(tmp)["epoch"]
    2
    """

    def __init__(self, dirname, *, resume=True, filename="fscc_checkpoint.pt"):
        self.dirname = dirname
        self.resume = resume
        self.filename = filename

    @property
    def path(self) -> Path:
        """Path of the checkpoint file."""
        return Path(self.dirname) / self.filename

    def initialize(self):
        if (
            not isinstance(self.filename, str)
            or not self.filename
            or (Path(self.filename).name != self.filename)
        ):
            raise ValueError(
                f"filename must be a plain file name; got {self.filename!r}."
            )
        self.resumed_from_ = 0
        return self

    def restore(self, net, X, y) -> int:
        """Load the checkpoint into the initialised ``net``; the epochs it holds.

        Called by ``Conv6Embedder.fit`` before training, with the data it
        trains on: restores the weights, optimizer, criterion and history, and
        hands the batch sampler's state to the net, which sets it on its next
        training iterator. Returns 0 (and changes nothing) without a checkpoint
        or with ``resume=False``.

        Raises
        ------
        ValueError
            If the checkpoint is unreadable or belongs to other data or
            parameters.
        """
        _check_net(net)
        self.resumed_from_ = 0
        self._restored_fingerprint = None
        if not (self.resume and self.path.exists()):
            return 0
        state = load_checkpoint(self.dirname, filename=self.filename)
        fingerprint = _fingerprint(net, X, y)
        _check_fingerprint(state["fingerprint"], fingerprint, self.path)
        device = torch.device(net.device_)
        net.module_.load_state_dict(_to(state["module"], device))
        net.criterion_.load_state_dict(_to(state["criterion"], device))
        net.optimizer_.load_state_dict(_to(state["optimizer"], device))
        net.history = History(state["history"])
        net._sampler_resume_ = state["sampler_state"]
        self._restored_fingerprint = fingerprint
        self.resumed_from_ = state["epoch"]
        return self.resumed_from_

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        _check_net(net)
        Path(self.dirname).mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(self.path)
        restored = getattr(self, "_restored_fingerprint", None)
        self._restored_fingerprint = None
        self._fingerprint = restored or _fingerprint(net, X, y)

    def on_epoch_end(self, net, **kwargs):
        meta = {
            "format": _FORMAT,
            "epoch": len(net.history),
            "fingerprint": self._fingerprint,
            "sampler_state": net._sampler_state_,
            "history": net.history.to_list(),
        }
        payload = {
            "meta": json.dumps(meta, default=_json_default),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "criterion": net.criterion_.state_dict(),
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        with atomic_output(self.path, overwrite=True, durable=True) as tmp:
            with open(tmp, "wb") as fh:
                _write_all(fh, buf.getvalue())


def _check_net(net) -> None:
    if not hasattr(net, "_restore_checkpoint"):
        raise TypeError(
            "AtomicCheckpoint resumes a Conv6Embedder (it saves the state of its "
            f"training batch sampler); got {type(net).__name__}."
        )


def load_checkpoint(dirname, *, filename="fscc_checkpoint.pt") -> dict:
    """Read a checkpoint written by :class:`AtomicCheckpoint`.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoint.
    filename : str, default="fscc_checkpoint.pt"
        File name inside ``dirname``.

    Returns
    -------
    state : dict
        ``epoch``, ``history``, ``fingerprint``, ``sampler_state`` and the
        state dicts ``module``, ``optimizer`` and ``criterion``.

    Raises
    ------
    FileNotFoundError
        If there is no checkpoint.
    ValueError
        If the file is not a readable checkpoint (truncated, corrupt, foreign).
    """
    path = Path(dirname) / filename
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at '{path}'.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(payload["meta"])
        state = {k: payload[k] for k in ("module", "optimizer", "criterion")}
        version = meta.get("format")
        if version == _FORMAT:
            for key in ("epoch", "history", "fingerprint", "sampler_state"):
                state[key] = meta[key]
    except Exception as exc:  # any unpickling/parse failure means: unusable
        raise ValueError(
            f"'{path}' is not a readable fscc checkpoint (truncated or corrupt?): {exc}"
        ) from exc
    if version != _FORMAT:
        raise ValueError(
            f"'{path}' is a checkpoint of format {version!r}, written by another "
            f"version of fscc-sklearn (this one reads format {_FORMAT}); start over "
            "with AtomicCheckpoint(..., resume=False)."
        )
    return state


def _fingerprint(net, X, y) -> dict:
    """What must match for a checkpoint to belong to this training."""
    params = {}
    for key, value in sorted(net.get_params(deep=False).items()):
        if key in _IGNORED_PARAMS or key.startswith("callbacks__"):
            continue
        if isinstance(value, np.random.RandomState | np.random.Generator):
            value = type(value).__name__  # its state moves as it is used
        params[key] = re.sub(r" at 0x[0-9a-f]+", "", repr(value))
    if hasattr(X, "fingerprint"):  # a stream: its settings and maps
        return {"params": params, "data": X.fingerprint()}
    digest = hashlib.blake2b(digest_size=16)
    for arr in (X, y):
        arr = np.ascontiguousarray(arr)
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(memoryview(arr).cast("B"))
    return {"params": params, "data": digest.hexdigest()}


def _check_fingerprint(saved: dict, current: dict, path: Path) -> None:
    if saved["data"] != current["data"]:
        raise ValueError(
            f"Checkpoint '{path}' was written while training on other data; pass "
            "the same X and y to resume, or AtomicCheckpoint(..., resume=False) to "
            "start over."
        )
    changed = sorted(
        k
        for k in set(saved["params"]) | set(current["params"])
        if saved["params"].get(k) != current["params"].get(k)
    )
    if changed:
        first = changed[0]
        raise ValueError(
            f"Checkpoint '{path}' was written with other parameters ({changed}; "
            f"e.g. {first}={saved['params'].get(first)}, now "
            f"{current['params'].get(first)}); resume with the same parameters or "
            "pass AtomicCheckpoint(..., resume=False) to start over."
        )


def sampler_of(iterator, required=True):
    """What holds the batch order of a training iterator, and its state.

    A :class:`~fscc_sklearn.embedding._stream_loader.StreamLoader` itself, or
    the batch sampler of a DataLoader (e.g.
    :class:`~fscc_sklearn.nn.ClassBalancedBatchSampler`): whichever has
    ``state_dict``/``load_state_dict``. None (or TypeError if ``required``)
    for other iterators.
    """
    for candidate in (iterator, getattr(iterator, "batch_sampler", None)):
        if hasattr(candidate, "state_dict") and hasattr(candidate, "load_state_dict"):
            return candidate
    if required:
        raise TypeError(
            "Resuming needs a training iterator whose batch sampler has "
            f"state_dict/load_state_dict; got {type(iterator).__name__}."
        )
    return None


def _to(state, device):
    """Move the tensors of a (nested) state dict to ``device``."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return type(state)((k, _to(v, device)) for k, v in state.items())
    if isinstance(state, list | tuple):
        return type(state)(_to(v, device) for v in state)
    return state


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Cannot store {type(value).__name__} in a checkpoint history.")


def _write_all(fh, data: bytes) -> None:
    # a separate function so tests can simulate a kill in the middle of a write
    fh.write(data)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files a killed process left next to the checkpoint."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
