"""`promoter lift-hold`: lift the hold an automatic revert put on a commit (see promoter.holds),
through a pull request that the environment's approvers must approve.

The PR opens on an empty commit that asks (`Promoter-Release-Request` trailers: it lifts nothing).
Once the gate approved, promoter writes and signs the commit that lifts the hold on top of it
(`Promoter-Release-Hold` trailers, with the approvals) and merges that. Its gate is the
environment's: the approvals it requires (at least one), from its approvers as the policies expand
and screen them (the held commit's author is asked about like any approver), given with the
`approve` update (`promoter approve`, or the Temporal Web UI) and refused at once by its validator
otherwise. `reject` closes the PR and the hold stays. Approved, the PR is merged and the hold is
lifted: git holds the record, with the approvals as trailers on the merge.

A break-glass (`promoter break-glass`, `LiftHoldInput.until` set; promoter.breakglass) takes the same
gate and the same steps: its PR opens on promoter's request, its approvers and quorum are the
environment's `break_glass` (the activity hands them over as the gate's approval settings), and once
approved promoter signs the commit that adds its file under trust/break-glass/ and merges it.

Where the environment requires signed approvals (`approval.require_signed`), so does this gate: an
approval counts only with an SSH signature over this run's own statement (its ID and run, its
environment, `OpenedLift.commit`, the PR head, no folder trees: the PR changes none until promoter seals
it), verified by the validator (workflows/signatures.py, as a promotion's gate does) against
trust/allowed_signers and trust/revoked_keys as the trusted rules revision of main had them when the lift
opened (read by the activity that opened it); one key counts once. The merge records each signed
approval (`Promoter-Signed-Approval`, `Promoter-Trust`) so that Git alone can check it again.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from promoter import report
    from promoter.converter import REFUSED
    from promoter.models import (
        SENT_VIA,
        Approval,
        AuditEntry,
        ClosePullRequest,
        Decision,
        LiftHoldInput,
        MergePullRequest,
        OpenedLift,
        PolicyCheckInput,
        ScreenInput,
        StageState,
        StageStatus,
        Trust,
    )
    from promoter.promotions import APPROVE, REJECT, STATUS_QUERY
    from workflows import steps
    from workflows.decisions import refusal
    from workflows.signatures import DECLARED, Gate, Proven, key_used, proven, unproven


@workflow.defn(name="ReleaseHoldWorkflow")  # its first name: runs in flight keep it
class LiftHoldWorkflow:
    @workflow.init
    def __init__(self, inp: LiftHoldInput) -> None:
        self.inp = inp
        self.stage = StageStatus(env=inp.env, order=0, state=StageState.OPENING_PR, message="opening the PR")
        self.rejection: Decision | None = None
        self.trust = Trust()  # what verifies signed decisions: the opened lift's (`OpenedLift.trust`)
        self.asker_key = ""  # the key that signed a break-glass's request: it may not approve it

    @property
    def allowed(self) -> list[str]:
        """Who may decide the lift: its approvers as the policies expanded them, less those they screened out."""
        return [a for a in self.stage.approvers if a not in self.stage.screened]

    @workflow.run
    async def run(self, inp: LiftHoldInput) -> StageStatus:
        opened: OpenedLift = await steps.OPEN_LIFT.call(inp, f"open the PR that lifts the hold in {inp.env}")
        self.stage.pr_number, self.stage.pr_url = opened.pr.number, opened.pr.url
        self.stage.head_sha, self.stage.commit, self.trust = opened.pr.head_sha, opened.commit, opened.trust
        self.asker_key = opened.asker_fingerprint
        self.stage.signed_required = opened.environment.approval.require_signed
        self.stage.approvals_required = max(1, opened.environment.approval.required)
        await self._screen(inp, opened)
        self.stage.state = StageState.AWAITING_APPROVAL
        needed = report.needs(self.stage.approvals_required, 0, self.allowed, False, False)
        self.stage.message = f"{needed} (PR #{opened.pr.number})"
        if not await self._decided(inp, opened):
            return self.stage
        if self.rejection is not None:
            d = self.rejection
            await steps.CLOSE_PULL_REQUEST.call(
                ClosePullRequest(number=opened.pr.number, comment=f"Rejected by {d.approver} via {d.via}: {d.comment}"),
                f"close PR #{opened.pr.number}",
            )
            self.stage.state, self.stage.rejected_by = StageState.REJECTED, d.approver
            stays = "no break-glass is put in place" if inp.until is not None else "the hold stays"
            self.stage.message = f"rejected by {d.approver}: {d.comment}; {stays}"
            return self.stage
        await self._merge(opened)
        self.stage.state = StageState.HEALTHY
        self.stage.message = f"the hold is lifted: {inp.app} @ {opened.commit[:7]} may be promoted to {inp.env} again"
        if inp.until is not None:
            self.stage.message = (
                f"break-glass {opened.hold_reason} is in place: {inp.app}'s promotions into {inp.env} pass its "
                f"freezes until {inp.until:%Y-%m-%dT%H:%M:%SZ}"
            )
        self.stage.finished_at = workflow.now()
        return self.stage

    async def _decided(self, inp: LiftHoldInput, opened: OpenedLift) -> bool:
        """Wait for the gate's decision. A lift waits as long as it takes; a break-glass only until its
        own end (False: it ended first, and its PR is closed, nothing put in place)."""
        ends = None if inp.until is None else max(inp.until - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(
                lambda: self.rejection is not None or len(self.stage.approvals) >= self.stage.approvals_required,
                timeout=ends,
            )
            return True
        except TimeoutError:
            pass
        until = f"{inp.until:%Y-%m-%dT%H:%M:%SZ}" if inp.until else "?"
        why = f"break-glass {opened.hold_reason} ended at {until} before its approvals; nothing was put in place"
        await steps.CLOSE_PULL_REQUEST.call(
            ClosePullRequest(number=opened.pr.number, comment=why), f"close PR #{opened.pr.number}"
        )
        self.stage.state, self.stage.message = StageState.EXPIRED, why
        return False

    async def _screen(self, inp: LiftHoldInput, opened: OpenedLift) -> None:
        """Who may lift the hold, as the policies expand and screen the environment's approvers (the
        held commit's author is asked about like any approver)."""
        now = workflow.now()
        check = PolicyCheckInput(
            promotion_id=workflow.info().workflow_id,
            app=inp.app,
            commit=opened.commit,
            author=opened.author,
            source_env=inp.env,
            target_env=inp.env,
            started_at=now,
            environment=opened.environment,
            environments=[inp.env],
            phase="approval",
            evaluated_at=now,
            render_objects=False,
        )
        who = await steps.SCREEN_APPROVERS.call(ScreenInput(check=check), f"who may lift the hold in {inp.env}?")
        self.stage.approvers, self.stage.screened = who.approvers, who.refused

    async def _merge(self, opened: OpenedLift) -> None:
        """Merge the approved PR, its approvals as trailers (`AuditEntry.trailer`, as a promotion's merge
        writes them): the activity seals the lift with them before it merges."""
        self.stage.state = StageState.MERGING
        approvals = [
            AuditEntry(
                at=a.at,
                env=self.inp.env,
                kind="approval",
                actor=a.approver,
                via=a.via,
                detail=a.comment,
                proof="signed" if a.proof == "signed" else "",
            )
            for a in self.stage.approvals
        ]
        # no promotion's ID: the lift's own is no promotion's, and `promoter history` reads none here
        message = report.merge_message(
            opened.pr.number,
            opened.pr.head,
            opened.pr.title,
            "",
            approvals,
            signed=self.stage.approvals,
            trust_revision=self.trust.revision,
        )
        merged = await steps.MERGE_PULL_REQUEST.call(
            MergePullRequest(number=opened.pr.number, comment=message, expected_head=opened.pr.head_sha),
            f"merge PR #{opened.pr.number}",
        )
        self.stage.merge_commit = merged.merge_commit

    @property
    def gate(self) -> Gate:
        """What a signed decision must name here, and the trust that verifies it."""
        info = workflow.info()
        return Gate(info.workflow_id, info.run_id, self.stage.commit, self.stage, self.trust)

    def _judge(self, d: Decision, approving: bool) -> Proven:
        """For the update validators: the gate's own rule of who may decide (workflows/decisions.py), for
        this lift's one environment, then what proves the decision (its signature, verified; required
        for an approval where the environment requires signed approvals; one key counts once). A
        rejection is held to an approval's standing here (one the policies screened out, or who has
        approved, may not reject either). Raises the refusal."""
        if d.via not in SENT_VIA:  # this gate reads no reviews: nothing sent may claim to be one
            raise ApplicationError(f"an update cannot say it came by {d.via!r}; send via ui or cli", type=REFUSED)
        if d.env != self.inp.env:
            raise ApplicationError(f"this lift is for {self.inp.env}, not {d.env}", type=REFUSED)
        reason = refusal(self.stage, d, True, self.allowed)
        if reason is None and not approving and not d.comment.strip():
            reason = "a rejection needs a reason"
        proof = DECLARED
        if reason is None:
            proof, reason = proven(self.gate, d, approving)
        if reason is None and approving:
            reason = unproven(self.gate, d, proof) or key_used(self.stage, d, proof) or self._asker(proof)
        if reason is not None:
            raise ApplicationError(reason, type=REFUSED)
        return proof

    def _asker(self, proof: Proven) -> str | None:
        """Who asked for a break-glass does not approve it, by whatever name their key is listed for."""
        if self.asker_key and proof.fingerprint == self.asker_key:
            return f"the key {proof.fingerprint} signed this break-glass's request; it may not approve it too"
        return None

    @workflow.update(name=APPROVE)
    async def approve(self, d: Decision) -> StageStatus:
        # the validator verified it (in a run replayed from before it did, an unsigned one is declared)
        proof, _ = proven(self.gate, d, True)
        # two approvals validated in one workflow task, before either counted: the second counts not
        once = next((a for a in self.stage.approvals if a.approver == d.approver), None)
        reason = (
            key_used(self.stage, d, proof)
            or self._asker(proof)
            or (once and f"{d.approver} has already approved {d.env}; one person counts once")
        )
        if reason:
            raise ApplicationError(reason, type=REFUSED)
        self.stage.approvals.append(
            Approval(
                approver=d.approver,
                at=workflow.now(),
                via=d.via,
                comment=d.comment,
                head=self.stage.head_sha,
                proof=proof.proof,
                fingerprint=proof.fingerprint,
                statement=proof.statement,
                signature=proof.signature,
            )
        )
        return self.stage

    @approve.validator
    def _approve_valid(self, d: Decision) -> None:
        self._judge(d, True)

    @workflow.update(name=REJECT)
    async def reject(self, d: Decision) -> StageStatus:
        self.rejection = d
        return self.stage

    @reject.validator
    def _reject_valid(self, d: Decision) -> None:
        self._judge(d, False)

    @workflow.query(name=STATUS_QUERY)
    def query_status(self) -> StageStatus:
        return self.stage
