"""GitLab (REST v4): merge requests, notes, approvals.

The token (personal, project or group access token) needs the scope `api` and the role Developer or
above (Maintainer where protected branches say so). A merge request is this module's pull request:
its `iid` is the PR number.

Reviews: GitLab approvals carry no commit, so each approval is read from the MR's system notes
("approved this merge request", with its time) and tied to the MR version (the head) that was
current at that moment. A commit pushed afterwards therefore voids it here as on the other forges,
whatever the project's own "reset approvals on push" setting says.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from typing import Any

from promoter.errors import Conflict, NotFound
from promoter.forges import Review, already_merged, newest, pr_state, register
from promoter.forges.github import _time, fit
from promoter.forges.http import ApiClient, Blocked
from promoter.models import PullRequest

BODY_LIMIT = 1_000_000  # GitLab's description limit (characters)
STATES = {"opened": "open", "closed": "closed", "locked": "closed", "merged": "merged"}
# detailed_merge_status values that mean "not now, maybe later" rather than "never"
BLOCKING = {
    "ci_must_pass": "a required pipeline",
    "ci_still_running": "a running pipeline",
    "not_approved": "missing GitLab approvals",
    "blocked_status": "a blocking merge request",
    "discussions_not_resolved": "unresolved discussions",
    "draft_status": "draft status",
    "external_status_checks": "an external status check",
    "status_checks_must_pass": "a status check",
    "requested_changes": "requested changes",
    "checking": "GitLab still checking",
}


class GitLabForge:
    name = "GitLab"
    authenticates = True  # a review's author is the login the forge authenticated
    # an approval note carries no commit: it is inferred from the MR's versions, and may be unknown
    pins_reviews = False
    scopes = "the scope `api` and the Developer role (Maintainer on protected branches)"

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = "https://gitlab.com",
        merge_method: str = "merge",
        client: ApiClient | None = None,
    ) -> None:
        if "/" not in repository:
            raise NotFound(f"the GitLab project must be GROUP/PROJECT, not {repository!r}")
        base = api_url.rstrip("/")
        base = base if base.endswith("/api/v4") else base + "/api/v4"
        self.repository = repository
        self.squash = merge_method == "squash"
        self.api = client or ApiClient(self.name, base, f"Bearer {token}", scope_hint=self.scopes)
        self.project = f"/projects/{urllib.parse.quote(repository, safe='')}"

    def _mr(self, data: dict[str, Any]) -> PullRequest:
        state = pr_state(STATES.get(str(data["state"]), str(data["state"])))
        merged = data.get("merge_commit_sha") or data.get("squash_commit_sha")
        return PullRequest(
            number=data["iid"],
            title=data["title"],
            body=data.get("description") or "",
            head=data["source_branch"],
            base=data["target_branch"],
            state=state,
            url=data["web_url"],
            head_sha=data.get("sha"),
            merge_commit=merged if state == "merged" else None,
        )

    def _path(self, number: int, tail: str = "") -> str:
        return f"{self.project}/merge_requests/{number}{tail}"

    def find_pull_request(self, head: str) -> PullRequest | None:
        return newest(
            [
                self._mr(m)
                for m in self.api.paginate(
                    f"{self.project}/merge_requests",
                    {"source_branch": head, "state": "all"},
                    what=f"merge requests of {head}",
                )
            ]
        )

    def list_open(self, head_prefix: str) -> list[PullRequest]:
        return [
            self._mr(m)
            for m in self.api.paginate(
                f"{self.project}/merge_requests", {"state": "opened"}, what="open merge requests"
            )
            if str(m["source_branch"]).startswith(head_prefix)
        ]

    def get_pull_request(self, number: int) -> PullRequest:
        return self._mr(self.api.request("GET", self._path(number), what=f"merge request !{number}").body)

    def open_pull_request(
        self, head: str, title: str, body: str, base: str = "main", labels: list[str] | None = None
    ) -> PullRequest:
        existing = self.find_pull_request(head)
        if existing is not None and existing.state == "open":
            return existing
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": fit(body, BODY_LIMIT),
            "labels": ",".join(labels or []),
        }
        try:
            return self._mr(
                self.api.request(
                    "POST", f"{self.project}/merge_requests", payload, what=f"a merge request from {head}"
                ).body
            )
        except Conflict:  # "Another open merge request already exists for this source branch"
            again = self.find_pull_request(head)
            if again is None or again.state != "open":
                raise
            return again

    def update_body(self, number: int, body: str) -> PullRequest:
        return self._mr(
            self.api.request(
                "PUT", self._path(number), {"description": fit(body, BODY_LIMIT)}, what=f"merge request !{number}"
            ).body
        )

    def _notes(self, number: int) -> list[dict[str, Any]]:
        return list(
            self.api.paginate(
                self._path(number, "/notes"),
                {"sort": "asc", "order_by": "created_at"},
                what=f"notes of merge request !{number}",
            )
        )

    def comments(self, number: int) -> list[str]:
        return [n.get("body") or "" for n in self._notes(number) if not n.get("system")]

    def comment(self, number: int, body: str) -> None:
        self.api.request(
            "POST",
            self._path(number, "/notes"),
            {"body": fit(body, BODY_LIMIT)},
            what=f"a note on merge request !{number}",
        )

    def reviews(self, number: int) -> list[Review]:
        versions = sorted(
            (
                (_time(v["created_at"]), v["head_commit_sha"])
                for v in self.api.paginate(self._path(number, "/versions"), what=f"versions of merge request !{number}")
            ),
            key=lambda v: v[0],
        )
        out = []
        for note in self._notes(number):
            body = str(note.get("body") or "")
            if not note.get("system"):
                continue
            state = (
                "approved"
                if body.startswith("approved this merge request")
                else "unapproved"
                if body.startswith("unapproved this merge request")
                else "changes_requested"
                if body.startswith("requested changes")
                else None
            )
            if state is None:
                continue
            at = _time(note.get("created_at"))
            out.append(
                Review(
                    id=str(note["id"]),
                    author=(note.get("author") or {}).get("username", ""),
                    state=state,
                    at=at,
                    commit=_head_at(versions, at),
                    body="",
                )
            )
        return out

    def commit_logins(self, sha: str) -> list[str]:
        """None: GitLab's commit API reports the commit's names and emails only, never an account
        (the emails and names are read from Git itself)."""
        return []

    def checks(self, sha: str) -> list[str]:
        """Commit statuses of `sha` (pipelines and external checks) that are not successful."""
        return [
            f"{s['name']} ({s['status']})"
            for s in self.api.paginate(
                f"{self.project}/repository/commits/{sha}/statuses", what=f"statuses of {sha[:7]}"
            )
            if s.get("status") != "success"
        ]

    def merge(
        self, number: int, message: str | None = None, expected_head: str | None = None, method: str | None = None
    ) -> PullRequest:
        mr = self.get_pull_request(number)
        if already_merged(mr, expected_head, "merge request !"):
            return mr
        squash = self.squash if method is None else method == "squash"
        payload: dict[str, Any] = {
            "merge_commit_message": message or mr.title,
            "squash": squash,
            "should_remove_source_branch": False,
        }
        if expected_head:
            payload["sha"] = expected_head
        try:
            self.api.request("PUT", self._path(number, "/merge"), payload, what=f"merge of merge request !{number}")
        except Conflict as e:
            data = self.api.request("GET", self._path(number), what=f"merge request !{number}").body
            if STATES.get(data.get("state")) == "merged":
                return self._mr(data)
            status = str(data.get("detailed_merge_status") or "")
            if status in BLOCKING:
                pipeline = data.get("head_pipeline") or {}
                detail = f" (pipeline #{pipeline['id']} {pipeline.get('status')})" if pipeline.get("id") else ""
                if status in ("external_status_checks", "status_checks_must_pass") and data.get("sha"):
                    detail = f": {', '.join(self.checks(str(data['sha']))) or 'none reported yet'}"
                raise Blocked(f"merge request !{number} is blocked by {BLOCKING[status]}{detail}") from None
            raise Conflict(f"{e} (detailed_merge_status: {status or 'unknown'})") from None
        return self.get_pull_request(number)

    def close(self, number: int, comment: str = "") -> PullRequest:
        mr = self.get_pull_request(number)
        if mr.state != "open":
            return mr
        if comment and fit(comment, BODY_LIMIT) not in self.comments(number):
            self.comment(number, comment)
        return self._mr(
            self.api.request("PUT", self._path(number), {"state_event": "close"}, what=f"merge request !{number}").body
        )


def _head_at(versions: list[tuple[datetime, str]], at: datetime) -> str | None:
    """The MR's head when `at` happened: the newest version created at or before it."""
    head = None
    for created, sha in versions:
        if created <= at:
            head = sha
    return head


@register("gitlab")
def _factory(repo: object = None, **settings: Any) -> GitLabForge:
    return GitLabForge(**settings)
