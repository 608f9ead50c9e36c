"""Inference copies of a network: BatchNorm folded into convolutions, cheap op order."""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


def fuse_for_inference(
    module: nn.Module, *, memory_format: torch.memory_format | None = None
) -> nn.Module:
    """Return a frozen eval-mode copy of ``module`` that computes the same function.

    The original is not modified. In every ``nn.Sequential`` of the copy:

    * a convolution directly followed by a BatchNorm becomes one convolution
      with a bias (the eval-mode BatchNorm is an affine map per channel);
    * ``ReLU`` directly followed by ``MaxPool`` becomes ``MaxPool`` then
      ``ReLU``: the maximum commutes with any non-decreasing function, so the
      result is identical while the ReLU touches 8x fewer voxels in 3D.

    Parameters
    ----------
    module : torch.nn.Module
        Network whose BatchNorm layers hold the statistics to use (eval mode).
    memory_format : torch.memory_format, optional
        E.g. ``torch.channels_last_3d``: applied to the copy's weights.

    Returns
    -------
    fused : torch.nn.Module
        Eval-mode copy with ``requires_grad=False`` parameters. Outputs match the
        original in eval mode up to float rounding (the folded weights are
        rounded once).

    Examples
    --------
    >>> import torch
    >>> from fscc_sklearn.nn import Conv6
    >>> net = Conv6(n_classes=2, width=4, volume_size=8).eval()
    >>> fused = fuse_for_inference(net)
    >>> x = torch.randn(3, 1, 8, 8, 8)
    >>> torch.allclose(fused(x)[1], net(x)[1], atol=1e-5)
    True
    >>> sum(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    0
    """
    fused = copy.deepcopy(module).eval()
    for seq in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        _fold_batchnorm(seq)
        _pool_before_relu(seq)
    fused.requires_grad_(False)
    if memory_format is not None:
        fused = fused.to(memory_format=memory_format)
    return fused


def _fold_batchnorm(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for a, b in zip(names, names[1:], strict=False):
        conv, norm = seq._modules[a], seq._modules[b]
        if (
            isinstance(conv, _CONVS)
            and isinstance(norm, _NORMS)
            and norm.track_running_stats
            and norm.running_mean is not None
            and conv.out_channels == norm.num_features
        ):
            seq._modules[a] = fuse_conv_bn_eval(conv, norm)
            seq._modules[b] = nn.Identity()


def _pool_before_relu(seq: nn.Sequential) -> None:
    # Identity layers left by folding are skipped over when pairing neighbours
    names = [n for n in seq._modules if not isinstance(seq._modules[n], nn.Identity)]
    for a, b in zip(names, names[1:], strict=False):
        relu, pool = seq._modules[a], seq._modules[b]
        if (
            isinstance(relu, nn.ReLU)
            and isinstance(pool, _POOLS)
            and not pool.return_indices
        ):
            seq._modules[a], seq._modules[b] = pool, relu


class _PrepackedConv3d(nn.Module):
    """A Conv3d whose weights oneDNN reordered once, for oneDNN-layout input.

    A plain convolution reorders its weights into oneDNN's blocked layout at
    every call; for the small batches of ``transform`` that was about a fifth
    of the time (docs/performance.md).
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        self.padding, self.stride = conv.padding, conv.stride
        self.dilation, self.groups = conv.dilation, conv.groups
        weight = conv.weight.detach().float().contiguous()
        self.weight = torch._C._nn.mkldnn_reorder_conv3d_weight(
            weight.to_mkldnn(), self.padding, self.stride, self.dilation, self.groups
        )
        bias = conv.bias if conv.bias is not None else weight.new_zeros(len(weight))
        self.bias = bias.detach().float().contiguous().to_mkldnn()

    def forward(self, x):
        return torch.mkldnn_convolution(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation,
            self.groups,
        )  # fmt: skip


class _ToOneDNN(nn.Module):
    def forward(self, x):
        return x.float().contiguous().to_mkldnn()


class _ToDense(nn.Module):
    def forward(self, x):
        return x.to_dense()


_ONEDNN_OPS = (nn.Conv3d, nn.MaxPool3d, nn.ReLU, nn.Identity, nn.Sequential)


def _dilated(pool: nn.MaxPool3d) -> bool:
    d = pool.dilation
    return any(v != 1 for v in (d if isinstance(d, tuple) else (d,)))


def prepack_for_onednn(blocks: nn.Sequential) -> nn.Sequential | None:
    """oneDNN copy of an inference ``nn.Sequential`` of 3D convolutions,
    max-pooling and ReLUs (as :func:`fuse_for_inference` leaves Conv-6's
    blocks): weights reordered once, activations in oneDNN's layout from the
    first layer to the last, dense ``float32`` NCDHW in and out.

    Returns None where that does not apply: oneDNN missing, another layer
    type, dilated pooling, pooling with indices or ceil mode.

    Examples
    --------
    >>> import torch
    >>> from fscc_sklearn.nn import Conv6
    >>> net = fuse_for_inference(Conv6(n_classes=2, width=4, volume_size=8))
    >>> packed = prepack_for_onednn(net.blocks)
    >>> x = torch.randn(3, 1, 8, 8, 8)
    >>> packed is None or torch.allclose(packed(x), net.blocks(x), atol=1e-5)
    True
    """
    if not torch.backends.mkldnn.is_available():
        return None
    layers = [m for m in blocks.modules() if not isinstance(m, nn.Sequential)]
    if not all(isinstance(m, _ONEDNN_OPS) for m in layers):
        return None
    pools = [m for m in layers if isinstance(m, nn.MaxPool3d)]
    if any(p.return_indices or p.ceil_mode or _dilated(p) for p in pools):
        return None
    packed = [
        _PrepackedConv3d(m) if isinstance(m, nn.Conv3d) else m
        for m in layers
        if not isinstance(m, nn.Identity)
    ]
    return nn.Sequential(_ToOneDNN(), *packed, _ToDense()).eval()
