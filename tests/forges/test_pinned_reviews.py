"""A forge that pins every review to the commit it was given on (GitHub, Gitea) vouches for no review
that names none: such an approval is refused, never counted for whatever the head is now (issue 25)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, StageState
from promoter.sim.kube import KubeSim
from promoter.worker import build_worker
from tests.forges.test_github_e2e import ALICE, github, on_github, review  # noqa: F401 - `github` is a fixture
from tests.support.github_standin import GitHubStandIn, _now
from tests.support.gitops import Origin


@pytest.mark.asyncio
async def test_a_review_without_a_commit_is_refused_on_github(
    dev_env: WorkflowEnvironment,
    origin: Origin,
    github: GitHubStandIn,  # noqa: F811
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin.bump(tag="8.1.0")
    clusters(["dev", "staging", "prod"])
    settings = on_github(github, origin, tmp_path)
    async with build_worker(dev_env.client, settings, executor):
        handle = await api.start(
            dev_env.client, settings.task_queue, await api.resolve(dev_env.client, settings.task_queue, "demo"), "dana"
        )
        waiting = await api.wait_for(handle, lambda s: s.stages[2].state == StageState.AWAITING_APPROVAL)
        number = waiting.stages[2].pr_number or 0
        # an approving review as GitHub lists one whose commit it does not name (`commit_id: null`)
        github.reviews.setdefault(number, []).append(
            {
                "id": 999,
                "user": {"login": "alice"},
                "state": "APPROVED",
                "body": "lgtm",
                "commit_id": None,
                "submitted_at": _now(),
            }
        )
        refused = await api.wait_for(handle, lambda s: bool(s.stages[2].refusals))
        [refusal] = refused.stages[2].refusals
        assert (refusal.approver, refusal.via) == ("alice", "pull_request")
        assert refusal.reason.startswith("the review names no commit; ")
        assert refused.stages[2].approvals == [] and refused.stages[2].state == StageState.AWAITING_APPROVAL
        review(github, number, ALICE, "APPROVE", "on the head this time")  # pinned to the head: it counts
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [(a.approver, a.comment) for a in result.stages[2].approvals] == [("alice", "on the head this time")]
