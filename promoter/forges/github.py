"""GitHub (REST v3), with a personal access token or a GitHub App installation token.

The token needs: classic PAT `repo`; fine-grained PAT or App: Pull requests read & write, Contents
read & write, Issues write (labels, comments), Commit statuses and Checks read. Gitea and Forgejo
speak a dialect of the same API (see gitea.py).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Any

from promoter.errors import BadInput, Conflict, NotFound, TemporaryError
from promoter.forges import Review, already_merged, newest, pr_state, register
from promoter.forges.http import ApiClient, Blocked
from promoter.models import PullRequest

API_VERSION = "2022-11-28"  # the REST API version every request pins (X-GitHub-Api-Version)
BODY_LIMIT = 65536  # characters GitHub accepts in a PR body or comment
MAX_CACHED_COMMITS = 100_000  # commits whose logins are kept (a commit never changes)
TRUNCATED = "\n\n… (truncated to fit the forge's limit; the full report is in the promotion's result)"
REVIEW_STATES = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
    "DISMISSED": "dismissed",
    "PENDING": "pending",
}
# review states after which a reviewer's earlier approval no longer stands: GitHub counts a reviewer's
# latest review that is not a comment (a COMMENTED review changes nothing)
TAKES_BACK = ("changes_requested", "dismissed")


def fit(text: str, limit: int = BODY_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


class GitHubForge:
    name = "GitHub"
    authenticates = True  # a review's author is the login the forge authenticated (the token's users)
    pins_reviews = True  # every review carries the commit it was given on (`commit_id`); Gitea's too
    scopes = "`repo` (classic) or Pull requests, Contents and Issues read & write (fine-grained, App)"
    page_size_param = "per_page"  # the list's page size, as the forge names it (Gitea: limit)
    poll_budget: float | None = (
        4000.0  # requests an hour the PR watchers may spend (of the token's 5,000: the rest for promotions' own)
    )

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = "https://api.github.com",
        merge_method: str = "merge",
        client: ApiClient | None = None,
        api_version: str | None = API_VERSION,
    ) -> None:
        if repository.count("/") != 1:
            raise NotFound(f"the {self.name} repository must be OWNER/NAME, not {repository!r}")
        if merge_method not in ("merge", "squash", "rebase"):
            raise Conflict(f"merge method must be merge, squash or rebase, not {merge_method!r}")
        self.repository = repository
        self.owner = repository.split("/")[0]
        self.merge_method = merge_method
        self.api = client or ApiClient(self.name, api_url, self.auth(token), scope_hint=self.scopes)
        self.api.page_size_param = self.page_size_param
        if api_version is not None:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", api_version):
                raise BadInput(
                    f"PROMOTER_GITHUB_API_VERSION must be a GitHub REST API version such as {API_VERSION}, "
                    f"not {api_version[:40]!r}"
                )
            self.api.headers["X-GitHub-Api-Version"] = api_version
        self.repo_path = f"/repos/{repository}"
        self._logins: dict[str, list[str]] = {}  # commit -> its logins (a commit never changes)

    def auth(self, token: str) -> str:
        return f"Bearer {token}"

    # ---------------------------------------------------------------- reading

    def _pr(self, data: dict[str, Any], merge_commit: str | None = None) -> PullRequest:
        """The PR of an answer; its merge commit is `merge_commit` (the merge's own answer) or the PR's
        `merge_commit_sha`, which GitHub's API version 2026-03-10 no longer has (None then)."""
        state = pr_state("merged" if data.get("merged") or data.get("merged_at") else str(data["state"]))
        return PullRequest(
            number=data["number"],
            title=data["title"],
            body=data.get("body") or "",
            head=data["head"]["ref"],
            base=data["base"]["ref"],
            state=state,
            url=data["html_url"],
            head_sha=data["head"]["sha"],
            merge_commit=(merge_commit or data.get("merge_commit_sha")) if state == "merged" else None,
        )

    def _by_head(self, head: str) -> dict[str, str]:
        """The list query that narrows PRs to a head branch (GitHub filters by `owner:branch`)."""
        return {"head": f"{self.owner}:{head}", "state": "all"}

    def find_pull_request(self, head: str) -> PullRequest | None:
        return newest(
            [
                self._pr(p)
                for p in self.api.paginate(f"{self.repo_path}/pulls", self._by_head(head), what=f"PRs of {head}")
                if p["head"]["ref"] == head
            ]
        )

    def list_open(self, head_prefix: str) -> list[PullRequest]:
        return [
            self._pr(p)
            for p in self.api.paginate(f"{self.repo_path}/pulls", {"state": "open"}, what="open PRs")
            if p["head"]["ref"].startswith(head_prefix)
        ]

    def get_pull_request(self, number: int) -> PullRequest:
        pr = self._pr(self.api.request("GET", f"{self.repo_path}/pulls/{number}", what=f"PR #{number}").body)
        if pr.state == "merged" and pr.merge_commit is None:
            pr = pr.model_copy(update={"merge_commit": self._merged_as(number)})
        return pr

    def _merged_as(self, number: int) -> str:
        """The merge commit of a merged PR whose answer names none: the `commit_id` of the `merged` event
        of its timeline (`GET /repos/{owner}/{repo}/issues/{n}/timeline`, a state-change event), the newest."""
        merged = [
            str(e["commit_id"])
            for e in self.api.paginate(f"{self.repo_path}/issues/{number}/timeline", what=f"timeline of PR #{number}")
            if isinstance(e, dict) and e.get("event") == "merged" and e.get("commit_id")
        ]
        if not merged:
            raise TemporaryError(f"{self.name} shows PR #{number} merged but names no merge commit yet; asking again")
        return merged[-1]

    review_states = REVIEW_STATES

    def _review(self, r: dict[str, Any]) -> Review | None:
        state = str(r.get("state", ""))
        return Review(
            id=str(r["id"]),
            author=(r.get("user") or {}).get("login", ""),
            state=self.review_states.get(state, state.lower()),
            at=_time(r.get("submitted_at")),
            commit=r.get("commit_id"),
            body=r.get("body") or "",
        )

    def reviews(self, number: int) -> list[Review]:
        """The PR's reviews, oldest first, as the gate takes them in: an approval followed by the same
        reviewer's later request for changes (or a dismissed later review) no longer stands, and is
        `unapproved`; a later comment changes nothing."""
        found = (
            self._review(r)
            for r in self.api.paginate(f"{self.repo_path}/pulls/{number}/reviews", what=f"reviews of PR #{number}")
        )
        return latest_stands([r for r in found if r is not None])

    def checks(self, sha: str) -> list[str]:
        """Commit statuses and check runs of `sha` that are not successful, as `name (state)`."""
        status = self.api.request("GET", f"{self.repo_path}/commits/{sha}/status", what=f"statuses of {sha[:7]}")
        pending = [
            f"{s['context']} ({s['state']})"
            for s in (status.body or {}).get("statuses", [])
            if s.get("state") != "success"
        ]
        runs = self.api.request("GET", f"{self.repo_path}/commits/{sha}/check-runs", what=f"checks of {sha[:7]}")
        pending += [
            f"{r['name']} ({r.get('conclusion') or r.get('status')})"
            for r in (runs.body or {}).get("check_runs", [])
            if r.get("conclusion") != "success"
        ]
        return pending

    def commit_logins(self, sha: str) -> list[str]:
        """The logins GitHub ties to commit `sha`: its `author` and `committer` accounts (each null
        when the commit's email belongs to no account), from `GET /repos/{owner}/{repo}/commits/{sha}`.
        Cached by commit; an error raises (never an empty answer)."""
        known = self._logins.get(sha)
        if known is None:
            answer = self.api.request(
                "GET", self._commit_path(sha), params=self._commit_query, what=f"commit {sha[:7]}"
            )
            if not isinstance(answer.body, dict):
                raise TemporaryError(f"{self.name} answered commit {sha[:7]} without a commit: {str(answer.body)[:80]}")
            known = [
                str(account["login"])
                for account in (answer.body.get("author"), answer.body.get("committer"))
                if isinstance(account, dict) and account.get("login")
            ]
            if len(self._logins) >= MAX_CACHED_COMMITS:
                self._logins.clear()  # bounded: asked again when needed
            self._logins[sha] = known
        return list(known)

    def _commit_path(self, sha: str) -> str:
        return f"{self.repo_path}/commits/{sha}"

    _commit_query: dict[str, str] | None = None

    # ---------------------------------------------------------------- writing

    def open_pull_request(
        self, head: str, title: str, body: str, base: str = "main", labels: list[str] | None = None
    ) -> PullRequest:
        existing = self.find_pull_request(head)
        if existing is None or existing.state != "open":
            try:
                data = self.api.request(
                    "POST",
                    f"{self.repo_path}/pulls",
                    {"title": title, "head": head, "base": base, "body": fit(body)},
                    what=f"a PR from {head}",
                ).body
                existing = self._pr(data)
            except Conflict:  # "A pull request already exists": a retry after a lost answer
                existing = self.find_pull_request(head)
                if existing is None or existing.state != "open":
                    raise
        if labels:
            self._label(existing.number, labels)
        return existing

    def _label(self, number: int, labels: list[str]) -> None:
        self.api.request(
            "POST", f"{self.repo_path}/issues/{number}/labels", {"labels": labels}, what=f"labels of PR #{number}"
        )

    def update_body(self, number: int, body: str) -> PullRequest:
        return self._pr(
            self.api.request(
                "PATCH", f"{self.repo_path}/pulls/{number}", {"body": fit(body)}, what=f"PR #{number}"
            ).body
        )

    def comments(self, number: int) -> list[str]:
        return [
            c.get("body") or ""
            for c in self.api.paginate(f"{self.repo_path}/issues/{number}/comments", what=f"comments of PR #{number}")
        ]

    def comment(self, number: int, body: str) -> None:
        self.api.request(
            "POST", f"{self.repo_path}/issues/{number}/comments", {"body": fit(body)}, what=f"a comment on PR #{number}"
        )

    def merge(
        self, number: int, message: str | None = None, expected_head: str | None = None, method: str | None = None
    ) -> PullRequest:
        """Merge once: a PR already merged is returned as it is; a blocked merge is reported as blocked."""
        pr = self.get_pull_request(number)
        if already_merged(pr, expected_head):
            return pr
        title, _, rest = (message or pr.title).partition("\n")
        try:
            sha = self._merge_call(number, title, rest.strip("\n"), expected_head, method or self.merge_method)
        except Conflict as e:
            again = self.get_pull_request(number)
            if again.state == "merged":  # merged by an earlier attempt whose answer was lost
                return again
            raise self._why_blocked(again, str(e)) from None
        if sha is None:
            return self.get_pull_request(number)
        merged = self.api.request("GET", f"{self.repo_path}/pulls/{number}", what=f"PR #{number}").body
        return self._pr(merged, merge_commit=sha)

    def _merge_call(self, number: int, title: str, message: str, expected_head: str | None, method: str) -> str | None:
        """Merge; the merge commit's sha, from the answer (`{"sha", "merged", "message"}`)."""
        payload: dict[str, Any] = {"merge_method": method, "commit_title": title, "commit_message": message}
        if expected_head:
            payload["sha"] = expected_head  # GitHub refuses (409) if the head moved meanwhile
        answer = self.api.request(
            "PUT", f"{self.repo_path}/pulls/{number}/merge", payload, what=f"merge of PR #{number}"
        ).body
        sha = answer.get("sha") if isinstance(answer, dict) else None
        return str(sha) if sha else None

    def _why_blocked(self, pr: PullRequest, answer: str) -> Exception:
        if "head branch was modified" in answer.lower() or "merge conflict" in answer.lower():
            return Conflict(answer)
        failing = self.checks(pr.head_sha or "") if pr.head_sha else []
        if failing:
            return Blocked(f"PR #{pr.number} is blocked by required check {', '.join(failing)}")
        if any(word in answer.lower() for word in self.gate_words):
            return Blocked(f"PR #{pr.number} is blocked by branch protection: {answer}")
        return Conflict(answer)

    # words of a merge refusal that branch protection made (GitHub: "Required status check …",
    # "At least 1 approving review is required …", "Protected branch …")
    gate_words: tuple[str, ...] = ("required", "protected", "review")

    def close(self, number: int, comment: str = "") -> PullRequest:
        """Close with a comment, once: a retry finds the comment (or the closed PR) and does not repeat it."""
        pr = self.get_pull_request(number)
        if pr.state != "open":
            return pr
        if comment and fit(comment) not in self.comments(number):
            self.comment(number, comment)
        return self._pr(
            self.api.request(
                "PATCH", f"{self.repo_path}/pulls/{number}", {"state": "closed"}, what=f"PR #{number}"
            ).body
        )


def latest_stands(reviews: list[Review]) -> list[Review]:
    """`reviews` (oldest first) with each approval that a later review of the same reviewer takes back
    (`TAKES_BACK`) marked `unapproved`: a reviewer's latest review is the one that counts."""
    out = list(reviews)
    for i, review in enumerate(out):
        if review.state == "approved" and any(
            later.author == review.author and later.state in TAKES_BACK for later in reviews[i + 1 :]
        ):
            out[i] = dataclasses.replace(review, state="unapproved")
    return out


def _time(text: str | None) -> datetime:
    return datetime.fromisoformat((text or "1970-01-01T00:00:00Z").replace("Z", "+00:00"))


@register("github")
def _factory(repo: object = None, **settings: Any) -> GitHubForge:
    return GitHubForge(**settings)
