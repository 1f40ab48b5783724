"""The `Forge` protocol and the name -> factory table of its providers.

A provider is one module that registers itself: local (the embedded stack), github, gitlab, gitea.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from promoter.errors import Conflict
from promoter.models import PullRequest, PullRequestState


@dataclass(frozen=True)
class Review:
    id: str  # the forge's id of the review, stable across reads
    author: str  # as the forge authenticated them
    state: str  # approved | changes_requested | commented
    at: datetime
    commit: str | None = None  # the PR head it was given on
    body: str = ""


class Forge(Protocol):
    def open_pull_request(
        self, head: str, title: str, body: str, base: str = "main", labels: list[str] | None = None
    ) -> PullRequest:
        """Open a PR from `head`, or return the open one that already has that head."""
        ...

    def find_pull_request(self, head: str) -> PullRequest | None: ...
    def list_open(self, head_prefix: str) -> list[PullRequest]:
        """Open PRs whose head branch starts with `head_prefix`."""
        ...

    def get_pull_request(self, number: int) -> PullRequest:
        """The PR as the forge has it now; `head_sha` is the branch's current head while it is open."""
        ...

    def update_body(self, number: int, body: str) -> PullRequest: ...
    def comment(self, number: int, body: str) -> None: ...
    def reviews(self, number: int) -> list[Review]: ...
    def merge(
        self, number: int, message: str | None = None, expected_head: str | None = None, method: str | None = None
    ) -> PullRequest:
        """Merge once (`method`: merge or squash; None: the provider's default). With `expected_head`,
        refuse (Conflict) when the PR's head moved past it. A merge that branch protection or a
        required check holds back raises `Blocked`."""
        ...

    def close(self, number: int, comment: str = "") -> PullRequest: ...


@runtime_checkable
class CommitLogins(Protocol):
    """An optional capability of a forge: the accounts it ties to a commit."""

    def commit_logins(self, sha: str) -> list[str]:
        """The logins of the accounts the forge says authored and committed `sha` ([] when it ties the
        commit to none). An error raises: an unanswered question is never an empty answer."""
        ...


def newest(prs: list[PullRequest]) -> PullRequest | None:
    """The PR of a head branch to use: an open one first, else the newest (what the local forge's
    query orders by too)."""
    return max(prs, key=lambda p: (p.state == "open", p.number), default=None)


def already_merged(pr: PullRequest, expected_head: str | None, name: str = "pull request #") -> bool:
    """Before a merge: True when `pr` is merged already (a retry after a lost answer: merge once);
    Conflict when it is closed, or when its head moved past the approved `expected_head`."""
    if pr.state == "merged":
        return True
    if pr.state == "closed":
        raise Conflict(f"{name}{pr.number} is closed; it cannot be merged")
    if expected_head is not None and pr.head_sha != expected_head:
        raise Conflict(
            f"{name}{pr.number} moved to {(pr.head_sha or '?')[:7]} after it was approved at "
            f"{expected_head[:7]}; it was not merged"
        )
    return False


FORGES: dict[str, Callable[..., Forge]] = {}


def register(name: str) -> Callable[[Callable[..., Forge]], Callable[..., Forge]]:
    def deco(factory: Callable[..., Forge]) -> Callable[..., Forge]:
        FORGES[name] = factory
        return factory

    return deco


def make_forge(name: str, **settings: object) -> Forge:
    from promoter.forges import gitea, github, gitlab, local  # noqa: F401  (each registers itself)

    if name not in FORGES:
        from promoter.errors import BadInput

        raise BadInput(f"unknown forge '{name}'; choose one of: {', '.join(sorted(FORGES))}")
    return FORGES[name](**settings)


_PR_STATES: dict[str, PullRequestState] = {"open": "open", "opened": "open", "locked": "open", "merged": "merged"}


def pr_state(value: str) -> PullRequestState:
    """A forge's word for a PR's state, in ours (open, merged, closed); anything else is closed."""
    return _PR_STATES.get(value, "closed")
