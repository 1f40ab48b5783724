"""Contract tests of the GitHub, Gitea and GitLab providers over real HTTP, against pytest-httpserver
answering as each forge's documented API does. Each test states the requests our code must send
(method, path, query, headers, JSON body) in order, and `check_assertions` fails on any other:
pagination, rate-limit headers, a 403 for a missing scope, a merge blocked by a required check, and
a 502 that recovers. Waits are recorded, not slept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from promoter.errors import Conflict, NotFound
from promoter.forges.gitea import GiteaForge
from promoter.forges.github import BODY_LIMIT, GitHubForge
from promoter.forges.gitlab import GitLabForge
from promoter.forges.http import ApiClient, Blocked, Unauthorized
from tests.support.openapi import github_objects as gh

TOKEN = "tok_0123456789abcdef"
REPO = "/repos/acme/gitops"


def gh_pr(
    number: int = 7,
    state: str = "open",
    sha: str = "a" * 40,
    merged: bool = False,
    head: str = "promote/demo/prod/abc1234",
) -> dict[str, Any]:
    """A pull request as GitHub's description requires it (tests/forges/conftest.py checks)."""
    return gh.pull_request(number, head, sha, state=state, merged=merged, body="b", merge_commit_sha="m" * 40)


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def github(httpserver: HTTPServer, waits: list[float]) -> GitHubForge:
    url = httpserver.url_for("/").rstrip("/")
    return GitHubForge(
        "acme/gitops", TOKEN, client=ApiClient("GitHub", url, f"Bearer {TOKEN}", sleep=waits.append, scope_hint="repo")
    )


AUTH = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/json",
    "User-Agent": "promoter",
    "X-GitHub-Api-Version": "2022-11-28",  # pinned: the day GitHub's default moves, nothing changes here
}


def test_github_open_finds_by_head_then_creates_and_labels(httpserver: HTTPServer, github: GitHubForge) -> None:
    httpserver.expect_ordered_request(
        f"{REPO}/pulls",
        "GET",
        headers=AUTH,
        query_string={"head": "acme:promote/demo/prod/abc1234", "state": "all", "per_page": "100"},
    ).respond_with_json([])
    httpserver.expect_ordered_request(
        f"{REPO}/pulls",
        "POST",
        headers=AUTH,
        json={"title": "Promote demo", "head": "promote/demo/prod/abc1234", "base": "main", "body": "the body"},
    ).respond_with_json(gh_pr(), status=201)
    httpserver.expect_ordered_request(
        f"{REPO}/issues/7/labels", "POST", json={"labels": ["promotion"]}
    ).respond_with_json([gh.label("promotion")])
    pr = github.open_pull_request("promote/demo/prod/abc1234", "Promote demo", "the body", labels=["promotion"])
    httpserver.check_assertions()
    assert (pr.number, pr.state, pr.url) == (7, "open", "https://github.com/acme/gitops/pull/7")


def test_github_open_after_a_lost_answer_finds_the_pr_instead_of_a_second(
    httpserver: HTTPServer, github: GitHubForge
) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls", "GET").respond_with_json([])
    httpserver.expect_ordered_request(f"{REPO}/pulls", "POST").respond_with_json(
        {
            "message": "Validation Failed",
            "errors": [
                {"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for acme:x."}
            ],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        },
        status=422,
    )
    httpserver.expect_ordered_request(f"{REPO}/pulls", "GET").respond_with_json([gh_pr()])
    assert github.open_pull_request("promote/demo/prod/abc1234", "t", "b").number == 7
    httpserver.check_assertions()


def test_github_reviews_follow_pagination(httpserver: HTTPServer, github: GitHubForge) -> None:
    page2 = httpserver.url_for(f"{REPO}/pulls/7/reviews") + "?per_page=100&page=2"

    def review(i: int, state: str) -> dict[str, Any]:
        return gh.review(i, f"u{i}", state, "a" * 40)

    httpserver.expect_ordered_request(
        f"{REPO}/pulls/7/reviews", "GET", query_string={"per_page": "100"}
    ).respond_with_json([review(1, "COMMENTED")], headers={"Link": f'<{page2}>; rel="next"'})
    httpserver.expect_ordered_request(
        f"{REPO}/pulls/7/reviews", "GET", query_string={"per_page": "100", "page": "2"}
    ).respond_with_json([review(2, "APPROVED"), review(3, "CHANGES_REQUESTED")])
    reviews = github.reviews(7)
    httpserver.check_assertions()
    assert [(r.id, r.author, r.state) for r in reviews] == [
        ("1", "u1", "commented"),
        ("2", "u2", "approved"),
        ("3", "u3", "changes_requested"),
    ]


def test_github_primary_rate_limit_waits_until_the_reset(
    httpserver: HTTPServer, github: GitHubForge, waits: list[float]
) -> None:
    reset = str(int(time.time()) + 3)
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(
        {"message": "API rate limit exceeded"},
        status=403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(
        {"message": "secondary rate limit"}, status=429, headers={"Retry-After": "5"}
    )
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(gh_pr())
    assert github.get_pull_request(7).number == 7
    httpserver.check_assertions()
    assert 1.0 <= waits[0] <= 3.0 and waits[1] == 5.0


def test_github_a_wait_longer_than_a_minute_is_left_to_temporal(
    httpserver: HTTPServer, github: GitHubForge, waits: list[float]
) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(
        {"message": "API rate limit exceeded"},
        status=403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 900)},
    )
    from promoter.errors import TemporaryError

    with pytest.raises(TemporaryError, match="asks to wait"):
        github.get_pull_request(7)
    assert waits == []  # no tight loop, no long sleep in the activity


def test_github_403_for_a_missing_permission_names_it_and_is_not_retried(
    httpserver: HTTPServer, github: GitHubForge
) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/7/merge", "PUT").respond_with_json(
        {"message": "Resource not accessible by personal access token"},
        status=403,
        headers={"X-Accepted-GitHub-Permissions": "pull_requests=write; contents=write"},
    )
    with pytest.raises(Unauthorized) as err:
        github._merge_call(7, "t", "m", None, "merge")
    httpserver.check_assertions()
    assert "answered 403: Resource not accessible by personal access token" in str(err.value)
    assert "needs pull_requests=write; contents=write" in str(err.value)
    assert len(httpserver.log) == 1


def test_github_merge_blocked_by_a_required_check_is_reported_as_blocked(
    httpserver: HTTPServer, github: GitHubForge
) -> None:
    sha = "b" * 40
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(gh_pr(sha=sha))
    httpserver.expect_ordered_request(
        f"{REPO}/pulls/7/merge",
        "PUT",
        json={
            "merge_method": "merge",
            "commit_title": "Merge pull request #7",
            "commit_message": "Promoter-Promotion: x",
            "sha": sha,
        },
    ).respond_with_json({"message": 'Required status check "ci" is expected.'}, status=405)
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(gh_pr(sha=sha))
    httpserver.expect_ordered_request(f"{REPO}/commits/{sha}/status", "GET").respond_with_json(
        gh.combined_status(sha, {"ci": "failure"})
    )
    httpserver.expect_ordered_request(f"{REPO}/commits/{sha}/check-runs", "GET").respond_with_json(
        gh.check_runs(sha, {"lint": ("completed", "success")})
    )
    with pytest.raises(Blocked) as err:
        github.merge(7, "Merge pull request #7\n\nPromoter-Promotion: x", expected_head=sha)
    httpserver.check_assertions()
    assert str(err.value) == "PR #7 is blocked by required check ci (failure)"


def test_github_merge_is_once_even_when_the_answer_was_lost(httpserver: HTTPServer, github: GitHubForge) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(gh_pr(state="closed", merged=True))
    assert github.merge(7, "m").merge_commit == "m" * 40
    httpserver.check_assertions()
    assert len(httpserver.log) == 1  # no second PUT


def test_github_502_recovers_and_etags_make_polling_cheap(
    httpserver: HTTPServer, github: GitHubForge, waits: list[float]
) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_data("Bad Gateway", status=502)
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET").respond_with_json(gh_pr(), headers={"ETag": '"v1"'})
    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "GET", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304
    )
    assert github.get_pull_request(7).number == 7
    assert github.get_pull_request(7).head_sha == "a" * 40  # served from the cache on 304
    httpserver.check_assertions()
    assert waits == [0.25]


def test_github_404_names_what_was_not_found(httpserver: HTTPServer, github: GitHubForge) -> None:
    httpserver.expect_ordered_request(f"{REPO}/pulls/99", "GET").respond_with_json({"message": "Not Found"}, 404)
    with pytest.raises(NotFound, match=r"GitHub GET /repos/acme/gitops/pulls/99 answered 404: PR #99 was not found"):
        github.get_pull_request(99)


def test_github_commit_logins_are_its_accounts_asked_once(httpserver: HTTPServer, github: GitHubForge) -> None:
    sha = "b" * 40
    httpserver.expect_ordered_request(f"{REPO}/commits/{sha}", "GET", headers=AUTH).respond_with_json(
        gh.commit(sha, "alice-gh", "bobby42")
    )
    httpserver.expect_ordered_request(f"{REPO}/commits/{'c' * 40}", "GET").respond_with_json(
        gh.commit("c" * 40, None, None)  # emails no account claims
    )
    assert github.commit_logins(sha) == ["alice-gh", "bobby42"]
    assert github.commit_logins(sha) == ["alice-gh", "bobby42"]  # a commit never changes: not asked again
    assert github.commit_logins("c" * 40) == []
    httpserver.check_assertions()
    assert len(httpserver.log) == 2


def test_github_commit_logins_fail_closed(httpserver: HTTPServer, github: GitHubForge) -> None:
    httpserver.expect_ordered_request(f"{REPO}/commits/{'b' * 40}", "GET").respond_with_json(
        {
            "message": "No commit found for SHA: bbbbbbb",
            "documentation_url": "https://docs.github.com/rest/commits/commits#get-a-commit",
        },
        status=422,
    )
    with pytest.raises(Conflict, match="No commit found"):  # an error, never an empty list of logins
        github.commit_logins("b" * 40)


def test_github_long_bodies_are_truncated_with_a_note(httpserver: HTTPServer, github: GitHubForge) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(json.loads(request.data)["body"])
        return Response(json.dumps(gh_pr()), content_type="application/json")

    httpserver.expect_ordered_request(f"{REPO}/pulls/7", "PATCH").respond_with_handler(handler)
    github.update_body(7, "x" * 100_000)
    assert len(seen[0]) == BODY_LIMIT and seen[0].endswith("the full report is in the promotion's result)")


# ---------------------------------------------------------------- Gitea


@pytest.fixture
def gitea(httpserver: HTTPServer, waits: list[float]) -> GiteaForge:
    url = httpserver.url_for("/").rstrip("/")
    return GiteaForge(
        "acme/gitops",
        TOKEN,
        api_url=url,
        client=ApiClient("Gitea", url + "/api/v1", f"token {TOKEN}", sleep=waits.append),
    )


GT = "/api/v1/repos/acme/gitops"


def test_gitea_merge_is_a_post_with_do_and_the_head(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    sha = "c" * 40
    httpserver.expect_ordered_request(
        f"{GT}/pulls/3", "GET", headers={"Authorization": f"token {TOKEN}"}
    ).respond_with_json(gh_pr(3, sha=sha))
    httpserver.expect_ordered_request(
        f"{GT}/pulls/3/merge",
        "POST",
        json={
            "Do": "merge",
            "MergeTitleField": "Merge",
            "MergeMessageField": "Promoter-Promotion: x",
            "head_commit_id": sha,
        },
    ).respond_with_data("", status=200)
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_json(
        gh_pr(3, state="closed", sha=sha, merged=True)
    )
    assert gitea.merge(3, "Merge\n\nPromoter-Promotion: x", expected_head=sha).state == "merged"
    httpserver.check_assertions()


def test_gitea_reviews_map_states_and_skip_stale_ones(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    base = {"body": "", "commit_id": "c" * 40, "submitted_at": "2026-11-26T10:00:00Z", "official": True}
    httpserver.expect_ordered_request(f"{GT}/pulls/3/reviews", "GET").respond_with_json(
        [
            {**base, "id": 1, "user": {"login": "bob"}, "state": "REQUEST_CHANGES"},
            {**base, "id": 2, "user": {"login": "carol"}, "state": "APPROVED", "stale": True},
            {**base, "id": 3, "user": {"login": "dave"}, "state": "APPROVED"},
            {**base, "id": 4, "user": {"login": "erin"}, "state": "APPROVED", "dismissed": True},
            # Gitea's own word that this approval counts toward no required approval (a reviewer it
            # does not allow to approve, or an approval the reviewer's later review replaced)
            {**base, "id": 5, "user": {"login": "frank"}, "state": "APPROVED", "official": False},
        ]
    )
    assert [(r.id, r.state) for r in gitea.reviews(3)] == [
        ("1", "changes_requested"),
        ("3", "approved"),
        ("4", "dismissed"),
        ("5", "unapproved"),
    ]


def test_gitea_commit_logins_read_its_git_commit(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    sha = "d" * 40
    user = {
        "id": 3,
        "login": "bob",
        "login_name": "",
        "full_name": "Bob",
        "email": "bob@example.com",
        "username": "bob",
    }
    httpserver.expect_ordered_request(
        f"{GT}/git/commits/{sha}",
        "GET",
        headers={"Authorization": f"token {TOKEN}"},
        query_string={"stat": "false", "verification": "false", "files": "false"},
    ).respond_with_json(
        {  # Gitea's Commit: the git data under `commit`, the accounts (or null) beside it
            "url": f"http://gitea.example/api/v1/repos/acme/gitops/git/commits/{sha}",
            "sha": sha,
            "created": "2026-11-26T10:00:00Z",
            "html_url": f"http://gitea.example/acme/gitops/commit/{sha}",
            "commit": {
                "author": {"name": "Bob", "email": "bob@example.com", "date": "2026-11-26T10:00:00Z"},
                "committer": {"name": "Carol", "email": "carol@elsewhere.example", "date": "2026-11-26T10:00:00Z"},
                "message": "demo 1.2.3\n",
                "tree": {"sha": "e" * 40, "created": "2026-11-26T10:00:00Z"},
            },
            "author": user,
            "committer": None,
            "parents": [{"sha": "f" * 40, "created": "2026-11-26T10:00:00Z"}],
        }
    )
    assert gitea.commit_logins(sha) == ["bob"]
    httpserver.check_assertions()


def test_gitea_merge_blocked_by_a_failing_status(httpserver: HTTPServer, gitea: GiteaForge, waits: list[float]) -> None:
    sha = "c" * 40
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_data("upstream down", status=502)
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_json(gh_pr(3, sha=sha))
    httpserver.expect_ordered_request(f"{GT}/pulls/3/merge", "POST").respond_with_json(
        {"message": "Please try again later"}, status=405
    )
    httpserver.expect_ordered_request(f"{GT}/pulls/3", "GET").respond_with_json(gh_pr(3, sha=sha))
    httpserver.expect_ordered_request(f"{GT}/commits/{sha}/status", "GET").respond_with_json(
        {"statuses": [{"context": "woodpecker", "status": "failure"}]}
    )
    with pytest.raises(Blocked, match=r"blocked by required check woodpecker \(failure\)"):
        gitea.merge(3, "m")
    httpserver.check_assertions()
    assert waits == [0.25]


# ---------------------------------------------------------------- GitLab


@pytest.fixture
def gitlab(httpserver: HTTPServer, waits: list[float]) -> GitLabForge:
    url = httpserver.url_for("/").rstrip("/")
    return GitLabForge(
        "acme/gitops",
        TOKEN,
        api_url=url,
        client=ApiClient("GitLab", url + "/api/v4", f"Bearer {TOKEN}", sleep=waits.append),
    )


GL = "/api/v4/projects/acme/gitops"  # sent as acme%2Fgitops; werkzeug matches the decoded path


def mr(iid: int = 4, state: str = "opened", sha: str = "d" * 40, **extra: Any) -> dict[str, Any]:
    return {
        "iid": iid,
        "state": state,
        "title": "Promote demo",
        "description": "b",
        "sha": sha,
        "source_branch": "promote/demo/prod/abc1234",
        "target_branch": "main",
        "web_url": f"https://gitlab.com/acme/gitops/-/merge_requests/{iid}",
        "merge_commit_sha": None,
        **extra,
    }


def raw_uri(expect: Callable[[str], None], payload: Any, status: int = 200) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        expect(request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI") or "")
        return Response(json.dumps(payload), status=status, content_type="application/json")

    return handler


def test_gitlab_open_creates_a_merge_request_on_the_encoded_project(
    httpserver: HTTPServer, gitlab: GitLabForge
) -> None:
    uris: list[str] = []
    httpserver.expect_ordered_request(
        f"{GL}/merge_requests",
        "GET",
        query_string={"source_branch": "promote/demo/prod/abc1234", "state": "all", "per_page": "100"},
    ).respond_with_handler(raw_uri(uris.append, []))
    httpserver.expect_ordered_request(
        f"{GL}/merge_requests",
        "POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "source_branch": "promote/demo/prod/abc1234",
            "target_branch": "main",
            "title": "t",
            "description": "b",
            "labels": "promotion,env:prod",
        },
    ).respond_with_json(mr(), status=201)
    pr = gitlab.open_pull_request("promote/demo/prod/abc1234", "t", "b", labels=["promotion", "env:prod"])
    httpserver.check_assertions()
    assert uris[0].startswith("/api/v4/projects/acme%2Fgitops/merge_requests?")
    assert (pr.number, pr.state, pr.head_sha) == (4, "open", "d" * 40)


def test_gitlab_approvals_are_tied_to_the_head_they_were_given_on(httpserver: HTTPServer, gitlab: GitLabForge) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4/versions", "GET").respond_with_json(
        [
            {"id": 2, "head_commit_sha": "2" * 40, "created_at": "2026-11-26T10:05:00Z"},
            {"id": 1, "head_commit_sha": "1" * 40, "created_at": "2026-11-26T10:00:00Z"},
        ]
    )
    httpserver.expect_ordered_request(
        f"{GL}/merge_requests/4/notes", "GET", query_string={"sort": "asc", "order_by": "created_at", "per_page": "100"}
    ).respond_with_json(
        [
            {
                "id": 11,
                "system": True,
                "body": "approved this merge request",
                "author": {"username": "bob"},
                "created_at": "2026-11-26T10:02:00Z",
            },
            {
                "id": 12,
                "system": False,
                "body": "looks fine",
                "author": {"username": "bob"},
                "created_at": "2026-11-26T10:03:00Z",
            },
            {
                "id": 13,
                "system": True,
                "body": "approved this merge request",
                "author": {"username": "carol"},
                "created_at": "2026-11-26T10:06:00Z",
            },
            {
                "id": 14,
                "system": True,
                "body": "unapproved this merge request",
                "author": {"username": "bob"},
                "created_at": "2026-11-26T10:07:00Z",
            },
        ]
    )
    reviews = gitlab.reviews(4)
    httpserver.check_assertions()
    assert [(r.id, r.author, r.state, r.commit) for r in reviews] == [
        ("11", "bob", "approved", "1" * 40),
        ("13", "carol", "approved", "2" * 40),
        ("14", "bob", "unapproved", "2" * 40),
    ]


def test_gitlab_merge_blocked_by_a_failed_pipeline(httpserver: HTTPServer, gitlab: GitLabForge) -> None:
    sha = "d" * 40
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr(sha=sha))
    httpserver.expect_ordered_request(
        f"{GL}/merge_requests/4/merge",
        "PUT",
        json={"merge_commit_message": "m", "squash": False, "should_remove_source_branch": False, "sha": sha},
    ).respond_with_json({"message": "405 Method Not Allowed"}, status=405)
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        mr(sha=sha, detailed_merge_status="ci_must_pass", head_pipeline={"id": 12, "status": "failed"})
    )
    with pytest.raises(Blocked) as err:
        gitlab.merge(4, "m", expected_head=sha)
    httpserver.check_assertions()
    assert str(err.value) == "merge request !4 is blocked by a required pipeline (pipeline #12 failed)"


def test_gitlab_429_honours_retry_after_and_401_is_final(
    httpserver: HTTPServer, gitlab: GitLabForge, waits: list[float]
) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        {"message": "Retry later"}, status=429, headers={"Retry-After": "2", "RateLimit-Reset": "1999999999"}
    )
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        {"message": "401 Unauthorized"}, status=401
    )
    with pytest.raises(Unauthorized, match="answered 401: 401 Unauthorized: the token is missing"):
        gitlab.get_pull_request(4)
    httpserver.check_assertions()
    assert waits == [2.0]


def test_gitlab_merge_conflict_is_a_conflict(httpserver: HTTPServer, gitlab: GitLabForge) -> None:
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr())
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4/merge", "PUT").respond_with_json(
        {"message": "Branch cannot be merged"},
        status=422,  # GitLab's doc: "The merge request failed to merge."
    )
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        mr(detailed_merge_status="conflict")
    )
    with pytest.raises(Conflict, match="detailed_merge_status: conflict"):
        gitlab.merge(4, "m")


# ---------------------------------------------------------------- the same contract, every provider


class Provider:
    def __init__(
        self,
        name: str,
        make: Callable[[str, list[float]], Any],
        pulls: str,
        one: str,
        item: Callable[[int], dict[str, Any]],
        open_query: dict[str, str],
        auth: str,
        forbidden: dict[str, Any],
        says: str,
        page_size: str = "per_page",
    ) -> None:
        self.name, self.make, self.pulls, self.one, self.item = name, make, pulls, one, item
        self.open_query, self.auth, self.forbidden, self.says = open_query, auth, forbidden, says
        self.page_size = page_size  # the forge's own name of a list's page size


def _gh_item(n: int) -> dict[str, Any]:
    return gh_pr(n, head=f"promote/demo/prod/{n:07d}")


PROVIDERS = [
    Provider(
        "github",
        lambda url, w: GitHubForge(
            "acme/gitops",
            TOKEN,
            client=ApiClient("GitHub", url, f"Bearer {TOKEN}", sleep=w.append, scope_hint=GitHubForge.scopes),
        ),
        f"{REPO}/pulls",
        f"{REPO}/pulls/7",
        _gh_item,
        {"state": "open"},
        f"Bearer {TOKEN}",
        {"message": "Resource not accessible by integration"},
        "Pull requests, Contents and Issues",
    ),
    Provider(
        "gitea",
        lambda url, w: GiteaForge(
            "acme/gitops",
            TOKEN,
            client=ApiClient("Gitea", url + "/api/v1", f"token {TOKEN}", sleep=w.append, scope_hint=GiteaForge.scopes),
        ),
        f"{GT}/pulls",
        f"{GT}/pulls/7",
        _gh_item,
        {"state": "open"},
        f"token {TOKEN}",
        {"message": "token does not have at least one of required scope(s): [write:repository]"},
        "write:repository and write:issue",
        "limit",  # Gitea's swagger: every list takes `page` and `limit`
    ),
    Provider(
        "gitlab",
        lambda url, w: GitLabForge(
            "acme/gitops",
            TOKEN,
            client=ApiClient(
                "GitLab", url + "/api/v4", f"Bearer {TOKEN}", sleep=w.append, scope_hint=GitLabForge.scopes
            ),
        ),
        f"{GL}/merge_requests",
        f"{GL}/merge_requests/7",
        lambda n: mr(n) | {"source_branch": f"promote/demo/prod/{n:07d}"},
        {"state": "opened"},
        f"Bearer {TOKEN}",
        {"error": "insufficient_scope", "error_description": "The request requires higher privileges"},
        "the scope `api`",
    ),
]


@pytest.fixture(params=PROVIDERS, ids=[p.name for p in PROVIDERS])
def provider(request: pytest.FixtureRequest) -> Provider:
    p: Provider = request.param
    return p


def test_every_provider_follows_pagination(httpserver: HTTPServer, provider: Provider, waits: list[float]) -> None:
    forge = provider.make(httpserver.url_for("/").rstrip("/"), waits)
    nxt = (
        httpserver.url_for(provider.pulls)
        + "?"
        + "&".join(f"{k}={v}" for k, v in provider.open_query.items())
        + f"&{provider.page_size}=100&page=2"
    )
    httpserver.expect_ordered_request(
        provider.pulls,
        "GET",
        headers={"Authorization": provider.auth},
        query_string={**provider.open_query, provider.page_size: "100"},
    ).respond_with_json([provider.item(1), provider.item(2)], headers={"Link": f'<{nxt}>; rel="next"'})
    httpserver.expect_ordered_request(
        provider.pulls, "GET", query_string={**provider.open_query, provider.page_size: "100", "page": "2"}
    ).respond_with_json([provider.item(3)])
    assert [p.number for p in forge.list_open("promote/demo/prod/")] == [1, 2, 3]
    httpserver.check_assertions()


def test_every_provider_honours_rate_limits_and_recovers_from_a_502(
    httpserver: HTTPServer, provider: Provider, waits: list[float]
) -> None:
    forge = provider.make(httpserver.url_for("/").rstrip("/"), waits)
    httpserver.expect_ordered_request(provider.one, "GET").respond_with_json(
        {"message": "slow down"}, status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request(provider.one, "GET").respond_with_data("Bad Gateway", status=502)
    httpserver.expect_ordered_request(provider.one, "GET").respond_with_json(provider.item(7))
    assert forge.get_pull_request(7).number == 7
    httpserver.check_assertions()
    assert waits == [7.0, 0.5]  # as told, then the second step of the backoff


def test_every_provider_names_the_missing_scope_on_403_and_does_not_retry(
    httpserver: HTTPServer, provider: Provider, waits: list[float]
) -> None:
    forge = provider.make(httpserver.url_for("/").rstrip("/"), waits)
    httpserver.expect_ordered_request(provider.one, "GET").respond_with_json(provider.forbidden, status=403)
    with pytest.raises(Unauthorized) as err:
        forge.get_pull_request(7)
    message = str(err.value)
    assert "answered 403" in message and provider.says in message and TOKEN not in message
    assert next(iter(provider.forbidden.values())) in message  # the forge's own words
    assert len(httpserver.log) == 1 and waits == []


def test_gitlab_merge_blocked_by_a_status_check_names_it(httpserver: HTTPServer, gitlab: GitLabForge) -> None:
    sha = "d" * 40
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(mr(sha=sha))
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4/merge", "PUT").respond_with_json(
        {"message": "405 Method Not Allowed"}, status=405
    )
    httpserver.expect_ordered_request(f"{GL}/merge_requests/4", "GET").respond_with_json(
        mr(sha=sha, detailed_merge_status="status_checks_must_pass")
    )
    httpserver.expect_ordered_request(f"{GL}/repository/commits/{sha}/statuses", "GET").respond_with_json(
        [{"name": "security-scan", "status": "failed"}, {"name": "lint", "status": "success"}]
    )
    with pytest.raises(Blocked) as err:
        gitlab.merge(4, "m")
    httpserver.check_assertions()
    assert str(err.value) == "merge request !4 is blocked by a status check: security-scan (failed)"


def test_gitea_labels_by_id_creating_the_missing_ones(httpserver: HTTPServer, gitea: GiteaForge) -> None:
    httpserver.expect_ordered_request(
        f"{GT}/pulls", "GET", query_string={"state": "all", "limit": "100"}
    ).respond_with_json([])
    httpserver.expect_ordered_request(
        f"{GT}/pulls", "POST", json={"title": "t", "head": "promote/demo/prod/abc1234", "base": "main", "body": "b"}
    ).respond_with_json(gh_pr(3), status=201)
    httpserver.expect_ordered_request(f"{GT}/labels", "GET").respond_with_json([{"id": 11, "name": "promotion"}])
    httpserver.expect_ordered_request(
        f"{GT}/labels", "POST", json={"name": "env:prod", "color": "#5319e7"}
    ).respond_with_json({"id": 12, "name": "env:prod"}, status=201)
    httpserver.expect_ordered_request(f"{GT}/issues/3/labels", "POST", json={"labels": [11, 12]}).respond_with_json([])
    gitea.open_pull_request("promote/demo/prod/abc1234", "t", "b", labels=["promotion", "env:prod"])
    httpserver.check_assertions()
