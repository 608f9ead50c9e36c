"""Feed a :class:`~fscc_sklearn.datasets.SubtomogramStream` to skorch."""

import torch
from torch.utils.data import DataLoader, Dataset


class StreamDataset(Dataset):
    """A stream, marked for ``Conv6Embedder.get_iterator`` (skorch wants a Dataset)."""

    def __init__(self, stream):
        self.stream = stream

    def __len__(self):
        return self.stream.batches_per_epoch * self.stream.batch_size

    def __getitem__(self, i):  # pragma: no cover - batches come from StreamLoader
        raise TypeError("A stream is read batch by batch through StreamLoader.")

    def fingerprint(self):
        return self.stream.fingerprint()


class _Batches(Dataset):
    """Batch ``i`` of one pass: a map-style dataset, so workers keep the order."""

    def __init__(self, stream, seeds):
        self.stream = stream
        self.seeds = seeds

    def __len__(self):
        return len(self.seeds)

    def __getitem__(self, i):
        X, y = self.stream.batch(int(self.seeds[i]))
        return torch.from_numpy(X[:, None]), torch.from_numpy(y)


class StreamLoader:
    """Iterable over the batches of a stream; every iteration is a new epoch.

    Pass ``p`` of a training run with seed ``s`` reads the batches seeded from
    ``(s, p)``, so the data of every epoch is new and fixed by ``s``, whatever
    the number of DataLoader workers (``num_workers`` simulates in parallel).
    An evaluation loader (``training=False``) always reads the same
    ``eval_batches`` batches.
    """

    def __init__(self, stream, seed, *, training=True, **loader_kwargs):
        self.stream = stream
        self.seed = int(seed)
        self.training = training
        self.epoch = 0
        for key in ("batch_size", "shuffle", "generator", "collate_fn", "sampler"):
            loader_kwargs.pop(key, None)
        self.loader_kwargs = loader_kwargs

    def state_dict(self):
        """Seed and pass number: where the next training pass starts."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        """Continue from a :meth:`state_dict` (resume) without simulating."""
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __len__(self):
        s = self.stream
        return s.batches_per_epoch if self.training else s.eval_batches

    def __iter__(self):
        seeds = self.stream.batch_seeds([self.seed, self.epoch], len(self))
        if self.training:
            self.epoch += 1
        batches = _Batches(self.stream, seeds)
        if not self.loader_kwargs.get("num_workers"):
            return (batches[i] for i in range(len(batches)))
        return iter(DataLoader(batches, batch_size=None, **self.loader_kwargs))
