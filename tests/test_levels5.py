"""Issue 26: stride levels 2-5 in the accuracy study (no optimisation: tap resolution only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archbench.architectures import create_arch
from archbench.errors import ConfigError
from archbench.sweep.suite import load_suite
from archbench.tasks import get_task

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "accuracy_levels5_cpu.toml"


def test_levels_2_to_5_resolve_to_taps_at_64_px():
    task = get_task("reconstruct")
    opts = task.parse_options({"levels": [2, 3, 4, 5]})
    vgg, resnet = create_arch("vgg11"), create_arch("resnet18")
    assert task.layers(vgg, opts) == ["pool2", "pool3", "pool4", "pool5"]
    assert task.layers(resnet, opts) == ["pool", "layer2", "layer3", "layer4"]
    for net in (vgg, resnet):
        net.check_input_size(64, 64, task.layers(net, opts))  # level 5 is 2x2 at 64 px
    with pytest.raises(ConfigError, match="no spatial tap at stride level 5; its levels: 1, 2, 3, 4"):
        task.layers(create_arch("tv:squeezenet1_1"), opts)


def test_the_issue_26_suite_runs_every_cnn_at_each_level_it_has():
    suite = load_suite(SUITE)
    assert len(suite.archs) == 26
    covered: dict[str, list[int]] = {}
    for t in suite.tasks:
        assert t.name == "reconstruct"
        for spec in t.archs:
            assert spec not in covered
            covered[spec] = list(t.options["levels"])
    assert len(covered) == 26
    squeeze = {s for s in covered if "squeezenet" in s}
    assert len(squeeze) == 2 and all(covered[s] == [2, 3, 4] for s in squeeze)
    assert all(v == [2, 3, 4, 5] for s, v in covered.items() if s not in squeeze)
