"""A freeze is judged at the moment of each check, not at the promotion's start (issue 24, part 4), on
the time-skipping test server: a promotion starts a few hours before a freeze window, its prod gate
waits into the window (the server skips the hours), and the approval then given cannot merge it
inside the freeze. The merge-time check denies it naming the window, the PR is closed unmerged, and
prod keeps the old version. (The approval itself is accepted: at approval time only the approval
rules judge who approves; the freeze is the merge check's to enforce.)

As in tests/workflows/test_time_skipping.py, the gate reads no PR reviews, so nothing runs while it waits."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from promoter.sim.kube import KubeSim
from promoter.worker import build_worker
from tests.forges.test_github_e2e import BOT, on_github
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import Origin
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio

ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "prod", "order": 2, "approval": {"required": 1, "approvers": ["alice"], "pull_request_reviews": False}},
]


def freeze_prod(origin: Origin, start: datetime, end: datetime) -> None:
    """Commit a freeze window of prod, `year-end`, from `start` to `end`, to policies/data.yaml."""
    data = yaml.safe_load((origin.work / "policies/data.yaml").read_text())
    window = {"name": "year-end", "environments": ["prod"], "start": f"{start:%Y-%m-%dT%H:%M:%SZ}"}
    data["freeze_windows"] = [{**window, "end": f"{end:%Y-%m-%dT%H:%M:%SZ}"}]
    origin.commit({"policies/data.yaml": yaml.safe_dump(data)}, "a year-end freeze of prod")


def awaiting(s: PromotionStatus) -> bool:
    return s.stages[1].state == StageState.AWAITING_APPROVAL


async def test_a_promotion_started_before_a_freeze_cannot_merge_inside_it(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(ENVS)
    # the freeze begins 2 hours after now on the server's clock (earlier tests may have moved it on)
    now = (await ts_env.get_current_time()).astimezone(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(days=10)
    freeze_prod(origin, start, end)
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


async def test_a_merge_the_forge_blocks_into_a_freeze_is_asked_again_and_denied(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    """prod needs no approval, so its policies are asked before its PR only. GitHub blocks the merge (a
    required check is pending) until a freeze of prod has begun, then lets it through: the merge is
    refused once the decision's `valid_until` (the freeze's start) has passed, the policies are asked
    again, deny it naming the window, and the PR is closed unmerged. Before, the retried merge went
    through inside the freeze."""
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "prod", "order": 2, "approval": {"required": 0}}])
    now = (await ts_env.get_current_time()).astimezone(UTC)
    start, end = now + timedelta(minutes=10), now + timedelta(days=2)
    freeze_prod(origin, start, end)
    origin.bump()
    clusters(["dev", "prod"])
    github = GitHubStandIn(origin=origin.url, tokens={BOT: "promoter-bot"})
    github.required = ["ci/build"]  # pending until the freeze has begun (below)
    github.start()
    settings = on_github(github, origin, tmp_path)

    async def pass_the_check_inside_the_freeze() -> None:
        while (await ts_env.get_current_time()).astimezone(UTC) < start + timedelta(minutes=1):
            await asyncio.sleep(0.1)
        for pull in list(github.pulls.values()):
            github.checks[pull["head"]["sha"]] = "success"

    try:
        async with build_worker(ts_env.client, settings, executor):
            unblock = asyncio.create_task(pass_the_check_inside_the_freeze())
            handle = await api.start(
                ts_env.client, settings.task_queue, await api.resolve(ts_env.client, settings.task_queue, "demo")
            )
            result = await handle.result()
            await unblock
    finally:
        github.stop()
    prod = result.stages[1]
    assert result.state == PromotionState.POLICY_DENIED, result.message
    assert prod.state == StageState.POLICY_DENIED and prod.merge_commit is None
    assert prod.policy is not None
    assert [v.rule for v in prod.policy.deny] == ["promotion.freeze.deny_freeze_window"]
    [pull] = [p for p in github.pulls.values() if "/prod/" in p["head"]["ref"]]
    assert pull["state"] == "closed" and not pull["merged"]
    merges = [r for r in github.requests if r.method == "PUT" and r.path.endswith(f"/{pull['number']}/merge")]
    assert merges, "the merge was never asked: the forge did not block it"
    assert "demo:1.1.0" not in origin.show("main", "environments/prod/demo/deployment.yaml")
