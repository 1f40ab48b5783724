"""Gitea's merge refusals as its own code words them (services/pull CheckPullBranchProtections answers
`405 {"message": …}`): a merge that branch protection holds back is Blocked, waited for under the
stage's `merge.wait`, never a permanent conflict; "Please try again later" (Gitea still checking the
PR's mergeability) is retried."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from promoter.errors import Conflict, TemporaryError
from promoter.forges.gitea import GiteaForge
from promoter.forges.http import ApiClient, Blocked
from tests.forges.test_forge_contracts import GT, TOKEN, gh_pr


@pytest.fixture
def gitea(httpserver: HTTPServer) -> GiteaForge:
    url = httpserver.url_for("/").rstrip("/")
    return GiteaForge("acme/gitops", TOKEN, api_url=url, client=ApiClient("Gitea", url + "/api/v1", f"token {TOKEN}"))


GATES = [
    "Does not have enough approvals",
    "Not all required status checks successful",
    "There are requested changes",
    "There are official review requests",
    "The head branch is behind the base branch",
    "Changed protected files",
]


def refuse(httpserver: HTTPServer, message: str, sha: str) -> None:
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_json(gh_pr(3, sha=sha))
    httpserver.expect_ordered_request(f"{GT}/pulls/3/merge", "POST").respond_with_json(
        {"message": message, "url": "http://localhost:3000/api/swagger"}, status=405
    )
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_json(gh_pr(3, sha=sha))
    httpserver.expect_ordered_request(f"{GT}/commits/{sha}/status", "GET").respond_with_json(
        {"state": "success", "statuses": [{"context": "woodpecker", "status": "success"}]}
    )


@pytest.mark.parametrize("message", GATES)
def test_a_merge_branch_protection_holds_back_is_blocked(
    httpserver: HTTPServer, gitea: GiteaForge, message: str
) -> None:
    refuse(httpserver, message, "c" * 40)
    with pytest.raises(Blocked) as err:
        gitea.merge(3, "m")
    httpserver.check_assertions()
    merge = "Gitea POST /api/v1/repos/acme/gitops/pulls/3/merge (merge of PR #3)"
    assert str(err.value) == f"PR #3 is blocked by branch protection: {merge} answered 405: {message}"


def test_gitea_still_checking_is_retried_not_a_conflict(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    refuse(httpserver, "Please try again later", "c" * 40)
    with pytest.raises(TemporaryError) as err:
        gitea.merge(3, "m")
    assert not isinstance(err.value, Blocked) and "Gitea is still checking whether PR #3 can merge" in str(err.value)


def test_a_refusal_that_is_no_gate_stays_a_conflict(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    refuse(httpserver, "Merge conflict", "c" * 40)
    with pytest.raises(Conflict, match="answered 405: Merge conflict$"):
        gitea.merge(3, "m")


def test_gitea_sends_no_github_api_version(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_json(gh_pr(3))
    gitea.get_pull_request(3)
    [(request, _)] = httpserver.log
    assert "X-GitHub-Api-Version" not in request.headers and request.headers["Authorization"].startswith("token ")
