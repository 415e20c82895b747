"""The judge networks that score judged metrics (``gram``): names, networks and weights.

Plain data, importable without torch (reports name judges without building them); the scoring
itself lives in :mod:`archbench.metrics.gram`, which re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass

from archbench.errors import ConfigError

#: seed of the random-VGG-19 judge's weights; reserved: no candidate may use it
JUDGE_SEED = 2016_0


@dataclass(frozen=True)
class Judge:
    """A judge network: ``spec``/``init``/``seed`` as for :func:`archbench.architectures.create_arch`.

    ``weights`` names the weights themselves (what a result's key records with the judge's name).
    """

    name: str
    spec: str
    init: str
    seed: int
    weights: str

    @property
    def label(self) -> str:
        """What reports show, e.g. ``trained-vgg16`` or ``random-vgg19(seed=20160)``."""
        return self.name if self.init == "pretrained" else f"{self.name}(seed={self.seed})"

    def identity(self) -> dict[str, str]:
        """The judge as part of a run's identity: its name, network and weights."""
        return {"name": self.name, "network": self.spec, "weights": self.weights}


TRAINED_VGG16 = Judge("trained-vgg16", "vgg16(fc=false)", "pretrained", 0, "torchvision vgg16 IMAGENET1K_V1")
RANDOM_VGG19 = Judge("random-vgg19", "vgg19(fc=false)", "gaussian:0.015", JUDGE_SEED, f"gaussian:0.015 seed {JUDGE_SEED}")
#: the judges by name
JUDGES: dict[str, Judge] = {j.name: j for j in (TRAINED_VGG16, RANDOM_VGG19)}
#: the judge of results stored before judges were recorded (store schema 1 without a record)
UNRECORDED = "unrecorded"


def get_judge(name: str) -> Judge:
    """The judge called ``name`` (``trained-vgg16``, ``random-vgg19``)."""
    try:
        return JUDGES[name]
    except KeyError:
        raise ConfigError(f"unknown judge {name!r}; valid: {', '.join(JUDGES)}") from None


def judge_identity(name: str) -> dict[str, str]:
    """What a run's key records of its judge ``name``."""
    if name == UNRECORDED:
        return {"name": UNRECORDED}
    return get_judge(name).identity()
