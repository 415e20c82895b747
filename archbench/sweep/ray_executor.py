"""The ``ray`` executor: a sweep's jobs as Ray core tasks, on one workstation or a cluster.

``archbench sweep SUITE --executor ray [--address auto|HOST:PORT|ray://HOST:PORT]
[--gpus-per-job 0.5] [--max-retries 3] [--shared-dir PATH]`` (optional extra ``archbench[ray]``;
Ray is imported only when this executor runs, so archbench works without it).

How jobs run:

* Jobs that share a network (same :attr:`~archbench.config.RunConfig.network_key`: arch, init,
  seed, device -- the local executor's grouping) form **one Ray task**, which runs them through
  :func:`archbench.runner.execute` like the local executor: the network is built once, and jobs
  that differ only in their image run as one batch (``batch_images``, default 16 on CUDA, 1 on
  the CPU). The task is a Ray *streaming generator*: it yields a "started" marker per job and then
  the :class:`~archbench.results.RunOutcome` of each job as soon as its batch ends, and the driver
  collects them with a ``ray.wait`` loop over all running groups.
* Resources per task: ``num_cpus = cpus_per_job`` (default 1; the worker's torch uses that many
  threads) and ``num_gpus = gpus_per_job`` (default 1 for ``cuda`` jobs, 0 for ``cpu`` jobs;
  fractions below 1 pack several jobs on one GPU: 0.5 runs two per GPU). Ray sets
  ``CUDA_VISIBLE_DEVICES`` for each task, so a job asking for ``cuda`` (or ``cuda:N``) runs on
  ``cuda:0`` of what it was given.
* **Only the driver writes the store**: outcomes travel back to it. Output images come back as
  PNG bytes with the outcome and the driver writes them under its image folder
  (``<out>/<job key>/...``, as the local executor does), unless ``shared_dir`` names a folder that
  every node sees: then workers write the images there and send back only their paths. Input
  image files named by the suite are read by the driver and shipped with the task, so workers
  need no shared file system.
* **Failures.** A worker that dies (killed, segfault, node lost: a Ray *system* failure) is
  retried up to ``max_retries`` times (Ray's ``max_retries``; the generator is replayed and the
  outcomes the driver already has are not delivered twice). A job that fails for its own reason
  (a bad image, a non-finite loss, an :class:`~archbench.errors.ArchbenchError`, any exception) is
  a failed outcome, stored with its reason and never retried (``retry_exceptions=False``). When
  the retries are spent, the jobs of that group that had not reported are stored as failed.
* **Ctrl-C** on the driver cancels every task still pending or running (``ray.cancel``) and
  re-raises ``KeyboardInterrupt``; every outcome received so far is already in the store (the
  driver commits each one as it arrives), so re-running the command resumes.
* **Fail fast.** A sweep that needs GPUs (device ``cuda``, or ``gpus_per_job > 0``) on a cluster
  whose ``ray.cluster_resources()`` has no ``GPU``, or whose tasks no node could ever hold, raises
  :class:`~archbench.errors.ConfigError` before anything is submitted instead of waiting forever.

Without an address, a private local Ray instance is started (``num_cpus`` = the CPUs this process
may use, GPUs detected by Ray, no dashboard, usage statistics off, every Ray process bound to
the loopback interface) and shut down when the sweep ends. With an address, the executor connects
to that cluster (``auto``: the one started on this machine by ``ray start``, or ``RAY_ADDRESS``)
and disconnects at the end. An already initialised Ray session (``ray.init`` called by the
caller) is used as it is and left running. Each result's ``extra["ray"]`` records where it ran:
host, node IP, worker PID, the GPU ids Ray gave the task and ``CUDA_VISIBLE_DEVICES`` -- in the
stored run's ``provenance["ray"]``.

Over 500 lines on purpose: one executor; Ray's placement, retries, batching and the shared
folder are read together when a cluster run misbehaves.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.config import RunConfig
from archbench.errors import ConfigError
from archbench.results import RunOutcome
from archbench.runner import group_by_network
from archbench.sweep.executor import Executor, OnResult, OnStart, Skip, register_executor

log = logging.getLogger(__name__)

#: name of the Ray tasks (and of their worker processes: ``ray::archbench_sweep_group``)
TASK_NAME = "archbench_sweep_group"

#: environment set before Ray is imported for a private local instance: bind every Ray process to
#: the loopback interface (Ray's switch for single-machine use) and send no usage statistics
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}

INSTALL_HINT = "the ray executor needs Ray: pip install 'archbench[ray]'"


def ray_available() -> bool:
    """Whether Ray can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def import_ray(local: bool = False):
    """Import Ray, or raise :class:`ConfigError` with the install command.

    ``local``: about to start a private local instance, so set :data:`LOCAL_RAY_ENV` (when not set
    by the user) before the first import; Ray reads these at import time.
    """
    if local and "ray" not in sys.modules:
        for key, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def gpus_for(device: str, gpus_per_job: float | None) -> float:
    """GPUs one task of jobs on ``device`` asks Ray for: ``gpus_per_job``, else 1 on cuda, 0 on cpu."""
    if gpus_per_job is not None:
        return float(gpus_per_job)
    return 1.0 if device.startswith("cuda") else 0.0


def choose_device(requested: str, gpus_per_job: float | None, cluster_gpus: float, cluster: str = "the Ray cluster") -> str:
    """The device of a sweep's jobs on a Ray cluster with ``cluster_gpus`` GPUs in all.

    ``auto`` -> ``cuda`` when the cluster has a GPU (or ``gpus_per_job > 0`` asks for one), else
    ``cpu``; ``cuda``/``cuda:N`` stay (jobs run on the GPU Ray gives their task); ``cpu`` stays.

    Raises:
        ConfigError: GPUs asked for (device ``cuda`` or ``gpus_per_job > 0``) and the cluster has
            none; or ``cuda`` jobs with ``gpus_per_job == 0`` (their tasks would see no GPU).
    """
    from archbench.config import resolve_device

    resolve_device(requested, gpus=True)  # a malformed device fails here
    asks_gpu = requested.startswith("cuda") or (gpus_per_job or 0) > 0
    if asks_gpu and cluster_gpus <= 0:
        what = f"device {requested}" if requested.startswith("cuda") else f"--gpus-per-job {gpus_per_job:g}"
        raise ConfigError(
            f"the sweep asks for GPUs ({what}) but {cluster} has no GPU; "
            "run with --device cpu (and no --gpus-per-job), or add nodes with GPUs"
        )
    if requested.startswith("cuda") and gpus_per_job == 0:
        raise ConfigError("--gpus-per-job 0 with device cuda: the jobs' Ray tasks would see no GPU; give a share > 0")
    return resolve_device(requested, gpus=cluster_gpus > 0 and gpus_per_job != 0)


def check_feasible(nodes: Sequence[dict[str, float]], cpus: float, gpus: float, cluster: str = "the Ray cluster") -> None:
    """:class:`ConfigError` unless some alive node of the cluster could ever hold one task.

    ``nodes``: the ``Resources`` of each alive node (``ray.nodes()``). A task no node can hold
    would wait forever (Ray only warns about "infeasible" tasks).
    """
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return
    total_gpus = sum(n.get("GPU", 0) for n in nodes)
    if gpus > 0 and total_gpus <= 0:
        raise ConfigError(
            f"the sweep asks for {gpus:g} GPU per job but {cluster} has no GPU; "
            "run with --device cpu (and no --gpus-per-job), or add nodes with GPUs"
        )
    biggest = ", ".join(f"{n.get('CPU', 0):g} CPU + {n.get('GPU', 0):g} GPU" for n in nodes) or "no nodes"
    raise ConfigError(
        f"no node of {cluster} can run a job asking for {cpus:g} CPU and {gpus:g} GPU "
        f"(nodes: {biggest}); lower --gpus-per-job or add bigger nodes"
    )


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """:class:`ConfigError` at once when ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts no TCP
    connection (Ray itself retries an unreachable address for minutes). ``auto`` is not checked."""
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        if address != "auto":
            log.debug("not checking Ray address %r", address)
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; is `ray start --head` running there?"
        ) from None


# ----------------------------------------------------------------------------------------------
# worker side


@dataclass
class Delivery:
    """What a group task yields for one finished job.

    Attributes:
        outcome: the job's outcome (its ``job`` is the driver's original job).
        files: output files of the job, path relative to the job's folder -> bytes (empty when
            the worker wrote them to the shared folder, or when no images were asked for).
    """

    outcome: RunOutcome
    files: dict[str, bytes] = field(default_factory=dict)


def _worker_info(task_started: float) -> dict[str, Any]:
    import ray

    try:
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # pragma: no cover - outside a task
        gpu_ids = []
    try:
        node_ip = ray.util.get_node_ip_address()
    except Exception:  # pragma: no cover
        node_ip = ""
    return {
        "host": socket.gethostname(),
        "node_ip": node_ip,
        "pid": os.getpid(),
        "gpu_ids": gpu_ids,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "task_started": task_started,
    }


def _materialise_inputs(inputs: dict[str, bytes], root: Path) -> dict[str, str]:
    """Write shipped input files under ``root``; driver path -> worker path."""
    mapping = {}
    for i, (src, data) in enumerate(sorted(inputs.items())):
        dst = root / f"in{i}" / Path(src).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        mapping[src] = str(dst)
    return mapping


def _map_paths(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_map_paths(v, mapping) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_paths(v, mapping) for v in value)
    if isinstance(value, dict):
        return {k: _map_paths(v, mapping) for k, v in value.items()}
    return value


def _worker_config(config: RunConfig, mapping: dict[str, str]) -> RunConfig:
    """``config`` as the worker runs it: its copies of the input files, the GPU Ray gave it. The
    key does not change (it hashes file contents and the device's kind)."""
    arch_file, sep, factory = config.arch.partition(".py:")
    arch = f"{mapping.get(arch_file + '.py', arch_file + '.py')}:{factory}" if sep else config.arch
    scheme, _, path = config.init.partition(":")
    init = f"checkpoint:{mapping.get(path, path)}" if scheme == "checkpoint" else config.init
    return config.replace(
        arch=arch,
        init=init,
        image=mapping.get(config.image, config.image),
        options=_map_paths(config.task_options(), mapping),
        digests={mapping.get(k, k): v for k, v in config.digests.items()},
        device="cuda" if config.device.startswith("cuda") else config.device,
    )


def run_group(
    jobs: list[RunConfig], inputs: dict[str, bytes], shared_dir: str | None, want_images: bool, cpus: int,
    batch_images: int | None = None,
) -> Iterator[tuple[str, Any]]:
    """Body of a group task: run the group's jobs through :func:`archbench.runner.execute` (one
    network, jobs that differ only in their image batched exactly as the local executor batches
    them) and stream their outcomes.

    Yields ``("start", job_key)`` before each job and ``("done", Delivery)`` after it. ``inputs``:
    input image files (driver path -> bytes); ``shared_dir``: write images there instead of
    returning them; ``cpus``: torch threads; ``batch_images``: largest batch (default: the device's).
    """
    task_started = time.time()
    import torch

    from archbench.runner import Started, execute

    torch.set_num_threads(max(1, int(cpus)))
    info = _worker_info(task_started)
    scratch = Path(tempfile.mkdtemp(prefix="archbench-ray-"))
    try:
        mapping = _materialise_inputs(inputs, scratch / "inputs")
        originals = {job.key: job for job in jobs}
        image_root = Path(shared_dir) if shared_dir else scratch / "out"
        out = (lambda c: image_root / c.key) if want_images else None
        worker_jobs = [_worker_config(job, mapping) for job in jobs]
        for event in execute(worker_jobs, out_dir=out, batch_images=batch_images):
            if isinstance(event, Started):
                for c in event.configs:
                    yield "start", c.key
                continue
            outcome = event
            job = originals[outcome.key]
            outcome.config = job
            outcome.provenance = {**outcome.provenance, "ray": info}
            for r in outcome.results:
                r.config = job
            files: dict[str, bytes] = {}
            job_dir = image_root / job.key
            if want_images and not shared_dir:  # paths relative to the job folder; bytes travel
                for r in outcome.results:
                    r.paths = {k: str(Path(p).resolve().relative_to(job_dir.resolve())) for k, p in r.paths.items()}
                if job_dir.is_dir():
                    files = {  # results.csv/.jsonl name worker paths: the driver writes its own
                        str(p.relative_to(job_dir)): p.read_bytes()
                        for p in sorted(job_dir.rglob("*"))
                        if p.is_file() and p.parent != job_dir
                    }
                    shutil.rmtree(job_dir, ignore_errors=True)
            yield "done", Delivery(outcome, files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# driver side


def _input_files(jobs: Sequence[RunConfig]) -> dict[str, bytes]:
    """The files the jobs read (every path their configurations digest: images, style images,
    checkpoints, architecture files), path -> bytes."""
    found: dict[str, bytes] = {}
    for job in jobs:
        for path in job.digests:
            if path not in found:
                try:
                    found[path] = Path(path).read_bytes()
                except OSError:  # unreadable: the job fails on the worker with the reason
                    pass
    return found


@dataclass
class _Group:
    jobs: list[RunConfig]
    delivered: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)


@register_executor
class RayExecutor(Executor):
    """Runs a sweep's jobs as Ray tasks, one task per network group (see the module docstring).

    Args:
        out_dir: driver-side folder of the output images (``out_dir/<job key>/...``); None: no images.
        address: Ray cluster to connect to (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None
            starts a private local instance.
        gpus_per_job: GPUs each task asks for (fractions < 1 share a GPU); None: 1 for ``cuda``
            jobs, 0 for ``cpu`` jobs. Given for ``cpu`` jobs it still reserves that share.
        cpus_per_job: CPUs each task asks for (also its torch thread count).
        max_retries: times a task whose worker died is run again (Ray system failures only).
        shared_dir: folder every node sees; workers write the images there (``shared_dir/<job
            key>/...``) and nothing is shipped back.
        num_cpus, num_gpus: resources of a private local instance (default: this machine's).
        batch_images: largest batch of jobs that differ only in their image (as the local
            executor's; default 16 on CUDA, 1 on the CPU).
    """

    name = "ray"

    def __init__(
        self,
        out_dir: str | Path | None = None,
        *,
        address: str | None = None,
        gpus_per_job: float | None = None,
        cpus_per_job: float = 1,
        max_retries: int = 3,
        shared_dir: str | Path | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        batch_images: int | None = None,
    ) -> None:
        if gpus_per_job is not None and (gpus_per_job < 0 or (gpus_per_job > 1 and gpus_per_job != int(gpus_per_job))):
            raise ConfigError(f"--gpus-per-job must be 0, a fraction below 1 or a whole number, got {gpus_per_job:g}")
        if cpus_per_job <= 0:
            raise ConfigError(f"--cpus-per-job must be positive, got {cpus_per_job:g}")
        if batch_images is not None and batch_images < 1:
            raise ConfigError(f"batch_images must be >= 1, got {batch_images}")
        if max_retries < 0:
            raise ConfigError(f"--max-retries must be 0 or more, got {max_retries}")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.address = address
        self.gpus_per_job = gpus_per_job
        self.cpus_per_job = cpus_per_job
        self.max_retries = max_retries
        self.shared_dir = Path(shared_dir).resolve() if shared_dir is not None else None
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.batch_images = batch_images
        self._owned = False  # this executor started (or connected) the Ray session: it ends it

    # -- session ---------------------------------------------------------------------------------

    @property
    def cluster(self) -> str:
        """What the executor runs on, for messages."""
        return f"the Ray cluster at {self.address}" if self.address else "the local Ray instance"

    def connect(self):
        """The Ray module with a session: the caller's, a new local instance, or ``address``."""
        ray = import_ray(local=self.address is None)
        if ray.is_initialized():
            return ray
        kwargs: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": logging.getLogger("archbench").isEnabledFor(logging.DEBUG),
        }
        try:
            if self.address is None:
                ncpu = self.num_cpus or usable_cpus()
                log.info("starting a local Ray instance with %d CPUs", ncpu)
                ray.init(address="local", num_cpus=ncpu, num_gpus=self.num_gpus, include_dashboard=False, **kwargs)
            else:
                check_reachable(self.address)
                log.info("connecting to the Ray cluster at %s", self.address)
                ray.init(address=self.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            what = f"connect to the Ray cluster at {self.address}" if self.address else "start a local Ray instance"
            raise ConfigError(f"cannot {what}: {text}") from None
        self._owned = True
        return ray

    def close(self) -> None:
        """End the Ray session if this executor started it (a caller's session stays)."""
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False

    def _nodes(self, ray) -> list[dict[str, float]]:
        return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive", n.get("alive", False))]

    def resolve_device(self, requested: str) -> str:
        """``auto`` -> ``cuda`` when the cluster has GPUs, else ``cpu``; fails fast when GPUs are
        asked for and the cluster has none (see :func:`choose_device`)."""
        if requested == "cpu" and not self.gpus_per_job:
            return "cpu"  # nothing to ask the cluster yet
        ray = self.connect()
        try:
            return choose_device(requested, self.gpus_per_job, float(ray.cluster_resources().get("GPU", 0)), self.cluster)
        except ConfigError:
            self.close()
            raise

    # -- running ---------------------------------------------------------------------------------

    def run(
        self, jobs: Sequence[RunConfig], on_result: OnResult, on_start: OnStart | None = None, skip: Skip | None = None
    ) -> None:
        """Submit one task per network group and store outcomes as they stream back."""
        groups = []
        for group in group_by_network(jobs):
            if skip is not None:
                group = [j for j in group if not skip(j)]
            if group:
                groups.append(group)
        if not groups:
            return
        ray = self.connect()
        try:
            self._run(ray, groups, on_result, on_start)
        finally:
            self.close()

    def _task_options(self, job: RunConfig) -> dict[str, Any]:
        return {
            "name": TASK_NAME,
            "num_cpus": self.cpus_per_job,
            "num_gpus": gpus_for(job.device, self.gpus_per_job),
            "max_retries": self.max_retries,
            "retry_exceptions": False,
        }

    def _run(self, ray, groups: list[list[RunConfig]], on_result: OnResult, on_start: OnStart | None) -> None:
        nodes = self._nodes(ray)
        for shape in {(self.cpus_per_job, gpus_for(g[0].device, self.gpus_per_job)) for g in groups}:
            check_feasible(nodes, *shape, cluster=self.cluster)
        remote = ray.remote(run_group)
        want_images = self.out_dir is not None or self.shared_dir is not None
        shared = str(self.shared_dir) if self.shared_dir is not None else None
        if shared:
            Path(shared).mkdir(parents=True, exist_ok=True)
        pending: dict[Any, _Group] = {}
        try:
            for group in groups:
                gen = remote.options(**self._task_options(group[0])).remote(
                    group, _input_files(group), shared, want_images, max(1, int(self.cpus_per_job)), self.batch_images
                )
                pending[gen] = _Group(group)
            log.info("submitted %d Ray tasks (%d jobs)", len(pending), sum(len(g) for g in groups))
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=None)
                for gen in ready:
                    state = pending[gen]
                    try:
                        ref = next(gen)
                    except StopIteration:
                        self._fail_rest(state, "the Ray task ended without reporting the job", on_result)
                        del pending[gen]
                        continue
                    try:
                        kind, payload = ray.get(ref)
                    except Exception as exc:  # worker died max_retries + 1 times, task cancelled, ...
                        reason = _ray_failure(exc, self.max_retries)
                        log.warning("a Ray task failed: %s", reason)
                        self._fail_rest(state, reason, on_result)
                        del pending[gen]
                        continue
                    if kind == "start":
                        if payload not in state.started:
                            state.started.add(payload)
                            if on_start:
                                on_start(next(j for j in state.jobs if j.key == payload))
                        continue
                    delivery: Delivery = payload
                    key = delivery.outcome.key
                    if key in state.delivered:  # never twice, even if Ray replays
                        continue
                    state.delivered.add(key)
                    self._write_images(delivery)
                    on_result(delivery.outcome)
        except BaseException:
            for gen in pending:  # Ctrl-C (or a failing callback): stop every task still scheduled
                try:
                    ray.cancel(gen)
                except Exception:  # pragma: no cover - already finished
                    pass
            raise

    def _fail_rest(self, state: _Group, reason: str, on_result: OnResult) -> None:
        now = time.time()
        for job in state.jobs:
            if job.key not in state.delivered:
                state.delivered.add(job.key)
                on_result(RunOutcome(job, "failed", reason, [], now, now, 0.0))

    def _write_images(self, delivery: Delivery) -> None:
        """Write shipped images under ``out_dir/<job key>`` and point the results at them."""
        outcome = delivery.outcome
        if self.shared_dir is not None:
            return  # the worker wrote them where everyone sees them; paths are final
        if self.out_dir is None:
            for r in outcome.results:
                r.paths = {}
            return
        from archbench.fileio import atomic_write

        job_dir = self.out_dir / outcome.key
        for rel, data in delivery.files.items():
            atomic_write(job_dir / rel, data, what="image")
        for r in outcome.results:
            r.paths = {k: str(job_dir / p) for k, p in r.paths.items()}
        if outcome.results:
            from archbench.results import write_results

            write_results(job_dir, outcome.results)


def _ray_failure(exc: BaseException, retries: int) -> str:
    """One line for a Ray task that failed as a whole."""
    name = type(exc).__name__
    if "Cancel" in name:
        return "the Ray task was cancelled"
    if "WorkerCrashed" in name or "NodeDied" in name or "OwnerDied" in name or "ObjectLost" in name:
        return f"the Ray worker running it died ({retries} retries spent): {name}"
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
    return f"the Ray task failed: {name}" + (f": {text}" if text else "")
