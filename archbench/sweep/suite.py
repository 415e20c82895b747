"""Suite files: a TOML grid of architectures × inits × seeds × tasks × images.

A suite file looks like this (every key but ``name`` and at least one arch and task is optional)::

    name = "ci"                       # suite name (results are tagged with it)
    description = "tiny CPU suite"
    reference = "vgg19"               # reference architecture of the significance tests
    seeds = [0, 1]                    # or an integer n meaning 0 .. n-1
    inits = ["gaussian:0.015"]        # weight initialisations
    images = ["astronaut", "brick"]   # built-in names, files or folders (relative to the file)
    size = 32                         # image side in px
    iterations = 20                   # optimiser iterations per problem
    optimizer = "lbfgs"
    history = 100
    device = "cpu"                    # auto (default), cpu, cuda; `archbench sweep --device` overrides
    judge = "auto"                    # network scoring `gram`: auto, trained-vgg16, random-vgg19
    archs = ["vgg11", "vgg19(pool=max)"]   # short form, or [[arch]] tables

    [[arch]]
    spec = "vgg16"
    options = { pool = "max" }        # merged into the spec: vgg16(pool=max)
    inits = ["gaussian:0.015", "pretrained"]   # overrides of the suite-wide lists
    seeds = [0]

    [[task]]
    name = "reconstruct"
    options = { layers = ["pool1", "pool2"] }  # task options (see `archbench run --help`)
    metrics = ["ssim", "psnr"]                   # default: the task's own
    # size, iterations, images, seeds may be overridden per task; archs = ["vgg19"] restricts it
    # to some of the suite's architectures (e.g. for layer names), inits = [...] to some inits

Errors name the file, the line and what was expected: ``ci.toml:7: unknown key 'sedes' in the
top level; expected one of ...; did you mean 'seeds'?``. TOML has no positions for parsed
values, so lines of keys are found by scanning the file's text for the key inside its table.

Over 500 lines on purpose: one job, a suite file into a validated :class:`Suite` -- the
schema, the checks with the line number of each bad value, and the grid's expansion belong together.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.architectures.registry import canonical_spec
from archbench.errors import ArchbenchError, ConfigError
from archbench.registry import Registry, close_matches
from archbench.values import SEED_MAX, short

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: folder of the built-in suites (package data)
SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
#: most seeds ``seeds = n`` may ask for (far more than any job limit lets run; never a list of 10^30)
MAX_SEED_COUNT = 10_000_000

#: built-in suites: name -> path of their TOML file
SUITES: Registry[Path] = Registry("suite", entry_point_group="archbench.suites")

TOP_KEYS = {
    "name": "a string",
    "description": "a string",
    "reference": "an architecture spec (optionally SPEC@INIT)",
    "seeds": "a list of integers or an integer n (seeds 0..n-1)",
    "inits": "a list of init strings",
    "images": "a list of image names or paths",
    "size": "a positive integer (px)",
    "iterations": "a positive integer",
    "optimizer": "a string (lbfgs, adam)",
    "history": "a positive integer",
    "device": "a string (auto, cpu, cuda)",
    "judge": "a string (auto, trained-vgg16, random-vgg19)",
    "archs": "a list of architecture specs",
    "tasks": "a list of task names",
    "arch": "an array of tables [[arch]]",
    "task": "an array of tables [[task]]",
    "claim": "an array of tables [[claim]] (hypotheses tested by `archbench report`)",
}
ARCH_KEYS = {
    "spec": "an architecture spec string",
    "options": "a table of architecture options",
    "inits": "a list of init strings",
    "seeds": "a list of integers or an integer n",
}
TASK_KEYS = {
    "name": "a task name",
    "options": "a table of task options",
    "metrics": "a list of metric names",
    "size": "a positive integer (px)",
    "iterations": "a positive integer",
    "images": "a list of image names or paths",
    "seeds": "a list of integers or an integer n",
    "archs": "a list of the suite's architecture specs this task runs on (default: all)",
    "inits": "a list of the suite's inits this task runs with (default: all)",
}


@dataclass
class ArchEntry:
    """One architecture of a suite: canonical spec plus optional init/seed overrides."""

    spec: str
    inits: list[str] | None = None
    seeds: list[int] | None = None


@dataclass
class TaskEntry:
    """One task of a suite with its settings."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] | None = None
    size: int | None = None
    iterations: int | None = None
    images: list[str] | None = None
    seeds: list[int] | None = None
    archs: list[str] | None = None
    inits: list[str] | None = None


@dataclass
class Suite:
    """A parsed, validated suite (see the module docstring for the file format)."""

    name: str
    path: str
    archs: list[ArchEntry]
    tasks: list[TaskEntry]
    description: str = ""
    reference: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    inits: list[str] = field(default_factory=lambda: ["gaussian:0.015"])
    images: list[str] = field(default_factory=lambda: ["astronaut"])
    size: int | None = None
    iterations: int | None = None
    optimizer: str = "lbfgs"
    history: int = 100
    device: str = "auto"
    judge: str = "auto"
    claims: list[Any] = field(default_factory=list)  # archbench.claims.Claim

    def to_json(self) -> dict[str, Any]:
        """The suite as plain data (stored with the results)."""
        from dataclasses import asdict

        return asdict(self)


# ---------------------------------------------------------------------------------------------
# locating keys in the text


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")


def _table_ranges(lines: list[str]) -> list[tuple[str, int, int, int]]:
    """``(table, index, first_line, last_line)`` for the top level (``""``) and every header.

    ``index`` counts occurrences of ``[[name]]`` arrays (0 for plain tables); lines are 1-based.
    """
    out: list[tuple[str, int, int, int]] = []
    counts: dict[str, int] = {}
    cur, idx, start = "", 0, 1
    for i, line in enumerate(lines, 1):
        m = _HEADER_RE.match(line)
        if m:
            out.append((cur, idx, start, i - 1))
            name = m.group(2).replace('"', "").replace("'", "").replace(" ", "")
            if m.group(1) == "[[":
                idx = counts.get(name, 0)
                counts[name] = idx + 1
            else:
                root = name.split(".")[0]
                idx = counts[root] - 1 if root in counts else 0
            cur, start = name, i
    out.append((cur, idx, start, len(lines)))
    return out


def locate(text: str, key: str, table: str = "", index: int = 0) -> int | None:
    """1-based line of ``key = ...`` inside ``table`` (``"arch"`` with ``index`` for the
    index-th ``[[arch]]``; ``""`` for the top level), also inside inline tables; or the header
    line of a sub-table ``[table.key]``; None when not found."""
    lines = text.splitlines()
    key_re = re.compile(r"(^|[\s{,])[\"']?" + re.escape(key) + r"[\"']?\s*=")
    sub = f"{table}.{key}" if table else key
    for name, idx, first, last in _table_ranges(lines):
        if name == sub and (idx == index or not table):
            return first  # a sub-table header such as [task.options]
        if name != table or (table and idx != index):
            continue
        for i in range(first, last + 1):
            if table and i == first:
                continue  # the header itself
            if key_re.search(lines[i - 1].split("#", 1)[0]):
                return i
    return None


def table_line(text: str, table: str, index: int = 0) -> int | None:
    """1-based line of the ``index``-th header of ``table``."""
    for name, idx, first, _last in _table_ranges(text.splitlines()):
        if name == table and idx == index and table:
            return first
    return None


class _Ctx:
    """Error helper bound to one file."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text

    def error(self, message: str, key: str | None = None, table: str = "", index: int = 0) -> ConfigError:
        line = None
        if key is not None:
            line = locate(self.text, key, table, index)
        if line is None and table:
            line = table_line(self.text, table, index)
        return ConfigError(f"{self.path}:{line or 1}: {message}")

    def where(self, table: str, index: int) -> str:
        return "the top level" if not table else f"[[{table}]] #{index + 1}"

    def line(self, key: str, table: str = "", index: int = 0) -> int | None:
        """1-based line of ``key`` in the file (see :func:`locate`)."""
        return locate(self.text, key, table, index)

    def resolve_init(self, init: str, base: Path) -> str:
        """``init`` as the suite's own inits are written (paths resolved from ``base``)."""
        return _resolve_init(init, base)

    def check_keys(self, data: dict[str, Any], allowed: dict[str, str], table: str = "", index: int = 0) -> None:
        for key in data:
            if key not in allowed:
                hint = close_matches(key, list(allowed))
                msg = (
                    f"unknown key {key!r} in {self.where(table, index)}; expected one of: {', '.join(allowed)}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                )
                raise self.error(msg, key, table, index)

    def expect(self, ok: bool, key: str, allowed: dict[str, str], value: Any, table: str = "", index: int = 0) -> None:
        if not ok:
            raise self.error(
                f"{key!r} in {self.where(table, index)} must be {allowed[key]}, got {value!r}", key, table, index
            )

    # typed readers -----------------------------------------------------------------------------
    def string(self, data: dict, key: str, allowed: dict, table: str = "", index: int = 0) -> str | None:
        if key not in data:
            return None
        v = data[key]
        self.expect(isinstance(v, str) and v.strip() != "", key, allowed, v, table, index)
        return v.strip()

    def posint(self, data: dict, key: str, allowed: dict, table: str = "", index: int = 0) -> int | None:
        if key not in data:
            return None
        v = data[key]
        self.expect(isinstance(v, int) and not isinstance(v, bool) and v > 0, key, allowed, v, table, index)
        if key == "size":
            from archbench.config import MAX_SIZE_ENV, max_size

            if v > max_size():
                raise self.error(f"'size' in {self.where(table, index)} is {v} px, more than the limit of {max_size()} px "
                                 f"(set {MAX_SIZE_ENV} to allow more)", key, table, index)
        return int(v)

    def strings(self, data: dict, key: str, allowed: dict, table: str = "", index: int = 0) -> list[str] | None:
        if key not in data:
            return None
        v = data[key]
        ok = isinstance(v, list) and len(v) > 0 and all(isinstance(s, str) and s.strip() for s in v)
        self.expect(ok, key, allowed, v, table, index)
        return [s.strip() for s in v]

    def seeds(self, data: dict, key: str, allowed: dict, table: str = "", index: int = 0) -> list[int] | None:
        if key not in data:
            return None
        v = data[key]
        if isinstance(v, int) and not isinstance(v, bool):
            self.expect(v > 0, key, allowed, v, table, index)
            if v > MAX_SEED_COUNT:  # never built as a list: the job limit refuses far fewer
                raise self.error(f"{key!r} in {self.where(table, index)} is {short(v)} seeds, more than "
                                 f"{MAX_SEED_COUNT}", key, table, index)
            return list(range(v))
        ok = isinstance(v, list) and len(v) > 0 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)
        self.expect(ok, key, allowed, v, table, index)
        too_large = [s for s in v if s > SEED_MAX]
        if too_large:
            raise self.error(f"{key!r} in {self.where(table, index)}: seed {short(too_large[0])} is more than "
                             f"{SEED_MAX}, the largest seed", key, table, index)
        if len(set(v)) != len(v):
            raise self.error(f"{key!r} in {self.where(table, index)} has duplicates: {v!r}", key, table, index)
        return [int(s) for s in v]


def _resolve_file(value: str, base: Path) -> str:
    """A path written in a suite, resolved from the suite file's folder (absolute paths and
    ``~`` stay as they are)."""
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve_arch(spec: str, base: Path) -> str:
    """``spec`` with the file of a ``file.py:factory`` spec resolved from the suite's folder."""
    from archbench.architectures.registry import parse_spec

    name, opts = parse_spec(spec)
    if ".py:" not in name:
        return spec
    path, sep, func = name.rpartition(":")
    return canonical_spec(f"{_resolve_file(path, base)}:{func}", opts)


def _check_arch(spec: str):
    """Build ``spec`` on the meta device (no memory, no weights) so that unknown names, unknown
    options and bad option values (``vgg11(width=abc)``) fail when the suite is parsed; returns
    the network, or None when it cannot be built without real tensors (checked when it runs)."""
    import logging

    import torch

    from archbench.architectures.adapters import check_model_name
    from archbench.architectures.create import build_arch
    from archbench.architectures.registry import parse_spec
    from archbench.errors import PluginError

    name, opts = parse_spec(spec)
    prefix, sep, model = name.partition(":")
    if sep and not opts and check_model_name(prefix, model):
        return None  # tv:NAME / timm:NAME without options: the name is all there is to check
    try:
        with torch.device("meta"):
            return build_arch(spec)
    except PluginError as exc:  # the plugin misbehaved: its jobs fail (and say why), the others run
        logging.getLogger(__name__).debug("arch %s not checked: %s", spec, exc)
        return None
    except ArchbenchError:
        raise
    except Exception as exc:  # a factory that needs real tensors: it runs (or fails) as a job
        logging.getLogger(__name__).debug("arch %s not checked on the meta device: %s", spec, exc)
        return None


def _resolve_init(init: str, base: Path) -> str:
    """``init`` with a checkpoint path (or a stacked init's reference file) resolved from the suite."""
    if init.startswith("checkpoint:"):
        return "checkpoint:" + _resolve_file(init.partition(":")[2], base)
    if init.startswith("stacked("):
        from archbench.architectures.registry import parse_spec

        _, opts = parse_spec(init)
        ref = opts.get("reference")
        if isinstance(ref, str):
            opts["reference"] = _resolve_image(ref, base)
        return canonical_spec("stacked", opts)
    return init


def _check_init(init: str) -> None:
    from archbench.architectures.init import validate_init
    from archbench.config import canonical_init, parse_stacked

    if init == "stacked" or init.startswith("stacked("):
        stacked = parse_stacked(canonical_init(init, "cpu"))  # unknown options fail here
        if stacked is not None:
            from archbench.images import check_image

            check_image(str(stacked["reference"]))
        return
    validate_init(init)


def _check_fits(net, init: str) -> None:
    """A checkpoint init must fit the (meta-built) network: same keys and shapes."""
    if net is None or not init.startswith("checkpoint:"):
        return
    from archbench.architectures.init import checkpoint_mismatch, read_checkpoint

    path = Path(init.partition(":")[2])
    problem = checkpoint_mismatch(net, read_checkpoint(path))
    if problem:
        raise ConfigError(f"checkpoint {str(path)!r} does not fit this architecture: {problem}")


def _resolve_image(src: str, base: Path) -> str:
    """An image source of a suite: a built-in name as it is, a path resolved from the suite file."""
    from archbench.images import IMAGES

    if src in IMAGES:
        return src
    return _resolve_file(src, base)


def _check_images(sources: list[str]) -> None:
    """Every image exists and its header is readable and within the pixel limit (nothing is decoded)."""
    from archbench.images import IMAGES, check_image, list_image_files

    for src in sources:
        if src not in IMAGES and Path(src).is_dir():
            for f in list_image_files(src):
                check_image(f)
        else:
            check_image(src)


def _resolve_options(task, options: dict[str, Any], base: Path) -> dict[str, Any]:
    """Task options with the image paths among them (``task.path_options``) resolved from the suite."""
    out = dict(options)
    for key in getattr(task, "path_options", ()):
        value = out.get(key)
        if isinstance(value, str):
            parts = [v.strip() for v in value.split(",")]
            out[key] = ",".join(v if v in ("", "photos") else _resolve_image(v, base) for v in parts)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = [v if v == "photos" else _resolve_image(v, base) for v in value]
    return out


def _option_images(task, options: dict[str, Any]) -> list[str]:
    """The image sources named by ``options`` (already resolved)."""
    found: list[str] = []
    for key in getattr(task, "path_options", ()):
        value = options.get(key)
        values = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
        found += [v.strip() for v in values if isinstance(v, str) and v.strip() and v.strip() != "photos"]
    return found


def parse_suite_text(text: str, path: str = "<suite>") -> Suite:
    """Parse and validate a suite from TOML ``text``; errors name ``path`` and the line."""
    ctx = _Ctx(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"line (\d+)", msg)
        line = m.group(1) if m else "1"
        detail = re.sub(r" \(at .*\)$", "", msg)
        raise ConfigError(f"{path}:{line}: invalid TOML: {detail}") from None
    base = Path(path).resolve().parent if path != "<suite>" else Path.cwd()
    ctx.check_keys(data, TOP_KEYS)
    name = ctx.string(data, "name", TOP_KEYS)
    if name is None:
        raise ctx.error("missing key 'name' (the suite's name, a string) at the top level")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ctx.error(f"'name' must contain only letters, digits, '_', '-', '.', got {name!r}", "name")
    suite = Suite(name=name, path=path, archs=[], tasks=[])
    suite.description = ctx.string(data, "description", TOP_KEYS) or ""
    suite.reference = ctx.string(data, "reference", TOP_KEYS)
    suite.seeds = ctx.seeds(data, "seeds", TOP_KEYS) or suite.seeds
    suite.inits = ctx.strings(data, "inits", TOP_KEYS) or suite.inits
    images = ctx.strings(data, "images", TOP_KEYS)
    suite.images = [_resolve_image(s, base) for s in images] if images else suite.images
    try:
        _check_images(suite.images)
    except ArchbenchError as exc:
        raise ctx.error(f"in 'images': {exc}", "images") from None
    suite.size = ctx.posint(data, "size", TOP_KEYS)
    suite.iterations = ctx.posint(data, "iterations", TOP_KEYS)
    suite.optimizer = ctx.string(data, "optimizer", TOP_KEYS) or suite.optimizer
    if suite.optimizer not in ("lbfgs", "adam"):
        raise ctx.error(f"'optimizer' must be lbfgs or adam, got {suite.optimizer!r}", "optimizer")
    suite.history = ctx.posint(data, "history", TOP_KEYS) or suite.history
    suite.device = ctx.string(data, "device", TOP_KEYS) or suite.device
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", suite.device):
        raise ctx.error(f"'device' must be auto, cpu, cuda or cuda:N, got {suite.device!r}", "device")
    from archbench.metrics.gram import JUDGE_NAMES

    suite.judge = ctx.string(data, "judge", TOP_KEYS) or suite.judge
    if suite.judge not in JUDGE_NAMES:
        raise ctx.error(f"'judge' must be one of {', '.join(JUDGE_NAMES)}, got {suite.judge!r}", "judge")

    suite.inits = [_resolve_init(init, base) for init in suite.inits]
    for init in suite.inits:
        try:
            _check_init(init)
        except ArchbenchError as exc:
            raise ctx.error(str(exc), "inits") from None
    built: dict[str, Any] = {}  # canonical spec -> network built on the meta device (or None)

    # architectures
    for spec in ctx.strings(data, "archs", TOP_KEYS) or []:
        try:
            canon = canonical_spec(_resolve_arch(spec, base))
            built[canon] = _check_arch(canon)
            for init in suite.inits:
                _check_fits(built[canon], init)
            suite.archs.append(ArchEntry(canon))
        except ArchbenchError as exc:
            raise ctx.error(f"in 'archs': {exc}", "archs") from None
    arch_tables = data.get("arch", [])
    if not isinstance(arch_tables, list) or not all(isinstance(t, dict) for t in arch_tables):
        raise ctx.error("'arch' must be an array of tables written [[arch]]", "arch")
    for i, t in enumerate(arch_tables):
        ctx.check_keys(t, ARCH_KEYS, "arch", i)
        spec = ctx.string(t, "spec", ARCH_KEYS, "arch", i)
        if spec is None:
            raise ctx.error(f"missing key 'spec' in [[arch]] #{i + 1}; expected {ARCH_KEYS['spec']}", None, "arch", i)
        options = t.get("options", {})
        ctx.expect(isinstance(options, dict), "options", ARCH_KEYS, options, "arch", i)
        try:
            canon = canonical_spec(_resolve_arch(spec, base), options)
            built[canon] = _check_arch(canon)
        except ArchbenchError as exc:
            raise ctx.error(str(exc), "spec" if not options else "options", "arch", i) from None
        inits = ctx.strings(t, "inits", ARCH_KEYS, "arch", i)
        inits = [_resolve_init(init, base) for init in inits] if inits else None
        for init in inits or []:
            try:
                _check_init(init)
            except ArchbenchError as exc:
                raise ctx.error(str(exc), "inits", "arch", i) from None
        for init in inits or suite.inits:
            try:
                _check_fits(built[canon], init)
            except ArchbenchError as exc:
                raise ctx.error(str(exc), "inits" if inits else "spec", "arch", i) from None
        suite.archs.append(ArchEntry(canon, inits, ctx.seeds(t, "seeds", ARCH_KEYS, "arch", i)))
    if not suite.archs:
        raise ctx.error("no architectures: expected 'archs = [...]' or at least one [[arch]] table")
    seen: set[str] = set()
    for a in suite.archs:
        if a.spec in seen:
            raise ctx.error(f"architecture {a.spec!r} is listed twice", "archs" if "archs" in data else "spec")
        seen.add(a.spec)

    # tasks
    from archbench.metrics import get_metric
    from archbench.tasks import get_task

    for tname in ctx.strings(data, "tasks", TOP_KEYS) or []:
        try:
            get_task(tname)
        except ArchbenchError as exc:
            raise ctx.error(f"in 'tasks': {exc}", "tasks") from None
        suite.tasks.append(TaskEntry(tname))
    task_tables = data.get("task", [])
    if not isinstance(task_tables, list) or not all(isinstance(t, dict) for t in task_tables):
        raise ctx.error("'task' must be an array of tables written [[task]]", "task")
    for i, t in enumerate(task_tables):
        ctx.check_keys(t, TASK_KEYS, "task", i)
        tname = ctx.string(t, "name", TASK_KEYS, "task", i)
        if tname is None:
            raise ctx.error(f"missing key 'name' in [[task]] #{i + 1}; expected {TASK_KEYS['name']}", None, "task", i)
        try:
            task = get_task(tname)
        except ArchbenchError as exc:
            raise ctx.error(str(exc), "name", "task", i) from None
        options = t.get("options", {})
        ctx.expect(isinstance(options, dict), "options", TASK_KEYS, options, "task", i)
        options = _resolve_options(task, options, base)
        try:
            task.parse_options(dict(options))
            _check_images(_option_images(task, options))
        except (ArchbenchError, TypeError, ValueError) as exc:
            bad = [k for k in options if k in str(exc)]
            line_key = bad[0] if bad else "options"
            raise ctx.error(f"task {tname!r} options: {exc}", line_key, "task", i) from None
        metrics = ctx.strings(t, "metrics", TASK_KEYS, "task", i)
        for m in metrics or []:
            try:
                get_metric(m)
            except ArchbenchError as exc:
                raise ctx.error(str(exc), "metrics", "task", i) from None
        images = ctx.strings(t, "images", TASK_KEYS, "task", i)
        images = [_resolve_image(s, base) for s in images] if images else None
        try:
            _check_images(images or [])
        except ArchbenchError as exc:
            raise ctx.error(f"in 'images': {exc}", "images", "task", i) from None
        only = ctx.strings(t, "archs", TASK_KEYS, "task", i)
        if only is not None:
            try:
                only = [canonical_spec(_resolve_arch(a, base)) for a in only]
            except ArchbenchError as exc:
                raise ctx.error(f"'archs': {exc}", "archs", "task", i) from None
            stray = [a for a in only if a not in seen]
            if stray:
                raise ctx.error(
                    f"'archs' of [[task]] #{i + 1} names {', '.join(map(repr, stray))}, not among the suite's "
                    f"architectures: {', '.join(sorted(seen))}",
                    "archs", "task", i,
                )
        only_inits = ctx.strings(t, "inits", TASK_KEYS, "task", i)
        only_inits = [_resolve_init(init, base) for init in only_inits] if only_inits else None
        all_inits = {init for a in suite.archs for init in (a.inits or suite.inits)}
        stray = [x for x in only_inits or [] if x not in all_inits]
        if stray:
            raise ctx.error(
                f"'inits' of [[task]] #{i + 1} names {', '.join(map(repr, stray))}, not among the suite's inits: "
                f"{', '.join(sorted(all_inits))}", "inits", "task", i,
            )
        suite.tasks.append(
            TaskEntry(
                tname,
                dict(options),
                metrics,
                ctx.posint(t, "size", TASK_KEYS, "task", i),
                ctx.posint(t, "iterations", TASK_KEYS, "task", i),
                images,
                ctx.seeds(t, "seeds", TASK_KEYS, "task", i),
                only,
                only_inits,
            )
        )
    if not suite.tasks:
        raise ctx.error("no tasks: expected 'tasks = [...]' or at least one [[task]] table")
    if suite.reference is not None:
        ref_spec = suite.reference.split("@", 1)[0]
        try:
            ref_canon = canonical_spec(_resolve_arch(ref_spec, base))
        except ArchbenchError as exc:
            raise ctx.error(f"'reference': {exc}", "reference") from None
        if ref_canon not in seen:
            raise ctx.error(
                f"'reference' {suite.reference!r} is not one of the suite's architectures: {', '.join(sorted(seen))}",
                "reference",
            )
        if ".py:" in ref_spec:  # the file resolved from the suite, as the architecture's
            suite.reference = ref_canon + suite.reference[len(ref_spec):]
    from archbench.claims import parse_claims

    suite.claims = parse_claims(ctx, data, suite)
    return suite


def builtin_suites() -> dict[str, Path]:
    """Built-in suite name -> file (the TOML files shipped in ``archbench/suites``)."""
    for p in sorted(SUITES_DIR.glob("*.toml")):
        if p.stem not in SUITES:
            SUITES.add(p.stem, p)
    return {n: SUITES.get(n) for n in SUITES.names()}


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite from a file path or a built-in name (``ci``, ``paper``, ``zoo``); the file is
    UTF-8 (:func:`archbench.fileio.read_text` says where it is not)."""
    from archbench.fileio import read_text

    text_id = str(name_or_path)
    p = Path(text_id).expanduser()
    if p.suffix == ".toml" or p.exists() or "/" in text_id:
        if not p.is_file():
            raise ConfigError(f"suite file {text_id!r} does not exist")
        return parse_suite_text(read_text(p, "suite file"), str(p))
    builtin_suites()
    path = SUITES.get(text_id)
    return parse_suite_text(read_text(path, "suite file"), str(path))
