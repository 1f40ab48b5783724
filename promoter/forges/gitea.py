"""Gitea and Forgejo (API v1): GitHub's model with its own paths, auth header and merge call.

The token needs the scopes `write:repository` and `write:issue` (labels and comments). Where Gitea
differs from GitHub: no check runs (CI reports commit statuses, whose field is `status`), PRs are
not filterable by head (the open ones are listed and filtered here), a list's page size is `limit`,
and a merge is `POST …/pulls/N/merge` with `Do`, answered without a body.

Reviews: Gitea marks each review `official` when it counts toward the branch's required approvals (a
reviewer allowed to approve, and only their latest approve or reject review: submitting another
one clears the flag on their earlier ones), `stale` when given on an older head and `dismissed` when
dismissed. Only an official approval that is neither stale nor dismissed counts here too: a stale one
is left out, a dismissed one is `dismissed`, and one Gitea does not call official is `unapproved`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from promoter.errors import TemporaryError
from promoter.forges import Review, register
from promoter.forges.github import GitHubForge

REVIEW_STATES = {
    "APPROVED": "approved",
    "REQUEST_CHANGES": "changes_requested",
    "COMMENT": "commented",
    "PENDING": "pending",
    "REQUEST_REVIEW": "requested",
}


class GiteaForge(GitHubForge):
    name = "Gitea"
    scopes = "the scopes write:repository and write:issue"
    page_size_param = "limit"  # Gitea's list parameters are `page` and `limit`
    poll_budget = 36000.0  # requests an hour for the PR watchers: Gitea limits no API rate unless told to
    # Gitea's refusals of a merge that branch protection holds back (services/pull CheckPullBranchProtections:
    # "Not all required status checks successful", "Does not have enough approvals", "There are requested
    # changes", "There are official review requests", "The head branch is behind the base branch",
    # "Changed protected files")
    gate_words = ("status check", "approvals", "requested changes", "review requests", "behind the base", "protected")

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = "http://localhost:3000",
        merge_method: str = "merge",
        **kwargs: Any,
    ) -> None:
        base = api_url.rstrip("/")
        kwargs.setdefault("api_version", None)  # GitHub's version header means nothing to Gitea
        super().__init__(
            repository, token, base if base.endswith("/api/v1") else base + "/api/v1", merge_method, **kwargs
        )

    def auth(self, token: str) -> str:
        return f"token {token}"

    def _by_head(self, head: str) -> dict[str, str]:
        return {"state": "all"}  # no head filter: every PR is listed and filtered by its head

    def _label(self, number: int, labels: list[str]) -> None:
        """Gitea adds labels by ID: the repository's labels are looked up, missing ones created."""
        ids = {lb["name"]: lb["id"] for lb in self.api.paginate(f"{self.repo_path}/labels", what="labels")}
        for name in labels:
            if name not in ids:
                made = self.api.request(
                    "POST", f"{self.repo_path}/labels", {"name": name, "color": "#5319e7"}, what=f"label {name}"
                )
                ids[name] = made.body["id"]
        self.api.request(
            "POST",
            f"{self.repo_path}/issues/{number}/labels",
            {"labels": [ids[n] for n in labels]},
            what=f"labels of PR #{number}",
        )

    review_states = REVIEW_STATES

    def _review(self, r: dict[str, Any]) -> Review | None:
        if r.get("stale"):  # given on an older head
            return None
        review = super()._review(r)
        if review is None:
            return None
        if r.get("dismissed"):
            return dataclasses.replace(review, state="dismissed")
        if review.state == "approved" and r.get("official") is False:  # counts toward no approval on Gitea
            return dataclasses.replace(review, state="unapproved")
        return review

    def _merged_as(self, number: int) -> str:
        """Gitea's PR always names its merge commit once merged: none yet is asked again later."""
        raise TemporaryError(f"{self.name} shows PR #{number} merged but names no merge commit yet; asking again")

    def comments(self, number: int) -> list[str]:
        """Every comment of the PR, in one answer: Gitea's issueGetComments takes no paging (only `since`
        and `before`), so `limit` would be a parameter its description does not have."""
        answer = self.api.request("GET", f"{self.repo_path}/issues/{number}/comments", what=f"comments of PR #{number}")
        return (
            [c.get("body") or "" for c in answer.body if isinstance(c, dict)] if isinstance(answer.body, list) else []
        )

    def _why_blocked(self, pr: Any, answer: str) -> Exception:
        """As GitHub's, and Gitea's "Please try again later" (the PR's mergeability is still being
        checked) is waited out, not a conflict."""
        reason = super()._why_blocked(pr, answer)
        if not isinstance(reason, TemporaryError) and "try again later" in answer.lower():
            return TemporaryError(f"{self.name} is still checking whether PR #{pr.number} can merge: {answer}")
        return reason

    def checks(self, sha: str) -> list[str]:
        status = self.api.request("GET", f"{self.repo_path}/commits/{sha}/status", what=f"statuses of {sha[:7]}")
        return [
            f"{s['context']} ({s.get('status') or s.get('state')})"
            for s in (status.body or {}).get("statuses") or []
            if (s.get("status") or s.get("state")) != "success"
        ]

    def _commit_path(self, sha: str) -> str:
        """Gitea's commit (its `author` and `committer` accounts, as GitHub's) is under `git/`."""
        return f"{self.repo_path}/git/commits/{sha}"

    _commit_query = {"stat": "false", "verification": "false", "files": "false"}  # only the accounts are read

    def _merge_call(self, number: int, title: str, message: str, expected_head: str | None, method: str) -> str | None:
        """Merge; Gitea answers without a body, so the merge commit is read from the PR afterwards."""
        payload: dict[str, Any] = {"Do": method, "MergeTitleField": title, "MergeMessageField": message}
        if expected_head:
            payload["head_commit_id"] = expected_head
        self.api.request("POST", f"{self.repo_path}/pulls/{number}/merge", payload, what=f"merge of PR #{number}")
        return None


@register("gitea")
def _factory(repo: object = None, **settings: Any) -> GiteaForge:
    return GiteaForge(**settings)


register("forgejo")(_factory)
