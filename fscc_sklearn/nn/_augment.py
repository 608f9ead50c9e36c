"""Training augmentations for subtomograms that keep the missing wedge in place."""

import torch


class WedgeSafeAugment:
    """Random flips, circular shifts and noise that leave the missing wedge where it is.

    A subtomogram's missing wedge is a fixed region of Fourier space (around
    the beam axis, symmetric about the tilt axis). Mirroring along any of the
    three box axes maps ``k -> -k`` on that axis; the wedge is symmetric under
    each of these, so flips (and their products, the 180-degree turns about
    x, y and z) keep it exactly in place. A circular shift only changes
    Fourier phases. A general rotation, or a 90-degree turn about the beam
    axis, moves the wedge and would teach the network orientations of the
    wedge it never sees in real data, so none are offered.

    Parameters
    ----------
    flip : bool, default=True
        Mirror every sample along each of the three spatial axes with
        probability 1/2 (eight outcomes, the group of flips and 180-degree
        turns about the axes).
    max_shift : int, default=2
        Circularly shift every sample by an integer in ``[-max_shift, max_shift]``
        voxels along each axis (0 disables).
    noise_std : float, default=0.0
        Add Gaussian noise with this standard deviation relative to each
        sample's own standard deviation (0 disables). Unlike flips and shifts,
        white noise also fills the wedge.

    Examples
    --------
    >>> import torch
    >>> aug = WedgeSafeAugment(max_shift=1)
    >>> x = torch.randn(4, 1, 8, 8, 8)
    >>> y = aug(x, torch.Generator().manual_seed(0))
    >>> y.shape == x.shape, y.dtype == x.dtype
    (True, True)
    """

    def __init__(self, *, flip=True, max_shift=2, noise_std=0.0):
        if not isinstance(flip, bool):
            raise ValueError(f"flip must be True or False; got {flip!r}.")
        if (
            isinstance(max_shift, bool)
            or not isinstance(max_shift, int)
            or max_shift < 0
        ):
            raise ValueError(f"max_shift must be an int >= 0; got {max_shift!r}.")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0; got {noise_std!r}.")
        self.flip = flip
        self.max_shift = max_shift
        self.noise_std = float(noise_std)

    def __repr__(self):
        return (
            f"WedgeSafeAugment(flip={self.flip}, max_shift={self.max_shift}, "
            f"noise_std={self.noise_std})"
        )

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, D, H, W)``; a new tensor, ``x`` is not changed.

        All random draws come from ``generator`` (on the CPU), so the same seed
        gives the same batch.
        """
        if x.ndim != 5:
            raise ValueError(
                f"Expected a batch (N, C, D, H, W); got shape {tuple(x.shape)}."
            )
        n = len(x)
        flips = torch.rand(n, 3, generator=generator) < 0.5
        m = self.max_shift
        shifts = torch.randint(-m, m + 1, (n, 3), generator=generator)
        out = []
        for i in range(n):
            xi = x[i]
            if self.flip:
                dims = [d + 1 for d in range(3) if flips[i, d]]
                if dims:
                    xi = torch.flip(xi, dims)
            if m:
                xi = torch.roll(xi, shifts[i].tolist(), dims=(1, 2, 3))
            out.append(xi)
        out = torch.stack(out)
        if self.noise_std:
            std = x.flatten(1).std(1).view(n, 1, 1, 1, 1)
            noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            out = out + self.noise_std * std * noise
        return out
