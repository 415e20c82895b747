"""Architecture families, for leave-one-family-out cross-validation (:mod:`archbench.report.selection`).

Networks of one family share their design (a ResNeXt is a ResNet with grouped convolutions, a
Wide-ResNet a ResNet with wider bottlenecks, EfficientNet-V2 a successor of EfficientNet-B0), so
a score chosen on some members of a family and tested on others is not tested out of sample.
Cross-validation therefore holds out whole families. The family of a spec comes from its model
name, without building it:

==============================================  ===============
model names (``tv:``, ``timm:``, built-in)      family
==============================================  ===============
resnet*, resnext*, wide_resnet*, (timm) resnet*  ``resnet``
densenet*                                        ``densenet``
efficientnet* (B0-B7, V2)                        ``efficientnet``
regnet* (X and Y)                                ``regnet``
mobilenet* (V2, V3)                              ``mobilenet``
mnasnet*                                         ``mnasnet``
shufflenet*                                      ``shufflenet``
squeezenet*                                      ``squeezenet``
vgg* (the built-in VGGs and their variants)      ``vgg``
alexnet*                                         ``alexnet``
googlenet, inception* (GoogLeNet is Inception-v1) ``googlenet``
convnext*                                        ``convnext``
vit*, swin*, maxvit*, deit*                      ``transformer``
champandard2016                                  ``champandard2016``
==============================================  ===============

Any other name is its own family: the name without a trailing version or size (letters up to the
first digit, underscore or hyphen: ``ghostnet_100`` -> ``ghostnet``). A file-defined architecture
(``path.py:factory``) is the family of its factory name. Options (``vgg19(act=elu)``) never change
the family. :data:`FAMILY_PREFIXES` is the table above; :func:`family` applies it.
"""

from __future__ import annotations

import re

#: (name prefix, family), first match wins
FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("wide_resnet", "resnet"),
    ("resnext", "resnet"),
    ("resnet", "resnet"),
    ("densenet", "densenet"),
    ("efficientnet", "efficientnet"),
    ("regnet", "regnet"),
    ("mobilenet", "mobilenet"),
    ("mnasnet", "mnasnet"),
    ("shufflenet", "shufflenet"),
    ("squeezenet", "squeezenet"),
    ("vgg", "vgg"),
    ("alexnet", "alexnet"),
    ("googlenet", "googlenet"),
    ("inception", "googlenet"),
    ("convnext", "convnext"),
    ("vit", "transformer"),
    ("swin", "transformer"),
    ("maxvit", "transformer"),
    ("deit", "transformer"),
    ("champandard", "champandard2016"),
)


def model_name(spec: str) -> str:
    """The model name of an arch spec: ``tv:resnet50(weights=X)`` -> ``resnet50``,
    ``nets.py:make`` -> ``make``, ``vgg19(act=elu)`` -> ``vgg19``."""
    name = spec.split("(", 1)[0].strip()
    if ":" in name:
        name = name.rsplit(":", 1)[1]
    return name.lower()


def family(spec: str) -> str:
    """The family of an arch spec (see the module's table)."""
    name = model_name(spec)
    for prefix, fam in FAMILY_PREFIXES:
        if name.startswith(prefix):
            return fam
    match = re.match(r"[a-z]+", name)
    return match.group(0) if match else name
