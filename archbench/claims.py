"""Claims: hypotheses a suite declares about its own results, checked at parse time.

A suite may state what a paper claims, so that ``archbench report`` tests it with paired
statistics (:mod:`archbench.report.claims`)::

    [[claim]]
    id = "ranvgg-beats-trained"                 # letters, digits, '-', '_', '.'
    text = "Random VGG reconstructs better than trained VGG (He et al. 2016, Fig. 2-3)"
    source = "He et al. 2016"                   # optional: groups claims per paper
    task = "reconstruct"
    metric = "ssim"                             # a metric the task scores, final_loss, or
                                                # iterations-to-loss (with threshold = 0.1: the
                                                # first iteration whose loss is <= 10% of the first)
    layers = ["pool3", "pool4", "pool5"]        # optional: only these layers (paired per layer)
    better = "vgg16@gaussian:0.015"             # an arm ...
    than = "vgg16@pretrained"                   # ... or a list of arms, each compared

    [[claim]]
    id = "elu-leaky-relu-relu"
    order = ["vgg19(act=elu)", "vgg19(act=leaky-relu:0.3)", "vgg19"]   # best first: each adjacent pair
    task = "texture"
    metric = "gram"

    [[claim]]
    id = "stacked-lower-spread"
    kind = "spread"                             # better = lower spread over seeds (per image, layer)
    better = "vgg16@stacked(...)"
    than = "vgg16@gaussian:0.015"
    task = "reconstruct"
    metric = "ssim"

An **arm** is a unit ``SPEC`` or ``SPEC@INIT`` of the suite (``SPEC`` alone when the suite gives
it one init), or a table ``{unit = "SPEC@INIT", layer = "conv1_1..conv4_1", options = {weighting
= "none"}}`` that also fixes the layer (compare two layer sets of one network) or selects the
task entry by its options (compare two settings of one task). Every name is checked when the
suite is parsed: an unknown unit, metric, layer or option is an error with the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archbench.errors import ArchbenchError

CLAIM_KEYS = {
    "id": "a name (letters, digits, '-', '_', '.')",
    "text": "the claim in the paper's words (a string)",
    "source": "where it comes from, e.g. 'He et al. 2016' (a string)",
    "task": "the task of the suite it is about",
    "metric": "a metric the task scores, final_loss or iterations-to-loss",
    "threshold": "with iterations-to-loss: the fraction of the first loss to reach (0 < t < 1)",
    "judge": "for a judged metric: the judge (trained-vgg16, random-vgg19)",
    "layers": "a list of the task's layer labels",
    "kind": "mean (default: paired difference of values) or spread (lower spread over seeds)",
    "better": "an arm: 'SPEC@INIT' or a table {unit, layer, options}",
    "than": "an arm or a list of arms",
    "order": "a list of at least two arms, best first",
}
ARM_KEYS = {"unit": "'SPEC' or 'SPEC@INIT' of the suite", "layer": "one layer label", "options": "a table of task options"}
KINDS = ("mean", "spread")
#: metrics a claim may use besides the task's own
DERIVED = ("final_loss", "iterations-to-loss")


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a unit (architecture and init), optionally one layer and task options."""

    spec: str
    init: str
    layer: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def unit(self) -> str:
        return f"{self.spec}@{self.init}"

    def label(self) -> str:
        """How reports name the arm: ``vgg16@pretrained [conv1_1..conv4_1] {weighting=none}``."""
        out = self.unit
        if self.layer:
            out += f" [{self.layer}]"
        if self.options:
            out += " {" + ", ".join(f"{k}={v}" for k, v in self.options) + "}"
        return out


@dataclass
class Claim:
    """A parsed claim: ``pairs`` are the (better, worse) arms it asserts, all of which must hold."""

    id: str
    text: str
    task: str
    metric: str
    pairs: list[tuple[Arm, Arm]]
    source: str = ""
    kind: str = "mean"
    layers: list[str] | None = None
    threshold: float = 0.1
    judge: str | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def claims_from_json(data: list[dict[str, Any]]) -> list[Claim]:
    """Claims from their plain data (``dataclasses.asdict``, as a suite's stored definition holds them)."""
    def arm(d: dict[str, Any]) -> Arm:
        return Arm(d["spec"], d["init"], d.get("layer"), tuple(tuple(kv) for kv in d.get("options") or ()))

    fields = set(Claim.__dataclass_fields__) - {"pairs"}
    return [Claim(**{k: v for k, v in c.items() if k in fields}, pairs=[(arm(a), arm(b)) for a, b in c["pairs"]])
            for c in data]


def _arm(ctx, value: Any, suite, where: str, index: int, key: str) -> Arm:
    """Parse and check one arm against the suite's architectures and inits."""
    from archbench.architectures.registry import canonical_spec

    if isinstance(value, str):
        unit, layer, options = value, None, {}
    elif isinstance(value, dict):
        ctx.check_keys(value, ARM_KEYS, "claim", index)
        unit, layer, options = value.get("unit"), value.get("layer"), value.get("options", {})
        if not isinstance(unit, str) or not unit.strip():
            raise ctx.error(f"{where}: an arm table needs unit = 'SPEC@INIT'", key, "claim", index)
        if layer is not None and (not isinstance(layer, str) or not layer.strip()):
            raise ctx.error(f"{where}: 'layer' of an arm must be a layer label, got {layer!r}", key, "claim", index)
        if not isinstance(options, dict):
            raise ctx.error(f"{where}: 'options' of an arm must be a table, got {options!r}", key, "claim", index)
    else:
        raise ctx.error(f"{where}: {key!r} must be {CLAIM_KEYS['better']}, got {value!r}", key, "claim", index)
    spec_text, at, init = unit.strip().partition("@")
    try:
        spec = canonical_spec(spec_text.strip())
    except ArchbenchError as exc:
        raise ctx.error(f"{where}: unit {unit!r}: {exc}", key, "claim", index) from None
    arch = next((a for a in suite.archs if a.spec == spec), None)
    if arch is None:
        raise ctx.error(
            f"{where}: unknown unit {unit!r}: {spec!r} is not one of the suite's architectures "
            f"({', '.join(a.spec for a in suite.archs)})", key, "claim", index)
    inits = arch.inits or suite.inits
    if at:
        from pathlib import Path

        base = Path(suite.path).resolve().parent if suite.path != "<suite>" else Path.cwd()
        init = ctx.resolve_init(init.strip(), base)  # as the suite's own inits are written
        if init not in inits:
            raise ctx.error(f"{where}: unknown unit {unit!r}: {spec} runs with {', '.join(inits)}", key, "claim", index)
    elif len(inits) == 1:
        init = inits[0]
    else:
        raise ctx.error(f"{where}: unit {unit!r} is ambiguous: {spec} runs with {', '.join(inits)}; write SPEC@INIT",
                        key, "claim", index)
    return Arm(spec, init, layer.strip() if layer else None, tuple(sorted(options.items())))


def _tap_names(label: str) -> list[str]:
    """The layer names in a layer label (``conv1_1..conv3_1``, ``a+b``, ``c:conv2_2 s:conv1_1..conv5_1``)."""
    body = re.sub(r"(^|\s)[cs]:", " ", label)
    return [t for t in re.split(r"\.\.|\+|\s+", body) if t]


def _check_layer(ctx, label: str, arms: list[Arm], where: str, index: int, key: str, nets: dict) -> None:
    """Every layer name in ``label`` is a tap of every arm's architecture."""
    from archbench.architectures.create import build_arch

    for arm in arms:
        if arm.spec not in nets:
            try:
                nets[arm.spec] = set(build_arch(arm.spec).tap_names)
            except Exception:  # a plugin that cannot be built here: its jobs will say why
                nets[arm.spec] = None
        taps = nets[arm.spec]
        if taps is None:
            continue
        unknown = [t for t in _tap_names(label) if t not in taps]
        if unknown:
            raise ctx.error(f"{where}: unknown layer {unknown[0]!r} in {label!r} for {arm.spec}", key, "claim", index)


def _option_names(task: str) -> set[str]:
    import dataclasses

    from archbench.tasks import get_task
    from archbench.tasks.phases import GENERIC_OPTIONS

    options = get_task(task).Options
    return set(GENERIC_OPTIONS) | ({f.name for f in dataclasses.fields(options)} if options else set())


def parse_claims(ctx, data: dict[str, Any], suite) -> list[Claim]:
    """The ``[[claim]]`` tables of a suite's ``data``, checked against the parsed ``suite``."""
    from archbench.metrics import get_metric
    from archbench.metrics.gram import JUDGES
    from archbench.tasks import get_task

    tables = data.get("claim", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ctx.error("'claim' must be an array of tables written [[claim]]", "claim")
    claims: list[Claim] = []
    nets: dict[str, Any] = {}
    for i, t in enumerate(tables):
        ctx.check_keys(t, CLAIM_KEYS, "claim", i)
        where = f"[[claim]] #{i + 1}"
        cid = ctx.string(t, "id", CLAIM_KEYS, "claim", i)
        if cid is None or not re.fullmatch(r"[A-Za-z0-9_.\-]+", cid):
            raise ctx.error(f"{where} needs an id of letters, digits, '-', '_', '.' (got {cid!r})", "id", "claim", i)
        if any(c.id == cid for c in claims):
            raise ctx.error(f"claim id {cid!r} is used twice", "id", "claim", i)
        where = f"claim {cid!r}"
        text = ctx.string(t, "text", CLAIM_KEYS, "claim", i) or ""
        task = ctx.string(t, "task", CLAIM_KEYS, "claim", i)
        entries = [e for e in suite.tasks if e.name == task]
        if not entries:
            raise ctx.error(f"{where}: task {task!r} is not one of the suite's tasks "
                            f"({', '.join(sorted({e.name for e in suite.tasks}))})", "task", "claim", i)
        metric = ctx.string(t, "metric", CLAIM_KEYS, "claim", i)
        produced = {m for e in entries for m in (e.metrics or get_task(task).default_metrics)}
        if metric not in produced and metric not in DERIVED:
            raise ctx.error(f"{where}: unknown metric {metric!r} for task {task!r}; the suite scores "
                            f"{', '.join(sorted(produced))} (or {', '.join(DERIVED)})", "metric", "claim", i)
        threshold = t.get("threshold", 0.1)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 < threshold < 1:
            raise ctx.error(f"{where}: 'threshold' must be {CLAIM_KEYS['threshold']}, got {threshold!r}", "threshold", "claim", i)
        judge = ctx.string(t, "judge", CLAIM_KEYS, "claim", i)
        if judge is not None and (judge not in JUDGES or metric in DERIVED or not get_metric(metric).judged):
            raise ctx.error(f"{where}: 'judge' {judge!r} needs a judged metric and one of {', '.join(JUDGES)}",
                            "judge", "claim", i)
        kind = ctx.string(t, "kind", CLAIM_KEYS, "claim", i) or "mean"
        if kind not in KINDS:
            raise ctx.error(f"{where}: 'kind' must be {' or '.join(KINDS)}, got {kind!r}", "kind", "claim", i)
        if "order" in t and ("better" in t or "than" in t):
            raise ctx.error(f"{where}: give either 'order' or 'better' and 'than'", "order", "claim", i)
        if "order" in t:
            order = t["order"]
            if not isinstance(order, list) or len(order) < 2:
                raise ctx.error(f"{where}: 'order' must be {CLAIM_KEYS['order']}", "order", "claim", i)
            arms = [_arm(ctx, a, suite, where, i, "order") for a in order]
            pairs = list(zip(arms, arms[1:], strict=False))
        else:
            if "better" not in t or "than" not in t:
                raise ctx.error(f"{where}: needs 'better' and 'than' (or 'order')", None, "claim", i)
            better = _arm(ctx, t["better"], suite, where, i, "better")
            than = t["than"] if isinstance(t["than"], list) else [t["than"]]
            if not than:
                raise ctx.error(f"{where}: 'than' is an empty list", "than", "claim", i)
            pairs = [(better, _arm(ctx, a, suite, where, i, "than")) for a in than]
        arms = [a for pair in pairs for a in pair]
        layers = ctx.strings(t, "layers", CLAIM_KEYS, "claim", i)
        for label in layers or []:
            _check_layer(ctx, label, arms, where, i, "layers", nets)
        for arm in arms:
            if arm.layer:
                _check_layer(ctx, arm.layer, [arm], where, i, "better" if arm is pairs[0][0] else "than", nets)
            unknown = [k for k, _ in arm.options if k not in _option_names(task)]
            if unknown:
                raise ctx.error(f"{where}: arm {arm.label()}: unknown option {unknown[0]!r} of task {task!r}",
                                "options", "claim", i)
            runs = [e for e in entries if (e.archs is None or arm.spec in e.archs)
                    and (e.inits is None or arm.init in e.inits)
                    and all(e.options.get(k) == v for k, v in arm.options)]
            if not runs:
                raise ctx.error(f"{where}: no [[task]] {task!r} of the suite runs {arm.label()}", "task", "claim", i)
        if kind == "spread" and any(a.layer for a in arms):
            raise ctx.error(f"{where}: a spread claim compares units over their layers; arms take no 'layer'", "kind", "claim", i)
        claims.append(Claim(cid, text, task, metric, pairs, ctx.string(t, "source", CLAIM_KEYS, "claim", i) or "",
                            kind, layers, float(threshold), judge, ctx.line("id", "claim", i) or 0))
    return claims
