"""The policy gate inside real promotions (Temporal dev server, real git, local forge, embedded
engine): a `:latest` image denied at staging before any PR exists; a prod approval by the commit's
author refused with the policy's reason; and, on the time-skipping server, the soak of staging
waited out by a durable timer before prod."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import git
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import Decision, PromotionState, StageState
from tests.support.gitops import Origin
from tests.support.workflows import awaiting
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio


async def test_latest_image_is_denied_at_staging_before_any_pr(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.bump(tag="latest")
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()
    assert result.state == PromotionState.POLICY_DENIED
    dev, staging, prod = result.stages
    assert dev.state == StageState.HEALTHY  # dev only warns about hygiene
    assert dev.policy is not None and dev.policy.allow
    assert any(w.rule == "kubernetes.images.deny_unpinned_image" for w in dev.policy.warn)
    assert staging.state == StageState.POLICY_DENIED and staging.pr_number is None
    assert staging.policy is not None
    [v] = [v for v in staging.policy.deny if v.rule == "kubernetes.images.deny_unpinned_image"]
    assert v.object == "Deployment/-/demo" and v.severity == "high" and v.remediation
    assert "kubernetes.images.deny_unpinned_image" in result.message and ":latest" in result.message
    assert prod.state == StageState.PENDING
    assert forge.list_pull_requests() == [] and origin.branches() == ["main"]


async def test_prod_approval_by_the_commits_author_is_refused(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    path = "environments/dev/demo/deployment.yaml"
    text = re.sub(r"demo:[\w.\-]+", "demo:2.2.2", (origin.work / path).read_text())
    (origin.work / path).write_text(text)
    origin.repo.git.execute(
        ["git", "-c", "user.name=alice", "-c", "user.email=alice@example.com", "commit", "-qam", "alice's change"]
    )
    origin.repo.git.push("-q", "origin", "main")
    async with run_worker(dev_env, origin) as tq:
        plan = await api.resolve(dev_env.client, tq, "demo")
        assert plan.author == "alice <alice@example.com>"
        handle = await api.start(dev_env.client, tq, plan)
        await api.wait_for(handle, awaiting("prod"))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
        assert f"alice wrote commit {plan.short_commit} and may not approve it for prod" in str(refused.value.cause)
        history = await handle.fetch_history()  # the policy screened alice when the gate opened: the
        assert not [
            e
            for e in history.events  # validator refused her, so nothing entered history
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        await handle.signal(
            PromotionWorkflow.approve_signal, Decision(env="prod", approver="alice")
        )  # the UI's signal: recorded, refused
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="bob"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED
    prod = result.stages[2]
    assert [a.approver for a in prod.approvals] == ["bob"]
    assert [r.approver for r in prod.refusals] == ["alice"] and "may not approve" in prod.refusals[0].reason
    assert prod.policy is not None and prod.policy.allow  # the merge-time check, with bob's approval


async def test_staging_soaks_before_prod(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(
        [{"name": "dev", "order": 1}, {"name": "staging", "order": 2, "soak": "10m"}, {"name": "prod", "order": 3}]
    )
    origin.bump()
    async with run_worker(ts_env, origin) as tq:
        handle = await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))
        result = await handle.result()  # the server skips the soak
    assert result.state == PromotionState.SUCCEEDED, result.message
    staging, prod = result.stages[1], result.stages[2]
    assert staging.finished_at is not None and prod.finished_at is not None
    assert prod.finished_at - staging.finished_at >= timedelta(minutes=10)
    assert git.Repo(origin.path).git.log("-1", "--format=%s", "main").startswith("Merge pull request")
