"""Sweeps: suite files, job expansion, executors and the driver that fills the results store.

``load_suite("ci")`` or ``load_suite("my.toml")`` -> :class:`Suite`; ``expand_jobs(suite, device)``
-> jobs; ``run_sweep(suite, store)`` runs what is not stored yet (``plan_sweep`` checks everything
first, ``SweepPlan.run`` runs).
"""

from archbench.sweep.driver import SweepPlan, SweepSummary, plan_sweep, run_sweep
from archbench.sweep.executor import EXECUTORS, Executor, LocalExecutor, get_executor, register_executor
from archbench.sweep.jobs import expand_jobs
from archbench.sweep.ray_executor import RayExecutor  # registers executor 'ray'; imports Ray only when it runs
from archbench.sweep.suite import SUITES, Suite, builtin_suites, load_suite, parse_suite_text

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "SUITES",
    "RayExecutor",
    "Suite",
    "SweepPlan",
    "SweepSummary",
    "builtin_suites",
    "expand_jobs",
    "get_executor",
    "load_suite",
    "parse_suite_text",
    "plan_sweep",
    "register_executor",
    "run_sweep",
]
