"""One run loop: :meth:`archbench.plan.Plan.execute`, with strict and lenient failure policies,
behind :func:`archbench.runner.execute`."""

from __future__ import annotations

import pytest

from archbench.config import resolve
from archbench.errors import ArchbenchError, ConfigError
from archbench.plan import LENIENT, STRICT, Plan, Started
from archbench.results import RunOutcome
from archbench.runner import execute, prepare

SETTINGS = dict(size=16, iterations=2, device="cpu", metrics=["psnr"])


def configs(layers=("pool1",), images=("astronaut", "chelsea")):
    return resolve("vgg11(width=0.125)", "reconstruct", list(images), options={"layers": list(layers)}, **SETTINGS)


def kinds(events) -> list[str]:
    return ["start" if isinstance(e, Started) else e.status for e in events]


@pytest.mark.parametrize("failures", [STRICT, LENIENT])
def test_both_policies_run_the_same_loop(failures):
    events = list(execute(configs(), failures=failures, batch_images=2))
    assert kinds(events) == ["start", "done", "done"]
    outcomes = [e for e in events if isinstance(e, RunOutcome)]
    assert [o.config.image for o in outcomes] == ["astronaut", "chelsea"]
    assert all(o.provenance["batch"] == 2 for o in outcomes)
    assert outcomes[0].build_seconds > 0 and outcomes[1].build_seconds == 0  # the network is built once


def test_strict_raises_where_lenient_stores_a_failed_outcome():
    bad = configs(layers=("no_such_layer",), images=("astronaut",))
    with pytest.raises(ArchbenchError, match="no_such_layer"):
        list(execute(bad, failures=STRICT))
    (start, outcome) = list(execute(bad, failures=LENIENT))
    assert isinstance(start, Started) and outcome.status == "failed" and "no_such_layer" in outcome.error


def test_a_prepared_plan_runs_through_execute_and_skip_drops_jobs():
    plan = prepare(configs(), batch_images=1)
    assert isinstance(plan, Plan) and len(plan.batches) == 2  # validated, nothing run yet
    events = list(execute(plan, failures=STRICT, skip=lambda c: c.image == "chelsea"))
    assert kinds(events) == ["start", "done"]


def test_unknown_policy_and_bad_batch_size():
    with pytest.raises(ConfigError, match="failure policy"):
        list(execute(configs(), failures="sloppy"))
    with pytest.raises(ConfigError, match="batch_images"):
        list(execute(configs(), batch_images=0))
