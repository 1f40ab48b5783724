"""`promoter dry-run`: what a promotion would do in every environment, without doing any of it.

It runs where the repository is (on a worker) and takes the promotion's own steps with the
promotion's own inputs (`Promotion.policy_input`): the source's policy check, then for each later
environment the change and its policy decision on main as it is now (`check_change`: nothing is
pushed) and who may open its gate (`screen_approvers`). So a dry run and the promotion that follows
cannot disagree about a stage's change or its policy decision, unless main or the policies change in
between. Each environment is judged as the promotion would judge it: after the previous one became
healthy and soaked (the promotion waits for the soak by itself). The dry run goes on past a denial, so
that every stage is shown; the promotion would stop at the first.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter.environments import upstreams
    from promoter.models import (
        DryRun,
        PromotionInput,
        PromotionPlan,
        PromotionRequest,
        ScreenInput,
        StagePlan,
        StageState,
    )
    from workflows import steps
    from workflows.recorder import Promotion


@workflow.defn
class DryRunWorkflow:
    @workflow.run
    async def run(self, req: PromotionRequest) -> DryRun:
        plan: PromotionPlan = await steps.RESOLVE.call(req, "resolve the request")
        p = Promotion(PromotionInput(plan=plan, requested_by="promoter dry-run"))
        stages: list[StagePlan] = []
        # the environments another one comes after: only those soak before a next one (in a line every
        # one but the last; in a graph every one some `after` names)
        led = {up for ups in upstreams(list(p.envs.values())).values() for up in ups}
        for index, stage in enumerate(p.status.stages):
            config = p.envs[stage.env].config
            approval = config.approval
            shown = StagePlan(
                env=stage.env,
                source=index == 0,
                approvals_required=0 if index == 0 else approval.required,
                require_review=index > 0 and approval.require_review,
                pull_request_reviews=index > 0 and approval.pull_request_reviews,
                soak_s=p.soak(stage.env).total_seconds() if stage.env in led else 0.0,
            )
            stage.started_at = workflow.now()
            if index == 0:
                check = p.policy_input(stage, "pre_pr")
                shown.decision = await steps.CHECK_POLICY.call(check, f"policy for {stage.env}")
            else:
                check = p.policy_input(stage, "pre_pr")
                checked = await steps.CHECK_CHANGE.call(check, f"change for {stage.env}")
                shown.diff = checked.prepared.diff
                shown.skipped = checked.decision is None
                shown.decision = checked.decision
                if req.with_patch and not shown.skipped:
                    change = check.change(base=checked.prepared.base)
                    shown.patch = await steps.CHANGE_PATCH.call(change, f"the change for {stage.env}, as a diff")
                if not shown.skipped and (approval.required or approval.require_review):
                    screen = ScreenInput(check=p.policy_input(stage, "approval", approvals=[]))
                    who = await steps.SCREEN_APPROVERS.call(screen, f"who may approve {stage.env}?")
                    shown.approvers, shown.screened = who.approvers, who.refused
            stages.append(shown)
            # the next environment is judged as the promotion would judge it: after this one became
            # healthy and soaked for its full soak time
            if shown.skipped:
                stage.state, stage.finished_at = StageState.SKIPPED, workflow.now()
            else:
                stage.state = StageState.HEALTHY
                stage.finished_at = workflow.now() - p.soak(stage.env) - timedelta(seconds=1)
        return DryRun(plan=plan, stages=stages)
