"""The check that holds the forge stand-ins to the forges' own descriptions (tests/support/openapi/,
run after each test of tests/forges/ by its conftest.py): GitHub's OpenAPI description is cached and
loads, the objects the stand-ins answer with are what it requires, and an exchange off the description
(a renamed field, an undocumented status, a request it lacks) fails the check, and fails a test whose
stand-in answers it. GitLab, which has no full description, is held to its documentation's wording,
quoted here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import git
import pytest
from pytest_httpserver import HTTPServer

from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import ROOT
from tests.support.openapi import (
    GITHUB_HOST,
    GITHUB_SPEC,
    OCTOKIT_OPENAPI,
    Exchange,
    SpecMismatch,
    github,
    gitlab,
    log_mismatches,
)
from tests.support.openapi import github_objects as gh

R = "/repos/acme/gitops"
SHA = "a" * 40
JSON = {"Content-Type": "application/json"}


def exchange(method: str, path: str, answer: Any, status: int = 200, sent: Any = None, **query: str) -> Exchange:
    return Exchange(
        method,
        R + path,
        list(query.items()),
        JSON if sent is not None else {},
        json.dumps(sent).encode() if sent is not None else b"",
        status,
        json.dumps(answer).encode(),
    )


def test_githubs_description_is_cached_and_loads() -> None:
    assert GITHUB_SPEC.is_file(), f"{GITHUB_SPEC} is missing: scripts/setup-venv fetches it"
    description = github()
    assert description.data["openapi"].startswith("3.") and description.data["servers"][0]["url"] == GITHUB_HOST
    assert description.operation("PUT", f"{R}/pulls/7/merge") == (
        "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
        "pulls/merge",
    )
    assert f"octokit_openapi={OCTOKIT_OPENAPI}\n" in (ROOT / "scripts" / "setup-venv").read_text()


def _setup_system(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/setup-system, copied beside an empty .cache, for an ordinary user with a PATH of stubs."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "setup-system", tmp_path / "scripts" / "setup-system")
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    for name in ("id", "present"):
        (tools / name).write_text("#!/bin/sh\necho 1000\n")
        (tools / name).chmod(0o755)
    present = str(tools / "present")
    stubs = {"PROMOTER_CHROMIUM": present, "PROMOTER_HAPROXY": present, "PROMOTER_SSH_KEYGEN": present}
    bash = shutil.which("bash") or "/bin/bash"
    script = str(tmp_path / "scripts" / "setup-system")
    return subprocess.run(
        [bash, script], env={"PATH": str(tools), **stubs, **env}, capture_output=True, text=True, timeout=60
    )


def test_setup_system_asks_for_npm_only_while_the_description_is_not_cached(tmp_path: Path) -> None:
    lacking = _setup_system(tmp_path)
    assert lacking.returncode == 2 and "sudo apt-get install npm)" in lacking.stderr
    assert _setup_system(tmp_path, PROMOTER_NPM=str(tmp_path / "bin" / "present")).returncode == 0
    cached = tmp_path / ".cache" / "openapi" / f"octokit-openapi-{OCTOKIT_OPENAPI}" / "api.github.com.json"
    cached.parent.mkdir(parents=True)
    cached.write_text("{}")
    done = _setup_system(tmp_path)
    assert (done.returncode, done.stderr) == (0, "")


SPEC_VALID = {
    "pulls/list": exchange("GET", "/pulls", [gh.pull_request_simple(1, "h", SHA)], state="all", per_page="100"),
    "pulls/get": exchange("GET", "/pulls/7", gh.pull_request(7, "h", SHA)),
    "pulls/get merged": exchange(
        "GET", "/pulls/7", gh.pull_request(7, "h", SHA, merged=True, state="closed", merge_commit_sha="m" * 40)
    ),
    "pulls/create": exchange(
        "POST", "/pulls", gh.pull_request(7, "h", SHA), 201, {"title": "t", "head": "h", "base": "main", "body": "b"}
    ),
    "pulls/update": exchange(
        "PATCH", "/pulls/7", gh.pull_request(7, "h", SHA, state="closed"), 200, {"state": "closed"}
    ),
    "pulls/list-reviews": exchange("GET", "/pulls/7/reviews", [gh.review(1, "bob", "APPROVED", SHA)]),
    "issues/list-comments": exchange("GET", "/issues/7/comments", [gh.issue_comment(1, "hi")]),
    "issues/create-comment": exchange("POST", "/issues/7/comments", gh.issue_comment(1, "hi"), 201, {"body": "hi"}),
    "issues/add-labels": exchange("POST", "/issues/7/labels", [gh.label("promotion")], 200, {"labels": ["promotion"]}),
    "repos/get-combined-status-for-ref": exchange(
        "GET", f"/commits/{SHA}/status", gh.combined_status(SHA, {"ci": "failure"})
    ),
    "checks/list-for-ref": exchange(
        "GET", f"/commits/{SHA}/check-runs", gh.check_runs(SHA, {"lint": ("completed", "success")})
    ),
    "repos/get-commit": exchange("GET", f"/commits/{SHA}", gh.commit(SHA, "alice-gh", "bobby42")),
    # null where the commit's email belongs to no account: GitHub marks that `oneOf` nullable
    "repos/get-commit without accounts": exchange("GET", f"/commits/{SHA}", gh.commit(SHA, None, None)),
    "pulls/merge": exchange(
        "PUT", "/pulls/7/merge", gh.merge_result("m" * 40), 200, {"merge_method": "merge", "sha": SHA}
    ),
}


@pytest.mark.parametrize("case", SPEC_VALID.values(), ids=SPEC_VALID.keys())
def test_the_objects_the_stand_ins_answer_with_are_what_the_description_requires(case: Exchange) -> None:
    github().check(case)


def _renamed(data: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    data = dict(data)
    data[new] = data.pop(old)
    return data


OFF = {
    "a renamed field": (
        exchange("GET", "/pulls/7", _renamed(gh.pull_request(7, "h", SHA), "merged", "is_merged")),
        "GitHub GET /repos/{owner}/{repo}/pulls/{pull_number} (pulls/get): response 200: body: "
        "'merged' is a required property",
    ),
    "an undocumented status": (
        exchange("GET", "/pulls/7", gh.pull_request(7, "h", SHA), 201),
        "(pulls/get): response 201: undocumented status (documented: 200, 304, 404, 406, 500, 503)",
    ),
    "a field of the wrong type": (
        exchange("GET", "/pulls/7/reviews", [gh.review(1, "bob", "APPROVED", SHA) | {"id": "1"}]),
        "(pulls/list-reviews): response 200: body: 0.id: '1' is not of type 'integer'",
    ),
    "a request body it does not take": (
        exchange("PUT", "/pulls/7/merge", gh.merge_result(SHA), 200, {"merge_method": "fast-forward"}),
        "(pulls/merge): request: body: merge_method: 'fast-forward' is not one of ['merge', 'squash', 'rebase']",
    ),
    "a query it does not take": (
        exchange("GET", "/pulls", [], state="opened"),
        "(pulls/list): request: query parameter state: 'opened' is not one of ['open', 'closed', 'all']",
    ),
    "a path it lacks": (
        exchange("GET", "/merge_requests/7", {}),
        "GitHub GET /repos/acme/gitops/merge_requests/7: request: the description has no such operation",
    ),
    "a 304 to a write": (
        exchange("PATCH", "/pulls/7", None, 304, {"state": "closed"}),
        "(pulls/update): response 304: only a conditional GET may answer 304",
    ),
}


@pytest.mark.parametrize(("case", "said"), OFF.values(), ids=OFF.keys())
def test_an_exchange_off_the_description_fails_the_check_in_one_line(case: Exchange, said: str) -> None:
    with pytest.raises(SpecMismatch) as err:
        github().check(case)
    assert said in str(err.value) and "\n" not in str(err.value)


@pytest.mark.off_spec("answers a PR without `node_id` on purpose, to see the check name it")
def test_the_check_reads_what_the_adapter_really_exchanged(httpserver: HTTPServer) -> None:
    url = httpserver.url_for("/").rstrip("/")
    forge = GitHubForge("acme/gitops", "t0k", client=ApiClient("GitHub", url, "Bearer t0k", sleep=lambda _: None))
    httpserver.expect_ordered_request(f"{R}/pulls/7", "GET").respond_with_json(gh.pull_request(7, "h", SHA))
    broken = {k: v for k, v in gh.pull_request(8, "h", SHA).items() if k != "node_id"}
    httpserver.expect_ordered_request(f"{R}/pulls/8", "GET").respond_with_json(broken)
    forge.get_pull_request(7)
    assert log_mismatches(httpserver.log) == []
    forge.get_pull_request(8)  # the adapter does not read node_id: only the check sees it
    assert log_mismatches(httpserver.log) == [
        "GitHub GET /repos/{owner}/{repo}/pulls/{pull_number} (pulls/get): response 200: body: "
        "'node_id' is a required property"
    ]


STAND_IN_TESTS = """
from pytest_httpserver import HTTPServer
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from tests.support.openapi import github_objects as gh


def forge(httpserver):
    url = httpserver.url_for("/").rstrip("/")
    return GitHubForge("acme/gitops", "t0k", client=ApiClient("GitHub", url, "Bearer t0k", sleep=lambda _: None))


def test_as_github_answers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/repos/acme/gitops/pulls/7").respond_with_json(gh.pull_request(7, "h", "a" * 40))
    assert forge(httpserver).get_pull_request(7).number == 7


def test_off_the_description(httpserver: HTTPServer) -> None:
    pr = gh.pull_request(7, "h", "a" * 40)
    pr["nodeId"] = pr.pop("node_id")  # renamed: the adapter does not read it, so only the check can see it
    httpserver.expect_request("/repos/acme/gitops/pulls/7").respond_with_json(pr)
    assert forge(httpserver).get_pull_request(7).number == 7
"""


def test_a_stand_in_off_the_description_fails_its_test(tmp_path: Path) -> None:
    """tests/forges/conftest.py's check, run on two small tests as pytest runs them."""
    (tmp_path / "conftest.py").write_text(
        "from tests.forges.conftest import _stand_ins_answer_as_the_descriptions_say, pytest_configure  # noqa\n"
    )
    (tmp_path / "test_stand_in.py").write_text(STAND_IN_TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "2 passed, 1 error in" in run.stdout, run.stdout[-2000:]
    assert "ERROR at teardown of test_off_the_description" in run.stdout
    assert (
        "GitHub GET /repos/{owner}/{repo}/pulls/{pull_number} (pulls/get): response 200: body: "
        "'node_id' is a required property"
    ) in run.stdout


# ---------------------------------------------------------------- GitLab, by its documentation's wording


def test_gitlabs_merge_statuses_are_quoted_from_its_documentation() -> None:
    """docs.gitlab.com/api/merge_requests/#merge-status: "The `detailed_merge_status` field can contain
    one of the following values related to the merge request:" (the REST names, not GraphQL's)."""
    quoted = gitlab.DETAILED_MERGE_STATUS
    assert quoted["unchecked"] == "Git has not yet tested if a valid merge is possible."
    assert quoted["checking"] == "Git is testing if a valid merge is possible."
    assert quoted["preparing"] == "Merge request diff is being created."
    assert quoted["approvals_syncing"] == "The merge request's approvals are syncing."
    assert quoted["merge_request_blocked"] == "Blocked by another merge request."
    assert quoted["status_checks_must_pass"] == "All status checks must pass before merge."
    assert "blocked_status" not in quoted and "external_status_checks" not in quoted  # GraphQL's names
    # "This API returns specific HTTP status codes on failure:" (#merge-a-merge-request)
    assert gitlab.MERGE_FAILURES[401] == (
        "Unauthorized",
        "This user does not have permission to accept this merge request.",
    )
    assert gitlab.MERGE_FAILURES[405][1] == "The merge request is not able to be merged."
    assert set(gitlab.MERGE_FAILURES) == {401, 405, 409, 422}


GL_MR = "/api/v4/projects/acme/gitops/merge_requests/4"


@pytest.mark.parametrize(
    ("method", "path", "status", "answer", "said"),
    [
        ("GET", GL_MR, 200, {"iid": 4, "detailed_merge_status": "blocked_status"}, "'blocked_status' is not one"),
        ("GET", GL_MR[:-2], 200, [{"iid": 4, "detailed_merge_status": "external_status_checks"}], "is not one"),
        ("PUT", GL_MR + "/merge", 406, {"message": "Branch cannot be merged"}, "response 406: undocumented"),
    ],
    ids=["a GraphQL status name", "in a list", "an undocumented merge failure"],
)
def test_a_gitlab_stand_in_off_the_documentation_is_named(
    method: str, path: str, status: int, answer: Any, said: str
) -> None:
    found = gitlab.complaints(method, path, status, json.dumps(answer).encode())
    assert len(found) == 1 and said in found[0] and found[0].startswith(f"GitLab {method} {path}: response {status}")


@pytest.mark.parametrize("status", ["unchecked", "checking", "preparing", "approvals_syncing", "ci_must_pass"])
def test_a_documented_gitlab_status_passes(status: str) -> None:
    assert gitlab.complaints("GET", GL_MR, 200, json.dumps({"detailed_merge_status": status}).encode()) == []
    assert gitlab.complaints("PUT", GL_MR + "/merge", 405, b'{"message": "405 Method Not Allowed"}') == []


def test_the_github_stand_in_checks_its_own_answers(tmp_path: Path) -> None:
    """tests/support/github_standin.py (the e2e tests' GitHub) checks each exchange the same way and
    names, when stopped, each answer the description does not allow."""
    git.Repo.init(tmp_path / "origin.git", bare=True)
    standin = GitHubStandIn(origin=str(tmp_path / "origin.git"), tokens={"t0k": "promoter-bot"}).start()
    record = {"number": 1, "state": "open", "title": "Promote demo", "body": "", "labels": [], "merged": False}
    record |= {"merged_at": None, "merge_commit_sha": None, "user": {"login": "promoter-bot"}, "created_at": gh.WHEN}
    record |= {"html_url": "https://github.example/acme/gitops/pull/1", "base": {"ref": "main"}}
    standin.pulls[1] = record | {"head": {"ref": "promote/demo/prod/abc1234", "sha": SHA}}
    forge = GitHubForge("acme/gitops", "t0k", api_url=standin.url)
    try:
        assert forge.get_pull_request(1).title == "Promote demo" and standin.mismatches == []
        standin.pulls[1]["created_at"] = 1764700000  # epoch seconds where the description has a date-time
        forge.get_pull_request(1)
    finally:
        with pytest.raises(SpecMismatch) as err:
            standin.stop()
    assert str(err.value) == (
        "GitHub GET /repos/{owner}/{repo}/pulls/{pull_number} (pulls/get): response 200: body: "
        "created_at: 1764700000 is not of type 'string'"
    )
