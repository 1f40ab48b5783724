"""Several worker processes on one task queue, as an operator runs them: promotions of six apps
dev → staging → prod with one worker SIGKILLed in the middle (everything succeeds, one merge per app
and environment, no PR opened twice, no change lost, the dead worker's activity retried after its short
heartbeat timeout), and a worker stopped with SIGTERM as a rolling deploy does (what it runs either ends
there within the graceful period or is handed back to another worker at once: no timeout is waited).
Real processes, real signals, the session's dev server, simulated clusters."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import git
import pytest
import yaml
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from promoter.sim.kube import KubeSim
from promoter.stack import alive, wait_until
from tests.support.gitops import Origin
from tests.support.workers import identity_pid, kill, running_on
from tests.workflows.conftest import WorkerProcess
from workflows.promotion import PromotionWorkflow
from workflows.steps import HEARTBEAT

pytestmark = pytest.mark.asyncio

APPS = tuple(f"app{i}" for i in range(6))
TARGETS = ("staging", "prod")


def release(origin: Origin, tag: str, apps: tuple[str, ...]) -> str:
    """One commit that moves every app's dev image to `tag`."""
    files = {}
    for app in apps:
        path = f"environments/dev/{app}/deployment.yaml"
        doc = yaml.safe_load((origin.work / path).read_text())
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = f"ghcr.io/promoter-dev/{app}:{tag}"
        files[path] = yaml.safe_dump(doc, sort_keys=False)
    return origin.commit(files, f"release {tag}")


def stall_sync(sim: KubeSim, app: str, seconds: float) -> None:
    """The app's next sync is answered `seconds` late as it writes the app's inventory, its last
    request: the sync is surely in flight meanwhile. (`KubeSim.stall_next` stalls any request: the
    policy check's lookups of the cluster's CRDs and objects would take it.)"""
    with sim.lock:
        sim._faults.append(("stall", seconds, f"/configmaps/promoter-inventory-{app}"))


def image(sim: KubeSim, app: str) -> str:
    obj = sim.objects[("apps", "deployments", "apps", app)]
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


async def approved_to_the_end(handle: WorkflowHandle[Any, PromotionStatus]) -> PromotionStatus:
    """Approve prod when its gate waits, then the promotion's result."""

    def at_gate(s: PromotionStatus) -> bool:
        return s.stages[-1].state == StageState.AWAITING_APPROVAL or s.state != PromotionState.RUNNING

    status = await api.wait_for(handle, at_gate, timeout_s=120)
    if status.state == PromotionState.RUNNING:
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
    return await handle.result()


async def syncing_staging(handle: WorkflowHandle[Any, PromotionStatus]) -> bool:
    status = await handle.query(PromotionWorkflow.query_status)
    return status.stages[1].state == StageState.SYNCING


async def retries(handle: WorkflowHandle[Any, Any], kind: str | None = None) -> list[HistoryEvent]:
    """The started events of the promotion's activities (of `kind`) that were a second or later attempt."""
    history = await handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    return [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.attempt > 1
        and kind in (None, scheduled[e.activity_task_started_event_attributes.scheduled_event_id])
    ]


def scheduled_ids(events: Iterable[HistoryEvent], kind: str) -> set[int]:
    """The IDs of the scheduled events of the `kind` activities among `events`."""
    return {
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == kind
    }


async def started(handle: WorkflowHandle[Any, Any], kind: str) -> list[HistoryEvent]:
    """The started events of the promotion's `kind` activities (an attempt's started event is written
    when it ends, with the attempt's number and the worker that ran it)."""
    history = await handle.fetch_history()
    ids = scheduled_ids(history.events, kind)
    return [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in ids
    ]


async def completed(handle: WorkflowHandle[Any, Any], kind: str) -> datetime:
    """When the promotion's last `kind` activity completed."""
    history = await handle.fetch_history()
    ids = scheduled_ids(history.events, kind)
    return [
        e.event_time.ToDatetime(UTC)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in ids
    ][-1]


async def timed_out_tasks(handle: WorkflowHandle[Any, Any], since: datetime) -> list[str]:
    """The promotion's workflow tasks that timed out after `since`, each as its timeout's type: one that
    waited on a stopped worker's sticky queue is SCHEDULE_TO_START."""
    history = await handle.fetch_history()
    return [
        TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT and e.event_time.ToDatetime(UTC) >= since
    ]


async def test_three_workers_one_killed_lose_nothing(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    clusters: Any,
    worker_process: WorkerProcess,
) -> None:
    origin = origin_factory(apps=APPS)
    sims: dict[str, KubeSim] = clusters(["dev", "staging", "prod"])
    tq = str(uuid.uuid4())
    pids = worker_process.many(origin, tq, 3)
    commit = release(origin, "8.0.0", APPS)
    for app in APPS:  # staging's API is slow: its syncs are surely in flight
        stall_sync(sims["staging"], app, 3.0)
    plans = await asyncio.gather(*(api.resolve(dev_env.client, tq, app) for app in APPS))
    handles = list(await asyncio.gather(*(api.start(dev_env.client, tq, plan) for plan in plans)))
    victim, wid = await running_on(handles, pids, {"sync"}, syncing_staging)
    killed_at = datetime.now(UTC)
    kill(victim)

    results = await asyncio.gather(*(approved_to_the_end(h) for h in handles))

    assert [r.state for r in results] == [PromotionState.SUCCEEDED] * len(APPS), [r.message for r in results]
    merges = git.Repo(origin.path).git.log("--merges", "--format=%s", "main").splitlines()
    for app in APPS:
        for env in TARGETS:
            assert sum(f"from promote/{app}/{env}/" in m for m in merges) == 1, (app, env, merges)
    heads = sorted(p.head for p in origin.forge().list_pull_requests())
    assert heads == sorted(f"promote/{app}/{env}/{commit[:7]}" for app in APPS for env in TARGETS)  # none twice
    for env in TARGETS:  # no change lost: every app runs its new image in every environment
        assert [image(sims[env], app) for app in APPS] == [f"ghcr.io/promoter-dev/{app}:8.0.0" for app in APPS]
    # the killed worker's sync was retried on another worker once its heartbeat timed out, not after its
    # start-to-close timeout (5 minutes) nor the 15 s heartbeat timeout it had before: the worker
    # heartbeats for its thread activities from its event loop, so the timeout can be short
    handle = next(h for h in handles if h.id == wid)
    [again] = await retries(handle, "sync")
    failure = again.activity_task_started_event_attributes.last_failure
    assert failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT, failure
    assert identity_pid(again.activity_task_started_event_attributes.identity) in pids - {victim}
    waited = again.event_time.ToDatetime(UTC) - killed_at
    assert waited < timedelta(seconds=15), f"the retry started {waited} after the kill (heartbeat timeout {HEARTBEAT})"


async def test_sigterm_finishes_or_hands_back_and_costs_no_timeout(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    clusters: Any,
    worker_process: WorkerProcess,
) -> None:
    """A worker stopped as a rolling deploy does, while two promotions it holds sync staging: `quick`'s
    sync ends within its graceful period (5 s) and is done there, once; `slow`'s outlasts it, is
    handed back (a retryable error) at its end and redone on the other worker at once. Neither waits
    out a timeout: the stopping worker still takes the workflow task that `quick`'s sync made, and once
    it is gone the server sends `slow`'s next task to the other worker, not to its sticky queue."""
    origin = origin_factory(apps=("quick", "slow"))
    sims: dict[str, KubeSim] = clusters(["dev", "staging", "prod"])
    tq = str(uuid.uuid4())
    victim = worker_process(origin, tq)  # alone at first: both promotions are cached there, and sync there
    release(origin, "9.2.0", ("quick", "slow"))
    stall_sync(sims["staging"], "quick", 4.0)
    stall_sync(sims["staging"], "slow", 12.0)
    plans = [await api.resolve(dev_env.client, tq, app, to_env="staging") for app in ("quick", "slow")]
    handles = [await api.start(dev_env.client, tq, plan) for plan in plans]
    for handle in handles:
        await running_on([handle], {victim}, {"sync"}, syncing_staging)
    pids = {victim, worker_process.spawn(origin, tq)}  # the rolling deploy's new worker, starting meanwhile
    stopped_at = datetime.now(UTC)
    os.kill(victim, signal.SIGTERM)
    wait_until(lambda: not alive(victim), 30, f"worker {victim} to stop")  # it stops, within its bound

    results = await asyncio.gather(*(h.result() for h in handles))

    assert [r.state for r in results] == [PromotionState.SUCCEEDED] * 2, [r.message for r in results]
    assert [image(sims["staging"], app) for app in ("quick", "slow")] == [
        f"ghcr.io/promoter-dev/{app}:9.2.0" for app in ("quick", "slow")
    ]
    for handle in handles:
        assert await timed_out_tasks(handle, stopped_at) == [], handle.id
    [quick, slow] = [(await started(h, "sync"))[-1].activity_task_started_event_attributes for h in handles]
    assert (quick.attempt, identity_pid(quick.identity)) == (1, victim)
    ended = await completed(handles[0], "sync")
    assert stopped_at < ended < stopped_at + timedelta(seconds=5), (stopped_at, ended)  # within the graceful period
    # the retry's last failure is the hand-back, not a timeout
    assert slow.attempt == 2 and identity_pid(slow.identity) in pids - {victim}
    assert slow.last_failure.application_failure_info.type == "WorkerShutdown", slow.last_failure


async def test_sigterm_hands_a_waiting_gates_watcher_back(
    dev_env: WorkflowEnvironment, origin: Origin, clusters: Any, worker_process: WorkerProcess
) -> None:
    """A gate waiting on a worker that is stopped: its PR watcher is handed back (WorkerShutdown) and
    watched on by the other worker at once, and the approval then merges as usual."""
    clusters(["dev", "staging", "prod"])
    tq = str(uuid.uuid4())
    pids = worker_process.many(origin, tq, 2)
    origin.bump(tag="9.1.0")
    handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
    await api.wait_for(handle, lambda s: s.stages[-1].state == StageState.AWAITING_APPROVAL, timeout_s=120)
    victim, _ = await running_on([handle], pids, {"watch_pull_request"})
    os.kill(victim, signal.SIGTERM)
    wait_until(lambda: not alive(victim), 30, f"worker {victim} to stop")
    await running_on([handle], pids - {victim}, {"watch_pull_request"})  # watched again, by the other one

    result = await approved_to_the_end(handle)

    assert result.state == PromotionState.SUCCEEDED, result.message
    [again] = [e.activity_task_started_event_attributes for e in await retries(handle, "watch_pull_request")]
    assert identity_pid(again.identity) in pids - {victim}
    assert again.last_failure.application_failure_info.type == "WorkerShutdown", again.last_failure
