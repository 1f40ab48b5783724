"""A merge is never sent after the policies' decision it rests on stopped standing (`not_after`, the
start of a freeze at the latest), not even after a wait the forge asked for within the same attempt.

Before, `not_after` was judged once, as the attempt started: a merge asked a moment before a freeze,
answered `429 Retry-After: 30`, was sent again 30 s later, inside the freeze. Against a scripted GitHub
(pytest-httpserver): the merge's first answer asks for a wait longer than the decision has left; the
activity asks no second merge, finds the PR still open and says `DecisionExpired`, so the workflow
asks the policies again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge import ForgeActivities
from promoter.errors import DECISION_EXPIRED
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from promoter.models import MergePullRequest
from tests.forges.test_forge_contracts import REPO, TOKEN
from tests.support.openapi import github_objects as gh

HEAD = "promote/demo/prod/abc1234"
SHA = "a" * 40


def test_a_merge_the_forge_asks_to_wait_for_past_the_decision_is_not_sent_again(httpserver: HTTPServer) -> None:
    waits: list[float] = []
    client = ApiClient("GitHub", httpserver.url_for("/").rstrip("/"), f"Bearer {TOKEN}", sleep=waits.append)
    forges = ForgeActivities(GitHubForge("acme/gitops", TOKEN, client=client), repo=None)  # type: ignore[arg-type]
    open_pr = gh.pull_request(7, HEAD, SHA)
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(open_pr)
    httpserver.expect_ordered_request(f"{REPO}/pulls/7/merge", "PUT").respond_with_json(
        {"message": "You have exceeded a secondary rate limit"}, status=429, headers={"Retry-After": "30"}
    )
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(open_pr)  # still open
    env = ActivityEnvironment()
    now = datetime.now(UTC)
    env.info = dataclasses.replace(env.info, started_time=now, current_attempt_scheduled_time=now)
    asked = MergePullRequest(number=7, expected_head=SHA, not_after=now + timedelta(seconds=10))
    with pytest.raises(ApplicationError) as refused:
        env.run(forges.merge_pull_request, asked)
    assert refused.value.type == DECISION_EXPIRED and refused.value.non_retryable, refused.value
    assert waits == []  # the forge's 30 s were not waited for: the decision had 10 s left
    assert [r.method for r, _ in httpserver.log] == ["GET", "PUT", "GET"]  # one merge, never a second
    httpserver.check_assertions()
