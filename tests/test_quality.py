"""The quality scales: texture-quality (white noise 0, a second crop 1) and the stylisation index."""

from __future__ import annotations

import math

import pytest
import torch

from archbench.images import load_image
from archbench.metrics import compute_metrics, get_metric
from archbench.metrics.gram import RANDOM_VGG19, use_judge
from archbench.metrics.quality import clear_cache, crop_floor, noise_image, stylization, texture_quality
from archbench.runner import run_task

SIZE = 32


def _pieces(name: str = "brick") -> tuple[torch.Tensor, torch.Tensor]:
    """Two different 32 px pieces of one texture: opposite quadrants of its 64 px version."""
    big = load_image(name, 2 * SIZE)
    return big[..., SIZE:, SIZE:].contiguous(), big[..., :SIZE, :SIZE].contiguous()


@pytest.mark.parametrize("texture", ["brick", "gravel"])
def test_texture_quality_orders_noise_partial_and_a_second_piece(texture: str) -> None:
    reference, other_piece = _pieces(texture)
    noise = noise_image(SIZE, SIZE)
    outputs = torch.cat([noise, 0.25 * reference + 0.75 * noise, 0.5 * reference + 0.5 * noise, other_piece])
    q = texture_quality(outputs, reference, RANDOM_VGG19).tolist()
    assert q[0] == pytest.approx(0.0, abs=1e-6)  # the noise anchor itself
    assert q[0] < q[1] < q[2] < q[3]
    assert 0.5 < q[3] < 2.0  # another piece of the texture: about the crop floor


def test_a_real_synthesis_scores_higher_with_more_iterations(tmp_path) -> None:
    scores = {}
    for iters in (2, 12):
        report = run_task(
            "vgg11(fc=false)", "texture", ["gravel"], size=SIZE, iterations=iters, seed=0, device="cpu",
            options={"layers": ["conv1_1", "conv2_1", "conv3_1"], "cumulative": False}, judge="random-vgg19",
        )
        (r,) = report.results
        assert set(r.metrics) == {"gram", "texture-quality"}  # the task's defaults
        scores[iters] = r.metrics["texture-quality"]
    assert 0.0 < scores[2] < scores[12]


def test_stylization_is_zero_for_the_content_and_grows_toward_the_style() -> None:
    content, style = load_image("astronaut", SIZE), load_image("brick", SIZE)
    outputs = torch.cat([content, 0.75 * content + 0.25 * style, 0.5 * content + 0.5 * style, style])
    s = stylization(outputs, content, style, RANDOM_VGG19).tolist()
    assert s[0] == pytest.approx(0.0, abs=1e-9)
    assert s[0] < s[1] < s[2] < s[3]
    assert s[3] > 1  # the style itself: closer than a second piece of it


def test_compute_metrics_passes_target_and_style() -> None:
    content, style = load_image("astronaut", SIZE), load_image("brick", SIZE)
    result = 0.5 * content + 0.5 * style
    assert get_metric("stylization").roles == ("target", "style")
    with use_judge(RANDOM_VGG19):
        values, unavailable = compute_metrics(["stylization", "texture-quality"], result,
                                              {"target": content, "style": style})
        assert not unavailable
        assert values["stylization"][0] == pytest.approx(float(stylization(result, content, style, RANDOM_VGG19)[0]))
        values, unavailable = compute_metrics(["stylization"], result, {"target": content})
    assert values["stylization"] == [None] and "no style image" in unavailable["stylization"]


def test_values_are_deterministic_and_anchors_are_cached(monkeypatch) -> None:
    reference, _ = _pieces("grass")
    output = 0.5 * reference + 0.5 * noise_image(SIZE, SIZE)
    clear_cache()
    first = texture_quality(output, reference, RANDOM_VGG19)
    import archbench.metrics.quality as quality

    calls = []
    real = quality.gram_distance

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(quality, "gram_distance", counting)
    again = texture_quality(output.clone(), reference.clone(), RANDOM_VGG19)
    assert torch.equal(first, again)
    assert len(calls) == 1  # only the output's distance: the floor and the noise came from the cache
    assert crop_floor(reference, RANDOM_VGG19) > 0


def test_too_small_and_degenerate_references() -> None:
    tiny = load_image("brick", 16)
    with use_judge(RANDOM_VGG19):
        values, unavailable = compute_metrics(["texture-quality"], tiny, {"style": tiny})
    assert values["texture-quality"] == [None] and "at least 32 px" in unavailable["texture-quality"]
    noise = noise_image(SIZE, SIZE)  # a "texture" that is the noise anchor itself: the scale is undefined
    assert math.isnan(float(texture_quality(noise, noise, RANDOM_VGG19)[0]))


def test_the_scales_are_default_metrics_with_a_direction() -> None:
    from archbench.cli.list import list_lines
    from archbench.metric_info import higher_is_better, is_judged
    from archbench.tasks import get_task

    assert "texture-quality" in get_task("texture").default_metrics
    assert "stylization" in get_task("style").default_metrics
    for name in ("texture-quality", "stylization"):
        assert higher_is_better(name) and is_judged(name)
        assert higher_is_better(f"{name}@random-vgg19")
    listed = dict(list_lines("metrics", "*[yn]"))
    assert listed["texture-quality"].startswith("higher is better") and "stylization" in listed


def test_score_command_explains_a_metric_of_two_references() -> None:
    from archbench.cli.score import score_images

    values, unavailable = score_images("brick", "gravel", ["stylization", "ssim"], size=SIZE)
    assert values["stylization"] is None and "target, style" in unavailable["stylization"]
    assert values["ssim"] is not None
