"""GitHub as its REST description has it: every request pins `X-GitHub-Api-Version` (2022-11-28, or
PROMOTER_GITHUB_API_VERSION); the merge commit is the merge's own answer (`sha`), since a pull request
has no `merge_commit_sha` under API version 2026-03-10, and a merge whose answer was lost finds it in
the `merged` event of the PR's timeline; a reviewer's latest review is the one that counts; and a list's page
answered `304 Not Modified` does not hide the items added on a next page since."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from promoter.errors import BadInput
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient, Blocked
from promoter.settings import Settings
from tests.forges.test_forge_contracts import REPO, TOKEN
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import Origin
from tests.support.openapi import github_objects as gh

BOT = "ghp_bot0123456789abcdefghijklmnopqrstu"
ALICE = "ghp_alice0123456789abcdefghijklmnopq"


@pytest.fixture
def github(httpserver: HTTPServer) -> GitHubForge:
    url = httpserver.url_for("/").rstrip("/")
    return GitHubForge("acme/gitops", TOKEN, client=ApiClient("GitHub", url, f"Bearer {TOKEN}"))


@pytest.fixture
def github_2026(httpserver: HTTPServer) -> GitHubForge:
    url = httpserver.url_for("/").rstrip("/")
    client = ApiClient("GitHub", url, f"Bearer {TOKEN}")
    return GitHubForge("acme/gitops", TOKEN, client=client, api_version="2026-03-10")


HEAD = "promote/demo/prod/abc1234"
AS_OF_2026 = (
    "answers as API version 2026-03-10, whose pull request has no merge_commit_sha (the description's "
    "x-github-breaking-changes 'remove_pull_request_merge_commit_sha'); the base description requires it"
)


def without_merge_commit_sha(sha: str, merged: bool = False) -> dict[str, Any]:
    """A pull request as API version 2026-03-10 describes it: no `merge_commit_sha`."""
    state = "closed" if merged else "open"
    pr = gh.pull_request(7, HEAD, sha, merged=merged, state=state)
    return {k: v for k, v in pr.items() if k != "merge_commit_sha"}


def review(i: int, login: str, state: str) -> dict[str, Any]:
    return gh.review(i, login, state, "a" * 40) | {"submitted_at": f"2026-11-26T10:0{i}:00Z"}


# ---------------------------------------------------------------- against a scripted GitHub


@pytest.mark.off_spec(AS_OF_2026)
def test_the_merge_commit_is_the_merge_answers_sha(httpserver: HTTPServer, github_2026: GitHubForge) -> None:
    sha = "b" * 40
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(without_merge_commit_sha(sha))
    httpserver.expect_ordered_request(
        f"{REPO}/pulls/7/merge", "PUT", headers={"X-GitHub-Api-Version": "2026-03-10"}
    ).respond_with_json(gh.merge_result("5" * 40))
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(
        without_merge_commit_sha(sha, merged=True)
    )
    assert github_2026.merge(7, "m", expected_head=sha).merge_commit == "5" * 40
    httpserver.check_assertions()


@pytest.mark.off_spec(AS_OF_2026)
def test_a_merged_pr_without_merge_commit_sha_is_found_by_its_merged_event(
    httpserver: HTTPServer, github_2026: GitHubForge
) -> None:
    # the merge's answer was lost: the retry finds the PR merged, and its merge commit in the timeline
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(
        without_merge_commit_sha("b" * 40, merged=True)
    )
    httpserver.expect_ordered_request(f"{REPO}/issues/7/timeline", "GET").respond_with_json(
        [state_change(1, "closed", None), state_change(2, "merged", "6" * 40), state_change(3, "closed", None)]
    )
    assert github_2026.merge(7, "m").merge_commit == "6" * 40
    httpserver.check_assertions()
    assert not any(r.method == "PUT" for r, _ in httpserver.log)  # merged once


def state_change(i: int, event: str, commit: str | None) -> dict[str, Any]:
    """state-change-issue-event, as the timeline lists a PR's `merged` and `closed`."""
    return {
        "id": i,
        "node_id": f"SCE_{i}",
        "url": f"{gh.API}/repos/acme/gitops/issues/events/{i}",
        "actor": gh.user("alice", 5),
        "event": event,
        "commit_id": commit,
        "commit_url": f"{gh.API}/repos/acme/gitops/commits/{commit}" if commit else None,
        "created_at": gh.WHEN,
        "performed_via_github_app": None,
    }


def test_a_reviewers_latest_review_is_the_one_that_counts(httpserver: HTTPServer, github: GitHubForge) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/7/reviews", "GET").respond_with_json(
        [
            review(1, "alice", "APPROVED"),
            review(2, "bob", "APPROVED"),
            review(3, "alice", "CHANGES_REQUESTED"),  # takes alice's approval back
            review(4, "bob", "COMMENTED"),  # a comment changes nothing: bob still approves
            review(5, "carol", "CHANGES_REQUESTED"),
            review(6, "carol", "APPROVED"),  # a later approval counts
        ]
    )
    assert [(r.id, r.author, r.state) for r in github.reviews(7)] == [
        ("1", "alice", "unapproved"),
        ("2", "bob", "approved"),
        ("3", "alice", "changes_requested"),
        ("4", "bob", "commented"),
        ("5", "carol", "changes_requested"),
        ("6", "carol", "approved"),
    ]


def test_a_cached_last_page_does_not_hide_a_next_one(httpserver: HTTPServer, github: GitHubForge) -> None:
    """The known ETag gap: page 1 full and unchanged answers 304 with its cached Link, which names no
    next page; the review added on page 2 since must still be read."""
    reviews = f"{REPO}/pulls/7/reviews"
    httpserver.expect_ordered_request(reviews, "GET", query_string={"per_page": "100"}).respond_with_json(
        [review(1, "alice", "COMMENTED"), review(2, "alice", "CHANGES_REQUESTED")], headers={"ETag": '"p1"'}
    )
    httpserver.expect_ordered_request(
        reviews, "GET", query_string={"per_page": "100"}, headers={"If-None-Match": '"p1"'}
    ).respond_with_data("", status=304, headers={"ETag": '"p1"'})
    httpserver.expect_ordered_request(reviews, "GET", query_string={"per_page": "100", "page": "2"}).respond_with_json(
        [review(3, "alice", "APPROVED")], headers={"ETag": '"p2"'}
    )
    assert [r.id for r in github.reviews(7)] == ["1", "2"]
    assert [(r.id, r.state) for r in github.reviews(7)] == [
        ("1", "commented"),
        ("2", "changes_requested"),
        ("3", "approved"),
    ]
    httpserver.check_assertions()


def test_a_fresh_last_page_asks_no_further(httpserver: HTTPServer, github: GitHubForge) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/7/reviews", "GET").respond_with_json(
        [review(1, "alice", "APPROVED")], headers={"ETag": '"p1"'}
    )
    assert [r.id for r in github.reviews(7)] == ["1"]
    assert len(httpserver.log) == 1  # a 200 brings its own Link: no page 2 is asked for


def test_the_api_version_is_configurable(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "PROMOTER_STATE_DIR": str(tmp_path),
        "PROMOTER_FORGE": "github",
        "PROMOTER_FORGE_REPO": "acme/gitops",
        "PROMOTER_FORGE_TOKEN": TOKEN,
        "PROMOTER_FORGE_URL": httpserver.url_for("/").rstrip("/"),
        "PROMOTER_GITHUB_API_VERSION": "2026-03-10",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    httpserver.expect_ordered_request(
        f"{REPO}/pulls/7", "GET", headers={"X-GitHub-Api-Version": "2026-03-10"}
    ).respond_with_json(gh.pull_request(7, HEAD, "a" * 40))
    forge = Settings.load().make_forge(None)  # type: ignore[arg-type] - a hosted forge needs no clone
    assert forge.get_pull_request(7).number == 7
    httpserver.check_assertions()


def test_a_malformed_api_version_is_one_line_naming_the_setting() -> None:
    with pytest.raises(BadInput, match="^PROMOTER_GITHUB_API_VERSION must be a GitHub REST API version such as "):
        GitHubForge("acme/gitops", TOKEN, api_version="latest")


# ---------------------------------------------------------------- against the stand-in


@pytest.fixture
def standin(origin: Origin) -> Iterator[GitHubStandIn]:
    s = GitHubStandIn(origin=origin.url, tokens={BOT: "promoter-bot", ALICE: "alice"}).start()
    yield s
    s.stop()


def branch(origin: Origin, name: str) -> None:
    """A branch with one commit, pushed to origin as a person would."""
    origin.repo.git.checkout("-q", "-b", name, "origin/main")
    (origin.work / f"{name}.txt").write_text(name)
    origin.repo.git.add(f"{name}.txt")
    origin.repo.git.commit("-q", "-m", name)
    origin.repo.git.push("-q", "origin", name)
    origin.repo.git.checkout("-q", "main")


def forge(standin: GitHubStandIn, version: str = "2026-03-10") -> GitHubForge:
    return GitHubForge("acme/gitops", BOT, api_url=standin.url, api_version=version)


def test_on_version_2026_03_10_a_merge_and_a_lost_answer_both_name_the_merge_commit(
    standin: GitHubStandIn, origin: Origin
) -> None:
    branch(origin, "one")
    branch(origin, "two")
    gh = forge(standin)
    first = gh.open_pull_request("one", "one", "b")
    merged = gh.merge(first.number, "one")
    assert merged.merge_commit == origin.repo.git.ls_remote("origin", "main").split()[0]
    second = gh.open_pull_request("two", "two", "b")
    # merged by an attempt whose answer never came back
    standin._merge("promoter-bot", {}, {"merge_method": "merge"}, str(second.number))
    again = gh.merge(second.number, "two")
    assert again.merge_commit == standin.pulls[second.number]["merge_commit_sha"]
    assert all("merge_commit_sha" not in p for p in gh.api.request("GET", f"{gh.repo_path}/pulls").body)
    assert {r.headers.get("X-GitHub-Api-Version") for r in standin.requests} == {"2026-03-10"}


def test_the_standin_counts_a_reviewers_latest_review_as_github_does(standin: GitHubStandIn, origin: Origin) -> None:
    branch(origin, "three")
    standin.required_approvals = 1
    gh = forge(standin, "2022-11-28")
    pr = gh.open_pull_request("three", "three", "b")

    def post(event: str) -> None:
        request = urllib.request.Request(
            f"{standin.url}/repos/acme/gitops/pulls/{pr.number}/reviews",
            method="POST",
            data=json.dumps({"event": event, "body": event.lower()}).encode(),
            headers={"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).close()

    post("APPROVE")
    post("REQUEST_CHANGES")
    post("COMMENT")
    assert standin.approvers(pr.number) == []
    assert [r.state for r in gh.reviews(pr.number)] == ["unapproved", "changes_requested", "commented"]
    with pytest.raises(Blocked, match="At least 1 approving review is required"):
        gh.merge(pr.number, "three")
    post("APPROVE")
    assert standin.approvers(pr.number) == ["alice"] and gh.merge(pr.number, "three").state == "merged"


def test_an_api_version_github_does_not_know_is_refused_in_one_line(standin: GitHubStandIn) -> None:
    with pytest.raises(BadInput) as err:
        forge(standin, "2031-01-01").get_pull_request(1)
    assert "answered 400: Unsupported 'X-GitHub-Api-Version': 2031-01-01" in str(err.value)
    assert "\n" not in str(err.value) and BOT not in str(err.value)
