"""The check that holds the forge stand-ins to the forges' own descriptions (tests/support/openapi/,
run after each test of tests/forges/ by its conftest.py): GitHub's OpenAPI description is cached and
loads, the objects the stand-ins answer with are what it requires, and an exchange off the description
(a renamed field, an undocumented status, a request it lacks) fails the check, and fails a test whose
stand-in answers it. Gitea's description is read from gitea-js 1.22.0's TypeScript declarations
(generated from Gitea 1.22's swagger) and held to the same. GitLab, which has no full description, is
held to its documentation's wording, quoted here."""

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

from promoter.forges.gitea import GiteaForge
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import ROOT
from tests.support.openapi import (
    GITHUB_HOST,
    GITHUB_SPEC,
    NULL,
    OCTOKIT_OPENAPI,
    Exchange,
    SpecMismatch,
    gitea,
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
    stubs["PROMOTER_PROMETHEUS"] = present  # asked for by setup-system too since the metric verification
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
    half = _setup_system(tmp_path)  # GitHub's alone: Gitea's declarations are fetched with npm too
    assert half.returncode == 2 and "sudo apt-get install npm)" in half.stderr
    gitea = tmp_path / ".cache" / "openapi" / "gitea-js-1.22.0" / "index.d.ts"
    gitea.parent.mkdir(parents=True)
    gitea.write_text("")
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
from promoter.forges.gitea import GiteaForge
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from tests.support.openapi import NULL
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


def test_off_giteas_description(httpserver: HTTPServer) -> None:
    url = httpserver.url_for("/").rstrip("/")
    gitea = GiteaForge("acme/gitops", "t0k", api_url=url, client=ApiClient("Gitea", url + "/api/v1", "token t0k"))
    pr = {"number": 7, "title": "t", "state": "open", "html_url": "u", "head": {"ref": "h", "sha": "a" * 40}}
    pr |= {"base": {"ref": "main"}, "comments": "2"}  # a count as a string: the adapter does not read it
    httpserver.expect_request("/api/v1/repos/acme/gitops/pulls/7").respond_with_json(pr)
    assert gitea.get_pull_request(7).number == 7
"""


def test_a_stand_in_off_the_description_fails_its_test(tmp_path: Path) -> None:
    """tests/forges/conftest.py's check, run on small tests as pytest runs them."""
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
    assert "3 passed, 2 errors in" in run.stdout, run.stdout[-2000:]
    assert "ERROR at teardown of test_off_the_description" in run.stdout
    assert (
        "GitHub GET /repos/{owner}/{repo}/pulls/{pull_number} (pulls/get): response 200: body: "
        "'node_id' is a required property"
    ) in run.stdout
    assert "ERROR at teardown of test_off_giteas_description" in run.stdout
    assert (
        "Gitea GET /repos/{owner}/{repo}/pulls/{index} (repoGetPullRequest): response 200: body: "
        "comments: '2' is not of type 'integer'"
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


# ---------------------------------------------------------------- Gitea, by gitea-js 1.22.0's declarations

GT = "/api/v1" + R
# Gitea's operations the adapter calls: (method, a path of it, its template below /repos/{owner}/{repo})
GITEA_CALLS = {
    "repoListPullRequests": ("GET", "/pulls", "/pulls"),
    "repoCreatePullRequest": ("POST", "/pulls", "/pulls"),
    "repoGetPullRequest": ("GET", "/pulls/7", "/pulls/{index}"),
    "repoEditPullRequest": ("PATCH", "/pulls/7", "/pulls/{index}"),
    "repoMergePullRequest": ("POST", "/pulls/7/merge", "/pulls/{index}/merge"),
    "repoListPullReviews": ("GET", "/pulls/7/reviews", "/pulls/{index}/reviews"),
    "issueGetComments": ("GET", "/issues/7/comments", "/issues/{index}/comments"),
    "issueCreateComment": ("POST", "/issues/7/comments", "/issues/{index}/comments"),
    "issueListLabels": ("GET", "/labels", "/labels"),
    "issueCreateLabel": ("POST", "/labels", "/labels"),
    "issueAddLabel": ("POST", "/issues/7/labels", "/issues/{index}/labels"),
    "repoGetCombinedStatusByRef": ("GET", f"/commits/{SHA}/status", "/commits/{ref}/status"),
    "repoGetSingleCommit": ("GET", f"/git/commits/{SHA}", "/git/commits/{sha}"),
}


def test_giteas_declarations_are_cached_and_read_into_the_operations_the_adapter_calls() -> None:
    assert gitea.GITEA_DTS.is_file(), f"{gitea.GITEA_DTS} is missing: scripts/setup-venv fetches it"
    assert f"gitea_js={gitea.GITEA_JS}\n" in (ROOT / "scripts" / "setup-venv").read_text()
    description = gitea.gitea()
    assert set(gitea.OPERATIONS) == set(GITEA_CALLS)
    for name, (method, path, template) in GITEA_CALLS.items():
        assert description.operation(method, R + path) == ("/repos/{owner}/{repo}" + template, name)
    paths, schemas = description.data["paths"], description.data["components"]["schemas"]
    listing = paths["/repos/{owner}/{repo}/pulls"]["get"]["parameters"]
    queried = [p["name"] for p in listing if p["in"] == "query"]
    assert queried == ["state", "sort", "milestone", "labels", "page", "limit"]
    assert schemas["PullReview"]["properties"]["official"] == {"type": "boolean", "nullable": True}
    assert schemas["PullRequest"]["properties"]["number"] == {"type": "integer", "format": "int64", "nullable": True}
    merge = schemas["request.MergePullRequestOption"]
    assert merge["required"] == ["Do"] and merge["additionalProperties"] is False
    assert merge["properties"]["Do"]["enum"] == [
        "merge",
        "rebase",
        "rebase-merge",
        "squash",
        "fast-forward-only",
        "manually-merged",
    ]


DTS = """/** APIError is an api error with a message */
interface APIError {
    message?: string;
    url?: string;
}
interface Thing {
    /**
     * its id
     * @format int64
     */
    id?: number;
    kind: 'a' | 'b';
    labels?: Record<string, string>;
    parent?: Thing;
    state?: StateType;
}
type StateType = string;
type QueryParamsType = Record<string | number, any>;
declare class Api<SecurityDataType extends unknown> extends HttpClient<SecurityDataType> {
    things: {
        /**
         * @name ThingList
         * @request GET:/things/{owner}
         */
        thingList: (owner: string, query?: {
            /** page number of results to return (1-based) */
            page?: number;
        }, params?: RequestParams) => Promise<HttpResponse<Thing[], any>>;
        /**
         * @name ThingEdit
         * @request PATCH:/things/{owner}/{index}
         */
        thingEdit: (owner: string, index: number, body: Thing) => Promise<HttpResponse<void, void>>;
    };
}
"""


def test_the_reader_turns_declarations_into_an_openapi_description() -> None:
    doc = gitea.description_of(DTS, ("thingList", "thingEdit"))
    listing, edit = doc["paths"]["/things/{owner}"]["get"], doc["paths"]["/things/{owner}/{index}"]["patch"]
    assert listing["operationId"] == "thingList" and [(p["name"], p["in"]) for p in listing["parameters"]] == [
        ("owner", "path"),
        ("page", "query"),
    ]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Thing"},
    }
    assert "content" not in edit["responses"]["200"]  # void: the body is not checked
    sent_body = edit["requestBody"]["content"]["application/json"]["schema"]
    assert sent_body == {"$ref": "#/components/schemas/request.Thing"}
    answer, sent = doc["components"]["schemas"]["Thing"], doc["components"]["schemas"]["request.Thing"]
    assert answer["properties"] == {
        "id": {"type": "integer", "format": "int64", "nullable": True},
        "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "nullable": True},
        "parent": {"anyOf": [{"$ref": "#/components/schemas/Thing"}, NULL]},
        "state": {"type": "string", "nullable": True},
    }
    assert answer["required"] == ["kind"] and "additionalProperties" not in answer
    assert sent["additionalProperties"] is False and sent["properties"]["parent"] == {
        "$ref": "#/components/schemas/request.Thing"
    }
    with pytest.raises(ValueError, match=r"^index.d.ts declares no operation thingDelete$"):
        gitea.description_of(DTS, ("thingList", "thingDelete"))
    with pytest.raises(ValueError, match=r"^index.d.ts: a type this reader does not know: 'Map<string, number>'$"):
        gitea.description_of(DTS.replace("Record<string, string>", "Map<string, number>"), ("thingList",))


def gitea_pr(number: int = 7, **extra: Any) -> dict[str, Any]:
    """A pull request as Gitea 1.22 answers one (fewer fields than it sends: none is required)."""
    branch = {"label": "h", "ref": "h", "sha": SHA, "repo_id": 1}
    pr = {"id": 70 + number, "number": number, "title": "t", "body": "b", "state": "open", "merged": False}
    pr |= {"merged_at": None, "merge_commit_sha": None, "milestone": None, "html_url": f"http://gitea.test/pr/{number}"}
    pr |= {"head": branch, "base": branch | {"ref": "main", "label": "main"}, "user": {"id": 1, "login": "bot"}}
    return pr | extra


def gitea_review(review_id: int, state: str, **extra: Any) -> dict[str, Any]:
    return (
        {"id": review_id, "state": state, "body": "", "commit_id": SHA, "official": True, "stale": False}
        | {
            "dismissed": False,
            "submitted_at": "2026-11-26T10:00:00Z",
            "user": {"id": 2, "login": "bob"},
        }
        | extra
    )


GITEA_LABEL = {"id": 11, "name": "promotion", "color": "5319e7", "exclusive": False, "url": "http://gitea.test/l"}
GITEA_COMMENT = {"id": 5, "body": "hi", "user": {"id": 1, "login": "bot"}, "created_at": "2026-11-26T10:00:00Z"}
MERGE = {"Do": "merge", "MergeTitleField": "t", "MergeMessageField": "m", "head_commit_id": SHA}
GITEA_VALID = {
    "repoListPullRequests": exchange("GET", "/pulls", [gitea_pr()], state="all", limit="100", page="2"),
    "repoGetPullRequest merged": exchange("GET", "/pulls/7", gitea_pr(merged=True, merge_commit_sha="m" * 40)),
    "repoCreatePullRequest": exchange("POST", "/pulls", gitea_pr(), 201, {"title": "t", "head": "h", "base": "main"}),
    "repoEditPullRequest": exchange("PATCH", "/pulls/7", gitea_pr(state="closed"), 201, {"state": "closed"}),
    "repoMergePullRequest": exchange("POST", "/pulls/7/merge", None, 200, MERGE),
    "repoMergePullRequest refused": exchange(
        "POST", "/pulls/7/merge", {"message": "Does not have enough approvals", "url": "u"}, 405, MERGE
    ),
    "repoListPullReviews": exchange("GET", "/pulls/7/reviews", [gitea_review(1, "APPROVED")], limit="100"),
    "issueGetComments": exchange("GET", "/issues/7/comments", [GITEA_COMMENT]),
    "issueCreateComment": exchange("POST", "/issues/7/comments", GITEA_COMMENT, 201, {"body": "hi"}),
    "issueListLabels": exchange("GET", "/labels", [GITEA_LABEL], limit="100"),
    "issueCreateLabel": exchange("POST", "/labels", GITEA_LABEL, 201, {"name": "promotion", "color": "#5319e7"}),
    "issueAddLabel": exchange("POST", "/issues/7/labels", [GITEA_LABEL], 200, {"labels": [11]}),
    "repoGetCombinedStatusByRef": exchange(
        "GET", f"/commits/{SHA}/status", {"state": "failure", "statuses": [{"context": "ci", "status": "failure"}]}
    ),
    "repoGetSingleCommit": exchange(
        "GET", f"/git/commits/{SHA}", {"sha": SHA, "author": {"login": "bob"}, "committer": None}, stat="false"
    ),
    "a proxy's 502": Exchange(
        "GET", R + "/pulls/7", status=502, response_body=b"bad gateway", response_type="text/plain"
    ),
}


@pytest.mark.parametrize("case", GITEA_VALID.values(), ids=GITEA_VALID.keys())
def test_giteas_answers_as_its_description_allows_them(case: Exchange) -> None:
    gitea.gitea().check(case)


GITEA_OFF = {
    "a number field as a string": (
        exchange("GET", "/pulls/7/reviews", [gitea_review(1, "APPROVED", id="1")]),
        "Gitea GET /repos/{owner}/{repo}/pulls/{index}/reviews (repoListPullReviews): response 200: body: "
        "0.id: '1' is not of type 'integer'",
    ),
    "GitHub's page size, per_page": (
        exchange("GET", "/pulls", [], state="open", per_page="100"),
        "Gitea GET /repos/{owner}/{repo}/pulls (repoListPullRequests): request: query parameter per_page is not "
        "one the operation takes (state, sort, milestone, labels, page, limit)",
    ),
    "an undocumented merge body field": (
        exchange("POST", "/pulls/7/merge", None, 200, MERGE | {"merge_method": "merge"}),
        "(repoMergePullRequest): request: body: Additional properties are not allowed ('merge_method' was unexpected)",
    ),
    "a merge style Gitea lacks": (
        exchange("POST", "/pulls/7/merge", None, 200, MERGE | {"Do": "fast-forward"}),
        "(repoMergePullRequest): request: body: Do: 'fast-forward' is not one of ['merge', 'rebase',",
    ),
    "a query value of the wrong type": (
        exchange("GET", "/pulls", [], state="open", limit="many"),
        "(repoListPullRequests): request: Query parameter error: limit: Failed to cast value to number type: many",
    ),
    "an error body that is not APIError": (
        exchange("POST", "/pulls/7/merge", {"message": ["enough", "approvals"]}, 405, MERGE),
        "(repoMergePullRequest): response 405: body: message: ['enough', 'approvals'] is not of type 'string'",
    ),
    "a success status it does not answer": (
        exchange("GET", "/pulls/7", gitea_pr(), 204),
        "(repoGetPullRequest): response 204: undocumented status (documented: 200, 201, default)",
    ),
    "an operation the adapter does not call": (
        exchange("GET", "/pulls/7/files", []),
        "Gitea GET /repos/acme/gitops/pulls/7/files: request: Gitea's repoGetPullRequestFiles, which the adapter "
        "is not known to call (add it to OPERATIONS in tests/support/openapi/gitea.py)",
    ),
    "a path Gitea lacks": (
        exchange("GET", "/merge_requests/7", {}),
        "Gitea GET /repos/acme/gitops/merge_requests/7: request: the description has no such operation",
    ),
}


@pytest.mark.parametrize(("case", "said"), GITEA_OFF.values(), ids=GITEA_OFF.keys())
def test_a_gitea_exchange_off_its_description_fails_the_check_in_one_line(case: Exchange, said: str) -> None:
    with pytest.raises(SpecMismatch) as err:
        gitea.gitea().check(case)
    assert said in str(err.value) and "\n" not in str(err.value)


def _gitea(httpserver: HTTPServer) -> GiteaForge:
    url = httpserver.url_for("/").rstrip("/")
    client = ApiClient("Gitea", url + "/api/v1", "token t0k", sleep=lambda _: None)
    return GiteaForge("acme/gitops", "t0k", api_url=url, client=client)


@pytest.mark.off_spec("pages Gitea's pull requests with GitHub's `per_page` on purpose, to see the check name it")
def test_the_check_finds_githubs_page_size_sent_to_gitea(httpserver: HTTPServer) -> None:
    """What the adapter sent before it paged with Gitea's own `limit` (issue 29)."""
    forge = _gitea(httpserver)
    httpserver.expect_request(f"{GT}/pulls").respond_with_json([gitea_pr()])
    assert forge.list_open("h") and log_mismatches(httpserver.log) == []
    httpserver.clear_log()
    forge.api.page_size_param = "per_page"
    forge.list_open("h")
    assert log_mismatches(httpserver.log) == [
        "Gitea GET /repos/{owner}/{repo}/pulls (repoListPullRequests): request: query parameter per_page is not "
        "one the operation takes (state, sort, milestone, labels, page, limit)"
    ]


@pytest.mark.off_spec("the adapter's own request is what is off Gitea's description here")
def test_gitea_comments_are_asked_for_as_gitea_takes_them(httpserver: HTTPServer) -> None:
    httpserver.expect_request(f"{GT}/issues/7/comments").respond_with_json([GITEA_COMMENT])
    assert _gitea(httpserver).comments(7) == ["hi"]
    assert log_mismatches(httpserver.log) == []
