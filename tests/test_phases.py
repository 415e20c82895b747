"""Coarse-to-fine phases: sizes, each phase starts from the previous phase's upsampled result,
the output has the full size, every task honours ``job.start``, and clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archbench.architectures import create_arch
from archbench.errors import ConfigError
from archbench.runner import run_task
from archbench.tasks import TaskJob, get_task
from archbench.tasks.phases import check_phases, phase_sizes, resize
from archbench.tasks.reconstruct import Reconstruct
from archbench.tasks.texture import Texture

ARCH = "vgg19(width=0.25)"


@pytest.fixture(scope="module")
def net():
    return create_arch(ARCH, seed=0)


def spy_on(monkeypatch, cls) -> list[tuple[TaskJob, list]]:
    """Record every ``cls.run`` call as (job, outputs)."""
    calls: list[tuple[TaskJob, list]] = []
    original = cls.run

    def run(self, net, job, progress=None):
        outs = original(self, net, job, progress)
        calls.append((job, outs))
        return outs

    monkeypatch.setattr(cls, "run", run)
    return calls


def test_phase_sizes_and_validation():
    assert phase_sizes(128, 3) == [32, 64, 128]
    assert phase_sizes(100, 2) == [50, 100]
    assert phase_sizes(64, 1) == [64]
    with pytest.raises(ConfigError, match="below 1 px"):
        phase_sizes(4, 4)
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ConfigError, match="phases must be an integer >= 1"):
            check_phases(bad)
    assert check_phases("3") == 3
    # every task accepts the generic option and still rejects unknown ones
    for name in ("reconstruct", "texture"):
        get_task(name).parse_options({"phases": 2})
        with pytest.raises(ConfigError, match="valid:.*phases"):
            get_task(name).parse_options({"phasess": 2})


def test_each_phase_starts_from_the_upsampled_previous_result(monkeypatch):
    calls = spy_on(monkeypatch, Reconstruct)
    rep = run_task(ARCH, "reconstruct", ["astronaut", "brick"], size=32, iterations=4, device="cpu",
                   options={"layers": ["pool1", "pool2"], "phases": 3}, metrics=["ssim"])
    assert [job.size for job, _ in calls] == [8, 16, 32]
    assert calls[0][0].start is None  # phase 1: the task's own white-noise start
    for (_, prev_outs), (job, outs) in zip(calls, calls[1:], strict=False):
        assert set(job.start) == {(o.image, o.layer) for o in prev_outs} and len(job.start) == 4
        for o_prev, o in zip(prev_outs, outs, strict=True):
            expected = F.interpolate(o_prev.result[None], size=(job.size, job.size), mode="bilinear",
                                     align_corners=False)[0].clamp(0, 1)
            torch.testing.assert_close(job.start[(o_prev.image, o_prev.layer)], expected)
            torch.testing.assert_close(o.start, expected)  # the task really started there
    # the combined output: full size, traces concatenated with recorded boundaries, sums
    assert len(rep.results) == 4
    for res, last_out in zip(rep.results, calls[-1][1], strict=True):
        assert res.size == 32 and tuple(last_out.result.shape) == (3, 32, 32)
        phases = res.extra["phases"]
        assert [p["size"] for p in phases] == [8, 16, 32]
        assert [p["trace_start"] for p in phases] == [0, 4, 8] and len(res.loss_trace) == 12
        assert res.iterations_run == sum(p["iterations"] for p in phases) == 12
        assert res.final_loss == phases[-1]["final_loss"]
        assert res.config.options["phases"] == 3


@pytest.mark.parametrize("task,options", [
    ("reconstruct", {"layers": ["pool1"]}),
    ("texture", {"layers": ["conv1_1", "conv2_1"]}),
    ("style", {"style": "brick"}),
    ("maximize", {"layers": ["conv2_1"], "channels": 2, "natural": "brick"}),
])
def test_every_task_honours_job_start(net, task, options):
    obj = get_task(task)
    size = 16
    job = TaskJob(images=["astronaut"], size=size, options=options)
    job.optim.iterations = 1
    outs = obj.run(net, job)
    given = {(o.image, o.layer): torch.full((3, size, size), 0.25 + 0.1 * i) for i, o in enumerate(outs)}
    job.start = given
    outs2 = obj.run(net, job)
    for o in outs2:
        torch.testing.assert_close(o.start, given[(o.image, o.layer)])
    job.start = {("other", "x"): torch.zeros(3, size, size)}
    with pytest.raises(ValueError, match="no start image"):
        obj.run(net, job)


def test_texture_phases_with_patches_and_a_clear_error_when_a_phase_is_too_small(monkeypatch):
    calls = spy_on(monkeypatch, Texture)
    rep = run_task(ARCH, "texture", ["brick"], size=48, iterations=3, device="cpu",
                   options={"loss": "patches", "phases": 2}, metrics=["spectrum"])
    assert [job.size for job, _ in calls] == [24, 48]
    (res,) = rep.results
    assert res.extra["loss"] == "patches" and len(res.loss_trace) == 6
    # conv4_1 of VGG is 1/8 of the image: 3 phases of 48 px start at 12 px, a 1x1 map
    with pytest.raises(ConfigError, match=r"phase 1 of 3 \(12 px\).*conv4_1"):
        run_task(ARCH, "texture", ["brick"], size=48, iterations=3, device="cpu",
                 options={"loss": "patches", "phases": 3})


def test_resize_is_bilinear_and_keeps_the_range():
    img = torch.rand(3, 8, 8)
    up = resize(img, 16)
    assert up.shape == (3, 16, 16) and float(up.min()) >= 0 and float(up.max()) <= 1
    assert torch.equal(resize(img, 8), img)
