"""Git activities: plan a promotion, prepare a stage's change (dry), push it on its branch."""

from __future__ import annotations

from temporalio import activity

from activities import sorted_errors
from promoter.gitrepo import GitRepository
from promoter.models import PlanInput, PrepareInput, PrepareResult, PromotionPlan


class GitActivities:
    def __init__(self, repo: GitRepository) -> None:
        self.repo = repo

    @activity.defn(name="plan")
    @sorted_errors
    def plan(self, req: PlanInput) -> PromotionPlan:
        return self.repo.plan(req)

    @activity.defn(name="prepare")
    @sorted_errors
    def prepare(self, req: PrepareInput) -> PrepareResult:
        return self.repo.prepare(req)

    @activity.defn(name="push_branch")
    @sorted_errors
    def push_branch(self, req: PrepareInput) -> PrepareResult:
        return self.repo.push_branch(req)
