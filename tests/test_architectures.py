"""Architecture registry: built-in networks, timm/torchvision adapters, plugins, initialisation.

Every network is checked on a 64 px input: each tap's output has the declared channels and is at
``64 / 2**level`` px, and the forward pass stops after the deepest requested tap.
"""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from archbench.architectures import ARCHS, build_arch, create_arch, list_archs
from archbench.architectures.adapters import GraphTappedNetwork, tv_weights_file
from archbench.architectures.base import Tap, TappedNetwork
from archbench.errors import ConfigError, UnknownNameError, WeightsError

SIZE = 64
# fc6/fc7 (4096 x 25088 weights) only where a test reads them: they dominate build time
BUILTIN = [f"vgg{d}(pool={p},fc=false)" for d in (11, 13, 16, 19) for p in ("avg", "max")] + [
    "vgg11(fc=true)",
    "alexnet(fc=true)",
    "resnet18",
    "resnet34",
    "resnet50",
]


def _x(size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _check_taps(net: TappedNetwork, size: int = SIZE, exact: bool = True) -> dict[str, torch.Tensor]:
    """Every tap: declared channels, spatial size = size / 2**level (AlexNet: at most 1 px less)."""
    out = net(_x(size))
    assert list(out) == net.tap_names
    for tap in net.taps:
        y = out[tap.name]
        if not tap.spatial:
            assert y.shape == (1, tap.channels), tap
            continue
        assert y.shape[:2] == (1, tap.channels), (tap, y.shape)
        nominal = size / 2**tap.level
        for side in y.shape[2:]:
            if exact:
                assert side == nominal, (tap, y.shape)
            else:  # valid-padding networks lose a pixel to the window edges
                assert nominal - 1 <= side <= nominal, (tap, y.shape)
    return out


class _CallCounter:
    """Forward hooks on modules that count how often each runs."""

    def __init__(self, modules: dict[str, nn.Module]) -> None:
        self.calls = dict.fromkeys(modules, 0)
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def _hook(self, name: str):
        def hook(*_):
            self.calls[name] += 1

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _assert_stops_early(net: TappedNetwork, shallow: str, deep: str, deep_module: nn.Module) -> None:
    """``deep_module`` (computing ``deep``) must not run when only ``shallow`` is requested."""
    counter = _CallCounter({"deep": deep_module})
    try:
        net(_x(), taps=[shallow])
        assert counter.calls["deep"] == 0, f"{deep} computed although only {shallow} was requested"
        net(_x(), taps=[shallow, deep])  # positive control: the hook does see the module run
        assert counter.calls["deep"] == 1
    finally:
        counter.close()


# -- built-in architectures ----------------------------------------------------------------------
def test_list_archs_has_builtins():
    assert {"vgg11", "vgg13", "vgg16", "vgg19", "alexnet", "resnet18", "resnet34", "resnet50"} <= set(list_archs())
    assert list_archs("resnet*") == ["resnet18", "resnet34", "resnet50"]


@pytest.mark.parametrize("spec", BUILTIN)
def test_builtin_taps_and_levels(spec):
    net = create_arch(spec, seed=0)
    _check_taps(net, exact=not spec.startswith("alexnet"))
    assert not any(getattr(m, "inplace", False) for m in net.modules())


def test_builtin_tap_names():
    assert build_arch("vgg19(fc=true)").tap_names[-4:] == ["conv5_4", "pool5", "fc6", "fc7"]
    assert build_arch("alexnet").tap_names == [
        "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
    ]
    levels = {t.name: t.level for t in build_arch("alexnet(fc=true)").taps}
    assert levels == {
        "conv1": 2, "pool1": 3, "conv2": 3, "pool2": 4, "conv3": 4, "conv4": 4, "conv5": 4, "pool5": 5,
        "fc6": 5, "fc7": 5,
    }
    res = build_arch("resnet50")
    assert [(t.name, t.channels, t.level) for t in res.taps] == [
        ("stem", 64, 1), ("pool", 64, 2), ("layer1", 256, 2), ("layer2", 512, 3), ("layer3", 1024, 4),
        ("layer4", 2048, 5),
    ]


def test_alexnet_sizes_at_224_and_min_size():
    net = create_arch("alexnet(fc=true)", init="kaiming")
    out = net(_x(224), taps=["conv1", "pool1", "pool2", "pool5", "fc7"])
    assert [out[n].shape[-1] for n in ("conv1", "pool1", "pool2", "pool5")] == [55, 27, 13, 6]
    assert out["fc7"].shape == (1, 4096)
    # min_size is exact: the smallest input with a non-empty pool5, and one pixel less fails
    m = net.tap("pool5").min_size
    assert net(_x(m), taps=["pool5"])["pool5"].shape[-1] == 1
    with pytest.raises(RuntimeError):
        net(_x(m - 1), taps=["pool5"])


def test_alexnet_torchvision_keys_cover_state_dict():
    import torchvision

    net = build_arch("alexnet(fc=true)")
    tv = torchvision.models.alexnet(weights=None).state_dict()
    ours = net.state_dict()
    assert set(net.torchvision_keys) == set(ours)
    for key, tv_key in net.torchvision_keys.items():
        assert ours[key].shape == tv[tv_key].shape, key


def test_resnet_keys_match_torchvision():
    import torchvision

    net = build_arch("resnet18")
    tv = torchvision.models.resnet18(weights=None).state_dict()
    assert set(net.state_dict()) == {k for k in tv if not k.startswith("fc.")}
    assert all(k == v for k, v in net.torchvision_keys.items())


def test_vgg_pooling_option():
    avg, mx = build_arch("vgg11(fc=false)"), build_arch("vgg11(pool=max,fc=false)")
    assert isinstance(avg.stages["pool1"], nn.AvgPool2d) and isinstance(mx.stages["pool1"], nn.MaxPool2d)
    assert isinstance(build_arch("alexnet(pool=avg)").stages["pool2"], nn.AvgPool2d)
    with pytest.raises(ConfigError):
        build_arch("vgg11(pool=median,fc=false)")


@pytest.mark.parametrize(
    "spec, shallow, deep, module",
    [
        ("vgg11(fc=false)", "conv1_1", "conv5_2", lambda n: n.stages["conv5_2"]),
        ("vgg11(fc=true)", "pool4", "fc6", lambda n: n.stages["fc6"]),
        ("alexnet", "conv2", "pool5", lambda n: n.stages["pool5"]),
        ("resnet18", "layer2", "layer4", lambda n: n.layer4),
        ("resnet50", "stem", "pool", lambda n: n.maxpool),
    ],
)
def test_builtin_stops_early(spec, shallow, deep, module):
    net = create_arch(spec, init="kaiming")
    _assert_stops_early(net, shallow, deep, module(net))


# -- adapters --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tv_resnet18() -> TappedNetwork:
    return create_arch("tv:resnet18", seed=0)


@pytest.fixture(scope="module")
def timm_resnet18() -> TappedNetwork:
    return create_arch("timm:resnet18", seed=0)


def test_tv_resnet18_taps(tv_resnet18):
    assert [(t.name, t.channels, t.level) for t in tv_resnet18.taps] == [
        ("relu", 64, 1), ("layer1", 64, 2), ("layer2", 128, 3), ("layer3", 256, 4), ("layer4", 512, 5),
    ]
    _check_taps(tv_resnet18)
    assert not any(getattr(m, "inplace", False) for m in tv_resnet18.modules())


def test_tv_matches_builtin_resnet(tv_resnet18):
    """The tv adapter computes exactly what the built-in ResNet-18 computes with the same weights."""
    ours = build_arch("resnet18")
    ours.load_state_dict({k: v for k, v in tv_resnet18.model.state_dict().items() if not k.startswith("fc.")})
    ours.eval()
    a = tv_resnet18(_x(), taps=["layer3"])["layer3"]
    b = ours(_x(), taps=["layer3"])["layer3"]
    torch.testing.assert_close(a, b)


def test_tv_stops_early(tv_resnet18):
    _assert_stops_early(tv_resnet18, "layer1", "layer4", tv_resnet18.model.layer4[1].conv2)


def test_tv_mobilenet_taps():
    net = create_arch("tv:mobilenet_v3_small", seed=0)
    assert [t.level for t in net.taps] == [1, 2, 3, 4, 5]
    assert net.tap_names[-1] == "features.12"
    _check_taps(net)
    _assert_stops_early(net, net.tap_names[1], net.tap_names[-1], net.model.features[12][0])


def test_timm_taps_from_feature_info(timm_resnet18):
    info = list(timm_resnet18.model.feature_info)
    assert timm_resnet18.tap_names == [d["module"] for d in info] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert [t.level for t in timm_resnet18.taps] == [int(math.log2(d["reduction"])) for d in info]
    _check_taps(timm_resnet18)
    assert not any(getattr(m, "inplace", False) for m in timm_resnet18.modules())


def test_timm_stops_early(timm_resnet18):
    _assert_stops_early(timm_resnet18, "layer2", "layer3", timm_resnet18.model.layer3)


def test_timm_without_forward_intermediates_uses_fx(timm_resnet18):
    """Models without ``forward_intermediates`` get an FX extractor on the feature_info modules."""
    import timm

    model = timm.create_model("resnet18")

    class NoIntermediates(type(model)):
        @property
        def forward_intermediates(self):
            raise AttributeError("forward_intermediates")

    model.__class__ = NoIntermediates
    model.load_state_dict(timm_resnet18.model.state_dict())
    from archbench.architectures.adapters import TimmNetwork

    net = TimmNetwork("resnet18", model).eval()
    assert net._graph is not None
    with torch.no_grad():
        a, b = net(_x()), timm_resnet18(_x())
    for name in net.tap_names:
        torch.testing.assert_close(a[name], b[name])
    _assert_stops_early(net, "layer1", "layer4", model.layer4[1].conv2)


def test_timm_mobilenet():
    net = create_arch("timm:mobilenetv3_small_050", seed=0)
    _check_taps(net)
    _assert_stops_early(net, net.tap_names[0], net.tap_names[-1], net.model.blocks[5])


def test_adapter_act_option():
    net = build_arch("tv:resnet18(act=elu)")
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    with torch.no_grad():
        out = net.eval()(_x(), taps=["layer1"])["layer1"]
    assert float(out.min()) < 0  # ELU outputs, not rectified
    net = build_arch("timm:resnet18(act=elu)")
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())


def test_adapter_unknown_names_suggest():
    with pytest.raises(UnknownNameError, match=r"did you mean .*'resnet18'"):
        build_arch("tv:resnet19")
    with pytest.raises(UnknownNameError, match=r"did you mean .*'resnet18'"):
        build_arch("timm:resnet181")
    with pytest.raises(UnknownNameError, match=r"unknown timm weights of resnet18"):
        build_arch("timm:resnet18.nonexistent_tag")
    with pytest.raises(UnknownNameError, match="unknown arch prefix"):
        build_arch("keras:resnet18")


# -- initialisation --------------------------------------------------------------------------------
def _conv_weights(net: nn.Module) -> torch.Tensor:
    return torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.Conv2d)])


def test_gaussian_sigma_and_mean():
    net = create_arch("vgg19(fc=false)", init="gaussian:0.015", seed=0)
    w = _conv_weights(net)
    assert w.numel() > 20_000_000
    assert abs(w.std().item() / 0.015 - 1) < 0.01
    assert abs(w.mean().item()) < 1e-4
    assert all(float(m.bias.abs().max()) == 0 for m in net.modules() if isinstance(m, nn.Conv2d))


def test_gaussian_bias_option_and_other_sigma():
    net = create_arch("resnet18", init="gaussian:0.1", seed=0)
    w = _conv_weights(net)
    assert abs(w.std().item() / 0.1 - 1) < 0.01
    assert float(net.bn1.weight.min()) == 1 and float(net.bn1.running_var.min()) == 1  # identity norms
    net = create_arch("vgg11(fc=false)", init="gaussian:0.015:bias=0.5", seed=0)
    b = torch.cat([m.bias for m in net.modules() if isinstance(m, nn.Conv2d)])
    assert abs(b.std().item() / 0.5 - 1) < 0.05
    with pytest.raises(ConfigError):
        create_arch("vgg11(fc=false)", init="gaussian:abc")
    with pytest.raises(ConfigError):
        create_arch("vgg11(fc=false)", init="gaussian:0.1:foo=1")
    with pytest.raises(ConfigError, match="unknown init"):
        create_arch("vgg11(fc=false)", init="xavier")


def test_gaussian_applies_to_adapters(tv_resnet18, timm_resnet18):
    for net in (tv_resnet18, timm_resnet18):
        assert abs(_conv_weights(net).std().item() / 0.015 - 1) < 0.01


@pytest.mark.parametrize("init", ["gaussian:0.015", "kaiming", "orthogonal", "uniform"])
def test_seed_reproduces(init):
    a = create_arch("vgg11(width=0.25)", init=init, seed=3).state_dict()
    b = create_arch("vgg11(width=0.25)", init=init, seed=3).state_dict()
    c = create_arch("vgg11(width=0.25)", init=init, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stages.conv3_1.0.weight"], c["stages.conv3_1.0.weight"])


def test_native_keeps_the_constructors_own_init_seeded_and_leaves_the_global_rng_alone():
    import torchvision

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = create_arch("tv:resnet18", init="native", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = create_arch("tv:resnet18", init="native", seed=5)
    c = create_arch("tv:resnet18", init="native", seed=6)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.model.conv1.weight, c.model.conv1.weight)
    torch.manual_seed(5)  # torchvision's own scheme: kaiming-normal fan-out convolutions
    ref = torchvision.models.resnet18()
    assert torch.equal(a.model.conv1.weight, ref.conv1.weight) and torch.equal(a.model.fc.weight, ref.fc.weight)
    with pytest.raises(ConfigError):
        create_arch("vgg11(fc=false)", init="native:1")


def test_kaiming_is_framework_default_bound():
    conv = create_arch("vgg11(fc=false)", init="kaiming").stages["conv3_1"][0]
    fan_in = conv.weight[0].numel()
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): gain sqrt(1/3) * sqrt(3 / fan_in)
    w = conv.weight
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
    assert abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.02
    assert float(conv.bias.abs().max()) <= bound and float(conv.bias.abs().max()) > 0


def test_uniform_is_glorot():
    conv = create_arch("vgg11(fc=false)", init="uniform").stages["conv3_1"][0]
    out_ch, in_ch, k, _ = conv.weight.shape
    bound = math.sqrt(6 / (in_ch * k * k + out_ch * k * k))
    assert float(conv.weight.abs().max()) <= bound and float(conv.weight.abs().max()) > 0.99 * bound
    assert float(conv.bias.abs().max()) == 0


def test_orthogonal_rows():
    net = create_arch("vgg11(fc=false)", init="orthogonal")
    w = net.stages["conv2_1"][0].weight.flatten(1)  # 128 x 576: rows <= cols
    torch.testing.assert_close(w @ w.T, 2 * torch.eye(w.shape[0]), atol=1e-4, rtol=0)
    w = net.stages["conv1_1"][0].weight.flatten(1)  # 64 x 27: orthogonal columns instead
    torch.testing.assert_close(w.T @ w, 2 * torch.eye(w.shape[1]), atol=1e-4, rtol=0)


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_arch_suggests():
    with pytest.raises(UnknownNameError) as err:
        create_arch("vgg91")
    assert str(err.value).startswith("unknown arch 'vgg91'; did you mean 'vgg19'")


def test_unknown_layer_suggests():
    net = create_arch("vgg11(fc=false)", init="kaiming")
    with pytest.raises(UnknownNameError, match=r"unknown layer of vgg11\(fc=false\) 'conv5_3'; did you mean .*'conv5_2'"):
        net(_x(), taps=["conv5_3"])
    with pytest.raises(UnknownNameError, match=r"did you mean .*'layer4'"):
        create_arch("resnet18")(_x(), taps=["layer5"])
    with pytest.raises(UnknownNameError, match=r"alexnet\(fc=true\)"):
        create_arch("alexnet")(_x(), taps=["fc6"])


# -- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    net = create_arch("resnet18", init="gaussian:0.02:bias=0.01", seed=5)
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-1, 1)  # buffers travel too
    path = tmp_path / "r18.pt"
    torch.save(net.state_dict(), path)
    other = create_arch("resnet18", init=f"checkpoint:{path}")
    sd, sd2 = net.state_dict(), other.state_dict()
    assert set(sd) == set(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)
    # the {"state_dict": ...} form with metadata
    torch.save({"state_dict": net.state_dict(), "note": "x"}, path)
    assert torch.equal(create_arch("resnet18", init=f"checkpoint:{path}").conv1.weight, net.conv1.weight)


def test_checkpoint_wrong_keys(tmp_path):
    path = tmp_path / "vgg.pt"
    torch.save(create_arch("vgg11(fc=false)").state_dict(), path)
    with pytest.raises(WeightsError) as err:
        create_arch("resnet18", init=f"checkpoint:{path}")
    msg = str(err.value)
    assert "missing keys: bn1.bias" in msg and "unexpected keys: stages.conv1_1.0.bias" in msg
    assert "\n" not in msg
    with pytest.raises(WeightsError, match="does not exist"):
        create_arch("resnet18", init=f"checkpoint:{tmp_path / 'nope.pt'}")


# -- plugins ---------------------------------------------------------------------------------------
TAPPED_PLUGIN = """
from torch import nn
from archbench.architectures import SequentialTapped, Tap


def tiny(width=8):
    stages = [
        ("c1", nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())),
        ("p1", nn.AvgPool2d(2)),
        ("c2", nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())),
        ("p2", nn.AvgPool2d(2)),
    ]
    taps = [Tap("c1", width, 0), Tap("p1", width, 1), Tap("c2", 2 * width, 1), Tap("p2", 2 * width, 2)]
    return SequentialTapped(stages, taps)
"""

PLAIN_PLUGIN = """
import torch
from torch import nn


class Plain(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.down1 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)
        self.head = nn.Linear(4 * width, 10)

    def forward(self, x):
        x = self.act(self.conv1(x))
        x = self.act(self.down1(x))
        x = self.act(self.down2(x))
        return self.head(x.mean((2, 3)))


def plain(width=8):
    return Plain(width)


class Mutating(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return self.down(y.relu_())
"""


def test_entry_point_plugin(tmp_path, monkeypatch):
    """A package installed with an ``archbench.archs`` entry point (a real dist-info on sys.path)."""
    (tmp_path / "abplug_tiny.py").write_text(TAPPED_PLUGIN)
    dist = tmp_path / "abplug_tiny-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: abplug-tiny\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[archbench.archs]\ntinyplug = abplug_tiny:tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ARCHS, "_entries", dict(ARCHS._entries))
    monkeypatch.setattr(ARCHS, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "abplug_tiny", raising=False)
    assert "tinyplug" in list_archs()
    net = create_arch("tinyplug(width=4)", seed=1)
    assert net.tap_names == ["c1", "p1", "c2", "p2"]
    _check_taps(net)
    _assert_stops_early(net, "p1", "p2", net.stages["c2"])


def test_file_factory_tapped(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(TAPPED_PLUGIN)
    net = create_arch(f"{path}:tiny(width=4)", seed=2)
    assert [(t.name, t.channels) for t in net.taps] == [("c1", 4), ("p1", 4), ("c2", 8), ("p2", 8)]
    _check_taps(net)
    assert net.provenance.spec == f"{path}:tiny(width=4)"
    with pytest.raises(UnknownNameError, match="has no callable 'nothere'"):
        build_arch(f"{path}:nothere")


def test_file_factory_plain_module_is_wrapped(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text(PLAIN_PLUGIN)
    net = create_arch(f"{path}:plain", seed=0)
    assert isinstance(net, GraphTappedNetwork)
    assert [(t.name, t.channels, t.level) for t in net.taps] == [("act", 8, 0), ("act_1", 16, 1), ("act_2", 32, 2)]
    assert net.model.act.inplace is False
    out = _check_taps(net)
    m = net.model
    with torch.no_grad():
        manual = torch.relu(m.down1(torch.relu(m.conv1(net.preprocess(_x())))))
    torch.testing.assert_close(out["act_1"], manual)
    _assert_stops_early(net, "act_1", "act_2", m.down2)
    with pytest.raises(WeightsError, match="no pretrained weights"):
        create_arch(f"{path}:plain", init="pretrained")


def test_wrapped_tap_survives_in_place_op(tmp_path):
    """A tap that a later in-place op overwrites (``y.relu_()``) keeps its own value."""
    path = tmp_path / "mut.py"
    path.write_text(PLAIN_PLUGIN)
    from archbench.architectures.registry import resolve_factory

    module = resolve_factory(f"{path}:Mutating")()
    net = GraphTappedNetwork(module, [("conv", Tap("conv", 4, 0)), ("down", Tap("down", 4, 1))]).eval()
    with torch.no_grad():
        out = net(_x(16))
        expected = module.conv(net.preprocess(_x(16)))
    assert float(out["conv"].min()) < 0  # not rectified in place
    torch.testing.assert_close(out["conv"], expected)


def test_plugin_returning_junk(tmp_path):
    path = tmp_path / "junk.py"
    path.write_text("def junk():\n    return 42\n")
    with pytest.raises(ConfigError, match="expected a TappedNetwork or a torch.nn.Module"):
        build_arch(f"{path}:junk")


# -- pretrained (offline caches only) --------------------------------------------------------------
def test_tv_pretrained_missing_names_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as err:
        create_arch("tv:resnet18", init="pretrained")
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in str(err.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in str(err.value)
    assert not expected.exists()  # nothing was downloaded


def test_tv_pretrained_loads_cached_file(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = tv_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.manual_seed(123)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(reference, path)
    net = create_arch("tv:resnet18", init="pretrained")
    sd = net.model.state_dict()
    assert set(sd) == set(reference) and all(torch.equal(sd[k], reference[k]) for k in sd)
    assert all(torch.equal(net.state_dict()[k], reference[v]) for k, v in net.torchvision_keys.items())


def test_timm_pretrained_from_local_hf_cache(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsError) as err:
        create_arch("timm:resnet18", init="pretrained")
    msg = str(err.value)
    assert "models--timm--resnet18.a1_in1k" in msg and "resnet18_a1_0-d63eafa0.pth" in msg
    # a Hugging Face cache laid out as `hf download timm/resnet18.a1_in1k` leaves it
    repo = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.manual_seed(7)
    reference = {k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}
    save_file(reference, str(repo / "snapshots" / commit / "model.safetensors"))
    net = create_arch("timm:resnet18", init="pretrained")
    sd = net.model.state_dict()
    assert all(torch.equal(sd[k], reference[k]) for k in reference)


def test_builtin_taps_validate_input_size():
    from archbench.errors import ImageError

    net = create_arch("alexnet", init="kaiming")
    net.check_input_size(64, 64, ["pool5"])
    with pytest.raises(ImageError, match="too small"):
        net.check_input_size(48, 48, ["pool5"])


@pytest.mark.parametrize("spec", ["resnet18", "vgg11(fc=false)"])
def test_deepest_and_subset(spec):
    net = create_arch(spec, init="kaiming")
    names = net.tap_names
    out = net(_x(), taps=[names[2], names[0]])
    assert set(out) == {names[0], names[2]}
    assert net.deepest([names[2], names[0]]) == names[2]


def test_path_is_reported_for_file_factory_missing(tmp_path):
    missing = Path(tmp_path) / "absent.py"
    with pytest.raises(UnknownNameError, match="does not exist"):
        build_arch(f"{missing}:factory")


def test_plugin_source_is_not_left_in_sys_modules_on_failure(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent("raise ValueError('boom')\n"))
    with pytest.raises(ConfigError, match="boom"):
        build_arch(f"{path}:f")
    assert not any(getattr(m, "__file__", None) == str(path) for m in list(sys.modules.values()))
