"""The Conv-6 3D convolutional network of FSCC."""

from torch import nn


def _out_side(side: int, n_pool: int) -> int:
    """Side after up to ``n_pool`` 2x max-poolings, pooling only while side >= 2."""
    for _ in range(n_pool):
        if side < 2:
            break
        side //= 2
    return side


class Conv6(nn.Module):
    """Six 3D conv blocks (Conv3d 3x3x3 -> BatchNorm3d -> MaxPool3d -> ReLU) and a head.

    The paper's blocks apply the ReLU before pooling; pooling first computes
    the same values and gradients (the maximum commutes with any
    non-decreasing function) for an eighth of the ReLU's work.

    Pooling follows the Conv backbones of Chen et al. (2019): the first ``n_pool``
    blocks halve the volume, but only while it is at least 2 voxels wide, so any box
    of 2 voxels or more works (28 -> 14 -> 7 -> 3 -> 1, 32 -> 16 -> 8 -> 4 -> 2,
    37 -> 18 -> 9 -> 4 -> 2, 40 -> 20 -> 10 -> 5 -> 2). With the defaults a 32^3 box
    gives ``64 * 2**3 = 512`` features for about 1.15 GFLOP per subtomogram.

    Parameters
    ----------
    n_classes : int
        Number of output logits (base classes).
    in_chans : int, default=1
        Input channels.
    width : int, default=64
        Channels of every block.
    volume_size : int, default=32
        Side of the cubic input box.
    n_pool : int, default=4
        Number of leading blocks that pool.
    proj_dim : int or None, default=None
        If given, ``forward`` returns the output of a projection head
        (Linear -> ReLU -> Linear to ``proj_dim``) instead of the features as its
        second element, for the contrastive loss; the features that transfer
        are still taken before the head (``forward_head(..., pre_logits=True)``),
        as in Khosla et al. (2020).

    Attributes
    ----------
    num_features : int
        Length of the flattened, non-negative feature vector.

    Examples
    --------
    >>> import torch
    >>> net = Conv6(n_classes=3, width=4, volume_size=8)
    >>> logits, feats = net(torch.zeros(2, 1, 8, 8, 8))
    >>> tuple(logits.shape), tuple(feats.shape), net.num_features
    ((2, 3), (2, 4), 4)
    """

    def __init__(
        self,
        n_classes,
        *,
        in_chans=1,
        width=64,
        volume_size=32,
        n_pool=4,
        proj_dim=None,
    ):
        super().__init__()
        blocks, side, chans = [], volume_size, in_chans
        for i in range(6):
            layers = [
                nn.Conv3d(chans, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm3d(width),
            ]
            if i < n_pool and side >= 2:
                layers.append(nn.MaxPool3d(2))
                side //= 2
            layers.append(nn.ReLU(inplace=True))
            blocks.append(nn.Sequential(*layers))
            chans = width
        self.blocks = nn.Sequential(*blocks)
        self.volume_size = volume_size
        self.num_features = width * side**3
        self.fc = nn.Linear(self.num_features, n_classes)
        self.proj = None
        if proj_dim is not None:
            self.proj = nn.Sequential(
                nn.Linear(self.num_features, self.num_features),
                nn.ReLU(inplace=True),
                nn.Linear(self.num_features, proj_dim),
            )

    def forward_features(self, x):
        """Feature maps ``(N, width, s, s, s)`` of a batch ``(N, C, D, H, W)``."""
        return self.blocks(x)

    def forward_head(self, x, pre_logits=False):
        """Flatten feature maps (>= 0 after ReLU); unless ``pre_logits``, classify."""
        x = x.flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        feats = self.forward_head(self.forward_features(x), pre_logits=True)
        return self.fc(feats), feats if self.proj is None else self.proj(feats)
