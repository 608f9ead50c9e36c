"""Class-balanced mini-batches for supervised contrastive training."""

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler):
    """Yield batches with the same number of samples from every class.

    Each batch holds ``batch_size // n_classes`` samples of every class, so every
    anchor of the supervised contrastive loss has positives. Within a class the
    samples are drawn without replacement from a random permutation, refilled
    when exhausted (so every sample is used equally often and a batch repeats a
    sample only when its class is smaller than ``batch_size // n_classes``). An
    epoch has ``max(1, n_samples // batch)`` batches, where ``batch`` is the
    balanced batch size actually used.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class label of every sample.
    batch_size : int
        Requested batch size; at least 2 samples per class must fit.
    seed : int or None
        Seed of the sampling; iterating twice continues the same random stream.

    Examples
    --------
    >>> sampler = ClassBalancedBatchSampler([0, 0, 0, 1, 1, 1], batch_size=4, seed=0)
    >>> [sorted(np.asarray([0, 0, 0, 1, 1, 1])[b].tolist()) for b in sampler]
    [[0, 0, 1, 1]]
    """

    def __init__(self, labels, batch_size, seed=None):
        labels = np.asarray(labels)
        classes, inverse = np.unique(labels, return_inverse=True)
        self.per_class = batch_size // len(classes)
        if len(classes) < 2 or self.per_class < 2:
            raise ValueError(
                f"batch_size={batch_size} cannot hold 2 samples of each of "
                f"{len(classes)} classes; use batch_size >= {2 * len(classes)} "
                "and at least 2 classes."
            )
        self._members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
        self._rng = np.random.default_rng(seed)
        self.n_batches = max(1, len(labels) // (self.per_class * len(classes)))

    def __len__(self):
        return self.n_batches

    def state_dict(self):
        """The sampler's position in its random stream (JSON-able), between epochs."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state):
        """Continue from a :meth:`state_dict`, e.g. to resume training."""
        self._rng.bit_generator.state = state["rng"]

    def __iter__(self):
        queues = [self._rng.permutation(m) for m in self._members]
        for _ in range(self.n_batches):
            batch = []
            for c, members in enumerate(self._members):
                while len(queues[c]) < self.per_class:
                    fresh = self._rng.permutation(members)
                    # leftovers go first; their fresh copies go last, so a batch
                    # repeats a sample only if the class is smaller than per_class
                    seen = np.isin(fresh, queues[c])
                    queues[c] = np.concatenate([queues[c], fresh[~seen], fresh[seen]])
                batch.append(queues[c][: self.per_class])
                queues[c] = queues[c][self.per_class :]
            yield np.concatenate(batch).tolist()
