import pytest
import torch

from fscc_sklearn.nn import Conv6, fuse_for_inference, prepack_for_onednn


@pytest.mark.parametrize(
    ("box", "side"), [(28, 1), (32, 2), (37, 2), (40, 2), (8, 1), (3, 1)]
)
def test_conv6_shapes_for_boxes(box, side):
    net = Conv6(n_classes=5, width=4, volume_size=box).eval()
    logits, feats = net(torch.randn(2, 1, box, box, box))
    assert net.num_features == 4 * side**3
    assert feats.shape == (2, net.num_features)
    assert logits.shape == (2, 5)
    assert net.forward_features(torch.randn(1, 1, box, box, box)).shape[-1] == side


def test_conv6_default_is_512_features_at_32():
    assert Conv6(n_classes=2).num_features == 512


def test_conv6_features_are_non_negative_and_head_is_linear():
    net = Conv6(n_classes=3, width=4, volume_size=16).eval()
    x = torch.randn(4, 1, 16, 16, 16)
    maps = net.forward_features(x)
    feats = net.forward_head(maps, pre_logits=True)
    assert (feats >= 0).all()
    assert torch.allclose(net.forward_head(maps), net.fc(feats))


def _trained_like(net):
    """Give BatchNorm layers non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    return net.eval()


@pytest.mark.parametrize("channels_last", [False, True])
def test_fuse_for_inference_matches_eval_forward(channels_last):
    net = _trained_like(Conv6(n_classes=3, width=8, volume_size=16))
    x = torch.randn(5, 1, 16, 16, 16)
    fmt = torch.channels_last_3d if channels_last else None
    fused = fuse_for_inference(net, memory_format=fmt)
    xf = x.contiguous(memory_format=fmt) if fmt else x
    with torch.no_grad():
        logits, feats = net(x)
        f_logits, f_feats = fused(xf)
    torch.testing.assert_close(f_feats, feats, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f_logits, logits, rtol=1e-4, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    assert all(
        m.bias is not None for m in fused.modules() if isinstance(m, torch.nn.Conv3d)
    )
    assert not any(p.requires_grad for p in fused.parameters())


def test_fuse_for_inference_leaves_original_alone():
    net = Conv6(n_classes=3, width=4, volume_size=8).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fuse_for_inference(net)
    assert net.training
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules()) == 6
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fuse_puts_pool_before_relu_and_keeps_other_layers():
    net = Conv6(n_classes=3, width=4, volume_size=8, n_pool=2)
    fused = fuse_for_inference(net)
    kinds = [
        [type(m).__name__ for m in block if not isinstance(m, torch.nn.Identity)]
        for block in fused.blocks
    ]
    assert kinds[0] == ["Conv3d", "MaxPool3d", "ReLU"]
    assert kinds[-1] == ["Conv3d", "ReLU"]
    # a BatchNorm without a convolution in front of it is not touched
    seq = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.BatchNorm3d(2))
    assert isinstance(fuse_for_inference(seq)[1], torch.nn.BatchNorm3d)


_ONEDNN = torch.backends.mkldnn.is_available()


@pytest.mark.parametrize(
    ("box", "n_pool", "in_chans", "n"),
    [(32, 4, 1, 5), (37, 4, 1, 1), (28, 4, 2, 3), (8, 2, 1, 4), (3, 4, 1, 2)],
)
def test_prepacked_blocks_compute_the_fused_blocks(box, n_pool, in_chans, n):
    net = _trained_like(
        Conv6(n_classes=3, width=8, volume_size=box, n_pool=n_pool, in_chans=in_chans)
    )
    fused = fuse_for_inference(net, memory_format=torch.channels_last_3d)
    packed = prepack_for_onednn(fused.blocks)
    assert (packed is not None) == _ONEDNN
    if packed is None:
        return
    x = torch.randn(n, in_chans, box, box, box)
    with torch.inference_mode():
        want = fused.blocks(x.contiguous(memory_format=torch.channels_last_3d))
        got = packed(x)
    assert not got.is_mkldnn and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # the weights were reordered once, in the blocked layout
    convs = [m for m in packed if type(m).__name__ == "_PrepackedConv3d"]
    assert len(convs) == 6 and all(c.weight.is_mkldnn for c in convs)


def test_prepacking_declines_what_onednn_layers_do_not_cover():
    bn = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.BatchNorm3d(2))
    assert prepack_for_onednn(bn.eval()) is None  # an unfolded BatchNorm
    ceil = torch.nn.Sequential(
        torch.nn.Conv3d(1, 2, 3), torch.nn.MaxPool3d(2, ceil_mode=True)
    )
    assert prepack_for_onednn(ceil) is None
    dilated = torch.nn.Sequential(torch.nn.MaxPool3d(2, dilation=(1, 2, 1)))
    assert prepack_for_onednn(dilated) is None
