"""Conv6Embedder: pre-trains Conv-6 with CE + SupCon, maps subtomograms to features."""

import os
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from skorch import NeuralNet
from skorch.callbacks import PassthroughScoring
from skorch.utils import to_tensor

from .._progress import visible
from .._validation import check_volume_shape
from ..model_selection import unfreeze
from ..nn import CESupConLoss, ClassBalancedBatchSampler, Conv6
from ..persistence._model_file import load_model
from ..persistence._state import register_saveable
from . import _runtime
from ._callbacks import PreciseBatchNorm, WarmupCosineLR, _TrainAccuracy
from ._checkpoint import AtomicCheckpoint, sampler_of
from ._data import augmenter, check_training_params, training_data
from ._runtime import resolve_device
from ._stream_loader import StreamDataset, StreamLoader
from ._weights import (
    PRETRAINED,
    SKIPPED_PARAMS,
    from_model_state,
    load_initial_weights,
    model_state,
    pretrained_path,
)

# CPU forward passes run on slices of this many subtomograms (8 MB of first-block
# activations each at width 64): 8 beat 4 by 9 % on an idle AVX2 host and by 15 %
# (interleaved, OpenMP passive) on a busy AVX-512 one (docs/performance.md)
_CPU_MICRO_BATCH = 8


@register_saveable
class Conv6Embedder(TransformerMixin, NeuralNet):
    """Pre-train Conv-6 on base classes with ``CE + sup_con_weight * SupCon``.

    ``fit(X, y)`` trains on labelled base-class subtomograms with class-balanced
    mini-batches; ``transform(X)`` returns the frozen network's flattened,
    non-negative features. All other skorch ``NeuralNet`` parameters
    (``module__width``, ``optimizer__weight_decay``, ``callbacks``, ...) work as
    usual; the network's ``n_classes`` and ``volume_size`` come from the data.

    The defaults are the ``"transfer"`` recipe (wedge-safe flips and shifts,
    warm-up + cosine decay, batch 64, 8 epochs), which gave 2-3.5 points more
    novel-class accuracy than the paper's settings on simulated data
    (docs/pretraining.md); ``Conv6Embedder(**pretraining_recipe("paper"))``
    reproduces the paper (Adam lr 0.05, batch 128, 5 epochs, no augmentation).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=Conv6
        Must return ``(logits, features)`` and provide ``forward_features``,
        ``forward_head`` and ``num_features``.
    criterion : torch.nn.Module class, default=CESupConLoss
    optimizer : torch optimizer class, default=torch.optim.Adam
    lr : float, default=1e-3
        Peak learning rate. The paper states 0.05 with Adam.
    max_epochs : int, default=8
    batch_size : int, default=64
        Training batches take ``batch_size // n_classes`` samples of every class;
        also the batch size of :meth:`transform`.
    sup_con_weight : float, default=0.05
        Weight ``lambda`` of the supervised contrastive loss.
    temperature : float, default=0.07
        Temperature of the supervised contrastive loss.
    device : {"auto", "cpu", "cuda", ...}, default="auto"
        ``"auto"`` picks CUDA when available. The parameter keeps the value
        given; the device chosen is the fitted attribute ``device_``.
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation and the batch sampling.
    train_split : callable or None, default=None
        No internal validation split by default; with one (e.g. skorch's
        ``ValidSplit``) ``valid_loss`` is recorded, for ``EarlyStopping``.
    verbose : int, default=0
        1 prints a table of the epochs.
    channels_last : bool or "inference", default=True
        Where activations use the ``torch.channels_last_3d`` layout: ``True``
        in training and in :meth:`transform`, ``"inference"`` in
        :meth:`transform` only, ``False`` nowhere. On x86 CPUs oneDNN runs the
        inference convolutions about 1.5x faster in it; in training it was
        1.6x faster at width 16 and between 1.2x slower and 1.1x faster at
        width 64 (docs/performance.md). Results equal the default layout up to
        float rounding.
    amp : bool, default=False
        Mixed precision in :meth:`transform`: convolutions in bfloat16 (CPU
        with AVX-512 BF16 or AMX, or a CUDA GPU with bfloat16 support; other
        CPUs emulate it, 300x slower, and get a ``RuntimeWarning``).
        Features then differ from float32 by about 0.5 % (relative) and are
        returned as float32. Training always runs in float32 (bfloat16
        autocast made the CE + SupCon loss diverge in our benchmark).
    progress : bool or callable, default=False
        Report the progress of :meth:`transform`: True shows a tqdm bar when
        stderr is a terminal (and tqdm is installed); a callable is called as
        ``progress(n_done, n_total)`` after every batch.
    augment : None, "flip_shift" or callable, default="flip_shift"
        Augmentation of the training batches. ``"flip_shift"`` is
        :class:`~fscc_sklearn.nn.WedgeSafeAugment` with its defaults (random
        flips along x, y, z and circular shifts of up to 2 voxels, which keep
        the missing wedge in place); a callable is called as
        ``augment(X_batch, generator)`` and returns the augmented batch.
        Draws are seeded by ``random_state``.
    lr_schedule : None or "cosine", default="cosine"
        ``"cosine"``: linear warm-up over ``warmup_epochs``, then cosine decay
        to 0 at the last epoch (callback ``lr_schedule``, see
        :class:`~fscc_sklearn.WarmupCosineLR`). None keeps ``lr`` constant.
    warmup_epochs : float, default=1.0
        Warm-up length of ``lr_schedule="cosine"``.
    initial_weights : None, "general" or path, default=None
        Start training from the weights of a model file (or of the shipped
        ``"general"`` model, see :func:`~fscc_sklearn.pretrained_embedder`)
        instead of a random initialisation: every layer but the class layer
        ``fc`` (the base classes differ). The network must have the same
        shape (e.g. ``module__width=32`` for ``"general"``).

    Attributes
    ----------
    device_ : str
        The torch device the network runs on (``device`` resolved).
    classes_ : ndarray of shape (n_base_classes,)
        Base-class labels seen in ``fit``.
    input_shape_ : tuple of int
        ``(1, D, H, W)`` of the training subtomograms.
    module_ : torch.nn.Module
        The trained network.
    history : skorch.History
        Per epoch: ``train_loss``, its terms ``train_ce`` and ``train_supcon``
        (also per batch), ``train_acc``, ``lr`` and the duration; with a
        ``train_split`` also ``valid_loss``, ``valid_ce`` and ``valid_supcon``.

    Notes
    -----
    When training ends, BatchNorm statistics are recomputed over the training
    data (callback ``precise_bn``; ``callbacks__precise_bn=None`` disables it),
    so eval-mode features match the final weights.

    :meth:`transform` streams: shape and dtype are checked up front, values
    are converted to float32 and checked for NaN/inf batch by batch, so a
    memory-mapped stack (``np.load(..., mmap_mode="r")``, :func:`mrcfile.mmap`)
    is never loaded whole, and the pages already read are handed back to the
    kernel. It runs a private inference copy of ``module_`` (for
    :class:`~fscc_sklearn.nn.Conv6`: BatchNorm folded into the convolutions,
    see :func:`~fscc_sklearn.nn.fuse_for_inference`), rebuilt whenever the
    weights change and never pickled. On the CPU the forward pass runs on
    slices of 8 subtomograms. ``docs/performance.md`` has the thread and
    malloc settings.
    """

    def __init__(
        self,
        module=Conv6,
        *,
        criterion=CESupConLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=8,
        batch_size=64,
        sup_con_weight=0.05,
        temperature=0.07,
        device="auto",
        random_state=None,
        train_split=None,
        verbose=0,
        channels_last=True,
        amp=False,
        progress=False,
        augment="flip_shift",
        lr_schedule="cosine",
        warmup_epochs=1.0,
        initial_weights=None,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            device=device,
            train_split=train_split,
            verbose=verbose,
            **kwargs,
        )
        self.sup_con_weight = sup_con_weight
        self.temperature = temperature
        self.random_state = random_state
        self.channels_last = channels_last
        self.amp = amp
        self.progress = progress
        self.augment = augment
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.initial_weights = initial_weights

    def get_default_callbacks(self):
        """skorch's defaults (timer, train/valid loss, print log) and ours.

        Ours: the epoch means of the loss terms (``train_ce``, ``train_supcon``,
        ``valid_ce``, ``valid_supcon``), ``train_acc``, the learning-rate
        schedule ``lr_schedule`` (only with ``lr_schedule="cosine"``) and
        ``precise_bn``; the print log stays last.
        """
        defaults = list(super().get_default_callbacks())
        last = [(n, cb) for n, cb in defaults if n == "print_log"]
        ours = [
            (name, PassthroughScoring(name, lower_is_better=None, on_train=on_train))
            for name, on_train in (
                ("train_ce", True),
                ("train_supcon", True),
                ("valid_ce", False),
                ("valid_supcon", False),
            )
        ]
        ours.append(("train_acc", _TrainAccuracy()))
        if self.lr_schedule == "cosine":
            ours.append(("lr_schedule", WarmupCosineLR(self.warmup_epochs)))
        ours.append(("precise_bn", PreciseBatchNorm()))
        return [c for c in defaults if c not in last] + ours + last

    def initialize(self):
        self.device_ = resolve_device(self.device)
        _runtime.check_speed_params(self)
        rng = check_random_state(self.random_state)
        # a third draw leaves the first two (and older results) unchanged
        torch_seed, sampler_seed, augment_seed = rng.randint(0, 2**31 - 1, size=3)
        self._augment_seed_ = int(augment_seed)
        self.sampler_rng_ = np.random.default_rng(sampler_seed)
        # fork_rng keeps the caller's global torch RNG untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch_seed))
            return super().initialize()

    def initialize_module(self):
        kwargs = self.get_params_for("module")
        if not hasattr(self, "classes_"):
            raise RuntimeError("Conv6Embedder is initialised by fit(X, y).")
        kwargs.setdefault("n_classes", len(self.classes_))
        kwargs.setdefault("volume_size", self.input_shape_[-1])
        self.module_ = self.initialized_instance(self.module, kwargs)
        if self.initial_weights is not None:
            source = embedder_from(self.initial_weights).module_
            load_initial_weights(self, source)
        self.module_ = self.module_.to(self.device_)
        if self._training_channels_last:
            self.module_ = self.module_.to(memory_format=torch.channels_last_3d)
        self.__dict__.pop("_inference_cache_", None)
        return self

    # skorch moves the module and criterion to ``self.device`` after building
    # them, and "auto" is no torch device: let it see the device chosen while it
    # does, and give the parameter back unchanged
    def _initialize_module(self, reason=None):
        with _runtime.skorch_device(self):
            return super()._initialize_module(reason)

    def _initialize_criterion(self, reason=None):
        with _runtime.skorch_device(self):
            return super()._initialize_criterion(reason)

    def train_step_single(self, batch, **fit_params):
        augment = augmenter(self.augment)
        if augment is not None:
            Xi, yi = batch
            # seeded by (random_state, epoch, batch), not drawn from sampler_rng_:
            # a fit resumed from a checkpoint replays the same augmentations
            epoch = len(self.history)
            step = len(self.history[-1, "batches"])
            seq = np.random.SeedSequence([self._augment_seed_, epoch, step])
            seed = int(seq.generate_state(1, dtype=np.uint64)[0] >> 1)
            Xi = augment(
                to_tensor(Xi, device=self.device_), torch.Generator().manual_seed(seed)
            )
            batch = (Xi, yi)
        return super().train_step_single(batch, **fit_params)

    @property
    def _training_channels_last(self):
        # np.True_ counts as True; "inference" keeps training in NCDHW
        return self.channels_last != "inference" and bool(self.channels_last)

    @property
    def _inference_channels_last(self):
        return bool(self.channels_last)  # True or "inference"

    def _autocast(self):
        device_type = torch.device(self.device_).type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp)

    def infer(self, x, **fit_params):
        """Forward a batch, in the ``channels_last_3d`` layout when asked."""
        x = to_tensor(x, device=self.device_)
        if isinstance(x, Mapping):
            return super().infer(x, **fit_params)
        if self._training_channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.module_(x, **fit_params)

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        kwargs.setdefault("sup_con_weight", self.sup_con_weight)
        kwargs.setdefault("temperature", self.temperature)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        if isinstance(self.criterion_, torch.nn.Module):
            self.criterion_ = self.criterion_.to(self.device_)
        return self

    def forward_iter(self, X, training=False, device="cpu"):
        # skorch's scoring callbacks pass net.device, which may be "auto"
        device = self.device_ if device == "auto" else device
        return super().forward_iter(X, training=training, device=device)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The criterion's loss; its terms go to the batch history.

        With a criterion that has ``loss_terms`` (e.g.
        :class:`~fscc_sklearn.nn.CESupConLoss`) every term is recorded per batch
        as ``train_<term>`` or ``valid_<term>`` (``train_ce``,
        ``train_supcon``); default callbacks of the same names average them
        per epoch.
        """
        y_true = to_tensor(y_true, device=self.device_)
        split = getattr(self.criterion_, "loss_terms", None)
        if split is None:
            return self.criterion_(y_pred, y_true)
        terms = split(y_pred, y_true)
        prefix = "train" if training else "valid"
        for name, value in terms.items():
            self.history.record_batch(f"{prefix}_{name}", value.item())
        return self.criterion_.combine(terms)

    def get_iterator(self, dataset, training=False):
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        seed = int(self.sampler_rng_.integers(2**63 - 1)) if training else 0
        if isinstance(dataset, StreamDataset):
            return StreamLoader(dataset.stream, seed, training=training, **kwargs)
        # DataLoader seeds its workers from a generator: give it ours, so the
        # caller's global torch RNG is never consumed
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        if not training:
            kwargs.setdefault("batch_size", self.batch_size)
            return self.iterator_valid(dataset, **kwargs)
        kwargs.pop("batch_size", None)
        kwargs.pop("shuffle", None)
        sampler = ClassBalancedBatchSampler(
            _dataset_labels(dataset), self.batch_size, seed=seed
        )
        return self.iterator_train(dataset, batch_sampler=sampler, **kwargs)

    @_runtime.malloc_scope()
    def fit(self, X, y=None, **fit_params):
        """Pre-train on base-class subtomograms ``X`` with labels ``y``.

        ``X`` may instead be a :class:`~fscc_sklearn.datasets.SubtomogramStream`
        (and ``y`` None): every epoch then trains on ``batches_per_epoch`` fresh
        class-balanced batches of the stream (its batch size, not
        ``batch_size``, applies in training), drawn from ``random_state``.

        With an :class:`~fscc_sklearn.AtomicCheckpoint` among the callbacks,
        training continues from its checkpoint and runs only the epochs
        missing to ``max_epochs``.
        """
        X, y, self.classes_, self.input_shape_ = training_data(X, y)
        check_training_params(self)
        if not self.warm_start or not self.initialized_:
            self.initialize()
        epochs = max(0, self.max_epochs - self._restore_checkpoint(X, y))
        return self.partial_fit(X, y, epochs=epochs, **fit_params)

    def _restore_checkpoint(self, X, y):
        """Epochs done according to the checkpoint callbacks (0 without one)."""
        self._sampler_resume_ = None
        done = 0
        for _, callback in self.callbacks_:
            if isinstance(callback, AtomicCheckpoint):
                done = max(done, callback.restore(self, X, y))
        return done

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # the training batch sampler resumes from a checkpoint's state, and its
        # state after every epoch is what a checkpoint saves
        if training and getattr(self, "_sampler_resume_", None) is not None:
            sampler_of(iterator).load_state_dict(self._sampler_resume_)
            self._sampler_resume_ = None
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if training:
            sampler = sampler_of(iterator, required=False)
            self._sampler_state_ = None if sampler is None else sampler.state_dict()

    @_runtime.malloc_scope()
    def transform(self, X):
        """Features ``(n_samples, num_features)`` float32 of subtomograms ``X``.

        ``X`` may be a memory map much larger than the memory: it is read,
        converted and checked one batch of ``batch_size`` at a time.
        """
        self.check_is_fitted(["module_", "input_shape_"])
        X = check_volume_shape(X)
        shape = (1, *X.shape[-3:])
        if shape != tuple(self.input_shape_):
            raise ValueError(
                f"Subtomograms have shape {shape}; this embedder was trained on "
                f"{tuple(self.input_shape_)}."
            )
        _runtime.check_speed_params(self)
        with self._autocast():
            return _runtime.embed_batches(
                self._inference_module(),
                X,
                batch_size=self.batch_size,
                device=torch.device(self.device_),
                channels_last=self._inference_channels_last,
                progress=visible(self.progress),
                cpu_micro_batch=_CPU_MICRO_BATCH,
            )

    def get_feature_names_out(self, input_features=None):
        """Names of the features of :meth:`transform`: ``conv6embedder0``, ...

        Lets ``set_output(transform="pandas")`` label the columns.
        ``input_features`` is ignored: the input is a stack of volumes.
        """
        self.check_is_fitted(["module_"])
        prefix = type(self).__name__.lower()
        n = self.module_.num_features
        return np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)

    def _inference_module(self):
        """Eval-mode copy of ``module_`` for :meth:`transform`, cached per weights."""
        return _runtime.inference_module(self)

    _model_state_skip_params = SKIPPED_PARAMS

    def _get_model_state(self):
        """``(meta, arrays)`` for a safe model file (the persistence protocol).

        ``meta``: ``classes``, ``input_shape`` and the epoch rows of the
        ``history``; ``arrays``: the network's tensors as ``module.<name>``
        (weights float32).
        """
        return model_state(self)

    @classmethod
    def _from_model_state(cls, params, meta, arrays, *, device="cpu"):
        """The fitted embedder of :meth:`_get_model_state`; ValueError naming
        the first value that is not what the network needs."""
        return from_model_state(cls, params, meta, arrays, device=device)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_inference_cache_", None)  # rebuilt on first transform
        return state

    def __setstate__(self, state):
        # skorch maps the saved tensors to state["device"] (the CPU where that
        # device is missing here) and may rewrite it: map them to the device
        # they were on, device_, and keep the parameter as it was given
        device = state["device"]
        on = state.get("device_", resolve_device(device))
        super().__setstate__({**state, "device": on})
        if state.get("initialized_"):
            self.device_ = str(self.device)  # where the tensors are now
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags


def embedder_from(source, *, device: str = "cpu") -> Conv6Embedder:
    """The fitted :class:`Conv6Embedder` of a shipped model name or model file."""
    if isinstance(source, str) and source in PRETRAINED:
        source = pretrained_path(source)
    if not isinstance(source, str | os.PathLike):
        raise ValueError(
            f"Expected a shipped model name ({sorted(PRETRAINED)}) or the path of "
            f"a model file; got {type(source).__name__}."
        )
    for _, step in load_model(source, device=device).steps:
        est = unfreeze(step)
        if isinstance(est, Conv6Embedder):
            return est
    raise ValueError(f"{source} holds no Conv6Embedder.")  # pragma: no cover


def _dataset_labels(dataset):
    """Labels of a skorch ``Dataset`` or of a ``Subset`` of one."""
    if hasattr(dataset, "indices"):
        return np.asarray(_dataset_labels(dataset.dataset))[dataset.indices]
    return np.asarray(dataset.y)
