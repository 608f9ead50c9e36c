import pytest
import torch

from fscc_sklearn.nn import Conv6


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
