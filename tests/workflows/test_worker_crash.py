"""A worker process killed with SIGKILL in the middle of a stage's sync and, in another run, in the
middle of a revert, then replaced by a new worker: the promotion finishes with exactly one revert
commit (or none, for the sync case) and a healthy cluster. Real processes, real signals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import git
import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, PromotionStatus, StageState
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin
from tests.support.workers import kill
from tests.support.workflows import deployment, failing_in

pytestmark = pytest.mark.asyncio


async def until(handle: Any, check: Callable[[PromotionStatus], bool]) -> PromotionStatus:
    return await api.wait_for(handle, check, timeout_s=120)


async def test_worker_killed_during_sync(
    dev_env: WorkflowEnvironment, origin: Origin, clusters: Any, worker_process: Callable[[Origin, str], int]
) -> None:
    sims: dict[str, KubeSim] = clusters(["dev", "staging", "prod"])
    tq = str(uuid.uuid4())
    pid = worker_process(origin, tq)
    origin.bump(tag="5.0.0")
    sims["staging"].stall_next(3.0, count=2)  # staging's API is slow: the sync is surely in flight
    handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo", to_env="staging"))
    await until(handle, lambda s: s.stages[1].state == StageState.SYNCING)
    kill(pid)
    worker_process(origin, tq)
    result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert "demo:5.0.0" in str(deployment(sims["staging"])["spec"])
    merges = git.Repo(origin.path).git.log("--format=%s", "main").splitlines()
    assert sum(m.startswith("Merge pull request") for m in merges) == 1


async def test_worker_killed_during_revert(
    dev_env: WorkflowEnvironment, origin: Origin, clusters: Any, worker_process: Callable[[Origin, str], int]
) -> None:
    sims: dict[str, KubeSim] = clusters(["dev", "staging", "prod"])
    tq = str(uuid.uuid4())
    pid = worker_process(origin, tq)
    failing_in(origin, "staging")
    handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
    await until(handle, lambda s: s.stages[1].state == StageState.REVERTING)
    kill(pid)
    worker_process(origin, tq)
    result = await handle.result()
    assert result.state == PromotionState.REVERTED, result.message
    log = git.Repo(origin.path).git.log("--format=%s", "main").splitlines()
    assert sum(line.startswith("revert(demo): staging back to before") for line in log) == 1
    assert sum("from revert/demo/staging/" in line for line in log) == 1
    live = deployment(sims["staging"])
    assert "sim.promoter.dev/fail-in" not in str(live["spec"]["template"])
    assert any(c.get("reason") == "NewReplicaSetAvailable" for c in live["status"]["conditions"])


async def test_worker_killed_mid_release_set_finishes_with_one_pr_per_environment(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    clusters: Any,
    worker_process: Callable[[Origin, str], int],
) -> None:
    from promoter.models import Decision
    from tests.workflows.test_release_sets import APPS, image, release, two_apps
    from workflows.promotion import PromotionWorkflow

    origin = two_apps(origin_factory)
    sims: dict[str, KubeSim] = clusters(["dev", "staging", "prod"])
    tq = str(uuid.uuid4())
    pid = worker_process(origin, tq)
    commit = release(origin, "6.0.0")
    sims["staging"].stall_next(3.0, count=2)  # the set's sync of staging is surely in flight
    plan = await api.resolve(dev_env.client, tq, "crash-set", members=list(APPS))
    handle = await api.start(dev_env.client, tq, plan)
    await until(handle, lambda s: s.stages[1].state == StageState.SYNCING)
    kill(pid)
    worker_process(origin, tq)
    await until(handle, lambda s: s.stages[2].state == StageState.AWAITING_APPROVAL)
    await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
    result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    heads = sorted(p.head for p in origin.forge().list_pull_requests())
    assert heads == [f"promote/crash-set/prod/{commit[:7]}", f"promote/crash-set/staging/{commit[:7]}"]
    merges = git.Repo(origin.path).git.log("--format=%s", "main").splitlines()
    assert sum(m.startswith("Merge pull request") for m in merges) == 2
    for env in ("staging", "prod"):
        assert [image(sims[env], app) for app in APPS] == [f"ghcr.io/promoter-dev/{app}:6.0.0" for app in APPS]
