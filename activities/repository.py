"""Git activities: resolve a promotion request. (A stage's change is prepared by `check_change` in
activities/policy.py and pushed by `open_change` in activities/forge.py.)"""

from __future__ import annotations

from temporalio import activity

from activities import classified
from promoter.gitrepo import GitRepository
from promoter.models import PrepareInput, PromotionPlan, PromotionRequest


class GitActivities:
    def __init__(self, repo: GitRepository) -> None:
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
