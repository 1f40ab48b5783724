"""A stage's pull request: pushed and opened with its report, merged with the stage's decisions as
trailers, its PR body given the whole record after the verdict, or closed with the reason when the
promotion ends early. Deterministic: workflow code only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from promoter import report
    from promoter.errors import DECISION_EXPIRED
    from promoter.models import (
        ClosePullRequest,
        MergePullRequest,
        OpenChangeInput,
        PlannedEnvironment,
        PolicyDecision,
        PrepareInput,
        PrepareResult,
        PullRequest,
        StageState,
        StageStatus,
        UpdatePullRequest,
    )
    from workflows import steps
    from workflows.recorder import Promotion, Recorder

# states in which a stage's PR is open and ours to close when the promotion ends early
OPEN_PR_STATES = {StageState.PR_OPEN, StageState.AWAITING_APPROVAL, StageState.APPROVED}
# a merge asked again after its decision was renewed, past `merge.wait`, gets this long (then it fails)
RECHECKED_MERGE = timedelta(seconds=30)


class PullRequests:
    def __init__(self, promotion: Promotion, recorder: Recorder, runner: steps.Runner) -> None:
        self.p = promotion
        self.r = recorder
        self.runner = runner

    async def open(
        self,
        stage: StageStatus,
        planned: PlannedEnvironment,
        change: PrepareInput,
        prepared: PrepareResult,
        decision: PolicyDecision,
    ) -> tuple[PullRequest, str] | None:
        """Push the stage's branch and open its PR (with the diff and the policy report), in one step.
        None: main has had the change since it was checked, so there is nothing to open."""
        self.r.set(stage, StageState.OPENING_PR, f"pushing {prepared.branch} and opening its PR")
        plan, source = self.p.plan, self.p.status.stages[0].env
        approval = planned.config.approval
        body = report.pr_body(
            plan, self.p.status.id, source, stage.env, prepared.diff, decision, approval.approvers, approval.required
        )
        request = OpenChangeInput(
            change=change,
            title=report.pr_title(plan, source, stage.env),
            body=body,
            labels=["promotion", f"env:{stage.env}", *(f"app:{app}" for app in plan.apps)],
            promotion_id=self.p.status.id,
        )
        opened = await self.runner.run(steps.OPEN_CHANGE, request, f"open PR for {stage.env}")
        if opened.pr is None:
            return None
        pr = opened.pr
        stage.branch, stage.head_sha, stage.trees = opened.prepared.branch, opened.prepared.head, opened.trees
        stage.pr_number, stage.pr_url = pr.number, pr.url
        self.r.set(stage, StageState.PR_OPEN, f"PR #{pr.number} opened")
        self.runner.checkpoint()
        return pr, body

    async def merge(
        self,
        stage: StageStatus,
        planned: PlannedEnvironment,
        pr: PullRequest,
        recheck: Callable[[], Awaitable[bool]],
        ask_first: bool,
    ) -> str | None:
        """Merge the PR at the head its gate knows, the stage's decisions in the merge commit's
        trailers (the PR body gets them with the verdict); returns the merge commit. `recheck` asks the
        policies again: first when `ask_first` (a gated stage), and whenever the stage's last decision
        no longer stands (`valid_until`: a freeze may begin, an exception end) before the forge merged.
        When they deny, the PR is closed saying so, and None is returned."""
        if ask_first and not await recheck():
            await self._denied(stage, pr)
            return None
        entries = self.r.entries(stage.env)
        assert stage.branch is not None
        merging = planned.config.merge
        merge = MergePullRequest(
            number=pr.number,
            expected_head=stage.head_sha,
            comment=report.merge_message(
                pr.number,
                stage.branch,
                pr.title,
                self.p.status.id,
                entries,
                signed=stage.approvals,
                trust_revision=self.p.plan.trust.revision,
            ),
            merge_method=merging.method,
            fail_when_blocked=merging.on_blocked == "fail",
        )
        waits = max(merging.wait or timedelta(minutes=30), timedelta(minutes=2))  # a blocked merge is retried
        deadline = workflow.now() + waits
        while True:
            self.r.set(stage, StageState.MERGING)
            asked = merge.model_copy(update={"not_after": stage.policy.valid_until if stage.policy else None})
            step = steps.MERGE_PULL_REQUEST.but(schedule_to_close=max(deadline - workflow.now(), RECHECKED_MERGE))
            try:
                merged = await self.runner.run(step, asked, f"merge PR #{pr.number}")
                break
            except ActivityError as e:
                expired = isinstance(e.cause, ApplicationError) and e.cause.type == DECISION_EXPIRED
                if not expired or workflow.now() >= deadline:  # asked again and again past merge.wait: failed
                    raise
            if not await recheck():
                await self._denied(stage, pr)
                return None
        stage.merge_commit = merged.merge_commit
        self.r.audit(stage.env, "merge", detail=f"PR #{pr.number} merged as {merged.merge_commit[:12]}")
        return merged.merge_commit

    async def _denied(self, stage: StageStatus, pr: PullRequest) -> None:
        await self.close(pr.number, f"Not merged: the policies deny it at merge time.\n\n{stage.message}")

    async def record_verdict(self, stage: StageStatus, body: str) -> None:
        """After a merged stage's verdict, its PR body gets the whole record (merge, revert, verdict)."""
        if stage.pr_number is not None:
            self.r.audit(stage.env, "verdict", detail=f"{stage.state.value}: {stage.message}")
            record = UpdatePullRequest(
                number=stage.pr_number, body=body + report.audit_section(self.r.entries(stage.env))
            )
            try:
                await self.runner.run(steps.UPDATE_PULL_REQUEST, record, f"record the verdict on PR #{stage.pr_number}")
            except ActivityError as e:  # the verdict stands; the record is also in the status
                self.p.status.notices.append(f"PR #{stage.pr_number}: the audit could not be written: {steps.cause(e)}")

    async def close(self, number: int, comment: str) -> None:
        await self.runner.run(
            steps.CLOSE_PULL_REQUEST, ClosePullRequest(number=number, comment=comment), f"close PR #{number}"
        )

    async def close_open(self, comment: str) -> None:
        """Close every stage's PR that is still open (the promotion ended early)."""
        for stage in self.p.status.stages:
            if stage.pr_number is not None and stage.state in OPEN_PR_STATES:
                await self.close(stage.pr_number, comment)
