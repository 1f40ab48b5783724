"""ResolveWorkflow (`PlanWorkflow`): a promotion request resolved and validated on a worker.

A module of its own, so that each run (one per `promoter promote`, before the promotion starts) makes
the sandbox import this small module again, not workflows/promotion.py (see workflows/sandbox.py).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter.models import PromotionPlan, PromotionRequest
    from workflows import steps


@workflow.defn(name="PlanWorkflow")
class ResolveWorkflow:
    """Resolves and validates a promotion request where the repository is: on a worker.

    The CLI runs it before starting a promotion, so bad input (unknown app or environment, a missing
    commit, a malformed environment.yaml) is refused with one line and nothing is started or pushed.
    """

    @workflow.run
    async def run(self, req: PromotionRequest) -> PromotionPlan:
        plan: PromotionPlan = await steps.RESOLVE.call(req, "resolve the request")
        return plan
