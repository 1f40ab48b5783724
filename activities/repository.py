"""Git activities: resolve a promotion request. (A stage's change is prepared by `check_change` in
activities/policy.py and pushed by `open_change` in activities/forge.py.)"""

from __future__ import annotations

from typing import Protocol

from temporalio import activity

from activities import classified
from promoter.errors import BadInput
from promoter.models import PrepareInput, PromotionPlan, PromotionRequest


class ResolvingGit(Protocol):
    """What these activities need of the git side (promoter.git.ports)."""

    def resolve(self, req: PromotionRequest) -> PromotionPlan: ...
    def change_patch(self, req: PrepareInput, limit: int = ...) -> str: ...


MERGES = {"merge": "a merge commit", "squash": "a squash", "rebase": "a rebase"}  # as a refusal names them


class GitActivities:
    def __init__(self, repo: ResolvingGit, merge_methods: tuple[str, ...] | None = None, forge: str = "") -> None:
        """`merge_methods`: the ones the worker's forge (`forge`, its name) can merge with; None: any."""
        self.repo = repo
        self.merge_methods = merge_methods
        self.forge = forge

    @activity.defn(name="plan")
    @classified
    def resolve(self, req: PromotionRequest) -> PromotionPlan:
        """The request read into a plan; refused (`BadInput`, before anything is pushed) when an
        environment asks for a merge method the forge cannot do, rather than at its merge."""
        plan = self.repo.resolve(req)
        for e in plan.environments[1:]:  # the source (first) is never merged into
            method = e.config.merge.method
            if self.merge_methods is not None and method is not None and method not in self.merge_methods:
                can = " or ".join(MERGES.get(m, m) for m in self.merge_methods)
                raise BadInput(
                    f"environments/{e.config.name}/environment.yaml: merge.method {method}: the {self.forge} forge "
                    f"merges only with {can}; set merge.method to {self.merge_methods[0]} (or remove it), or use "
                    f"a forge that can {method}"
                )
        return plan

    @activity.defn(name="change_patch")
    @classified
    def change_patch(self, req: PrepareInput) -> str:
        """A stage's change as a unified diff, with nothing written (`promoter dry-run --diff`)."""
        return self.repo.change_patch(req)
