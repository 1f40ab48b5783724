"""GitLab's merge, as its REST documentation (doc/api/merge_requests.md) describes it: a refused merge is
sorted by the merge request's `detailed_merge_status`, in REST's names; a status that says GitLab has not
decided yet is asked again until it has; a squash merge's message goes in `squash_commit_message`; a
401 on the merge is the permission to merge, not the token. The doc's wording is quoted beside each."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from promoter.errors import Conflict, TemporaryError
from promoter.forges.gitlab import GitLabForge
from promoter.forges.http import ApiClient, Blocked, Unauthorized
from tests.forges.test_forge_contracts import GL, TOKEN, mr


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def gitlab(httpserver: HTTPServer, waits: list[float]) -> GitLabForge:
    url = httpserver.url_for("/").rstrip("/") + "/api/v4"
    return GitLabForge(
        "acme/gitops", TOKEN, api_url=url, client=ApiClient("GitLab", url, "Bearer x", sleep=waits.append)
    )


# "Merge status": "The `detailed_merge_status` field can contain one of the following values …"
STILL_CHECKING = {
    "unchecked": "Git has not yet tested if a valid merge is possible.",
    "checking": "Git is testing if a valid merge is possible.",
    "preparing": "Merge request diff is being created.",
    "approvals_syncing": "The merge request's approvals are syncing.",
}
BLOCKED = {
    "merge_request_blocked": ("Blocked by another merge request.", "a blocking merge request"),
    "ci_must_pass": ("A CI/CD pipeline must succeed before merge.", "a required pipeline"),
    "ci_still_running": ("A CI/CD pipeline is still running.", "a running pipeline"),
    "not_approved": ("Approval is required before merge.", "missing GitLab approvals"),
    "discussions_not_resolved": ("All discussions must be resolved before merge.", "unresolved discussions"),
    "draft_status": ("Can't merge because the merge request is a draft.", "draft status"),
    "requested_changes": ("The merge request has reviewers who have requested changes.", "requested changes"),
    "merge_time": ("May not be merged until after the specified time.", "its merge-after time"),
}
CONFLICTS = {
    "conflict": "Conflicts exist between the source and target branches.",
    "need_rebase": "The merge request must be rebased.",
    "not_open": "The merge request must be open before merge.",
}


def refused(httpserver: HTTPServer, status: str, **extra: object) -> None:
    """A merge answered `405 Method Not Allowed` ("The merge request is not able to be merged."), and
    the merge request read afterwards with `status`."""
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4/merge", "PUT").respond_with_json(
        {"message": "405 Method Not Allowed"}, status=405
    )
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        mr(detailed_merge_status=status, **extra)
    )


@pytest.mark.parametrize("status", list(STILL_CHECKING), ids=list(STILL_CHECKING))
def test_a_status_gitlab_is_still_deciding_is_asked_again_until_it_merges(
    httpserver: HTTPServer, gitlab: GitLabForge, waits: list[float], status: str
) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr())
    refused(httpserver, status)
    refused(httpserver, "checking")
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4/merge", "PUT").respond_with_json(
        mr(state="merged", merge_commit_sha="e" * 40)
    )
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        mr(state="merged", merge_commit_sha="e" * 40)
    )
    merged = gitlab.merge(4, "m")
    httpserver.check_assertions()
    assert (merged.state, merged.merge_commit) == ("merged", "e" * 40)
    assert waits == [0.5, 1.0]  # backed off between the attempts, never a fixed sleep


def test_gitlab_still_deciding_after_every_attempt_is_temporary_not_a_conflict(
    httpserver: HTTPServer, gitlab: GitLabForge, waits: list[float]
) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr())
    for _ in range(gitlab.api.attempts):
        refused(httpserver, "approvals_syncing")
    with pytest.raises(TemporaryError) as err:
        gitlab.merge(4, "m")
    httpserver.check_assertions()
    assert not isinstance(err.value, Blocked)  # retried by the activity whatever merge.on_blocked says
    assert "still deciding (approvals_syncing: the merge request's approvals are syncing)" in str(err.value)


@pytest.mark.parametrize("status", list(BLOCKED), ids=list(BLOCKED))
def test_a_status_that_holds_the_merge_back_is_blocked(
    httpserver: HTTPServer, gitlab: GitLabForge, status: str
) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr())
    refused(httpserver, status)
    with pytest.raises(Blocked) as err:
        gitlab.merge(4, "m")
    httpserver.check_assertions()
    assert str(err.value) == f"merge request !4 is blocked by {BLOCKED[status][1]}"


def test_status_checks_must_pass_names_the_failing_checks(httpserver: HTTPServer, gitlab: GitLabForge) -> None:
    # "status_checks_must_pass: All status checks must pass before merge."
    sha = "d" * 40
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr(sha=sha))
    refused(httpserver, "status_checks_must_pass", sha=sha)
    httpserver.expect_ordered_request(f"{GL}/repository/commits/{sha}/statuses", "GET").respond_with_json(
        [{"name": "security-scan", "status": "pending"}]
    )
    with pytest.raises(Blocked, match=r"blocked by a status check: security-scan \(pending\)$"):
        gitlab.merge(4, "m")


@pytest.mark.parametrize("status", list(CONFLICTS), ids=list(CONFLICTS))
def test_a_status_no_wait_mends_is_a_conflict(httpserver: HTTPServer, gitlab: GitLabForge, status: str) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr())
    refused(httpserver, status)
    with pytest.raises(Conflict, match=f"detailed_merge_status: {status}"):
        gitlab.merge(4, "m")
    httpserver.check_assertions()


def test_a_squash_merge_sends_its_message_as_the_squash_commit_message(
    httpserver: HTTPServer, gitlab: GitLabForge
) -> None:
    # "squash_commit_message: Custom squash commit message." / "squash: If `true` the commits are squashed
    # into a single commit on merge."
    sha = "d" * 40
    message = "Promote demo to prod\n\nPromoter-Approval: alice via pull_request"
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr(sha=sha))
    httpserver.expect_ordered_request(
        f"{GL}/merge_requests/4/merge",
        "PUT",
        json={
            "merge_commit_message": message,
            "squash_commit_message": message,
            "squash": True,
            "should_remove_source_branch": False,
            "sha": sha,
        },
    ).respond_with_json(mr(state="merged", squash_commit_sha="5" * 40))
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        mr(state="merged", squash_commit_sha="5" * 40)
    )
    assert gitlab.merge(4, message, expected_head=sha, method="squash").merge_commit == "5" * 40
    httpserver.check_assertions()


def test_a_401_on_the_merge_is_the_permission_to_merge_not_the_token(
    httpserver: HTTPServer, gitlab: GitLabForge, waits: list[float]
) -> None:
    # "401 | Unauthorized | This user does not have permission to accept this merge request."
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr())
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4/merge", "PUT").respond_with_json(
        {"message": "401 Unauthorized"}, status=401
    )
    with pytest.raises(Unauthorized) as err:
        gitlab.merge(4, "m")
    httpserver.check_assertions()
    message = str(err.value)
    assert message.startswith("merge request !4 was not merged: the token's user may not merge it")
    assert "'Allowed to merge'" in message and "token is missing, invalid or expired" not in message
    assert len(httpserver.log) == 2 and waits == []  # not retried
