"""Drift on a real Temporal dev server, with real git, a simulated cluster and the real `kubectl`: a
person scales the Deployment and deletes the Service by hand; `detect_drift` reports the field (Git's
value and the live one) and the missing object, nothing for an unchanged cluster, and with healing on
puts both back from Git; a webhook that takes `drift` hears of it. The worker's drift schedule exists
per environment, at its interval, and fires (at a one-second interval here) with the report as its
run's result."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import yaml
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import DriftConfig, DriftInput, DriftReport, PromotionState
from promoter.sim.kube import KubeSim
from promoter.worker import drift_schedules, follow_drift_schedules, refresh_drift_schedules
from tests.support.gitops import Origin
from tests.support.workflows import awaiting, deployment

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH"),
]


def kubectl(*args: str, context: str = "staging") -> None:
    """As a person runs it, against the kubeconfig the `clusters` fixture wrote (KUBECONFIG)."""
    done = subprocess.run(
        ["kubectl", "--kubeconfig", os.environ["KUBECONFIG"], "--context", context, "-n", "apps", *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


async def test_a_hand_edit_and_a_deletion_are_reported_and_healed_from_git(
    dev_env: WorkflowEnvironment,
    origin: Origin,
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    hooks: dict[str, Any],
) -> None:
    path = origin.work / "environments/staging/environment.yaml"
    config = yaml.safe_load(path.read_text())
    config["notify"] = [{"url": f"{hooks['url']}/ok", "events": ["drift"]}]  # only drift: nothing else posts
    config["drift"] = {"interval": "5m", "self_heal": True}
    origin.commit({"environments/staging/environment.yaml": yaml.safe_dump(config)}, "staging: drift webhook")
    origin.bump(tag="4.0.0")
    async with run_worker(dev_env, origin) as tq:
        sims = clusters([])
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo", to_env="staging"))
        assert (await handle.result()).state == PromotionState.SUCCEEDED

        clean = await api.drift(dev_env.client, tq, DriftInput(env="staging"))
        assert [(a.app, a.drifts, a.healed) for a in clean.apps] == [("demo", [], False)]  # nothing to report

        kubectl("scale", "deployment", "demo", "--replicas", "5")  # through the /scale subresource
        kubectl("delete", "service", "demo")
        seen = await api.drift(dev_env.client, tq, DriftInput(env="staging", heal=False))
        [demo] = seen.drifted
        found = {(d.object, d.path): (d.git, d.live) for d in demo.drifts}
        assert found == {
            ("Deployment/apps/demo", "spec.replicas"): (2, 5),
            ("Service/apps/demo", ""): ("present", None),
        }
        since = {d.path: d.since for d in demo.drifts}  # kubectl's write is in managedFields; a deletion leaves none
        assert since[""] is None and since["spec.replicas"] is not None
        assert abs((since["spec.replicas"] - seen.checked_at).total_seconds()) < 60
        assert not demo.healed and deployment(sims["staging"])["spec"]["replicas"] == 5  # reported, not touched
        [posted] = hooks["got"]  # the drift event, and nothing for the clean check or the promotion
        assert "demo in staging differs from Git" in posted["text"] and "spec.replicas" in posted["text"]

        healed = await api.drift(dev_env.client, tq, DriftInput(env="staging"))  # as drift.self_heal says
        assert healed.drifted[0].healed
        assert deployment(sims["staging"])["spec"]["replicas"] == 2
        assert ("", "services", "apps", "demo") in sims["staging"].objects
        after = await api.drift(dev_env.client, tq, DriftInput(env="staging"))
        assert after.drifted == []

        # a promotion in flight: the check leaves its app alone, so a heal never fights its sync
        origin.bump(tag="4.1.0")
        moving = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        await api.wait_for(moving, awaiting("prod"))
        during = await api.drift(dev_env.client, tq, DriftInput(env="staging", heal=True))
        assert [(a.app, a.paused, a.drifts) for a in during.apps] == [("demo", True, [])]
        await moving.cancel()

        with pytest.raises(Exception, match="no app nope in staging"):
            await api.drift(dev_env.client, tq, DriftInput(env="staging", apps=["nope"]))

        environments = origin_environments(origin)
        await drift_schedules(dev_env.client, tq, environments)
        described = await dev_env.client.get_schedule_handle("drift-staging").describe()
        assert described.schedule.spec.intervals[0].every == timedelta(minutes=5)
        # the time-skipping test server has no schedules (CreateSchedule is unimplemented there), so the
        # five-minute interval is read from the server's own plan: its next runs, five minutes apart
        upcoming = described.info.next_action_times
        assert len(upcoming) >= 2 and {b - a for a, b in zip(upcoming, upcoming[1:], strict=False)} == {
            timedelta(minutes=5)
        }
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "DriftWorkflow"
        assert action.task_queue == tq
        # the schedule fires at its interval and its run is the environment's report (a second here)
        fast = [e.model_copy(update={"drift": DriftConfig(interval=timedelta(seconds=1))}) for e in environments]
        await drift_schedules(dev_env.client, tq, fast)
        query = f"WorkflowType = 'DriftWorkflow' AND TaskQueue = '{tq}' AND ExecutionStatus = 'Completed'"
        deadline = time.monotonic() + 60
        while not (runs := [wf async for wf in dev_env.client.list_workflows(query)]):
            assert time.monotonic() < deadline, "the drift schedule never ran"
            await asyncio.sleep(0.2)
        scheduled: DriftReport = await dev_env.client.get_workflow_handle(
            runs[0].id, run_id=runs[0].run_id, result_type=DriftReport
        ).result()
        assert scheduled.env in ("dev", "staging", "prod") and [a.app for a in scheduled.apps] == ["demo"]
        for env in ("dev", "staging", "prod"):  # this server outlives the test: leave no schedule firing
            await dev_env.client.get_schedule_handle(f"drift-{env}").delete()


async def test_the_drift_schedule_follows_environment_yaml_without_a_worker_restart(
    dev_env: WorkflowEnvironment, origin: Origin
) -> None:
    """A changed `drift.interval` on main reaches the environment's schedule at the worker's next
    re-read (a fifth of a second here, a minute by default), with the worker still running."""
    from promoter.gitrepo import GitClone

    repo = GitClone(origin.url, origin.path.parent / "schedule-reader")
    tq, stop = f"schedules-{uuid.uuid4()}", asyncio.Event()

    async def every(env: str) -> timedelta | None:
        return (await dev_env.client.get_schedule_handle(f"drift-{env}").describe()).schedule.spec.intervals[0].every

    made = await refresh_drift_schedules(dev_env.client, tq, repo.environments, None)
    follower = asyncio.create_task(
        follow_drift_schedules(dev_env.client, tq, repo.environments, stop, made, every=timedelta(seconds=0.2))
    )
    try:
        assert await every("staging") == timedelta(minutes=5)
        await dev_env.client.get_schedule_handle("drift-staging").pause(note="an operator paused it")
        path = origin.work / "environments/staging/environment.yaml"
        config = yaml.safe_load(path.read_text())
        config["drift"] = {"interval": "2h"}
        origin.commit({"environments/staging/environment.yaml": yaml.safe_dump(config)}, "staging: drift every 2h")
        deadline = time.monotonic() + 30
        while await every("staging") != timedelta(hours=2):
            assert time.monotonic() < deadline, "the schedule never took the new interval"
            await asyncio.sleep(0.1)
        assert await every("prod") == timedelta(minutes=5)  # the others are left as they are
        state = (await dev_env.client.get_schedule_handle("drift-staging").describe()).schedule.state
        assert (state.paused, state.note) == (True, "an operator paused it")  # the update kept the pause
    finally:
        stop.set()
        await follower
        for env in ("dev", "staging", "prod"):  # this server outlives the test: leave no schedule firing
            await dev_env.client.get_schedule_handle(f"drift-{env}").delete()


def origin_environments(origin: Origin) -> list[Any]:
    from promoter.gitrepo import GitClone

    return GitClone(origin.url, origin.path.parent / "env-reader").environments()


HEAL_ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "staging", "order": 2},
    {
        "name": "prod",
        "order": 3,
        "approval": {"required": 1, "approvers": ["alice"]},
        "drift": {"interval": "5m", "self_heal": True},
    },
]


def image(sim: KubeSim) -> str:
    return str(deployment(sim)["spec"]["template"]["spec"]["containers"][0]["image"])


async def promote_to_prod(dev_env: WorkflowEnvironment, tq: str) -> None:
    from promoter.models import Decision
    from workflows.promotion import PromotionWorkflow

    handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo", to_env="prod"))
    await api.wait_for(handle, awaiting("prod"))
    await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
    assert (await handle.result()).state == PromotionState.SUCCEEDED


async def test_a_heal_restores_what_was_promoted_never_an_unpromoted_push_to_main(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from promoter.cli import _drift
    from promoter.models import ClaimInput
    from promoter.settings import Settings
    from workflows.claim import RELEASE, ReleaseSetClaim

    origin = origin_factory(HEAL_ENVS)
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        sims = clusters([])
        await promote_to_prod(dev_env, tq)
        assert image(sims["prod"]).endswith(":2.0.0")

        # someone pushes straight to prod's folder on main: no PR, no policy, no approval
        path = "environments/prod/demo/deployment.yaml"
        origin.repo.git.pull("--quiet", "--rebase", "origin", "main")  # with the promotion's merge
        text = (origin.work / path).read_text().replace(":2.0.0", ":6.6.6-unpromoted")
        assert ":6.6.6-unpromoted" in text
        pushed = origin.commit({path: text}, "prod: hotfix by hand")
        line = f"unpromoted change on main: {pushed[:12]} by dana <dana@example.com>"

        # and live prod drifts (a scale by hand): the self-heal cycle heals it, to what was promoted
        kubectl("scale", "deployment", "demo", "--replicas", "5", context="prod")
        report = await api.drift(dev_env.client, tq, DriftInput(env="prod"))  # drift.self_heal: true
        assert image(sims["prod"]).endswith(":2.0.0")  # the unpromoted push is still not live
        [demo] = report.apps
        assert [u.line() for u in demo.unpromoted] == [line]
        assert [d.path for d in demo.drifts] == ["spec.replicas"]  # the image is not drift: it was never promoted
        assert demo.healed and demo.revision != report.revision  # healed to the promotion's merge, not main
        assert deployment(sims["prod"])["spec"]["replicas"] == 2
        assert image(sims["prod"]).endswith(":2.0.0")  # the unpromoted push is still not live
        again = await api.drift(dev_env.client, tq, DriftInput(env="prod"))
        assert again.apps[0].drifts == [] and image(sims["prod"]).endswith(":2.0.0")

        # `promoter drift prod` says so too (run in process, against this server and task queue)
        target = dev_env.client.service_client.config.target_host
        settings = Settings(temporal_address=target, task_queue=tq)
        assert await _drift(settings, "prod", [], None, False) == 0
        printed = capsys.readouterr().out
        assert "  demo: matches Git (as promoted @ " in printed and f"    {line}\n" in printed, printed

        # a heal that finds the app's ID held (a promotion visibility does not list yet): it applies nothing
        kubectl("scale", "deployment", "demo", "--replicas", "4", context="prod")
        held = await dev_env.client.start_workflow(
            ReleaseSetClaim.run,
            ClaimInput(app="demo", commit=pushed, set_id="promote-someone-else"),
            id="promote-demo",
            task_queue=tq,
        )
        blocked = await api.drift(dev_env.client, tq, DriftInput(env="prod", heal=True))
        [demo] = blocked.apps
        assert not demo.paused and not demo.healed and "promote-demo is running" in demo.note
        assert deployment(sims["prod"])["spec"]["replicas"] == 4  # untouched
        await held.signal(RELEASE, PromotionState.CANCELLED)
        await held.result()

        # a real promotion of the change deploys it, through the gate
        origin.bump(tag="6.6.6")
        await promote_to_prod(dev_env, tq)
        assert image(sims["prod"]).endswith(":6.6.6")
        after = await api.drift(dev_env.client, tq, DriftInput(env="prod"))
        assert after.apps[0].unpromoted == [] and after.apps[0].drifts == []
