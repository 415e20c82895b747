"""Activation maximisation: orientation of known edge filters, rising activation, priors, errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from archbench.architectures.base import SequentialTapped, Tap
from archbench.errors import ConfigError
from archbench.images import list_images, load_image
from archbench.metrics import compute_metrics, get_metric
from archbench.metrics.maximize import pairwise_pixel_distance, relative_activation, total_variation
from archbench.optimizers import OptimConfig
from archbench.runner import run_task
from archbench.tasks import TaskJob, get_task
from archbench.tasks.maximize import (
    COLOUR_MATRIX,
    MaximizeOptions,
    colour_matrix,
    gaussian_blur,
    parse_channels,
    unit_activation,
)
from tests.conftest import run_cli

SIZE = 32


class EdgeNet(SequentialTapped):
    """One 5x5 convolution + ReLU with known filters: channel 0 responds to vertical edges
    (a horizontal derivative of a Gaussian), channel 1 to horizontal edges (its transpose),
    channel 2 is a checkerboard (highest-frequency) detector, channel 3 is random."""

    def __init__(self) -> None:
        conv = nn.Conv2d(3, 4, 5, padding=2, bias=False)
        t = torch.arange(5.0) - 2
        g = torch.exp(-(t**2) / 2)
        dx = g[:, None] * (t * g)[None, :]  # varies along x: vertical edges
        checker = torch.tensor([[(-1.0) ** (i + j) for j in range(5)] for i in range(5)])
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0] = dx / dx.abs().sum()
            conv.weight[1] = dx.T / dx.abs().sum()
            conv.weight[2] = checker / checker.abs().sum()
            conv.weight[3] = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(0)) / 25
        super().__init__([("conv", nn.Sequential(conv, nn.ReLU()))], [Tap("conv", 4, 0)])
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)


def run_edge(iterations: int = 40, **options):
    """Run the maximize task on :class:`EdgeNet`; returns its :class:`TaskOutput` s."""
    options = {"layers": ["conv"], "channels": "0,1,2", **options}
    job = TaskJob(images=[], size=SIZE, optim=OptimConfig(method="adam", iterations=iterations), options=options)
    task = get_task("maximize")
    net = EdgeNet()
    task.validate(net, job)
    return task.run(net, job)


def gradient_energy(img: torch.Tensor) -> tuple[float, float]:
    """(energy of horizontal gradients, energy of vertical gradients) of a (3, H, W) image."""
    gray = img.mean(0)
    gx = gray[:, 1:] - gray[:, :-1]
    gy = gray[1:, :] - gray[:-1, :]
    return float(gx.pow(2).sum()), float(gy.pow(2).sum())


def high_band_fraction(img: torch.Tensor, cutoff: float = 0.25) -> float:
    """Share of the (mean-removed) spectral energy at radial frequencies above ``cutoff`` cycles/px."""
    gray = img.mean(0) - img.mean()
    power = torch.fft.fft2(gray).abs().pow(2)
    fy = torch.fft.fftfreq(gray.shape[0])[:, None]
    fx = torch.fft.fftfreq(gray.shape[1])[None, :]
    high = (fy**2 + fx**2).sqrt() > cutoff
    return float(power[high].sum() / power.sum().clamp_min(1e-12))  # a flat image has none


def by_channel(results) -> dict[int, object]:
    return {r.extra["channel"]: r for r in results}


@pytest.fixture(scope="module")
def edge_results():
    # not the checkerboard channel 2: white noise already drives it and the default blur fights it
    return by_channel(run_edge(channels="0,1,3"))


def result_image(res) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(res.paths["result"]), dtype=np.float32) / 255).permute(2, 0, 1)


# -- behaviour ------------------------------------------------------------------------------------


@pytest.mark.parametrize("param, ratio", [("pixel", 4.0), ("fourier", 2.0)])
def test_optimised_image_reproduces_filter_orientation(param, ratio):
    # the 1/f prior of the Fourier parameterisation adds isotropic low-frequency blobs: lower bar
    res = by_channel(run_edge(channels="0,1", param=param))
    ex0, ey0 = gradient_energy(res[0].result)
    ex1, ey1 = gradient_energy(res[1].result)
    assert ex0 > ratio * ey0, (param, ex0, ey0)  # vertical-edge channel -> vertical stripes
    assert ey1 > ratio * ex1, (param, ex1, ey1)  # horizontal-edge channel -> horizontal stripes


def test_activation_rises_and_ends_far_above_the_noise_start(edge_results):
    for c, res in edge_results.items():
        act = -np.asarray(res.loss_trace)  # tv_weight = 0: the loss is -relative activation
        q = len(act) // 4
        assert act[-q:].mean() > act[:q].mean(), c
        assert res.scores["activation"] > 3 * max(res.extra["activation_start"], 0.1), (c, res.scores, res.extra)
        assert res.scores["activation"] == pytest.approx(-res.final_loss, rel=1e-5)
        # relative activation is the raw activation over (mean + std) on the natural images
        den = res.extra["natural_mean"] + res.extra["natural_std"]
        assert res.scores["activation"] == pytest.approx(res.extra["activation_raw"] / den, rel=1e-5)


def test_fourier_parameterisation_rises_too():
    res = by_channel(run_edge(param="fourier", channels="3,"))
    trace = -np.asarray(res[3].loss_trace)
    assert trace[-10:].mean() > trace[:10].mean()
    assert res[3].scores["activation"] > 3 * max(res[3].extra["activation_start"], 0.1)


def test_blur_lowers_high_frequency_energy():
    sharp = by_channel(run_edge(channels="2,3", blur_every=0, l2_decay=0.0))
    blurred = by_channel(run_edge(channels="2,3", blur_every=1, blur_sigma=1.0, l2_decay=0.0))
    for c in (2, 3):
        hs, hb = high_band_fraction(sharp[c].result), high_band_fraction(blurred[c].result)
        assert hb < 0.5 * hs, (c, hs, hb)
        assert blurred[c].scores["tv"] < sharp[c].scores["tv"]


def test_l2_decay_pulls_towards_grey():
    weak = by_channel(run_edge(channels="3,", l2_decay=0.0, blur_every=0))
    strong = by_channel(run_edge(channels="3,", l2_decay=0.2, blur_every=0))
    dev = {k: float((r[3].result - 0.5).abs().mean()) for k, r in (("weak", weak), ("strong", strong))}
    assert dev["strong"] < 0.7 * dev["weak"], dev


def test_same_channel_same_result_whatever_else_runs():
    alone = by_channel(run_edge(iterations=10, channels="1,"))
    together = by_channel(run_edge(iterations=10, channels="0,1,3"))
    assert torch.allclose(alone[1].result, together[1].result, atol=1e-5)


# -- scores and results ---------------------------------------------------------------------------


def test_scores_reach_result_metrics_and_files(tmp_path):
    report = run_task(
        "edgenet", "maximize", size=SIZE, iterations=5, device="cpu",
        options={"layers": ["conv"], "channels": 3}, net=EdgeNet(), out_dir=tmp_path,
    )
    assert [r.layer for r in report.results] == ["conv:c0", "conv:c1", "conv:c2"]  # 3 evenly spaced of 4
    for name in ("activation", "diversity", "diversity_pixel", "tv"):
        assert all(name not in r.extra.get("unavailable", {}) for r in report.results)
        assert all(isinstance(r.metrics[name], float) for r in report.results)
    r0 = report.results[0]
    assert r0.extra["diversity_metric"] in ("lpips-alex", "pixel-rms")
    images = torch.stack([result_image(r) for r in report.results])
    assert r0.metrics["diversity_pixel"] == pytest.approx(pairwise_pixel_distance(images), abs=2e-3)
    assert r0.metrics["tv"] == pytest.approx(float(total_variation(images[:1])), abs=2e-3)
    assert len({r.paths["result"] for r in report.results}) == 3  # one PNG per channel


def test_registered_score_metrics():
    assert get_metric("activation").higher_is_better and get_metric("diversity").higher_is_better
    assert not get_metric("tv").higher_is_better
    img = torch.rand(2, 3, 16, 16)
    values, unavailable = compute_metrics(["activation", "tv"], img, {"target": img})
    assert "maximize" in unavailable["activation"] and values["activation"] == [None, None]
    assert values["tv"] == pytest.approx(total_variation(img).tolist())


def test_metric_functions():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert float(total_variation(flat)) == 0.0
    ramp = torch.arange(8.0).repeat(1, 3, 8, 1) / 10  # +0.1 per pixel along x
    assert float(total_variation(ramp)) == pytest.approx(0.1)
    black, white, grey = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert pairwise_pixel_distance(torch.cat([black, white, grey])) == pytest.approx((1 + 0.5 + 0.5) / 3)
    rel = relative_activation(torch.tensor([2.0, 1.0]), torch.tensor([0.5, 0.0]), torch.tensor([0.5, 0.0]), floor=0.25)
    assert rel.tolist() == [2.0, 4.0]


# -- pieces ---------------------------------------------------------------------------------------


def test_parse_channels():
    assert parse_channels(None, 512, "l") == [0, 64, 128, 192, 256, 320, 384, 448]
    assert parse_channels(None, 4, "l") == [0, 1, 2, 3]
    assert parse_channels(4, 10, "l") == [0, 2, 5, 7]
    assert parse_channels("16", 64, "l") == list(range(0, 64, 4))
    assert parse_channels("0,5,9", 10, "l") == [0, 5, 9]
    assert parse_channels((0, 5, 9), 10, "l") == [0, 5, 9]
    assert parse_channels("5,", 10, "l") == [5]
    assert parse_channels("all", 3, "l") == [0, 1, 2]
    for bad in ("x", "1,a", 0, 11, [], [1.5]):
        with pytest.raises(ConfigError):
            parse_channels(bad, 10, "l")


def test_channel_out_of_range_is_a_clear_error():
    task = get_task("maximize")
    job = TaskJob(images=[], size=SIZE, options={"layers": ["conv"], "channels": "0,4"})
    with pytest.raises(ConfigError, match=r"channel 4 is out of range for layer 'conv' with 4 channels \(valid 0\.\.3\)"):
        task.validate(EdgeNet(), job)
    job.options["channels"] = 9
    with pytest.raises(ConfigError, match=r"valid counts 1\.\.4"):
        task.validate(EdgeNet(), job)


def test_channel_out_of_range_through_the_cli(tmp_path):
    proc = run_cli(
        "run", "--arch", "vgg11(fc=false)", "--task", "maximize", "--layer", "conv1_1", "--channels", "0,64",
        "--size", "32", "--iters", "2", "--device", "cpu", "--out", str(tmp_path / "out"),
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "channel 64 is out of range" in lines[0] and "valid 0..63" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "run", "--arch", "vgg11(fc=false)", "--task", "maximize", "--layer", "conv2_1", "--channels", "2",
        "--size", "32", "--iters", "3", "--device", "cpu", "--out", str(out), "-O", "param=fourier",
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["layer"] for r in rows] == ["conv2_1:c0", "conv2_1:c64"]
    assert all(float(r["activation"]) > 0 and r["tv"] and r["diversity"] for r in rows)
    assert len(list(out.rglob("*-result.png"))) == 2


def test_bad_options():
    with pytest.raises(ConfigError, match="param"):
        MaximizeOptions(param="wavelet")
    with pytest.raises(ConfigError, match="unit"):
        MaximizeOptions(unit="corner")
    with pytest.raises(ConfigError, match="jitter"):
        MaximizeOptions(jitter=-1)
    with pytest.raises(ConfigError, match="unknown option"):
        get_task("maximize").parse_options({"sigma": 1})


def test_gaussian_blur_matches_scipy():
    x = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = gaussian_blur(x, 1.3)[0].numpy()
    ref = np.stack([gaussian_filter(c, 1.3, mode="wrap", truncate=8) for c in x[0].numpy()])
    assert np.abs(ours - ref).max() < 1e-4


def test_unit_activation_center_and_channel():
    f = torch.zeros(2, 3, 5, 4)
    f[0, 1, 2, 2] = 7.0
    f[1, 2] = 1.0
    assert unit_activation(f, torch.tensor([1, 2]), "center").tolist() == [7.0, 1.0]
    assert unit_activation(f, torch.tensor([1, 2]), "channel").tolist() == [pytest.approx(7 / 20), 1.0]


def test_colour_matrix_is_that_of_the_builtin_photos():
    photos = torch.cat([load_image(n, 128) for n in list_images("photo")])
    assert torch.allclose(colour_matrix(photos), torch.tensor(COLOUR_MATRIX), atol=0.01)


def test_fourier_start_from_an_image_renders_it():
    from archbench.tasks.maximize import FourierParam

    x = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(2)) * 0.9 + 0.05
    param = FourierParam(2, 16, 20, torch.Generator().manual_seed(0), torch.device("cpu"), start=x)
    assert torch.allclose(param.render(), x, atol=1e-5)


@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_coarse_to_fine_phases(param):
    pytest.importorskip("archbench.tasks.phases")
    results = run_task(
        "edgenet", "maximize", size=SIZE, iterations=5, device="cpu",
        options={"layers": ["conv"], "channels": "0,3", "phases": 2, "param": param}, net=EdgeNet(),
    ).results
    assert [r.layer for r in results] == ["conv:c0", "conv:c3"]
    for r in results:
        assert [p["size"] for p in r.extra["phases"]] == [SIZE // 2, SIZE]
        assert len(r.loss_trace) == 10 and r.status == "done"


def test_maximize_in_a_sweep_gives_a_leaderboard_with_per_channel_image_grids(tmp_path):
    from archbench.report import leaderboard_from_store, render
    from archbench.store import ResultStore
    from archbench.sweep import run_sweep

    suite = tmp_path / "m.toml"
    suite.write_text(
        'name = "maxgrid"\nreference = "vgg11"\nseeds = [0, 1]\nsize = 32\niterations = 5\ndevice = "cpu"\n'
        'archs = ["vgg11", "vgg11(act=elu)"]\n'
        '[[task]]\nname = "maximize"\nimages = ["astronaut"]\noptions = { layers = ["conv2_1"], channels = [0, 3] }\n'
    )
    store = ResultStore(tmp_path / "r.db")
    summary = run_sweep(suite, store)
    assert summary.done == 4 and summary.failed == 0
    lb = leaderboard_from_store(store, suite="maxgrid")
    assert {b.metric for b in lb.boards if b.task == "maximize"} >= {"activation", "diversity", "tv"}
    page = render(lb, "html", store)
    # one column per channel, one image per channel and architecture (first seed)
    assert "conv2_1:c0" in page and "conv2_1:c3" in page
    assert page.count("data:image/png;base64,") >= 2 * 2
