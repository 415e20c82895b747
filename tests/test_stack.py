"""The stacked random VGG: minimum-loss choice per layer, reproducible, checkpoint round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archbench.architectures import create_arch
from archbench.errors import ConfigError
from archbench.metrics.gram import RANDOM_VGG19, judge_for
from archbench.tasks.stack import build_stacked, derive_seed, rebuild_from_provenance

ARCH = "vgg11(fc=false)"
KW = dict(candidates=3, size=32, iterations=8, seed=5, layers=["conv1_1", "conv2_1"], device="cpu")


@pytest.fixture(scope="module")
def stacked():
    return build_stacked(ARCH, "astronaut", **KW)


def test_stacking_keeps_the_minimum_loss_candidate(stacked) -> None:
    assert list(stacked.losses) == ["conv1_1", "conv2_1"]
    for layer, losses in stacked.losses.items():
        assert len(losses) == 3 and len(set(losses)) == 3  # distinct candidates, distinct losses
        assert stacked.chosen[layer] == min(range(3), key=losses.__getitem__)
        assert stacked.seeds[layer] == [derive_seed(5, layer, k) for k in range(3)]
    # the kept weights are the chosen candidate's, and unstacked layers keep the base weights
    base = create_arch(ARCH, seed=5)
    assert not torch.equal(stacked.net.stages["conv2_1"][0].weight, base.stages["conv2_1"][0].weight)
    assert torch.equal(stacked.net.stages["conv3_1"][0].weight, base.stages["conv3_1"][0].weight)


def test_stacking_is_reproducible_from_its_seeds(stacked) -> None:
    again = build_stacked(ARCH, "astronaut", **KW)
    assert again.losses == stacked.losses and again.chosen == stacked.chosen
    rebuilt = rebuild_from_provenance(stacked.provenance)
    for k, v in stacked.net.state_dict().items():
        assert torch.equal(v, rebuilt.state_dict()[k]), k


def test_checkpoint_round_trips(stacked, tmp_path: Path) -> None:
    path = stacked.save(tmp_path / "ranvgg.pt")
    net = create_arch(ARCH, init=f"checkpoint:{path}", seed=0)
    for k, v in stacked.net.state_dict().items():
        assert torch.equal(v, net.state_dict()[k]), k
    prov = torch.load(path, weights_only=True)["provenance"]
    assert prov["chosen"] == stacked.chosen and prov["losses"] == stacked.losses
    assert prov["reference"] == "astronaut" and prov["size"] == 32 and prov["iterations"] == 8
    # the random judge accepts it (no reserved seed) and refuses one built with its seed
    assert judge_for(ARCH, f"checkpoint:{path}", 0, "random-vgg19") is RANDOM_VGG19


def test_stacking_refuses_non_random_init_and_non_conv_layer() -> None:
    with pytest.raises(ConfigError, match="random"):
        build_stacked(ARCH, "astronaut", candidates=2, size=32, iterations=2, init="pretrained")
    with pytest.raises(ConfigError, match="no convolution"):
        build_stacked(ARCH, "astronaut", candidates=2, size=32, iterations=2, layers=["pool1"])
