"""A freeze is judged at the moment of each check, not at the promotion's start (issue 24, part 4), on
the time-skipping test server: a promotion starts a few hours before a freeze window, its prod gate
waits into the window (the server skips the hours), and the approval then given cannot merge it
inside the freeze. The merge-time check denies it naming the window, the PR is closed unmerged, and
prod keeps the old version. (The approval itself is accepted: at approval time only the approval
rules judge who approves; the freeze is the merge check's to enforce.)

As in tests/workflows/test_time_skipping.py, the gate reads no PR reviews, so nothing runs while it waits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from tests.support.gitops import Origin
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio

ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "prod", "order": 2, "approval": {"required": 1, "approvers": ["alice"], "pull_request_reviews": False}},
]


def awaiting(s: PromotionStatus) -> bool:
    return s.stages[1].state == StageState.AWAITING_APPROVAL


async def test_a_promotion_started_before_a_freeze_cannot_merge_inside_it(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(ENVS)
    # the freeze begins 2 hours after now on the server's clock (earlier tests may have moved it on)
    now = (await ts_env.get_current_time()).astimezone(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(days=10)
    data = yaml.safe_load((origin.work / "policies/data.yaml").read_text())
    window = {"name": "year-end", "environments": ["prod"], "start": f"{start:%Y-%m-%dT%H:%M:%SZ}"}
    data["freeze_windows"] = [{**window, "end": f"{end:%Y-%m-%dT%H:%M:%SZ}"}]
    origin.commit({"policies/data.yaml": yaml.safe_dump(data)}, "a year-end freeze of prod")
    origin.bump()
    async with run_worker(ts_env, origin) as tq:
        handle = await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))
        with ts_env.auto_time_skipping_disabled():
            waiting = await api.wait_for(handle, awaiting)  # prod's PR is open: its pre-PR check passed
        assert waiting.stages[1].pr_number is not None and waiting.stages[1].policy is not None
        assert waiting.stages[1].policy.allow
        assert (await ts_env.get_current_time()).astimezone(UTC) < start
        await ts_env.sleep(timedelta(hours=3))  # the gate waits into the freeze
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        result = await handle.result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    prod = result.stages[1]
    assert prod.state == StageState.POLICY_DENIED and prod.merge_commit is None
    assert [a.approver for a in prod.approvals] == ["alice"]
    assert prod.policy is not None
    [freeze] = [v for v in prod.policy.deny if v.rule == "promotion.freeze.deny_freeze_window"]
    assert freeze.message.startswith("prod is frozen by 'year-end' at ")
    assert freeze.message.endswith(f", until {end:%Y-%m-%dT%H:%M:%SZ}")
    assert "year-end" in result.message
    pr = origin.forge().get_pull_request(prod.pr_number or 0)
    assert pr.state == "closed" and "deny it at merge time" in origin.forge().comments(pr.number)[-1]
    assert "demo:1.1.0" not in origin.show("main", "environments/prod/demo/deployment.yaml")
