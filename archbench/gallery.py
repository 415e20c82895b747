"""The gallery: what one architecture produces at the task defaults, as a suite and its pictures.

:func:`gallery_suite` turns a :class:`GallerySpec` -- photos, textures, style images, one
architecture -- into a :class:`~archbench.sweep.Suite` of three kinds of jobs:

* ``reconstruct``: each photo from each reconstruction layer (default: the task's, pool1 … pool5
  for VGG);
* ``texture``: each texture on each cumulative layer set (default: the task's, {conv1_1} …
  {conv1_1 … conv5_1} for VGG);
* ``style``: each photo in the style of each style image (one task entry per style image).

Size, iterations and every task option are the tasks' defaults unless the spec says otherwise, so
the gallery shows what a user gets. The suite runs like any other (:func:`archbench.sweep.run_sweep`):
its results are stored, keyed by their configuration and resumable; :func:`collect` reads them back
for :func:`archbench.report.gallery.gallery_html`.

The ``figure1`` section is the paper's Figure 1 (He et al. 2016): per photo, the reconstructions
from pool1 … pool5 (the reconstruction layers) of the gallery's random network under the ``paper``
preset (pixels from white noise) and under the default ``archbench`` preset, and of a trained
network (:data:`FIGURE1_TRAINED`, ``--init pretrained``), each with SSIM and LPIPS. VGG-19's trained
weights are not offline, VGG-16's are; a trained network whose weights are absent is stored as not
run and its row says how to provide them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.config import RunConfig
from archbench.errors import ConfigError

log = logging.getLogger(__name__)

#: the gallery's suite name in its store
SUITE_NAME = "gallery"
#: its sections, in page order
SECTIONS = ("figure1", "reconstruct", "texture", "style")
#: the trained network of the figure1 section (VGG-19's trained weights are not offline; VGG-16's are)
FIGURE1_TRAINED = "vgg16"
#: the reconstruction presets of the figure1 section's random-network rows, in row order
FIGURE1_PRESETS = ("paper", "archbench")
#: the scores the figure1 section computes (the task's defaults plus LPIPS)
FIGURE1_METRICS = ("ssim", "psnr", "lpips-alex")
DEFAULT_PHOTOS = ("astronaut", "chelsea")
DEFAULT_TEXTURES = ("brick", "grass", "gravel")
#: the scores shown under each picture, per section (each when the result has it)
SHOWN_METRICS: dict[str, tuple[str, ...]] = {
    "figure1": ("ssim", "lpips-alex"),
    "reconstruct": ("ssim",),
    "texture": ("texture-quality", "gram"),
    "style": ("stylization", "ssim", "gram"),
}


@dataclass
class GallerySpec:
    """What the gallery runs.

    Attributes:
        photos: content/target photos (built-in names or files).
        textures: texture sources (built-in names or files).
        styles: style images; ``None``: the textures.
        arch, init, seed: the one network.
        size, iterations: ``None``: the device's defaults (as ``archbench run``).
        device, judge: as for ``archbench run``.
        reconstruct_layers, texture_layers: ``None``: the tasks' defaults.
        sections: which of :data:`SECTIONS` to run.
        trained: the trained network of the figure1 section (``None``: no trained row).
    """

    photos: list[str] = field(default_factory=lambda: list(DEFAULT_PHOTOS))
    textures: list[str] = field(default_factory=lambda: list(DEFAULT_TEXTURES))
    styles: list[str] | None = None
    arch: str = "vgg19"
    init: str = "gaussian:0.015"
    seed: int = 0
    size: int | None = None
    iterations: int | None = None
    device: str = "auto"
    judge: str = "auto"
    reconstruct_layers: list[str] | None = None
    texture_layers: list[str] | None = None
    sections: tuple[str, ...] = SECTIONS
    trained: str | None = FIGURE1_TRAINED

    @property
    def style_images(self) -> list[str]:
        return list(self.textures if self.styles is None else self.styles)


def _source(src: str) -> str:
    """A built-in name as it is; a file as its absolute path (checked: exists, readable header)."""
    from archbench.images import IMAGES, check_image

    if src in IMAGES:
        return src
    p = Path(src).expanduser()
    check_image(p)  # ImageError / UnknownNameError with one line
    return str(p.resolve())


def gallery_suite(spec: GallerySpec, *, with_sections: bool = False) -> Any:
    """The :class:`~archbench.sweep.Suite` of ``spec`` (validated names and images; the jobs resolve
    when the suite is planned); ``with_sections``: also its task entries by section.

    Raises:
        ConfigError: an unknown section, no images for a chosen section; ImageError for a missing or
            unreadable image.
    """
    from archbench.architectures.registry import canonical_spec
    from archbench.sweep.suite import ArchEntry, Suite, TaskEntry

    unknown = [s for s in spec.sections if s not in SECTIONS]
    if unknown or not spec.sections:
        raise ConfigError(f"unknown gallery section(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                          f"valid: {', '.join(SECTIONS)}")
    photos = [_source(s) for s in dict.fromkeys(spec.photos)]
    textures = [_source(s) for s in dict.fromkeys(spec.textures)]
    styles = [_source(s) for s in dict.fromkeys(spec.style_images)]
    needs = {"figure1": ("photos", photos), "reconstruct": ("photos", photos), "texture": ("textures", textures),
             "style": ("photos", photos)}
    for section in spec.sections:
        what, images = needs[section]
        if not images:
            raise ConfigError(f"the gallery's {section} section needs {what}; give at least one")
    if "style" in spec.sections and not styles:
        raise ConfigError("the gallery's style section needs style images (--style) or textures")
    arch = canonical_spec(spec.arch)
    trained = canonical_spec(spec.trained) if spec.trained and "figure1" in spec.sections else None
    mine = {"archs": [arch], "inits": [spec.init]}
    layers = {"layers": list(dict.fromkeys(spec.reconstruct_layers))} if spec.reconstruct_layers else {}
    by_section: dict[str, list[TaskEntry]] = {}
    if "figure1" in spec.sections:
        by_section["figure1"] = [
            TaskEntry("reconstruct", {**layers, "preset": preset}, metrics=list(FIGURE1_METRICS), images=photos, **mine)
            for preset in FIGURE1_PRESETS
        ]
        if trained is not None:
            by_section["figure1"].append(TaskEntry("reconstruct", dict(layers), metrics=list(FIGURE1_METRICS),
                                                   images=photos, archs=[trained], inits=["pretrained"]))
    if "reconstruct" in spec.sections:
        by_section["reconstruct"] = [TaskEntry("reconstruct", dict(layers), images=photos, **mine)]
    if "texture" in spec.sections:
        opts = {"layers": list(dict.fromkeys(spec.texture_layers))} if spec.texture_layers else {}
        by_section["texture"] = [TaskEntry("texture", opts, images=textures, **mine)]
    if "style" in spec.sections:
        by_section["style"] = [TaskEntry("style", {"style": style}, images=photos, **mine) for style in styles]
    archs = [ArchEntry(arch)]
    if trained is not None:
        archs.append(ArchEntry(trained, inits=["pretrained"], seeds=[0]))
    suite = Suite(
        name=SUITE_NAME, path="<gallery>", archs=archs, tasks=[t for ts in by_section.values() for t in ts],
        description="archbench gallery: reconstructions, textures and style transfers of one architecture",
        seeds=[int(spec.seed)], inits=[spec.init], images=photos or textures, size=spec.size,
        iterations=spec.iterations, device=spec.device, judge=spec.judge,
    )
    return (suite, by_section) if with_sections else suite


def section_keys(spec: GallerySpec, device: str) -> dict[str, list[str]]:
    """The job keys of each section of ``spec`` on ``device`` (resolved), in page order; a job
    shared by two sections (the default-preset reconstructions) is in both."""
    from dataclasses import replace

    from archbench.config import resolve_device
    from archbench.sweep.jobs import expand_jobs

    suite, by_section = gallery_suite(spec, with_sections=True)
    dev = resolve_device(device)
    return {s: [j.key for j in expand_jobs(replace(suite, tasks=by_section[s]), dev)]
            for s in SECTIONS if s in by_section}


@dataclass
class Picture:
    """One picture of the page: an image file and the words and numbers under it.

    ``reference``: an input (photo, texture, style image), not a result; ``failed``: the ``note``
    says why there is no result."""

    path: str | None
    caption: str
    scores: list[tuple[str, float | None]] = field(default_factory=list)
    note: str = ""
    reference: bool = False
    failed: bool = False


@dataclass
class Row:
    """A row of pictures: the references (photo, texture, style) then the results."""

    title: str
    pictures: list[Picture]


@dataclass
class Section:
    """The rows of one task and its settings."""

    task: str
    title: str
    rows: list[Row]
    settings: dict[str, str]
    caption: str = ""


#: task settings the results record (``Result.extra``) that the page shows with each section
RESOLVED = ("preset", "normalize", "weighting", "gram_norm", "loss", "content_layers", "style_layers",
            "alpha_beta_gamma", "content_norm", "tv_norm", "start")


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _settings(config: RunConfig, extra: dict[str, Any]) -> dict[str, str]:
    """What a section ran with: budget, the options given, the settings the task resolved, metrics."""
    opts = {k: v for k, v in config.task_options().items() if k not in ("style", "content")}
    out = {"size": f"{config.size} px", "iterations": str(config.iterations), "optimizer": config.optimizer}
    out.update({k: _text(v) for k, v in sorted(opts.items())})
    out.update({k: _text(extra[k]) for k in RESOLVED if k in extra and k not in out})
    out["metrics"] = ", ".join(config.metrics)
    return out


def _scores(result: Any, section: str) -> list[tuple[str, float | None]]:
    """The shown scores of ``result`` by plain metric name (the page names the judge once)."""
    return [(m, result.metrics.get(m)) for m in SHOWN_METRICS[section] if m in result.metrics]


def _result_picture(result: Any, caption: str, section: str | None = None) -> Picture:
    failed = result.status != "done"
    note = f"failed: {result.error or result.status}" if failed else ""
    if not failed and result.stalled:
        note = "stalled: did not leave its start"
    scores = _scores(result, section or result.config.task)
    if section == "figure1" and "lpips-alex" not in result.metrics and not failed:
        note = note or "lpips: unavailable (trained AlexNet weights absent: archbench weights status)"
    return Picture(result.paths.get("result"), caption, scores, note, failed=failed)


def collect(store: Any, jobs: Sequence[RunConfig], sections: dict[str, list[str]] | None = None,
            command: str = "") -> list[Section]:
    """The gallery's sections from the stored results of ``jobs`` (a job not stored, or stored as
    failed without results, shows as a missing picture with its reason).

    ``sections``: the job keys of each section (:func:`section_keys`); ``None``: by task.
    ``command``: the command line that makes the page, in the figure1 caption."""
    keys = [j.key for j in jobs]
    stored = store.results(keys=keys, include_failed=True, traces=False)
    runs = {r.key: r for r in store.runs(keys=keys)}
    by_key: dict[str, list[Any]] = {}
    for r in stored:
        r.paths = {k: str(store.resolve_path(p)) for k, p in r.paths.items()}
        by_key.setdefault(r.key, []).append(r)
    if sections is None:
        sections = {t: [j.key for j in jobs if j.task == t] for t in SECTIONS if t != "figure1"}
    job_of = {j.key: j for j in jobs}
    out = []
    titles = {"figure1": "Figure 1 of the paper: random vs trained, pool1 … pool5",
              "reconstruct": "Reconstruction from each layer", "texture": "Texture synthesis on each layer set",
              "style": "Style transfer"}
    for section in SECTIONS:
        task_jobs = [job_of[k] for k in sections.get(section, []) if k in job_of]
        if section == "figure1":  # per photo: each network/preset, in the suite's order
            images = list(dict.fromkeys(j.image for j in task_jobs))
            task_jobs = sorted(task_jobs, key=lambda j: images.index(j.image))
        if not task_jobs:
            continue
        rows = []
        for job in task_jobs:
            title = _row_title(job, section)
            results = by_key.get(job.key, [])
            if not results:
                run = runs.get(job.key)
                why = f"{run.status}: {run.error}" if run is not None and run.error else "not run"
                rows.append(Row(title, [Picture(None, job.image_label, note=why, failed=True)]))
                continue
            first = results[0]
            refs = [Picture(first.paths.get("target"), "content" if job.task == "style" else job.image_label,
                            reference=True)]
            if job.task == "style":
                refs.append(Picture(first.paths.get("style"), "style", reference=True))
            pictures = [_result_picture(r, "result" if job.task == "style" else r.layer, section) for r in results]
            rows.append(Row(title, refs + pictures))
        extra = next((r.extra for j in task_jobs for r in by_key.get(j.key, [])), {})
        settings = _settings(task_jobs[0], extra)
        caption = ""
        if section == "figure1":
            for per_row in ("preset", "start", "param"):  # in each row's title
                settings.pop(per_row, None)
            caption = _figure1_caption(task_jobs, command)
        out.append(Section(section, titles[section], rows, settings, caption))
    return out


def _figure1_caption(jobs: Sequence[RunConfig], command: str) -> str:
    random = next((j for j in jobs if j.init != "pretrained"), jobs[0])
    trained = sorted({j.arch for j in jobs if j.init == "pretrained"})
    layers = random.options.get("layers")
    where = f"from {', '.join(map(str, layers))}" if layers else "from each default layer (pool1 … pool5 for VGG)"
    words = (f"He, Wang & Hopcroft (2016), Figure 1: each photo reconstructed {where} of a random "
             f"{random.arch} ({random.init}, seed {random.seed}) with the paper's method (preset paper: pixels "
             f"optimised from white noise) and with archbench's default (preset archbench: a 1/f Fourier "
             f"parameterisation started from faint pink noise)")
    if trained:
        from archbench.architectures.create import pretrained_unavailable

        absent = [a for a in trained if pretrained_unavailable(a) is not None]
        notes = ["--init pretrained"]
        if absent:
            notes.append(f"weights of {', '.join(absent)} absent here: see the row")
        if "vgg19" not in trained and pretrained_unavailable("vgg19") is not None:
            notes.append("VGG-19's trained weights are not available offline")
        words += f", beside the trained {', '.join(trained)} ({'; '.join(notes)})"
    words += (f"; {random.size} px, {random.iterations} iterations of {random.optimizer} each. Under each picture: "
              f"SSIM to the photo (1 = identical) and LPIPS v0.1 with AlexNet (lower = closer).")
    return words + (f" Made by: {command}" if command else "")


def _row_title(job: RunConfig, section: str | None = None) -> str:
    if section == "figure1":
        if job.init == "pretrained":
            return f"{job.image_label} · trained {job.arch} (pretrained), preset {job.options.get('preset', 'archbench')}"
        from archbench.tasks.reconstruct import DEFAULT_PRESET

        preset = job.options.get("preset", DEFAULT_PRESET)
        how = "pixels from white noise" if preset == "paper" else "1/f Fourier from pink noise"
        return f"{job.image_label} · random {job.arch} ({job.init}), preset {preset}: {how}"
    if job.task == "style":
        from archbench.images import image_label

        return f"{job.image_label} in the style of {image_label(str(job.options.get('style', '')))}"
    return job.image_label


def describe(spec: GallerySpec, jobs: Sequence[RunConfig]) -> dict[str, str]:
    """The configuration block of the page: the network, budget and judge the jobs resolved to."""
    from archbench.results import package_versions

    first = next((j for j in jobs if j.init != "pretrained"), jobs[0])
    versions = package_versions()
    return {
        "architecture": first.arch,
        "init": first.init,
        "seed": str(first.seed),
        "device": first.device,
        **({"trained network (figure1)": ", ".join(sorted({f"{j.arch} (pretrained)" for j in jobs
                                                            if j.init == "pretrained"}))}
           if any(j.init == "pretrained" for j in jobs) else {}),
        "judge (gram, texture-quality, stylization)": next((j.judge for j in jobs if j.judge), None) or "—",
        "photos": ", ".join(map(_label, spec.photos)),
        "textures": ", ".join(map(_label, spec.textures)),
        "styles": ", ".join(map(_label, spec.style_images)),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("archbench", "torch", "python")),
    }


def _label(src: str) -> str:
    from archbench.images import image_label

    return image_label(src)


def gallery_jobs(store: Any, keys: Sequence[str]) -> list[RunConfig]:
    """The stored configurations of the jobs ``keys``, in that order (jobs not stored are left out)."""
    configs = {r.key: r.config for r in store.runs(keys=list(keys))}
    return [configs[k] for k in keys if k in configs]


def gallery_command(spec: GallerySpec) -> str:
    """The ``archbench gallery`` command line of ``spec``'s figure1 section (its photos, network,
    budget and layers)."""
    import shlex

    parts = ["archbench", "gallery", "--section", "figure1", "--arch", spec.arch, "--init", spec.init,
             "--seed", str(spec.seed)]
    for photo in spec.photos:
        parts += ["--photo", photo]
    if spec.trained != FIGURE1_TRAINED:
        parts += ["--trained", spec.trained or "none"]
    if spec.size is not None:
        parts += ["--size", str(spec.size)]
    if spec.iterations is not None:
        parts += ["--iters", str(spec.iterations)]
    if spec.device != "auto":
        parts += ["--device", spec.device]
    if spec.reconstruct_layers:
        parts += ["--recon-layer", ",".join(spec.reconstruct_layers)]
    return shlex.join(parts)


@dataclass
class GalleryReport:
    """What :func:`run_gallery` did: the page written, the sweep's summary, the results shown."""

    page: Path
    summary: Any  # archbench.sweep.SweepSummary
    sections: list[Section]


def run_gallery(
    spec: GallerySpec,
    out_dir: str | Path,
    store_path: str | Path | None = None,
    *,
    runner: Callable[[Any, Any], Any] | None = None,
    title: str = "archbench gallery",
    command: str = "",
) -> GalleryReport:
    """Run the gallery's suite into a store and write its page ``OUT/index.html``.

    Args:
        spec: what to run.
        out_dir: folder of the page (and, by default, of the store ``gallery.db`` and its images).
        store_path: the results store (default ``OUT/gallery.db``); results already there are reused,
            so a second call with the same spec runs nothing and an interrupted one resumes.
        runner: ``runner(suite, store) -> SweepSummary`` (default :func:`archbench.sweep.run_sweep`
            with ``redefine=True``: the gallery's suite follows the latest spec); the CLI passes one
            with a progress bar.
        title: the page's title.
        command: the command line shown in the figure1 caption (default :func:`gallery_command`).

    Raises:
        ArchbenchError: invalid spec, names, layers, images or output folder -- before anything
            runs or is written (the jobs are resolved and validated as ``archbench run`` does).
    """
    from archbench.architectures.create import pretrained_unavailable
    from archbench.config import resolve_device
    from archbench.fileio import atomic_write, check_output_dir
    from archbench.report.gallery import gallery_html
    from archbench.runner import prepare
    from archbench.store import ResultStore
    from archbench.sweep import run_sweep
    from archbench.sweep.jobs import expand_jobs

    suite = gallery_suite(spec)
    jobs = expand_jobs(suite, resolve_device(spec.device))
    # every job resolved, its layers and images checked (a trained network whose weights are absent is
    # stored as not run by the sweep, with how to provide them, and its row says so)
    prepare([j for j in jobs if j.init != "pretrained" or pretrained_unavailable(j.arch) is None])
    keys = section_keys(spec, spec.device)
    out = check_output_dir(out_dir, "--out")  # ... before anything is written
    run = runner or (lambda s, db: run_sweep(s, db, redefine=True))
    with ResultStore(Path(store_path) if store_path is not None else out / "gallery.db") as db:
        summary = run(suite, db)
        jobs = gallery_jobs(db, summary.keys)
        if not jobs:
            raise ConfigError("the gallery ran no jobs")
        sections = collect(db, jobs, keys, command=command or gallery_command(spec))
        page = gallery_html(sections, describe(spec, jobs), title=title)
    path = out / "index.html"
    atomic_write(path, page, what="the gallery page")
    log.info("gallery: %d jobs, page %s", len(jobs), path)
    return GalleryReport(path, summary, sections)


__all__ = ["FIGURE1_TRAINED", "GalleryReport", "GallerySpec", "Picture", "Row", "SECTIONS", "Section", "collect",
           "describe", "gallery_command", "gallery_jobs", "gallery_suite", "run_gallery", "section_keys"]
