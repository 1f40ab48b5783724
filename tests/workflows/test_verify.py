"""Metric verification inside real promotions, against a real Prometheus (Debian's `prometheus`)
scraping the simulated clusters: a version whose pods answer 20 % errors
(`sim.promoter.dev/error-rate: "0.2"`) passes rollout health, fails staging's `verify` check and is
reverted there (the revert PR merged, the cluster back on the previous version), prod untouched; the
measurements (query, values, verdict) are in the stage's status, the audit and the PR body; a good
version passes every measurement and is healthy; with Prometheus down the check fails, closed, and the
version is reverted. An environment without `verify` measures nothing (no `measure` activity). With a
soak, the checks measure across it and the next stage does not wait for the soak again. A cancel stops
the checks at their next wait."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, PromotionStatus, StageState, VerifyConfig
from promoter.sim.kube import KubeSim
from promoter.sim.metrics import ERROR_RATE
from tests.support.gitops import Origin
from tests.support.prometheus import ERROR_RATE_CHECK, RATIO, running_prometheus, with_error_rate
from tests.support.workflows import deployment
from workflows.verification import MAX_MEASUREMENTS, schedule

CHECK = ERROR_RATE_CHECK
ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "staging", "order": 2, "verify": [CHECK]},
    {"name": "prod", "order": 3},
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measured(env: WorkflowEnvironment, workflow_id: str, run_id: str) -> int:
    """How many `measure` activities the run scheduled."""
    history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "measure"
    )


async def promote(env: WorkflowEnvironment, tq: str, to_env: str | None = None) -> PromotionStatus:
    handle = await api.start(env.client, tq, await api.resolve(env.client, tq, "demo", to_env=to_env))
    return await handle.result()


async def test_an_erroring_version_is_reverted_in_staging_by_its_metrics_and_a_good_one_passes(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    tmp_path: Path,
) -> None:
    origin = origin_factory(ENVS)
    forge = origin.forge()
    sims = clusters(["dev", "staging", "prod"])
    targets = {env: sim.port for env, sim in sims.items()}
    with running_prometheus(tmp_path / "prometheus", targets) as prometheus:
        async with run_worker(dev_env, origin, prometheus_url=prometheus) as tq:
            with_error_rate(origin, "0", "2.0.0")  # a good version: verified in staging
            good = await promote(dev_env, tq, to_env="staging")
            with_error_rate(origin, "0.2", "2.1.0")  # healthy by its rollout, 20 % errors by its metrics
            bad = await promote(dev_env, tq)

    assert good.state == PromotionState.SUCCEEDED, good.message
    dev, staging = good.stages
    assert dev.verification == [] and staging.state == StageState.HEALTHY
    (check,) = staging.verification
    assert (check.name, check.app, check.kind, check.verdict) == ("error-rate", "demo", "prometheus", "passed")
    assert check.target == RATIO.replace("{{app}}", "demo").replace("{{env}}", "staging")
    assert check.taken == 2 and check.failed == 0 and all(m.value == 0.0 for m in check.measurements)
    assert "1 verify check(s) passed" in staging.message
    assert await measured(dev_env, good.id, good.run_id) == 2  # dev has no checks: nothing measured there
    good_pr = forge.get_pull_request(staging.pr_number or 0)
    assert "| verify | prometheus |" in good_pr.body and "error-rate (demo) passed" in good_pr.body
    assert "### Verification" in good_pr.body
    assert '- error-rate: `sum(rate(http_requests_total{app="demo",env="staging"' in good_pr.body
    assert "at least 2 measurement(s), 1s apart, failure_limit 0" in good_pr.body

    assert bad.state == PromotionState.REVERTED, bad.message
    dev, staging, prod = bad.stages
    assert dev.state == StageState.HEALTHY and dev.verification == []
    assert staging.state == StageState.REVERTED and staging.revert_commit
    assert prod.state == StageState.PENDING and prod.pr_number is None  # prod untouched
    assert ("apps", "deployments", "apps", "demo") not in sims["prod"].objects
    (check,) = staging.verification
    assert check.verdict == "failed" and check.failed == 1 and check.taken == 1  # failure_limit 0: stops at once
    value = check.measurements[0].value
    assert value is not None and value > 0.01 and check.measurements[0].error == f"result < 0.01 is false for {value:g}"
    assert bad.message.startswith("staging: unhealthy: verification failed: error-rate (demo): 1 of 1")
    audit = [e for e in bad.audit if e.kind == "verify"]
    assert [e.env for e in audit] == ["staging"] and "failed" in audit[0].detail and RATIO[:20] in audit[0].detail
    # the cluster runs the good version again (the revert's sync), and the PR records the measurements
    template = deployment(sims["staging"])["spec"]["template"]
    assert "demo:2.0.0" in str(template) and template["metadata"]["annotations"] == {ERROR_RATE: "0"}
    bad_pr = forge.get_pull_request(staging.pr_number or 0)
    assert "| verify | prometheus |" in bad_pr.body and "error-rate (demo) failed" in bad_pr.body
    assert f"{value:g}" in bad_pr.body


async def test_prometheus_down_fails_closed(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(ENVS[:2])
    with_error_rate(origin, "0", "2.0.0")  # nothing wrong with it: only nothing can say so
    async with run_worker(dev_env, origin, prometheus_url=f"http://127.0.0.1:{closed_port()}") as tq:
        result = await promote(dev_env, tq)
    assert result.state == PromotionState.REVERTED, result.message
    (check,) = result.stages[1].verification
    assert check.verdict == "failed" and check.measurements[0].value is None
    assert "cannot be reached" in check.measurements[0].error and "cannot be reached" in result.message


async def test_with_a_soak_the_checks_measure_across_it_and_the_next_stage_does_not_wait_again(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    """dev soaks 3 s and checks its cluster's /version each second: four measurements (at 0, 1, 2 and
    3 s), three interval timers and no soak timer after them (the soak counts from the rollout's health)."""
    sims = clusters(["dev", "staging"])
    smoke = {"name": "smoke", "http": {"url": sims["dev"].url + "/version"}, "interval": "1s"}
    origin = origin_factory(
        [{"name": "dev", "order": 1, "soak": "3s", "verify": [smoke]}, {"name": "staging", "order": 2}]
    )
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        result = await promote(dev_env, tq)
    assert result.state == PromotionState.SUCCEEDED, result.message
    dev, staging = result.stages
    (check,) = dev.verification
    assert (check.kind, check.verdict, check.taken, check.count) == ("http", "passed", 4, 4)
    assert all(m.value == 200.0 for m in check.measurements)
    assert (
        dev.finished_at and staging.started_at and check.measurements[-1].at - dev.finished_at >= timedelta(seconds=2)
    )
    history = await dev_env.client.get_workflow_handle(result.id, run_id=result.run_id).fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 3  # the intervals; staging found dev soaked already


def test_a_soak_spreads_the_measurements_and_bounds_them() -> None:
    check = VerifyConfig.model_validate({"name": "c", "http": {"url": "http://x"}, "interval": "10s", "count": 3})
    assert schedule(check, None) == (3, timedelta(seconds=10))
    assert schedule(check, timedelta(seconds=5)) == (3, timedelta(seconds=10))  # count covers it already
    assert schedule(check, timedelta(minutes=1)) == (7, timedelta(seconds=10))  # at 0, 10, ..., 60 s
    count, interval = schedule(check, timedelta(days=7))
    assert count == MAX_MEASUREMENTS and abs(interval * (count - 1) - timedelta(days=7)) < timedelta(seconds=1)


async def test_a_cancel_stops_the_checks_at_their_next_wait_and_then_cancels(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    """A minute of measurements in staging, cancelled after the first: the check ends `stopped` at its
    next wait (the measurement in flight finishes first), staging is not verified, so it is reverted
    (never left as if healthy), and the promotion ends cancelled before prod, well within the minute."""
    sims = clusters(["dev", "staging", "prod"])
    smoke = {"name": "smoke", "http": {"url": sims["staging"].url + "/version"}, "interval": "1s", "count": 60}
    origin = origin_factory([{**env, "verify": [smoke]} if env["name"] == "staging" else env for env in ENVS])
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        await api.wait_for(handle, lambda s: bool(s.stages[1].verification) and s.stages[1].verification[0].taken > 0)
        await handle.cancel()
        final = await handle.result()
    assert final.state == PromotionState.REVERTED, (final.state, final.message)  # the cancel's outcome: reverted
    staging, prod = final.stages[1], final.stages[2]
    (check,) = staging.verification
    assert check.verdict == "stopped" and 0 < check.taken < 30
    # fail closed: cut short, the version is not verified, so it is reverted rather than left as if healthy
    assert staging.state == StageState.REVERTED and "verification stopped by a cancel" in staging.message
    assert prod.state == StageState.PENDING and prod.pr_number is None  # prod untouched
    assert [e.detail.split(":")[0] for e in final.audit if e.kind == "verify"] == ["smoke (demo) stopped"]
