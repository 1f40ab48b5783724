"""The `Forge` protocol and the name -> factory table of its providers.

A provider is one module; adding GitHub, GitLab or Gitea means one module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from promoter.models import PullRequest


@dataclass(frozen=True)
class Review:
    author: str
    state: str  # approved | changes_requested | commented
    at: datetime
    commit: str | None = None
    body: str = ""


class Forge(Protocol):
    def open_pull_request(self, head: str, title: str, body: str, base: str = "main",
                          labels: list[str] | None = None) -> PullRequest:
        """Open a PR from `head`, or return the open one that already has that head."""
        ...

    def find_pull_request(self, head: str) -> PullRequest | None: ...
    def get_pull_request(self, number: int) -> PullRequest: ...
    def comment(self, number: int, body: str) -> None: ...
    def reviews(self, number: int) -> list[Review]: ...
    def merge(self, number: int, message: str | None = None) -> PullRequest: ...
    def close(self, number: int, comment: str = "") -> PullRequest: ...


FORGES: dict[str, Callable[..., Forge]] = {}


def register(name: str) -> Callable[[Callable[..., Forge]], Callable[..., Forge]]:
    def deco(factory: Callable[..., Forge]) -> Callable[..., Forge]:
        FORGES[name] = factory
        return factory

    return deco


def make_forge(name: str, **settings: object) -> Forge:
    from promoter.forges import local  # noqa: F401  (registers itself)

    if name not in FORGES:
        from promoter.errors import BadInput

        raise BadInput(f"unknown forge '{name}'; choose one of: {', '.join(sorted(FORGES))}")
    return FORGES[name](**settings)
