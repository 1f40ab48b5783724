"""A stage's gate: it waits for its quorum of approvals (from the Web UI, the CLI or reviews on the
PR), a rejection or its deadline, and watches the PR meanwhile (workflows/watcher.py: a review counts, a
new commit voids earlier approvals, a review withdrawn stops counting, a PR merged or closed by hand
ends the wait). The decisions it is sent are decided in workflows/decisions.py, their proofs in
workflows/signatures.py. Deterministic: workflow code only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from promoter import report
    from promoter.models import (
        Decision,
        PlannedEnvironment,
        PromotionState,
        ScreenInput,
        StageState,
        StageStatus,
        WatchResult,
        proof_note,
    )
    from workflows import steps
    from workflows.decisions import Decisions, is_open, needs, waiting_message
    from workflows.recorder import Promotion, Recorder
    from workflows.watcher import Outcome, Watcher


class Gate:
    def __init__(
        self,
        promotion: Promotion,
        recorder: Recorder,
        runner: steps.Runner,
        decisions: Decisions,
        close: Callable[[int, str], Awaitable[None]],
    ) -> None:
        self.p = promotion
        self.r = recorder
        self.runner = runner
        self.decisions = decisions
        self.close = close
        self.watcher = Watcher(promotion, recorder, decisions)

    def _decided(self, stage: StageStatus, planned: PlannedEnvironment) -> bool:
        return stage.env in self.decisions.rejection or is_open(stage, planned)

    async def wait(self, stage: StageStatus, planned: PlannedEnvironment) -> Outcome:
        """Wait for the quorum (or a rejection, or the deadline). Returns True (open), False (the
        stage ended) or "merged" (merged on the forge by hand)."""
        approval = planned.config.approval
        if approval.required == 0 and not approval.require_review:
            self.r.set(stage, StageState.APPROVED, "no approval required")
            return True
        deadline = workflow.now() + approval.timeout if approval.timeout is not None else None
        stage.deadline = deadline
        # until the policies say who may decide (the screen), the approvers named without a group
        stage.approvers = [a for a in approval.approvers if not a.startswith("group:")]
        stage.review_required = approval.require_review
        stage.signed_required = approval.require_signed
        await self._screen(stage)
        self.r.set(stage, StageState.AWAITING_APPROVAL, waiting_message(stage, planned))
        self.r.gate_opened(stage.env)
        self.r.notify(stage, "waiting", f"{self.p.label} waits for approval in {stage.env}: {stage.message}")
        outcome = await self._until_decided(stage, planned, deadline)
        if outcome is not None:
            return outcome
        rejection = self.decisions.rejection.get(stage.env)
        self.r.gate_waited(stage, "rejected" if rejection is not None else "approved")
        if rejection is not None:
            return await self._rejected(stage, rejection)
        approvers = ", ".join(f"{a.approver} via {a.via}{proof_note(a.proof, a.via)}" for a in stage.approvals)
        self.r.set(stage, StageState.APPROVED, f"approved by {approvers}")
        return True

    async def _until_decided(
        self, stage: StageStatus, planned: PlannedEnvironment, deadline: datetime | None
    ) -> Outcome | None:
        """Wait while the gate is undecided, taking in what the PR watcher sees; an outcome when the
        stage ended meanwhile (expired, merged or closed by hand), None when the gate decided."""
        approval = planned.config.approval
        watching = approval.pull_request_reviews or approval.require_review
        watch: asyncio.Task[WatchResult] | None = None
        try:
            while not self._decided(stage, planned):
                if watching and watch is None:
                    watch = self.watcher.start(stage, deadline)
                remaining = deadline - workflow.now() if deadline is not None else None
                try:
                    if remaining is not None and remaining <= timedelta(0):
                        raise TimeoutError()

                    def moved(w: asyncio.Task[WatchResult] | None = watch) -> bool:
                        return self._decided(stage, planned) or bool(w and w.done())

                    await workflow.wait_condition(
                        moved, timeout=remaining, timeout_summary=f"{stage.env} approval deadline"
                    )
                except TimeoutError:
                    return await self._expire(stage, planned)
                if watch is not None and watch.done():
                    seen, watch = watch, None
                    try:
                        outcome = await self.watcher.take_in(stage, planned, seen.result())
                    except ActivityError as e:
                        watching = False  # the gate still opens by the UI and the CLI
                        waiting = waiting_message(stage, planned)
                        stage.message = f"reviews are no longer read ({steps.cause(e)}); {waiting}"
                        self.p.status.notices.append(
                            f"{stage.env}: watching PR #{stage.pr_number} failed: {steps.cause(e)}"
                        )
                        continue
                    if outcome is not None:
                        return outcome
        finally:
            if watch is not None and not watch.done():
                self.watcher.stop(watch)
        return None

    async def watchers_ended(self) -> None:
        """Wait for the cancelled PR watchers to end (see `Watcher.ended`)."""
        await self.watcher.ended()

    async def _rejected(self, stage: StageStatus, d: Decision) -> bool:
        stage.rejected_by = d.approver
        self.r.set(stage, StageState.REJECTED, f"rejected by {d.approver}: {d.comment}")
        assert stage.pr_number is not None
        await self.close(stage.pr_number, f"Rejected by {d.approver} via {d.via}: {d.comment}")
        stage.finished_at = workflow.now()
        self.r.finish(PromotionState.REJECTED, f"{stage.env}: rejected by {d.approver}: {d.comment}")
        self.r.notify(stage, "rejected", f"{self.p.label} was rejected in {stage.env} by {d.approver}: {d.comment}")
        return False

    async def _expire(self, stage: StageStatus, planned: PlannedEnvironment) -> bool:
        approval = planned.config.approval
        assert stage.pr_number is not None
        waited = report.human_duration(approval.timeout)
        self.r.gate_waited(stage, "expired")
        self.r.set(stage, StageState.EXPIRED, f"no decision within {waited}")
        wanted = needs(stage, planned)
        self.r.audit(stage.env, "expired", detail=f"after {waited} it still {wanted}")
        await self.close(stage.pr_number, f"Closed: the {stage.env} gate expired after {waited}; it still {wanted}.")
        stage.finished_at = workflow.now()
        self.r.finish(PromotionState.EXPIRED, f"{stage.env}: gate expired after {waited}")
        self.r.notify(
            stage,
            "expired",
            f"The {stage.env} gate of {self.p.label} expired after {waited}; PR #{stage.pr_number} was closed",
        )
        return False

    async def _screen(self, stage: StageStatus) -> None:
        """Ask the policies about each possible approver, so the update validator can refuse one
        with the policy's reason before anything enters history. Best effort: the approval handler
        asks the policies again for every approval, so a failed screen only refuses later."""
        screen = ScreenInput(check=self.p.policy_input(stage, "approval", approvals=[]))
        try:
            result = await self.runner.run(steps.SCREEN_APPROVERS, screen, f"who may approve {stage.env}?")
        except ActivityError as e:
            self.p.status.notices.append(f"{stage.env}: approvers could not be screened ({steps.cause(e)})")
            return
        if not result.approvers and stage.approvers:
            # the policies' input could not be read (their decision then names no approver): a gate that
            # nobody could ever approve is never left; the named approvers stay, each approval judged anew
            self.p.status.notices.append(f"{stage.env}: the policies named no approver; approvers not screened")
            return
        stage.approvers, stage.screened = result.approvers, result.refused
