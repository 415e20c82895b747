"""Architecture variants: activation, downsampling, width, depth, and champandard2016."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archbench.architectures import create_arch
from archbench.errors import ConfigError

X = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "act,cls", [("relu", nn.ReLU), ("leaky-relu:0.3", nn.LeakyReLU), ("elu", nn.ELU), ("selu", nn.SELU), ("gelu", nn.GELU), ("tanh", nn.Tanh)]
)
def test_activation_variants(act, cls):
    net = create_arch(f"vgg11(act={act})")
    acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.Tanh))]
    assert acts and all(type(m) is cls for m in acts)
    if act.startswith("leaky"):
        assert acts[0].negative_slope == pytest.approx(0.3)
    assert set(net(X, ["conv3_1"])) == {"conv3_1"}


@pytest.mark.parametrize("down", ["avg", "max", "stride"])
def test_downsampling_variants_keep_strides_and_names(down):
    net = create_arch(f"vgg19(down={down})")
    out = net(X, ["pool1", "conv3_1", "pool5"])
    assert out["pool1"].shape[-1] == 32 and out["conv3_1"].shape[-1] == 16 and out["pool5"].shape[-1] == 2
    kinds = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d, "stride": nn.Sequential}
    assert isinstance(net.stages["pool3"], kinds[down])
    if down == "stride":
        conv = net.stages["pool3"][0]
        assert conv.kernel_size == (2, 2) and conv.stride == (2, 2)


def test_width_and_depth():
    net = create_arch("vgg19(width=0.5,depth=2)")
    assert net.tap("conv1_1").channels == 32 and net.tap("conv5_1").channels == 256
    assert [t.name for t in net.taps if t.name.startswith("conv3_")] == [f"conv3_{i}" for i in range(1, 9)]
    assert net.tap("conv3_1").level == 2 and net.tap("pool3").level == 3
    out = net(X, ["conv3_1", "conv3_8"])
    assert out["conv3_1"].shape == (1, 128, 16, 16) and out["conv3_8"].shape == (1, 128, 16, 16)
    # conv3_1 is still the first convolution of stage 3: its input has stage 2's channels
    assert net.stages["conv3_1"][0].in_channels == 64
    quarter = create_arch("vgg11(width=0.25)")
    assert [quarter.tap(f"conv{s}_1").channels for s in range(1, 6)] == [16, 32, 64, 128, 128]


def test_act_applies_to_any_architecture():
    net = create_arch("resnet18(act=elu)")
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert any(isinstance(m, nn.ELU) for m in net.modules())


@pytest.mark.parametrize(
    "spec,valid",
    [
        ("vgg19(act=swish)", "relu, leaky-relu[:SLOPE], elu, selu, gelu, tanh"),
        ("vgg19(down=conv)", "avg, max, stride"),
        ("vgg19(width=0)", "positive multiplier"),
        ("vgg19(depth=1.5)", "integer multiplier"),
        ("vgg19(act=leaky-relu:abc)", "expected a number"),
        ("resnet18(act=swish)", "relu, leaky-relu"),
    ],
)
def test_invalid_variant_values_list_the_valid_ones(spec, valid):
    with pytest.raises(ConfigError, match=valid.replace("[", r"\[").replace("]", r"\]")):
        create_arch(spec)


def test_champandard2016():
    net = create_arch("champandard2016")
    assert [t.channels for t in net.taps] == [48, 48, 80, 80, 112, 112, 176, 176, 176]
    assert all(isinstance(m, nn.ELU) for m in net.modules() if isinstance(m, (nn.ReLU, nn.ELU)))
    out = net(X, ["conv2_1", "conv3_1", "conv4_3"])
    assert out["conv2_1"].shape[-1] == 32 and out["conv3_1"].shape[-1] == 16 and out["conv4_3"].shape[-1] == 8
    assert net.stages["conv2_1"][0].kernel_size == (2, 2) and net.stages["conv2_1"][0].stride == (2, 2)
    # input scaled to [-1, 1]
    assert torch.allclose(net.preprocess(torch.zeros(1, 3, 2, 2)), -torch.ones(1, 3, 2, 2))
    assert torch.allclose(net.preprocess(torch.ones(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))
