"""Git activities: resolve a promotion request. (A stage's change is prepared by `check_change` in
activities/policy.py and pushed by `open_change` in activities/forge.py.)"""

from __future__ import annotations

from typing import Protocol

from temporalio import activity

from activities import classified
from promoter.models import PrepareInput, PromotionPlan, PromotionRequest


class ResolvingGit(Protocol):
    """What these activities need of the git side (promoter.git.ports)."""

    def resolve(self, req: PromotionRequest) -> PromotionPlan: ...
    def change_patch(self, req: PrepareInput, limit: int = ...) -> str: ...


class GitActivities:
    def __init__(self, repo: ResolvingGit) -> None:
        self.repo = repo

    @activity.defn(name="plan")
    @classified
    def resolve(self, req: PromotionRequest) -> PromotionPlan:
        return self.repo.resolve(req)

    @activity.defn(name="change_patch")
    @classified
    def change_patch(self, req: PrepareInput) -> str:
        """A stage's change as a unified diff, with nothing written (`promoter dry-run --diff`)."""
        return self.repo.change_patch(req)
