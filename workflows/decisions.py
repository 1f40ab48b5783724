"""Who may decide a gate, and every decision sent to it: an approval or a rejection from the Web UI or
the CLI (an update, or a signal), or an approving review the PR watcher read on the forge. Each is
refused with its reason, on record, or accepted onto its stage. The rule of who may decide a gate now
(`refusal`) is written once, here: a promotion's gates and the lift of a hold
(workflows/lift_hold.py) both obey it. Deterministic: workflow code only."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from promoter import report
    from promoter.converter import REFUSED
    from promoter.models import (
        SENT_VIA,
        Approval,
        AuditKind,
        Decision,
        PlannedEnvironment,
        Refusal,
        StageState,
        StageStatus,
    )
    from workflows import signatures, steps
    from workflows.recorder import Promotion, Recorder
    from workflows.signatures import DECLARED, Proven


def is_open(stage: StageStatus, planned: PlannedEnvironment) -> bool:
    """Whether the stage's approvals make its quorum (and, when one is required, an approving review)."""
    approval = planned.config.approval
    reviewed = not approval.require_review or any(a.via == "pull_request" for a in stage.approvals)
    return len(stage.approvals) >= approval.required and reviewed


def needs(stage: StageStatus, planned: PlannedEnvironment) -> str:
    """What the gate still needs, in the one phrase every message uses (`report.needs`), naming the
    people the details' "May approve" names (`report.may_approve`); "" when nothing."""
    approval = planned.config.approval
    reviewed = any(a.via == "pull_request" for a in stage.approvals)
    return report.needs(
        approval.required, len(stage.approvals), report.yet_to_approve(stage), approval.require_review, reviewed
    )


def waiting_message(stage: StageStatus, planned: PlannedEnvironment) -> str:
    """A waiting gate's message: what it still needs, and on which PR."""
    return f"{needs(stage, planned)} (PR #{stage.pr_number})"


def refusal(stage: StageStatus, d: Decision, approving: bool, approvers: Sequence[str]) -> str | None:
    """Why `d` cannot be taken at `stage` now (None: it can), as far as the gate can see. `stage.approvers`
    may decide it, except that one the policies screened out may not approve, and one person's approval
    counts once; `approvers` is whom a refusal names as its approvers."""
    if not d.approver.strip():
        return "say who decides: the approver is empty"
    if stage.source:
        return f"{d.env} is the source environment; it has no gate"
    if stage.state != StageState.AWAITING_APPROVAL:
        return f"{d.env} is not awaiting approval (it is {stage.state.value})"
    if d.approver not in stage.approvers:
        return f"{d.approver} may not decide {d.env}; its approvers are: {', '.join(approvers) or 'nobody'}"
    if approving and any(a.approver == d.approver for a in stage.approvals):
        return f"{d.approver} has already approved {d.env}; one person counts once"
    if approving and d.approver in stage.screened:
        return stage.screened[d.approver]
    if not approving and not d.comment.strip():
        return "a rejection needs a reason"
    return None


def channel_refusal(d: Decision) -> str | None:
    """An update or a signal says which client sent it (`ui` or `cli`), never that it is a review on the
    PR: those only the PR watcher reads from the forge."""
    if d.via in SENT_VIA:
        return None
    how = "approve on the PR itself" if d.via == "pull_request" else "leave `via` out"
    return (
        f"an update or signal cannot say it came by {d.via!r}: only the PR watcher records reviews "
        f"read from the forge; send via ui or cli, or {how}"
    )


class Decisions:
    """A promotion's decisions: refused (on record, with the reason) or accepted onto their stage."""

    def __init__(self, promotion: Promotion, recorder: Recorder) -> None:
        self.p = promotion
        self.r = recorder
        self.rejection: dict[str, Decision] = {}

    def refusal(self, d: Decision, approving: bool) -> str | None:
        """Why this decision cannot be taken now (None: it can), as far as the gate can see."""
        stage = self.p.stage_by_env.get(d.env)
        if stage is None:
            return f"this promotion has no environment '{d.env}'; it has: {', '.join(self.p.stage_by_env)}"
        return refusal(stage, d, approving, report.may_approve(stage))

    def unproven(self, d: Decision, proof: Proven) -> str | None:
        """Why a decision that proves nothing cannot open a gate that requires signed approvals."""
        return signatures.unproven(signatures.gate_of(self.p, d.env), d, proof)

    def validate(self, d: Decision, approving: bool) -> None:
        """For the update validators: refuse before anything enters history."""
        reason = self.refusal(d, approving)
        if reason is not None:
            raise ApplicationError(reason, type=REFUSED, non_retryable=True)

    def record_refusal(self, d: Decision, reason: str) -> None:
        if d.env in self.p.stage_by_env:
            refused = Refusal(approver=d.approver, at=workflow.now(), via=d.via, reason=reason)
            self.p.stage_by_env[d.env].refusals.append(refused)
            self.r.audit(d.env, "refusal", actor=d.approver, via=d.via, detail=reason)
            workflow.set_current_details(self.r.details(self.p.stage_by_env[d.env]))

    async def decide_sent(self, d: Decision, approving: bool) -> str | None:
        """A decision sent as an update or a signal: its channel, its signature, then `decide`. Returns
        the reason it was refused, on record (accepted by an update's validator, refused by its channel,
        its signature or the policies), or None when it was accepted."""
        reason = channel_refusal(d) or self.refusal(d, approving)
        if reason is None:
            proof, reason = signatures.proven(signatures.gate_of(self.p, d.env), d, approving)
            reason = reason or await self.decide(d, approving, proof)
        if reason is not None:
            self.record_refusal(d, reason)
        return reason

    async def decide(self, d: Decision, approving: bool, proof: Proven = DECLARED) -> str | None:
        """Validate, ask the policies (approvals only), validate again (the gate may have moved
        meanwhile), accept. Returns the reason for a refusal, or None."""
        reason = self.refusal(d, approving) or (self.unproven(d, proof) if approving else None)
        reason = reason or (self._key_used(d, proof) if approving else None)
        head = self.p.stage_by_env[d.env].head_sha if d.env in self.p.stage_by_env else None
        if reason is None and approving:
            reason = await self._policy_says(d, proof)
            reason = reason or self.refusal(d, approving) or self._key_used(d, proof)
            if reason is None and self.p.stage_by_env[d.env].head_sha != head:  # moved while the policies judged
                reason = "a commit was pushed onto the PR while this approval was checked; approve its new head"
        if reason is None:
            self._accept(d, approving, proof)
        return reason

    def _key_used(self, d: Decision, proof: Proven) -> str | None:
        """One key counts once, whatever principals trust/allowed_signers lists it for."""
        return signatures.key_used(self.p.stage_by_env[d.env], d, proof)

    async def _policy_says(self, d: Decision, proof: Proven = DECLARED) -> str | None:
        """The `promotion` policies' word on one more approval (None: allowed)."""
        stage = self.p.stage_by_env[d.env]
        candidate = Approval(
            approver=d.approver,
            at=workflow.now(),
            via=d.via,
            comment=d.comment,
            proof=proof.proof,
            fingerprint=proof.fingerprint,
        )
        check = self.p.policy_input(stage, "approval", approvals=[*stage.approvals, candidate])
        try:
            verdict = await steps.CHECK_APPROVAL.call(check, f"may {d.approver} approve {d.env}?")
        except ActivityError as e:  # fail closed, and never let a signal handler fail the workflow
            return f"the approval could not be checked against the policies ({steps.cause(e)}); try again"
        return None if verdict.allowed else str(verdict.reason)

    def _accept(self, d: Decision, approving: bool, proof: Proven) -> None:
        stage = self.p.stage_by_env[d.env]
        if approving:
            stage.approvals.append(
                Approval(
                    approver=d.approver,
                    at=workflow.now(),
                    via=d.via,
                    comment=d.comment,
                    head=stage.head_sha,
                    proof=proof.proof,
                    fingerprint=proof.fingerprint,
                    statement=proof.statement,
                    signature=proof.signature,
                )
            )
            planned = self.p.envs[d.env]
            if not is_open(stage, planned):
                self.r.set(stage, StageState.AWAITING_APPROVAL, waiting_message(stage, planned))
        else:
            self.rejection[d.env] = d
        kind: AuditKind = "approval" if approving else "rejection"
        self.r.audit(d.env, kind, actor=d.approver, via=d.via, detail=d.comment, proof=proof.proof)
