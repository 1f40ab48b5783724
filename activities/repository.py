"""Git activities: plan a promotion, prepare a stage's change (dry), push it on its branch."""

from __future__ import annotations

from temporalio import activity

from activities import classified
from promoter.gitrepo import GitRepository
from promoter.models import PlanInput, PrepareInput, PrepareResult, PromotionPlan


class GitActivities:
    def __init__(self, repo: GitRepository) -> None:
        self.repo = repo

    @activity.defn(name="plan")
    @classified
    def plan(self, req: PlanInput) -> PromotionPlan:
        return self.repo.plan(req)

    @activity.defn(name="prepare")
    @classified
    def prepare(self, req: PrepareInput) -> PrepareResult:
        return self.repo.prepare(req)

    @activity.defn(name="push_branch")
    @classified
    def push_branch(self, req: PrepareInput) -> PrepareResult:
        return self.repo.push_branch(req)
