"""Gitea and Forgejo (API v1): GitHub's model with its own paths, auth header and merge call.

The token needs the scopes `write:repository` and `write:issue` (labels and comments). Where Gitea
differs from GitHub: no check runs (CI reports commit statuses, whose field is `status`), PRs are
not filterable by head (the open ones are listed and filtered here), and a merge is
`POST …/pulls/N/merge` with `Do`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

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

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = "http://localhost:3000",
        merge_method: str = "merge",
        **kwargs: Any,
    ) -> None:
        base = api_url.rstrip("/")
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
        return dataclasses.replace(review, state="dismissed") if review and r.get("dismissed") else review

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

    def _merge_call(self, number: int, title: str, message: str, expected_head: str | None, method: str) -> None:
        payload: dict[str, Any] = {"Do": method, "MergeTitleField": title, "MergeMessageField": message}
        if expected_head:
            payload["head_commit_id"] = expected_head
        self.api.request("POST", f"{self.repo_path}/pulls/{number}/merge", payload, what=f"merge of PR #{number}")


@register("gitea")
def _factory(repo: object = None, **settings: Any) -> GiteaForge:
    return GiteaForge(**settings)


register("forgejo")(_factory)
