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

import logging
import urllib.parse
from datetime import datetime
from typing import Any

from promoter.errors import Conflict, NotFound, TemporaryError
from promoter.forges import Review, already_merged, newest, pr_state, register
from promoter.forges.github import _time, fit
from promoter.forges.http import ApiClient, Blocked, Unauthorized
from promoter.models import PullRequest

log = logging.getLogger("promoter.forges.gitlab")

BODY_LIMIT = 1_000_000  # GitLab's description limit (characters)
STATES = {"opened": "open", "closed": "closed", "locked": "closed", "merged": "merged"}
# REST's `detailed_merge_status` (docs/api/merge_requests.md, "Merge status") after a refused merge:
# the forge decided "not now": held back until a pipeline, a person or a check lets it through
BLOCKING = {
    "ci_must_pass": "a required pipeline",
    "ci_still_running": "a running pipeline",
    "not_approved": "missing GitLab approvals",
    "requested_changes": "requested changes",
    "merge_request_blocked": "a blocking merge request",
    "discussions_not_resolved": "unresolved discussions",
    "draft_status": "draft status",
    "status_checks_must_pass": "a status check",
    "jira_association_missing": "a missing Jira issue reference",
    "merge_time": "its merge-after time",
    "security_policy_violations": "a security policy",
    "locked_paths": "locked paths",
    "locked_lfs_files": "locked LFS files",
    # the names GitLab's REST answered before 16.x (and GraphQL still uses) for the same two
    "blocked_status": "a blocking merge request",
    "external_status_checks": "a status check",
}
STATUS_CHECKS = ("status_checks_must_pass", "external_status_checks")
# GitLab has not decided yet: asked again (with backoff) until it has, never taken for a refusal
STILL_CHECKING = {
    "unchecked": "Git has not yet tested if a valid merge is possible",
    "checking": "Git is testing if a valid merge is possible",
    "preparing": "the merge request diff is being created",
    "approvals_syncing": "the merge request's approvals are syncing",
}
# 401 on a merge, once the token read the merge request a moment before: GitLab's way of saying "This
# user does not have permission to accept this merge request"
NO_MERGE_PERMISSION = (
    "the token's user may not merge it (GitLab answers 401 to a merge without the permission to merge: "
    "the Developer role, and 'Allowed to merge' on a protected target branch)"
)


class GitLabForge:
    name = "GitLab"
    authenticates = True  # a review's author is the login the forge authenticated
    # an approval note carries no commit: it is inferred from the MR's versions, and may be unknown
    pins_reviews = False
    scopes = "the scope `api` and the Developer role (Maintainer on protected branches)"
    # requests an hour for the PR watchers (GitLab.com allows a user 2,000 a minute; a self-managed one what
    # its admin set, said in the RateLimit-* headers, which slow the polls further)
    poll_budget: float | None = 36000.0

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
        """Merge once. A refusal is sorted by the `detailed_merge_status` GitLab then reports: blocked
        (`Blocked`), still being checked (asked again with backoff until GitLab decides; still
        undecided after the client's attempts, a `TemporaryError`), or a conflict."""
        mr = self.get_pull_request(number)
        if already_merged(mr, expected_head, "merge request !"):
            return mr
        squash = self.squash if method is None else method == "squash"
        text = message or mr.title
        payload: dict[str, Any] = {"merge_commit_message": text, "squash": squash, "should_remove_source_branch": False}
        if squash:
            payload["squash_commit_message"] = text  # the squash commit's own message
        if expected_head:
            payload["sha"] = expected_head
        status = ""
        for attempt in range(1, self.api.attempts + 1):
            try:
                self.api.request("PUT", self._path(number, "/merge"), payload, what=f"merge of merge request !{number}")
            except Unauthorized as e:
                if e.status != 401:
                    raise
                raise Unauthorized(f"merge request !{number} was not merged: {NO_MERGE_PERMISSION}", 401) from None
            except Conflict as e:
                data = self.api.request("GET", self._path(number), what=f"merge request !{number}").body
                if STATES.get(data.get("state")) == "merged":
                    return self._mr(data)
                status = str(data.get("detailed_merge_status") or "")
                if status not in STILL_CHECKING:
                    raise self._refusal(number, data, status, str(e)) from None
                self._wait(attempt, number, status)
                continue
            return self.get_pull_request(number)
        raise TemporaryError(
            f"merge request !{number} was not merged: GitLab is still deciding ({status}: {STILL_CHECKING[status]}); "
            "trying again"
        )

    def _wait(self, attempt: int, number: int, status: str) -> None:
        if attempt < self.api.attempts:
            wait = min(8.0, 0.5 * 2 ** (attempt - 1))
            log.info("merge request !%d: GitLab is still deciding (%s); asking again in %.1fs", number, status, wait)
            self.api.wait(wait, f"merge request !{number}")

    def _refusal(self, number: int, data: dict[str, Any], status: str, answer: str) -> Exception:
        """Why GitLab refused the merge, from the merge request's `detailed_merge_status`."""
        if status in BLOCKING:
            pipeline = data.get("head_pipeline") or {}
            detail = f" (pipeline #{pipeline['id']} {pipeline.get('status')})" if pipeline.get("id") else ""
            if status in STATUS_CHECKS and data.get("sha"):
                detail = f": {', '.join(self.checks(str(data['sha']))) or 'none reported yet'}"
            return Blocked(f"merge request !{number} is blocked by {BLOCKING[status]}{detail}")
        return Conflict(f"{answer} (detailed_merge_status: {status or 'unknown'})")

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
