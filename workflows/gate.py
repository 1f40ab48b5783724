"""A stage's gate: it waits for its quorum of approvals (from the Web UI, the CLI or reviews on the
PR), a rejection or its deadline; it watches the PR meanwhile (a review counts, a new commit voids
earlier approvals, a review withdrawn stops counting, a PR merged or closed by hand ends the wait),
and it decides every approval and rejection it is sent. Deterministic: workflow code only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from promoter import report, signing
    from promoter.models import (
        SENT_VIA,
        Approval,
        AuditKind,
        Decision,
        PlannedEnvironment,
        PromotionState,
        Proof,
        Refusal,
        ScreenInput,
        StageState,
        StageStatus,
        WatchInput,
        WatchResult,
        proof_note,
    )
    from workflows import steps
    from workflows.recorder import Promotion, Recorder

WITHDRAWN = ("dismissed", "unapproved")  # review states that take an approval back
WATCH_WINDOW = timedelta(days=30)  # a watcher attempt's limit; a gate with no deadline starts another
# the patch that made a decided gate's watcher end before the promotion does (histories recorded
# before it replay without waiting)
WATCHERS_AWAITED = "watchers-awaited"
Outcome = bool | Literal["merged"]  # open, ended, or merged on the forge by hand
SIGNATURE_SKEW = timedelta(minutes=10)  # a signed statement's time may be this far off the workflow's clock


@dataclass(frozen=True)
class Proven:
    """What proves who gave a decision (see `Proof`), and for a signed one the signature's record."""

    proof: Proof = "declared"
    fingerprint: str = ""
    statement: str = ""
    signature: str = ""  # on one line


FORGE = Proven("forge")
DECLARED = Proven()


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Gate:
    def __init__(
        self,
        promotion: Promotion,
        recorder: Recorder,
        runner: steps.Runner,
        close: Callable[[int, str], Awaitable[None]],
    ) -> None:
        self.p = promotion
        self.r = recorder
        self.runner = runner
        self.close = close
        self.rejection: dict[str, Decision] = {}
        self.ending: list[asyncio.Task[WatchResult]] = []  # cancelled watchers, until they have ended

    # ------------------------------------------------------------------ waiting

    def is_open(self, stage: StageStatus, planned: PlannedEnvironment) -> bool:
        approval = planned.config.approval
        reviewed = not approval.require_review or any(a.via == "pull_request" for a in stage.approvals)
        return len(stage.approvals) >= approval.required and reviewed

    def _decided(self, stage: StageStatus, planned: PlannedEnvironment) -> bool:
        return stage.env in self.rejection or self.is_open(stage, planned)

    def waiting_message(self, stage: StageStatus, planned: PlannedEnvironment) -> str:
        approval = planned.config.approval
        have = f"{len(stage.approvals)} of {approval.required} approval(s)"
        # the same people the details' "May approve" names: groups expanded, screened-out ones left out
        who = ", ".join(a for a in stage.approvers if a not in stage.screened) or ", ".join(approval.approvers)
        review = "; it also needs an approving review on the PR" if approval.require_review else ""
        return f"waiting for {have} from {who} on PR #{stage.pr_number}{review}"

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
        self.r.set(stage, StageState.AWAITING_APPROVAL, self.waiting_message(stage, planned))
        self.r.gate_opened(stage.env)
        self.r.notify(stage, "waiting", f"{self.p.label} waits for approval in {stage.env}: {stage.message}")
        outcome = await self._until_decided(stage, planned, deadline)
        if outcome is not None:
            return outcome
        self.r.gate_waited(stage, "rejected" if stage.env in self.rejection else "approved")
        if stage.env in self.rejection:
            return await self._rejected(stage, self.rejection[stage.env])
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
                    watch = self._watch(stage, deadline)
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
                        outcome = await self._on_watch(stage, planned, seen.result())
                    except ActivityError as e:
                        watching = False  # the gate still opens by the UI and the CLI
                        waiting = self.waiting_message(stage, planned)
                        stage.message = f"reviews are no longer read ({steps.cause(e)}); {waiting}"
                        self.p.status.notices.append(
                            f"{stage.env}: watching PR #{stage.pr_number} failed: {steps.cause(e)}"
                        )
                        continue
                    if outcome is not None:
                        return outcome
        finally:
            if watch is not None and not watch.done():
                watch.cancel()
                self.ending.append(watch)
        return None

    async def watchers_ended(self) -> None:
        """Wait for the cancelled PR watchers to end, so that a finished promotion leaves no pending
        activity behind. The gate does not wait for them: the merge, sync and health check go on
        meanwhile. A watcher sees its cancel at its next heartbeat, within seconds."""
        if self.ending:
            await asyncio.wait(self.ending)

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
        have = f"{len(stage.approvals)} of {approval.required} approval(s) within {waited}"
        self.r.audit(stage.env, "expired", detail=have)
        await self.close(
            stage.pr_number,
            f"Closed: the {stage.env} gate expired after {waited} without {approval.required} approval(s).",
        )
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
        stage.approvers, stage.screened = result.approvers, result.refused

    # ------------------------------------------------------------------ the PR watcher

    def _watch(self, stage: StageStatus, deadline: datetime | None) -> asyncio.Task[WatchResult]:
        assert stage.pr_number is not None
        window = WATCH_WINDOW if deadline is None else min(WATCH_WINDOW, deadline - workflow.now())
        known = WatchInput(
            number=stage.pr_number,
            head_sha=stage.head_sha,
            review_states=stage.review_states,
            folders=list(stage.trees),
        )
        step = steps.watch_step(window, awaited=workflow.patched(WATCHERS_AWAITED))
        task: asyncio.Task[WatchResult] = asyncio.ensure_future(
            step.call(known, f"watch PR #{stage.pr_number} for reviews and new commits")
        )
        task.add_done_callback(_consume)  # a watch cancelled when the gate decides ends in an error nobody reads
        return task

    async def _on_watch(self, stage: StageStatus, planned: PlannedEnvironment, seen: WatchResult) -> Outcome | None:
        """Take in what the watcher saw; an outcome ends the gate, None keeps it waiting."""
        if seen.state == "merged" and seen.merge_commit:
            stage.merge_commit = seen.merge_commit
            detail = f"PR #{stage.pr_number} merged outside promoter as {seen.merge_commit[:12]}"
            self.r.audit(stage.env, "merge", actor="forge", detail=detail)
            self.r.set(stage, StageState.MERGING, "merged on the forge by hand; syncing what was merged")
            return "merged"
        if seen.state != "open":
            message = f"PR #{stage.pr_number} was {seen.state} outside promoter; start a new promotion to open another"
            self.r.end(stage, StageState.FAILED, message, PromotionState.FAILED, message)
            self.r.notify(stage, "failed", f"{self.p.label}: {stage.env}: {stage.message}")
            return False
        if seen.head_sha != stage.head_sha:
            self._void(stage, planned, seen.head_sha)
            stage.trees = seen.trees  # what would merge now: a signature over the older trees no longer matches
        for review in seen.reviews:
            stage.review_states[review.id] = review.state
            if review.state in WITHDRAWN:
                self._withdraw(stage, planned, review.author, review.state)
            elif review.state != "approved":
                self.r.audit(stage.env, "review", actor=review.author, via="pull_request", detail=review.state)
            elif not review.commit and seen.pins_reviews:  # fail closed: it cannot be tied to the head
                d = Decision(env=stage.env, approver=review.author, comment=review.body, via="pull_request")
                head = (stage.head_sha or "?")[:7]
                self.record_refusal(
                    d, f"the review names no commit; the forge pins each review to one, so it cannot count for {head}"
                )
            elif not review.commit or review.commit == stage.head_sha:  # one on an older head is stale
                # the one place a `pull_request` approval is made: from what this workflow's watcher read
                d = Decision(env=stage.env, approver=review.author, comment=review.body, via="pull_request")
                reason = await self.decide(d, True, FORGE if seen.authenticated else DECLARED)
                if reason is not None:
                    self.record_refusal(d, reason)
        return None

    def _void(self, stage: StageStatus, planned: PlannedEnvironment, head: str | None) -> None:
        """A new commit on the PR: the approvals given on the older head no longer count."""
        old, stage.head_sha = stage.head_sha, head
        voided, stage.approvals = stage.approvals, []
        stage.voided.extend(voided)
        note = (
            f"new commit {(head or '?')[:7]} on {stage.branch} (was {(old or '?')[:7]}): "
            f"{len(voided)} earlier approval(s) no longer count"
        )
        names = ": " + ", ".join(a.approver for a in voided) if voided else ""
        self.r.audit(stage.env, "voided", detail=note + names)
        self.r.set(stage, StageState.AWAITING_APPROVAL, f"{note}; " + self.waiting_message(stage, planned))

    def _withdraw(self, stage: StageStatus, planned: PlannedEnvironment, who: str, how: str) -> None:
        """A review dismissed, or an approval withdrawn, on the forge: the approval it gave stops counting."""
        gone = [a for a in stage.approvals if a.via == "pull_request" and a.approver == who]
        if not gone:
            return
        stage.approvals = [a for a in stage.approvals if a not in gone]
        stage.voided.extend(gone)
        note = f"{who}'s approving review was {how} on the forge; it no longer counts"
        self.r.audit(stage.env, "voided", actor=who, via="pull_request", detail=note)
        self.r.set(stage, StageState.AWAITING_APPROVAL, f"{note}; " + self.waiting_message(stage, planned))

    # ------------------------------------------------------------------ decisions

    def refusal(self, d: Decision, approving: bool) -> str | None:
        """Why this decision cannot be taken now (None: it can), as far as the gate can see."""
        stage = self.p.stage_by_env.get(d.env)
        if stage is None:
            return f"this promotion has no environment '{d.env}'; it has: {', '.join(self.p.stage_by_env)}"
        if not d.approver.strip():
            return "say who decides: the approver is empty"
        if stage.source:
            return f"{d.env} is the source environment; it has no gate"
        if stage.state != StageState.AWAITING_APPROVAL:
            return f"{d.env} is not awaiting approval (it is {stage.state.value})"
        planned = self.p.envs[d.env]
        if d.approver not in stage.approvers:
            allowed = ", ".join(planned.config.approval.approvers) or "nobody"
            return f"{d.approver} may not decide {d.env}; its approvers are: {allowed}"
        if approving and any(a.approver == d.approver for a in stage.approvals):
            return f"{d.approver} has already approved {d.env}; one person counts once"
        if approving and d.approver in stage.screened:
            return stage.screened[d.approver]
        if not approving and not d.comment.strip():
            return "a rejection needs a reason"
        return None

    def channel_refusal(self, d: Decision) -> str | None:
        """An update or a signal says which client sent it (`ui` or `cli`), never that it is a review
        on the PR: those only the PR watcher reads from the forge."""
        if d.via in SENT_VIA:
            return None
        how = "approve on the PR itself" if d.via == "pull_request" else "leave `via` out"
        return (
            f"an update or signal cannot say it came by {d.via!r}: only the PR watcher records reviews "
            f"read from the forge; send via ui or cli, or {how}"
        )

    def unproven(self, d: Decision, proven: Proven) -> str | None:
        """Why a decision that proves nothing cannot open a gate that requires signed approvals."""
        if proven.proof != "declared" or not self.p.stage_by_env[d.env].signed_required:
            return None
        if d.via == "pull_request":
            return (
                f"{d.env} requires signed approvals and this forge does not authenticate its reviewers, so a "
                f"review there does not count; sign: `promoter approve {self.p.status.id} --env {d.env} "
                f"--as {d.approver} --sign-key KEY`"
            )
        return (
            f"{d.env} requires signed approvals; an unsigned one does not count: sign with `promoter approve "
            f"{self.p.status.id} --env {d.env} --as {d.approver} --sign-key KEY`, or paste the payload that "
            "`--print-payload` prints into the Web UI's update dialog"
        )

    def proven(self, d: Decision, approving: bool) -> tuple[Proven, str | None]:
        """What proves a sent decision: its SSH signature over this gate's statement, verified against
        trust/allowed_signers as main had it when the promotion started (or nothing, unsigned)."""
        if not d.statement and not d.signature:
            return DECLARED, None
        if not d.statement or not d.signature:
            return (
                DECLARED,
                "a signed decision needs both `statement` and `signature`; make them with `--print-payload`",
            )
        stage = self.p.stage_by_env[d.env]
        trust = self.p.plan.trust
        try:
            said = signing.Statement.parse(d.statement)
            armored = d.signature if "BEGIN SSH SIGNATURE" in d.signature else signing.line_to_armor(d.signature)
            verified = signing.verify(
                d.statement.encode(),
                armored,
                principal=d.approver,
                allowed_signers=trust.allowed_signers,
                revoked_keys=trust.revoked_keys,
                at=said.at,
            )
        except signing.SignatureError as e:
            return DECLARED, str(e)
        mismatch = self._mismatch(said, d, approving, stage)
        if mismatch is not None:
            return DECLARED, f"the signature is for {mismatch}; sign this gate's statement again"
        off = abs(workflow.now() - said.at)
        if off > SIGNATURE_SKEW:
            return DECLARED, (
                f"the signature was made at {said.at:%Y-%m-%dT%H:%M:%SZ}, {int(off.total_seconds() // 60)} minutes "
                f"off the workflow's clock (at most {int(SIGNATURE_SKEW.total_seconds() // 60)}); sign again now"
            )
        return Proven("signed", verified.fingerprint, d.statement, signing.armor_to_line(armored)), None

    def _mismatch(self, said: signing.Statement, d: Decision, approving: bool, stage: StageStatus) -> str | None:
        """What a verified statement names that this decision is not (None: it is this decision)."""
        decision = "approve" if approving else "reject"
        trees = tuple(sorted(stage.trees.items()))
        checks = [
            (said.promotion, self.p.status.id, f"promotion {said.promotion}, not {self.p.status.id}"),
            (said.run, self.p.status.run_id, f"another run of {said.promotion} ({said.run[:8]}), not this one"),
            (said.env, d.env, f"environment {said.env}, not {d.env}"),
            (said.commit, self.p.plan.commit, f"commit {said.commit[:12]}, not {self.p.plan.commit[:12]}"),
            (
                said.head,
                stage.head_sha or "",
                f"PR head {said.head[:7]}, not {(stage.head_sha or '?')[:7]} (a commit was pushed onto the PR since)",
            ),
            (
                said.trees,
                trees,
                f"a tree that is not what would merge now (PR head {(stage.head_sha or '?')[:7]}: "
                "a commit pushed onto the PR changes it)",
            ),
            (said.decision, decision, f"a decision to {said.decision}, not to {decision}"),
            (said.approver, d.approver, f"approver {said.approver}, not {d.approver}"),
            (said.comment, d.comment, "another comment"),
        ]
        return next((why for theirs, ours, why in checks if theirs != ours), None)

    def validate(self, d: Decision, approving: bool) -> None:
        """For the update validators: refuse before anything enters history."""
        reason = self.refusal(d, approving)
        if reason is not None:
            raise ApplicationError(reason, type="ApprovalRefused", non_retryable=True)

    def record_refusal(self, d: Decision, reason: str) -> None:
        if d.env in self.p.stage_by_env:
            refusal = Refusal(approver=d.approver, at=workflow.now(), via=d.via, reason=reason)
            self.p.stage_by_env[d.env].refusals.append(refusal)
            self.r.audit(d.env, "refusal", actor=d.approver, via=d.via, detail=reason)
            workflow.set_current_details(self.r.details(self.p.stage_by_env[d.env]))

    async def decide_sent(self, d: Decision, approving: bool) -> str | None:
        """A decision sent as an update or a signal: its channel, its signature, then `decide`."""
        reason = self.channel_refusal(d) or self.refusal(d, approving)
        if reason is not None:
            return reason
        proven, reason = self.proven(d, approving)
        return reason or await self.decide(d, approving, proven)

    async def decide(self, d: Decision, approving: bool, proven: Proven = DECLARED) -> str | None:
        """Validate, ask the policies (approvals only), validate again (the gate may have moved
        meanwhile), accept. Returns the reason for a refusal, or None."""
        reason = self.refusal(d, approving) or (self.unproven(d, proven) if approving else None)
        reason = reason or (self._key_used(d, proven) if approving else None)
        head = self.p.stage_by_env[d.env].head_sha if d.env in self.p.stage_by_env else None
        if reason is None and approving:
            reason = await self._policy_says(d, proven)
            reason = reason or self.refusal(d, approving) or self._key_used(d, proven)
            if reason is None and self.p.stage_by_env[d.env].head_sha != head:  # moved while the policies judged
                reason = "a commit was pushed onto the PR while this approval was checked; approve its new head"
        if reason is None:
            self._accept(d, approving, proven)
        return reason

    def _key_used(self, d: Decision, proven: Proven) -> str | None:
        """One key counts once, whatever principals trust/allowed_signers lists it for."""
        stage = self.p.stage_by_env[d.env]
        other = next((a for a in stage.approvals if proven.fingerprint and a.fingerprint == proven.fingerprint), None)
        if other is None:
            return None
        return f"the key {proven.fingerprint} has already approved {d.env} (as {other.approver}); one key counts once"

    async def _policy_says(self, d: Decision, proven: Proven = DECLARED) -> str | None:
        """The `promotion` policies' word on one more approval (None: allowed)."""
        stage = self.p.stage_by_env[d.env]
        candidate = Approval(
            approver=d.approver,
            at=workflow.now(),
            via=d.via,
            comment=d.comment,
            proof=proven.proof,
            fingerprint=proven.fingerprint,
        )
        check = self.p.policy_input(stage, "approval", approvals=[*stage.approvals, candidate])
        try:
            verdict = await steps.CHECK_APPROVAL.call(check, f"may {d.approver} approve {d.env}?")
        except ActivityError as e:  # fail closed, and never let a signal handler fail the workflow
            return f"the approval could not be checked against the policies ({steps.cause(e)}); try again"
        return None if verdict.allowed else str(verdict.reason)

    def _accept(self, d: Decision, approving: bool, proven: Proven) -> None:
        stage = self.p.stage_by_env[d.env]
        if approving:
            stage.approvals.append(
                Approval(
                    approver=d.approver,
                    at=workflow.now(),
                    via=d.via,
                    comment=d.comment,
                    head=stage.head_sha,
                    proof=proven.proof,
                    fingerprint=proven.fingerprint,
                    statement=proven.statement,
                    signature=proven.signature,
                )
            )
            planned = self.p.envs[d.env]
            if not self.is_open(stage, planned):
                self.r.set(stage, StageState.AWAITING_APPROVAL, self.waiting_message(stage, planned))
        else:
            self.rejection[d.env] = d
        kind: AuditKind = "approval" if approving else "rejection"
        self.r.audit(d.env, kind, actor=d.approver, via=d.via, detail=d.comment, proof=proven.proof)
