"""Conv6Embedder: pre-trains Conv-6 with CE + SupCon and maps subtomograms to features."""

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EpochTimer, PassthroughScoring, PrintLog
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from torch.nn.modules.batchnorm import _BatchNorm

from ._validation import check_class_counts, check_volumes
from .nn import CESupConLoss, ClassBalancedBatchSampler, Conv6


def resolve_device(device):
    """Map ``"auto"`` to ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _TrainAccuracy(Callback):
    """Record the training accuracy of every epoch (from the batches seen)."""

    def on_epoch_begin(self, net, **kwargs):
        self._hits, self._seen = 0, 0

    def on_batch_end(self, net, batch, training, y_pred, **kwargs):
        if training:
            logits = y_pred[0] if isinstance(y_pred, tuple) else y_pred
            self._hits += int((logits.argmax(1).cpu() == batch[1].cpu()).sum())
            self._seen += len(batch[1])

    def on_epoch_end(self, net, **kwargs):
        if self._seen:
            net.history.record("train_acc", self._hits / self._seen)


class PreciseBatchNorm(Callback):
    """Recompute BatchNorm statistics on the training data when training ends.

    Running statistics are an exponential average over the last few batches,
    taken while the weights were still moving; with few steps or a high learning
    rate they do not match the final weights, and eval-mode features (the ones
    that transfer) suffer. One forward pass over the training set with a
    cumulative average fixes that.
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        norms = [m for m in net.module_.modules() if isinstance(m, _BatchNorm)]
        if not norms or X is None:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        net.module_.train()
        with torch.no_grad():
            for Xb, _ in net.get_iterator(net.get_dataset(X), training=False):
                net.module_(Xb.to(net.device))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.module_.eval()


class Conv6Embedder(TransformerMixin, NeuralNet):
    """Pre-train Conv-6 on base classes with ``CE + sup_con_weight * SupCon``.

    ``fit(X, y)`` trains on labelled base-class subtomograms with class-balanced
    mini-batches; ``transform(X)`` returns the frozen network's flattened,
    non-negative features. All other skorch ``NeuralNet`` parameters
    (``module__width``, ``optimizer__weight_decay``, ``callbacks``, ...) work as
    usual; the network's ``n_classes`` and ``volume_size`` come from the data.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=Conv6
        Must return ``(logits, features)`` and provide ``forward_features``,
        ``forward_head`` and ``num_features``.
    criterion : torch.nn.Module class, default=CESupConLoss
    optimizer : torch optimizer class, default=torch.optim.Adam
    lr : float, default=1e-3
        The paper states 0.05 with Adam; pass ``lr=0.05`` to follow it.
    max_epochs : int, default=5
    batch_size : int, default=128
        Training batches take ``batch_size // n_classes`` samples of every class;
        also the batch size of :meth:`transform`.
    sup_con_weight : float, default=0.05
        Weight ``lambda`` of the supervised contrastive loss.
    temperature : float, default=0.07
        Temperature of the supervised contrastive loss.
    device : {"auto", "cpu", "cuda", ...}, default="auto"
        ``"auto"`` picks CUDA when available. skorch needs a concrete torch device,
        so ``initialize`` replaces ``"auto"`` by the device it chose.
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation and the batch sampling.
    train_split : callable or None, default=None
        No internal validation split: model selection holds out data itself.
    verbose : int, default=0
        1 prints a table of the epochs.

    Attributes
    ----------
    classes_ : ndarray of shape (n_base_classes,)
        Base-class labels seen in ``fit``.
    input_shape_ : tuple of int
        ``(1, D, H, W)`` of the training subtomograms.
    module_ : torch.nn.Module
        The trained network.
    history : skorch.History
        Per-epoch ``train_loss``, ``train_acc`` and duration.

    Notes
    -----
    When training ends, BatchNorm statistics are recomputed over the training
    data (callback ``precise_bn``; ``callbacks__precise_bn=None`` disables it),
    so eval-mode features match the final weights.
    """

    def __init__(
        self,
        module=Conv6,
        *,
        criterion=CESupConLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=5,
        batch_size=128,
        sup_con_weight=0.05,
        temperature=0.07,
        device="auto",
        random_state=None,
        train_split=None,
        verbose=0,
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

    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("train_acc", _TrainAccuracy()),
            ("precise_bn", PreciseBatchNorm()),
            ("print_log", PrintLog()),
        ]

    def initialize(self):
        self.device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        torch_seed, sampler_seed = rng.randint(0, 2**31 - 1, size=2)
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
        return self

    def initialize_criterion(self):
        kwargs = self.get_params_for("criterion")
        kwargs.setdefault("sup_con_weight", self.sup_con_weight)
        kwargs.setdefault("temperature", self.temperature)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def get_iterator(self, dataset, training=False):
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        seed = int(self.sampler_rng_.integers(2**63 - 1)) if training else 0
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

    def fit(self, X, y, **fit_params):
        """Pre-train on base-class subtomograms ``X`` with labels ``y``."""
        X = check_volumes(X)
        if not X.shape[2] == X.shape[3] == X.shape[4]:
            raise ValueError(f"Subtomograms must be cubic boxes; got {X.shape[2:]}.")
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"y must have shape ({len(X)},); got {y.shape}.")
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"Pre-training needs at least 2 base classes; got {len(self.classes_)}."
            )
        check_class_counts(y, minimum=2, what="Supervised contrastive pre-training")
        self.input_shape_ = X.shape[1:]
        return super().fit(X, y_idx.astype(np.int64), **fit_params)

    def transform(self, X):
        """Features ``(n_samples, num_features)`` float32 of subtomograms ``X``."""
        self.check_is_fitted(["module_", "input_shape_"])
        X = check_volumes(X)
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"Subtomograms have shape {X.shape[1:]}; this embedder was trained on "
                f"{self.input_shape_}."
            )
        module = self.module_.eval()
        out = np.empty((len(X), module.num_features), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(X), self.batch_size):
                xb = torch.from_numpy(X[start : start + self.batch_size]).to(self.device)
                feats = module.forward_head(module.forward_features(xb), pre_logits=True)
                out[start : start + len(xb)] = feats.float().cpu().numpy()
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags


def _dataset_labels(dataset):
    """Labels of a skorch ``Dataset`` or of a ``Subset`` of one."""
    if hasattr(dataset, "indices"):
        return np.asarray(_dataset_labels(dataset.dataset))[dataset.indices]
    return np.asarray(dataset.y)
