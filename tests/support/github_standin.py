"""A stand-in for GitHub's REST API on loopback, backed by a real bare repository.

It answers the documented endpoints promoter uses, with GitHub's shapes, status codes and headers:
pulls (list with `head` filter, create, get, update, merge), reviews (list, create as the token's
user), issue comments, labels and timeline (its `merged` and `closed` state-change events), commit
statuses and check runs, a commit (its git data and the accounts its author's and committer's emails
belong to, `accounts`); `Link` pagination; `ETag` (over the body alone, as GitHub's) and `304 Not
Modified`; `X-RateLimit-*`; 401 for an unknown token. Merges are real `--no-ff` merges pushed to the
bare repository with plain git, answered `{"sha", "merged", "message"}`.

API versions as GitHub has them: `X-GitHub-Api-Version` is one of `versions` (none sent: 2022-11-28),
any other is a 400; under 2026-03-10 a pull request has no `merge_commit_sha`. `required_approvals`
is branch protection's count of approving reviews, counted as GitHub does: each reviewer's latest
review that is not a comment (a later CHANGES_REQUESTED takes their APPROVED back; a dismissed review
counts for nothing).

Where it differs from GitHub: one repository; no web pages (html_url is not served); no GraphQL;
the merge is always a merge commit whatever `merge_method` says; required checks are a list set by
the test (`required`), reported as failing until `checks[sha]` says success; no secondary rate
limits unless injected with `fail_next`.

Its answers are GitHub's objects as the api.github.com OpenAPI description requires them
(tests/support/openapi/github_objects.py), built from its own records; while the description is
cached, every exchange in API version 2022-11-28 (the description's) is checked against it, and
`stop()` raises one line for each exchange it does not allow.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import ParseResult, parse_qs, parse_qsl, urlparse

import git

from tests.support.openapi import GITHUB_SPEC, Exchange, SpecMismatch, github
from tests.support.openapi import github_objects as gh

DOCS = "https://docs.github.com/rest/commits/commits#get-a-commit"
CREATE_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
UPDATE_DOCS = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request"
DEFAULT_VERSION = "2022-11-28"
WITHOUT_MERGE_COMMIT_SHA = "2026-03-10"  # the version whose pull request drops `merge_commit_sha`
Query = dict[str, list[str]]
Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class GitHubStandIn:
    origin: str  # path of the bare repository
    repository: str = "acme/gitops"
    tokens: dict[str, str] = field(default_factory=dict)  # token -> login
    # a verified email -> its account's login (GitHub's own merges are committed by web-flow)
    accounts: dict[str, str] = field(default_factory=lambda: {"noreply@github.com": "web-flow"})
    required: list[str] = field(default_factory=list)  # required status checks on main
    required_approvals: int = 0  # approving reviews branch protection requires on main
    versions: tuple[str, ...] = (DEFAULT_VERSION, WITHOUT_MERGE_COMMIT_SHA)  # the API versions it knows
    checks: dict[str, str] = field(default_factory=dict)  # sha -> state of every check
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    events: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # each PR's timeline events
    requests: list[Recorded] = field(default_factory=list)
    faults: list[tuple[int, dict[str, str], str]] = field(default_factory=list)  # (status, headers, path re)
    lock: threading.RLock = field(default_factory=threading.RLock)
    page_size: int = 100
    mismatches: list[str] = field(default_factory=list)  # exchanges GitHub's description does not allow

    def start(self) -> GitHubStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                standin._serve(self, self.command)

            do_GET = do_POST = do_PATCH = do_PUT = _any  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._work = Path(tempfile.mkdtemp(prefix="github-standin-"))
        self._clone = git.Repo.clone_from(self.origin, self._work / "clone")
        with self._clone.config_writer() as cw:
            cw.set_value("user", "name", "GitHub")
            cw.set_value("user", "email", "noreply@github.com")
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._clone.close()
        shutil.rmtree(self._work, ignore_errors=True)  # its clone of the origin: nothing left in /tmp
        if self.mismatches:
            raise SpecMismatch("\n".join(dict.fromkeys(self.mismatches)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def fail_next(self, status: int, count: int = 1, headers: dict[str, str] | None = None, path: str = "") -> None:
        self.faults += [(status, headers or {}, path)] * count

    # ---------------------------------------------------------------- plumbing

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self.lock:
            self.requests.append(Recorded(method, url.path, parse_qs(url.query), dict(h.headers.items()), body))
            status, payload, headers = self._answer(h, method, url.path, parse_qs(url.query), body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self._check(method, url, dict(h.headers.items()), raw, status, data)
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("X-RateLimit-Limit", "5000")
        h.send_header("X-RateLimit-Remaining", "4999")
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _check(
        self, method: str, url: ParseResult, headers: dict[str, str], sent: bytes, status: int, data: bytes
    ) -> None:
        """The exchange against GitHub's description (its version, 2022-11-28); without the cached
        description, a mismatch that says so (as tests/forges/conftest.py fails: never a silent pass)."""
        if headers.get("X-GitHub-Api-Version", DEFAULT_VERSION) != DEFAULT_VERSION:
            return
        if not GITHUB_SPEC.is_file():
            missing = f"{GITHUB_SPEC} is missing: scripts/setup-venv fetches it (the stand-in checks nothing else)"
            if missing not in self.mismatches:
                self.mismatches.append(missing)
            return
        exchange = Exchange(method, url.path, parse_qsl(url.query), headers, sent, status, data)
        try:
            github().check(exchange)
        except SpecMismatch as e:
            self.mismatches.append(str(e))

    def _answer(
        self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> Answer:
        for i, (status, headers, pattern) in enumerate(self.faults):
            if re.search(pattern, path):
                del self.faults[i]
                return status, {"message": "injected fault"}, headers
        auth = h.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        user = self.tokens.get(token)
        if user is None:
            return 401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}, {}
        version = h.headers.get("X-GitHub-Api-Version") or DEFAULT_VERSION
        if version not in self.versions:
            docs = "https://docs.github.com/rest/about-the-rest-api/api-versions"
            return 400, {"message": f"Unsupported 'X-GitHub-Api-Version': {version}", "documentation_url": docs}, {}
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(prefix) :]
        for pattern, handler in self._routes():
            m = re.fullmatch(pattern, f"{method} {rest}")
            if m:
                result: tuple[int, Any, dict[str, str]] = handler(user, query, body, *m.groups())
                status, payload, headers = result
                payload = _as_of(version, payload)
                if method == "GET" and status == 200:
                    etag = '"' + hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest() + '"'
                    if h.headers.get("If-None-Match") == etag:
                        return 304, None, {"ETag": etag}
                    headers = {**headers, "ETag": etag}
                return status, payload, headers
        return 404, {"message": "Not Found"}, {}

    def _routes(self) -> list[tuple[str, Any]]:
        return [
            (r"GET /pulls", self._list_pulls),
            (r"POST /pulls", self._create_pull),
            (r"GET /pulls/(\d+)", self._get_pull),
            (r"PATCH /pulls/(\d+)", self._update_pull),
            (r"PUT /pulls/(\d+)/merge", self._merge),
            (r"GET /pulls/(\d+)/reviews", self._list_reviews),
            (r"POST /pulls/(\d+)/reviews", self._create_review),
            (r"GET /issues/(\d+)/comments", self._list_comments),
            (r"POST /issues/(\d+)/comments", self._create_comment),
            (r"POST /issues/(\d+)/labels", self._labels),
            (r"GET /issues/(\d+)/timeline", self._timeline),
            (r"GET /commits/(\w+)/status", self._status),
            (r"GET /commits/(\w+)/check-runs", self._check_runs),
            (r"GET /commits/(\w+)", self._commit),
        ]

    def _page(self, items: list[Any], query: dict[str, list[str]], path: str) -> Answer:
        size = min(int(query.get("per_page", ["30"])[0]), self.page_size)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(items):
            rest = {k: v[0] for k, v in query.items() if k != "page"}
            q = "&".join(f"{k}={v}" for k, v in {**rest, "page": str(page + 1)}.items())
            headers["Link"] = f'<{self.url}/repos/{self.repository}{path}?{q}>; rel="next"'
        return 200, chunk, headers

    def _head(self, branch: str) -> str | None:
        try:
            return str(git.Repo(self.origin).git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}"))
        except git.GitCommandError:
            return None

    def _out(self, pr: dict[str, Any]) -> dict[str, Any]:
        """A pull request as GitHub's description has it, from the stand-in's record of it."""
        fields = {k: pr[k] for k in ("state", "merged", "merged_at", "merge_commit_sha", "title", "body")}
        data = gh.pull_request(
            pr["number"],
            pr["head"]["ref"],
            pr["head"]["sha"],
            **fields,
            base=pr["base"]["ref"],
            full_name=self.repository,
            author=pr["user"]["login"],
        )
        labels = [gh.label(x["name"], i) for i, x in enumerate(pr["labels"], 1)]
        return data | {"html_url": pr["html_url"], "created_at": pr["created_at"], "labels": labels}

    def _pr(self, number: int) -> dict[str, Any]:
        pr = self.pulls[number]
        if pr["state"] == "open":
            pr["head"]["sha"] = self._head(pr["head"]["ref"]) or pr["head"]["sha"]
        return pr

    # ---------------------------------------------------------------- endpoints

    def _list_pulls(self, user: str, query: Query, body: Any) -> Answer:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [""])[0]
        items = [
            self._out(self._pr(n))
            for n in sorted(self.pulls, reverse=True)
            if (state == "all" or self.pulls[n]["state"] == state)
            and (not head or f"{self.repository.split('/')[0]}:{self.pulls[n]['head']['ref']}" == head)
        ]
        return self._page(items, query, "/pulls")

    def _create_pull(self, user: str, query: Query, body: Any) -> Answer:
        head, base = body["head"], body["base"]
        sha = self._head(head)
        if sha is None:
            invalid = [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
            return 422, {"message": "Validation Failed", "errors": invalid, "documentation_url": CREATE_DOCS}, {}
        if any(p["state"] == "open" and p["head"]["ref"] == head for p in self.pulls.values()):
            return (
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"code": "custom", "message": f"A pull request already exists for acme:{head}."}],
                    "documentation_url": CREATE_DOCS,
                },
                {},
            )
        number = max([*self.pulls, 0]) + 1
        now = _now()
        self.pulls[number] = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body") or "",
            "html_url": f"https://github.example/{self.repository}/pull/{number}",
            "head": {"ref": head, "sha": sha},
            "base": {"ref": base},
            "merged": False,
            "merged_at": None,
            "merge_commit_sha": None,
            "labels": [],
            "user": {"login": user},
            "created_at": now,
        }
        return 201, self._out(self.pulls[number]), {}

    def _get_pull(self, user: str, query: Query, body: Any, n: str) -> Answer:
        if int(n) not in self.pulls:
            return 404, {"message": "Not Found"}, {}
        return 200, self._out(self._pr(int(n))), {}

    def _update_pull(self, user: str, query: Query, body: Any, n: str) -> Answer:
        pr = self._pr(int(n))
        if "body" in body:
            if len(body["body"]) > 65536:
                too_long = {
                    "code": "custom",
                    "field": "body",
                    "message": "body is too long (maximum is 65536 characters)",
                }
                return 422, {"message": "Validation Failed", "errors": [too_long], "documentation_url": UPDATE_DOCS}, {}
            pr["body"] = body["body"]
        if body.get("state") == "closed" and pr["state"] == "open":
            pr["state"] = "closed"
            self._event(int(n), user, "closed", None)
        return 200, self._out(pr), {}

    def _merge(self, user: str, query: Query, body: Any, n: str) -> Answer:
        pr = self._pr(int(n))
        if pr["state"] != "open":
            return 405, {"message": "Pull Request is not mergeable"}, {}
        if body.get("sha") and body["sha"] != pr["head"]["sha"]:
            return 409, {"message": "Head branch was modified. Review and try the merge again."}, {}
        for check in self.required:
            if self.checks.get(pr["head"]["sha"]) != "success":
                return 405, {"message": f'Required status check "{check}" is expected.'}, {}
        if len(self.approvers(int(n))) < self.required_approvals:
            count = self.required_approvals
            return (
                405,
                {"message": f"At least {count} approving review is required by reviewers with write access."},
                {},
            )
        repo = self._clone
        repo.git.fetch("-q", "origin")
        repo.git.checkout("-q", "-B", "main", "origin/main")
        message = body.get("commit_title") or f"Merge pull request #{n}"
        if body.get("commit_message"):
            message += "\n\n" + body["commit_message"]
        try:
            repo.git.merge("--no-ff", "-q", "-m", message, f"origin/{pr['head']['ref']}")
        except git.GitCommandError:
            repo.git.merge("--abort")
            return 405, {"message": "Pull Request is not mergeable"}, {}
        repo.git.push("-q", "origin", "main")
        sha = repo.head.commit.hexsha
        pr.update(state="closed", merged=True, merged_at=_now(), merge_commit_sha=sha)
        self._event(int(n), user, "merged", sha)
        self._event(int(n), user, "closed", None)
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}

    def _event(self, number: int, user: str, event: str, commit: str | None) -> None:
        """A state-change event, as `GET /repos/{owner}/{repo}/issues/{n}/timeline` lists it."""
        self.events.setdefault(number, []).append(
            {
                "id": 9000 + sum(len(v) for v in self.events.values()),
                "node_id": f"E_{event}",
                "url": f"https://api.github.example/repos/{self.repository}/issues/events/{number}",
                "actor": gh.user(user),
                "event": event,
                "commit_id": commit,
                "commit_url": None,
                "created_at": _now(),
                "performed_via_github_app": None,
            }
        )

    def _timeline(self, user: str, query: Query, body: Any, n: str) -> Answer:
        return self._page(self.events.get(int(n), []), query, f"/issues/{n}/timeline")

    def approvers(self, number: int) -> list[str]:
        """Who approves PR `number` as GitHub counts it: each reviewer's latest review that is not a
        comment, when it is APPROVED."""
        latest: dict[str, str] = {}
        for review in self.reviews.get(number, []):
            if review["state"] != "COMMENTED":
                latest[review["user"]["login"]] = review["state"]
        return sorted(login for login, state in latest.items() if state == "APPROVED")

    def _list_reviews(self, user: str, query: Query, body: Any, n: str) -> Answer:
        found = [_review_out(r, int(n)) for r in self.reviews.get(int(n), [])]
        return self._page(found, query, f"/pulls/{n}/reviews")

    def _create_review(self, user: str, query: Query, body: Any, n: str) -> Answer:
        states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
        pr = self._pr(int(n))
        review = {
            "id": 1000 + sum(len(v) for v in self.reviews.values()),
            "user": {"login": user},
            "state": states[body["event"]],
            "body": body.get("body") or "",
            "commit_id": body.get("commit_id") or pr["head"]["sha"],
            "submitted_at": _now(),
        }
        self.reviews.setdefault(int(n), []).append(review)
        return 200, _review_out(review, int(n)), {}

    def _list_comments(self, user: str, query: Query, body: Any, n: str) -> Answer:
        found = [
            gh.issue_comment(c["id"], c["body"], int(n), c["user"]["login"]) for c in self.comments.get(int(n), [])
        ]
        return self._page(found, query, f"/issues/{n}/comments")

    def _create_comment(self, user: str, query: Query, body: Any, n: str) -> Answer:
        comment = {
            "id": 5000 + sum(len(v) for v in self.comments.values()),
            "body": body["body"],
            "user": {"login": user},
        }
        self.comments.setdefault(int(n), []).append(comment)
        return 201, gh.issue_comment(comment["id"], comment["body"], int(n), user), {}

    def _labels(self, user: str, query: Query, body: Any, n: str) -> Answer:
        pr = self.pulls[int(n)]
        pr["labels"] = sorted({*(x["name"] for x in pr["labels"]), *body["labels"]})
        pr["labels"] = [{"name": x} for x in pr["labels"]]
        return 200, [gh.label(x["name"], i) for i, x in enumerate(pr["labels"], 1)], {}

    def _status(self, user: str, query: Query, body: Any, sha: str) -> Answer:
        state = self.checks.get(sha, "pending")
        return 200, gh.combined_status(sha, dict.fromkeys(self.required, state)) | {"state": state}, {}

    def _check_runs(self, user: str, query: Query, body: Any, sha: str) -> Answer:
        return 200, {"total_count": 0, "check_runs": []}, {}

    def _commit(self, user: str, query: Query, body: Any, sha: str) -> Answer:
        """GET /repos/{owner}/{repo}/commits/{ref}: the commit's git data, and as `author` and
        `committer` the account each email belongs to (null when none does), as GitHub answers."""
        fields = "%H%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%T%x1f%P%x1f%B"
        try:
            out = git.Repo(self.origin).git.show("-s", f"--format={fields}", f"{sha}^{{commit}}", "--")
        except git.GitCommandError:
            return 422, {"message": f"No commit found for SHA: {sha}", "documentation_url": DOCS}, {}
        full, an, ae, ad, cn, ce, cd, tree, parents, message = out.split("\x1f")
        api = f"https://api.github.example/repos/{self.repository}"

        def account(email: str) -> dict[str, Any] | None:
            login = self.accounts.get(email.lower())
            if login is None:
                return None
            return gh.user(login, int(hashlib.sha1(login.encode()).hexdigest()[:7], 16))

        return (
            200,
            {
                "sha": full,
                "node_id": "C_" + full[:20],
                "commit": {
                    "author": {"name": an, "email": ae, "date": ad},
                    "committer": {"name": cn, "email": ce, "date": cd},
                    "message": message.rstrip("\n"),
                    "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                    "url": f"{api}/git/commits/{full}",
                    "comment_count": 0,
                    "verification": {
                        "verified": False,
                        "reason": "unsigned",
                        "signature": None,
                        "payload": None,
                        "verified_at": None,
                    },
                },
                "url": f"{api}/commits/{full}",
                "html_url": f"https://github.example/{self.repository}/commit/{full}",
                "comments_url": f"{api}/commits/{full}/comments",
                "author": account(ae),
                "committer": account(ce),
                "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in parents.split()],
                "stats": {"total": 0, "additions": 0, "deletions": 0},
                "files": [],
            },
            {},
        )

    # ---------------------------------------------------------------- for tests

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls.values() if p["state"] == "open"]


def _review_out(review: dict[str, Any], number: int) -> dict[str, Any]:
    """A review as GitHub's description has it, from the stand-in's record (or a test's) of it."""
    return gh.review(
        review["id"],
        review["user"]["login"],
        review["state"],
        review["commit_id"],
        number,
        review.get("body") or "",
        submitted_at=review["submitted_at"],
    )


def _as_of(version: str, payload: Any) -> Any:
    """An answer as API `version` shapes it: under 2026-03-10 a pull request has no `merge_commit_sha`."""
    if version != WITHOUT_MERGE_COMMIT_SHA:
        return payload
    if isinstance(payload, list):
        return [_as_of(version, item) for item in payload]
    if isinstance(payload, dict) and "head" in payload and "base" in payload:
        return {k: v for k, v in payload.items() if k != "merge_commit_sha"}
    return payload


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
