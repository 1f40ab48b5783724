"""PromotionWorkflow: carries one commit of an app through the environments, in their `order`.

Only orchestration lives here: no I/O, no clock but `workflow.now()`. Every side effect is an
activity whose name is derived from the input, so a retry or a replay never opens a second PR.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from promoter import report, search
    from promoter.models import (
        Approval,
        ApprovalCheck,
        AuditEntry,
        Decision,
        HealthInput,
        HealthResult,
        HistoryEntry,
        MergeResult,
        NotifyInput,
        OpenPullRequestInput,
        PlanInput,
        PlannedEnvironment,
        PolicyCheckInput,
        PolicyDecision,
        PrepareInput,
        PrepareResult,
        PromotionInput,
        PromotionPlan,
        PromotionState,
        PromotionStatus,
        PullRequest,
        PullRequestRef,
        Refusal,
        RevertInput,
        RevertResult,
        ScreenInput,
        ScreenResult,
        StageState,
        StageStatus,
        Supersede,
        SyncInput,
        SyncResult,
        WatchInput,
        WatchResult,
    )

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30)
)
GIT_TIMEOUTS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=2),
    "schedule_to_close_timeout": timedelta(minutes=15),  # then the stage fails with the last error
    "retry_policy": RETRY,
}
# states in which a stage's PR is open and ours to close when the promotion ends early
OPEN_PR_STATES = {StageState.PR_OPEN, StageState.AWAITING_APPROVAL, StageState.APPROVED}
# states of a stage that a cancel ends before its change is merged (its audit says "cancelled")
UNSTARTED_STATES = {StageState.PENDING, StageState.CHECKING_POLICY, StageState.OPENING_PR}
# `workflow.patched` id of gates that watch their PR, screen approvers, notify, audit and index
# (promotions started before it replay as they ran)
GATES_V2 = "gates-v2"
# `workflow.patched` id of a stage that says `opening_pr` while its branch is pushed and its PR opened
# (before it, the stage still said `checking_policy` while `push_branch` ran)
OPENING_PR = "opening-pr-state"
WITHDRAWN = ("dismissed", "unapproved")  # review states that take an approval back
WATCH_QUEUE_SUFFIX = "-watch"  # the watchers' own task queue (see promoter.worker.Workers)
WATCH_WINDOW = timedelta(days=30)  # a watcher attempt's limit; a gate with no deadline starts another
NOTIFY_TIMEOUTS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=15),
    "schedule_to_close_timeout": timedelta(minutes=1),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
}


def _cause(err: BaseException) -> str:
    while err.__cause__ is not None and isinstance(err, ActivityError):
        err = err.__cause__
    message = getattr(err, "message", None) or str(err)
    if isinstance(err, TimeoutError) and err.__cause__ is not None:  # a deadline: say what kept failing
        message = f"{message}; last error: {_cause(err.__cause__)}"
    return message


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


@workflow.defn(name="PromotionWorkflow")
class PromotionWorkflow:
    @workflow.init
    def __init__(self, inp: PromotionInput) -> None:
        self.plan = inp.plan
        self.envs: dict[str, PlannedEnvironment] = {e.config.name: e for e in inp.plan.environments}
        self.status = PromotionStatus(
            id=workflow.info().workflow_id,
            app=inp.plan.app,
            commit=inp.plan.commit,
            author=inp.plan.author,
            requested_by=inp.requested_by,
            started_at=workflow.info().start_time,
            stages=[
                StageStatus(
                    env=e.config.name,
                    order=e.config.order,
                    source=i == 0,
                    approvals_required=0 if i == 0 else e.config.approval.required,
                )
                for i, e in enumerate(inp.plan.environments)
            ],
        )
        self.stage_by_env = {s.env: s for s in self.status.stages}
        self.rejection: dict[str, Decision] = {}
        self.cancel_requested = False
        self.v2 = False  # set in run(): workflow.patched may not be called from __init__
        self.indexed = False
        self.notifications: list[asyncio.Task[None]] = []
        self.indexed_values: dict[str, str] = {}
        self.gate_opened_at: dict[str, datetime] = {}

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: PromotionInput) -> PromotionStatus:
        self.v2 = workflow.patched(GATES_V2)
        # indexed only when the starter could set the attributes (they are registered in the namespace)
        self.indexed = self.v2 and workflow.info().typed_search_attributes.get(search.APP) is not None
        try:
            for index, stage in enumerate(self.status.stages):
                self._checkpoint()
                done = await (self._source_stage(stage) if index == 0 else self._stage(stage))
                if not done:
                    break
            else:
                self._finish(PromotionState.SUCCEEDED, f"{self.plan.app} @ {self.plan.short_commit} promoted")
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        await self._notifications_sent()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status

    async def _cancelled(self) -> None:
        by = self.status.superseded_by
        reason = f"superseded by {by}" if by else "cancelled"
        await self._close_open_prs(
            f"Superseded: promotion `{self.status.id}` was replaced by {by}."
            if by
            else f"Promotion `{self.status.id}` was cancelled."
        )
        for stage in self.status.stages:
            if stage.state not in (StageState.HEALTHY, StageState.SKIPPED):
                if stage.state in OPEN_PR_STATES | UNSTARTED_STATES:
                    self._audit(stage.env, "cancelled", detail=reason)
                self._set(stage, StageState.CANCELLED, reason if by else "")
        self._finish(PromotionState.CANCELLED, reason)
        await self._notifications_sent()

    async def _source_stage(self, stage: StageStatus) -> bool:
        """The source already has the commit: policy, sync and health, no pull request."""
        stage.started_at = workflow.now()
        try:
            if not await self._policy(stage):
                return False
            return await self._sync_and_verify(stage, self.plan.commit)
        except ActivityError as e:
            return await self._fail(stage, e)

    async def _stage(self, stage: StageStatus) -> bool:
        planned = self.envs[stage.env]
        source = self.plan.environments[0].config.name
        stage.started_at = workflow.now()
        await self._soak_previous(stage)
        self._checkpoint()
        self._set(stage, StageState.PENDING, "preparing the change")
        try:
            change = PrepareInput(
                app=self.plan.app,
                commit=self.plan.commit,
                source_env=source,
                target_env=stage.env,
                local_files=planned.config.local_files,
            )
            prepared: PrepareResult = await self._act("prepare", change, PrepareResult, f"prepare {stage.env}")
            if not prepared.changed:
                folder = f"environments/{stage.env}/{self.plan.app}"
                self._set(stage, StageState.SKIPPED, f"{folder} already matches {source} @ {self.plan.short_commit}")
                stage.finished_at = workflow.now()
                return True
            decision = await self._policy(stage, "pre_pr", prepared)
            if decision is None:
                return False  # denied before anything was pushed or opened
            if workflow.patched(OPENING_PR):
                self._set(stage, StageState.OPENING_PR, f"pushing {prepared.branch}")
            prepared = await self._act("push_branch", change, PrepareResult, f"push {prepared.branch}")
            stage.branch, stage.head_sha = prepared.branch, prepared.head
            assert prepared.branch is not None
            title = report.pr_title(self.plan, source, stage.env)
            body = report.pr_body(
                self.plan,
                self.status.id,
                source,
                stage.env,
                prepared.diff,
                decision,
                planned.config.approval.approvers,
                planned.config.approval.required,
            )
            pr: PullRequest = await self._act(
                "open_pull_request",
                OpenPullRequestInput(
                    branch=prepared.branch,
                    title=title,
                    body=body,
                    labels=["promotion", f"env:{stage.env}", f"app:{self.plan.app}"],
                ),
                PullRequest,
                f"open PR for {stage.env}",
            )
            stage.pr_number, stage.pr_url = pr.number, pr.url
            self._set(stage, StageState.PR_OPEN, f"PR #{pr.number} opened")
            self._checkpoint()
            gate = await self._gate(stage, planned)
            if gate == "merged":  # merged on the forge by hand: sync what main has now
                assert stage.merge_commit is not None
                return await self._verified(stage, body, await self._sync_and_verify(stage, stage.merge_commit))
            if not gate:
                return False
            gated = planned.config.approval.required or planned.config.approval.require_review
            if gated and not await self._policy(stage, "merge", prepared):
                await self._close(pr.number, f"Not merged: the policies deny it at merge time.\n\n{stage.message}")
                return False
            self._set(stage, StageState.MERGING)
            # from the merge on, the stage runs to its verdict even if cancelled: never a merge without sync
            merge = PullRequestRef(number=pr.number)
            if self.v2:
                entries = self._entries(stage.env)
                record = PullRequestRef(number=pr.number, body=body + report.audit_section(entries))
                await self._act("update_pull_request", record, PullRequest, f"record decisions on PR #{pr.number}")
                merge = PullRequestRef(
                    number=pr.number,
                    expected_head=stage.head_sha,
                    comment=report.merge_message(pr.number, prepared.branch, title, self.status.id, entries),
                )
            merging = planned.config.merge
            merge.merge_method, merge.fail_when_blocked = merging.method, merging.on_blocked == "fail"
            waits = merging.wait or timedelta(minutes=30)
            merged: MergeResult = await self._act(  # a blocked merge is retried for merge.wait
                "merge_pull_request",
                merge,
                MergeResult,
                f"merge PR #{pr.number}",
                **(
                    GIT_TIMEOUTS | {"schedule_to_close_timeout": max(waits, timedelta(minutes=2))}
                    if self.v2
                    else GIT_TIMEOUTS
                ),
            )
            stage.merge_commit = merged.merge_commit
            self._audit(stage.env, "merge", detail=f"PR #{pr.number} merged as {merged.merge_commit[:12]}")
            return await self._verified(stage, body, await self._sync_and_verify(stage, merged.merge_commit))
        except ActivityError as e:
            return await self._fail(stage, e)

    async def _verified(self, stage: StageStatus, body: str, healthy: bool) -> bool:
        """After a merged stage's verdict, its PR body gets the whole record (merge, revert, verdict)."""
        if self.v2 and stage.pr_number is not None:
            self._audit(stage.env, "verdict", detail=f"{stage.state.value}: {stage.message}")
            try:
                await self._act(
                    "update_pull_request",
                    PullRequestRef(number=stage.pr_number, body=body + report.audit_section(self._entries(stage.env))),
                    PullRequest,
                    f"record the verdict on PR #{stage.pr_number}",
                )
            except ActivityError as e:  # the verdict stands; the record is also in the status
                self.status.notices.append(f"PR #{stage.pr_number}: the audit could not be written: {_cause(e)}")
        return healthy

    # ------------------------------------------------------------------ steps

    def _policy_input(
        self, stage: StageStatus, phase: str, diff: PrepareResult | None = None, approvals: list[Approval] | None = None
    ) -> PolicyCheckInput:
        index = self.status.stages.index(stage)
        return PolicyCheckInput(
            promotion_id=self.status.id,
            app=self.plan.app,
            commit=self.plan.commit,
            author=self.plan.author,
            source_env=self.status.stages[0].env,
            target_env=stage.env,
            started_at=workflow.info().start_time,
            environment=self.envs[stage.env].config,
            environments=[s.env for s in self.status.stages],
            history=[
                HistoryEntry(
                    env=s.env,
                    state=s.state.value,
                    healthy_since=s.finished_at if s.state == StageState.HEALTHY else None,
                    soak_seconds=self._soak(s.env).total_seconds(),
                )
                for s in self.status.stages[:index]
            ],
            phase=phase,
            head=stage.head_sha if self.v2 and phase == "merge" else None,  # what the merge would take
            evaluated_at=workflow.now(),
            diff=diff.diff if diff else PrepareResult(changed=False).diff,
            approvals=stage.approvals if approvals is None else approvals,
        )

    def _soak(self, env: str) -> timedelta:
        return self.envs[env].config.soak or timedelta(0)

    async def _policy(self, stage: StageStatus, phase: str = "pre_pr", diff: PrepareResult | None = None) -> Any:
        """The policy step: the decision is kept on the stage; a denial ends the promotion there."""
        self._set(stage, StageState.CHECKING_POLICY, "before merging" if phase == "merge" else "")
        decision: PolicyDecision = await self._act(
            "check_policy",
            self._policy_input(stage, phase, diff),
            PolicyDecision,
            f"policy ({phase}) for {stage.env}",
            start_to_close_timeout=timedelta(minutes=2),
            schedule_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        stage.policy = decision
        verdict = "allow" if decision.allow else "deny"
        self._audit(
            stage.env,
            "policy",
            actor=decision.engine or "policy",
            detail=(
                f"{phase} {verdict}, revision {decision.revision or '?'}, {len(decision.deny)} denial(s), "
                f"{len(decision.warn)} warning(s)"
            ),
        )
        if not decision.allow:
            reasons = "; ".join(f"{v.rule}: {v.message}" for v in decision.deny) or "denied"
            self._set(stage, StageState.POLICY_DENIED, reasons)
            stage.finished_at = workflow.now()
            self._finish(PromotionState.POLICY_DENIED, f"{stage.env}: {reasons}")
            self._notify(
                stage, "denied", f"Policy denied {self.plan.app} @ {self.plan.short_commit} for {stage.env}: {reasons}"
            )
            return None
        return decision

    async def _soak_previous(self, stage: StageStatus) -> None:
        """Wait until the previous environment has been healthy for its soak time (a durable timer)."""
        index = self.status.stages.index(stage)
        previous = self.status.stages[index - 1]
        if previous.state != StageState.HEALTHY or previous.finished_at is None:
            return
        ready = previous.finished_at + self._soak(previous.env)
        if workflow.now() < ready:
            self._set(stage, StageState.PENDING, f"waiting for {previous.env} to soak until {ready:%Y-%m-%d %H:%M:%S}Z")
            await workflow.sleep(ready - workflow.now(), summary=f"soak of {previous.env}")

    def _gate_open(self, stage: StageStatus, planned: PlannedEnvironment) -> bool:
        approval = planned.config.approval
        reviewed = not approval.require_review or any(a.via == "pull_request" for a in stage.approvals)
        return len(stage.approvals) >= approval.required and reviewed

    def _waiting_message(self, stage: StageStatus, planned: PlannedEnvironment) -> str:
        approval = planned.config.approval
        have = f"{len(stage.approvals)} of {approval.required} approval(s)"
        who = ", ".join(approval.approvers)
        review = "; it also needs an approving review on the PR" if approval.require_review else ""
        return f"waiting for {have} from {who} on PR #{stage.pr_number}{review}"

    async def _gate(self, stage: StageStatus, planned: PlannedEnvironment) -> bool | str:
        """Wait for the quorum (or a rejection, or the deadline). While it waits, the PR is watched:
        approving reviews count as approvals, and a new commit on the branch voids earlier ones.
        Returns True (open), False (the stage ended) or "merged" (merged on the forge by hand)."""
        approval = planned.config.approval
        if approval.required == 0 and not approval.require_review:
            self._set(stage, StageState.APPROVED, "no approval required")
            return True
        timeout = approval.timeout
        deadline = workflow.now() + timeout if timeout is not None else None
        stage.deadline = deadline
        stage.approvers = list(planned.allowed_approvers)
        stage.review_required = approval.require_review
        if self.v2:
            await self._screen(stage)
        self._set(stage, StageState.AWAITING_APPROVAL, self._waiting_message(stage, planned))
        self.gate_opened_at[stage.env] = workflow.now()
        self._notify(
            stage,
            "waiting",
            f"{self.plan.app} @ {self.plan.short_commit} waits for approval in {stage.env}: {stage.message}",
        )
        watching = self.v2 and (approval.pull_request_reviews or approval.require_review)
        watch: asyncio.Task[WatchResult] | None = None
        try:
            while not (stage.env in self.rejection or self._gate_open(stage, planned)):
                if watching and watch is None:
                    watch = self._watch(stage, deadline)
                remaining = deadline - workflow.now() if deadline is not None else None
                try:
                    if remaining is not None and remaining <= timedelta(0):
                        raise TimeoutError()

                    def moved(w: asyncio.Task[WatchResult] | None = watch) -> bool:
                        return stage.env in self.rejection or self._gate_open(stage, planned) or bool(w and w.done())

                    await workflow.wait_condition(
                        moved,
                        timeout=remaining,
                        timeout_summary=f"{stage.env} approval deadline",
                    )
                except TimeoutError:
                    return await self._expire(stage, planned)
                if watch is not None and watch.done():
                    seen, watch = watch, None
                    try:
                        outcome = await self._on_watch(stage, planned, seen.result())
                    except ActivityError as e:
                        watching = False  # the gate still opens by the UI and the CLI
                        stage.message = f"reviews are no longer read ({_cause(e)}); " + self._waiting_message(
                            stage, planned
                        )
                        self.status.notices.append(f"{stage.env}: watching PR #{stage.pr_number} failed: {_cause(e)}")
                        continue
                    if outcome is not None:
                        return outcome
        finally:
            if watch is not None and not watch.done():
                watch.cancel()
        self._gate_waited(stage, "rejected" if stage.env in self.rejection else "approved")
        if stage.env in self.rejection:
            d = self.rejection[stage.env]
            stage.rejected_by = d.approver
            self._set(stage, StageState.REJECTED, f"rejected by {d.approver}: {d.comment}")
            assert stage.pr_number is not None
            await self._close(stage.pr_number, f"Rejected by {d.approver} via {d.via}: {d.comment}")
            stage.finished_at = workflow.now()
            self._finish(PromotionState.REJECTED, f"{stage.env}: rejected by {d.approver}: {d.comment}")
            self._notify(
                stage,
                "rejected",
                f"{self.plan.app} @ {self.plan.short_commit} was rejected in {stage.env} by {d.approver}: {d.comment}",
            )
            return False
        self._set(
            stage, StageState.APPROVED, "approved by " + ", ".join(f"{a.approver} ({a.via})" for a in stage.approvals)
        )
        return True

    async def _expire(self, stage: StageStatus, planned: PlannedEnvironment) -> bool:
        approval = planned.config.approval
        assert stage.pr_number is not None
        waited = report.human_duration(approval.timeout)
        self._gate_waited(stage, "expired")
        self._set(stage, StageState.EXPIRED, f"no decision within {waited}")
        self._audit(
            stage.env, "expired", detail=f"{len(stage.approvals)} of {approval.required} approval(s) within {waited}"
        )
        await self._close(
            stage.pr_number,
            f"Closed: the {stage.env} gate expired after {waited} without {approval.required} approval(s).",
        )
        stage.finished_at = workflow.now()
        self._finish(PromotionState.EXPIRED, f"{stage.env}: gate expired after {waited}")
        self._notify(
            stage,
            "expired",
            f"The {stage.env} gate of {self.plan.app} @ {self.plan.short_commit} "
            f"expired after {waited}; PR #{stage.pr_number} was closed",
        )
        return False

    def _gate_waited(self, stage: StageStatus, outcome: str) -> None:
        opened = self.gate_opened_at.get(stage.env)
        if opened is not None:
            workflow.metric_meter().create_histogram_float(
                "promoter_gate_wait",
                "from a gate starting to wait to its decision",
                "seconds",
            ).record(
                (workflow.now() - opened).total_seconds(), {"app": self.plan.app, "env": stage.env, "outcome": outcome}
            )

    async def _screen(self, stage: StageStatus) -> None:
        """Ask the policies about each possible approver, so the update validator can refuse one
        with the policy's reason before anything enters history. Best effort: the approval handler
        asks the policies again for every approval, so a failed screen only refuses later."""
        candidates = sorted(set(stage.approvers))
        if not candidates:
            return
        try:
            result: ScreenResult = await self._act(
                "screen_approvers",
                ScreenInput(check=self._policy_input(stage, "approval", approvals=[]), candidates=candidates),
                ScreenResult,
                f"who may approve {stage.env}?",
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
            )
        except ActivityError as e:
            self.status.notices.append(f"{stage.env}: approvers could not be screened ({_cause(e)})")
            return
        stage.screened = result.refused

    def _watch(self, stage: StageStatus, deadline: datetime | None) -> asyncio.Task[WatchResult]:
        assert stage.pr_number is not None
        window = WATCH_WINDOW if deadline is None else min(WATCH_WINDOW, deadline - workflow.now())
        task = asyncio.ensure_future(
            workflow.execute_activity(
                "watch_pull_request",
                WatchInput(number=stage.pr_number, head_sha=stage.head_sha, review_states=stage.review_states),
                result_type=WatchResult,
                task_queue=workflow.info().task_queue + WATCH_QUEUE_SUFFIX,
                start_to_close_timeout=window + timedelta(minutes=1),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=RETRY,
                summary=f"watch PR #{stage.pr_number} for reviews and new commits",
            )
        )
        task.add_done_callback(_consume)  # a watch cancelled when the gate decides ends in an error nobody reads
        return task

    async def _on_watch(self, stage: StageStatus, planned: PlannedEnvironment, seen: WatchResult) -> bool | str | None:
        """Take in what the watcher saw; a result ends the gate, None keeps it waiting."""
        if seen.state == "merged" and seen.merge_commit:
            stage.merge_commit = seen.merge_commit
            self._audit(
                stage.env,
                "merge",
                actor="forge",
                detail=f"PR #{stage.pr_number} merged outside promoter as {seen.merge_commit[:12]}",
            )
            self._set(stage, StageState.MERGING, "merged on the forge by hand; syncing what was merged")
            return "merged"
        if seen.state != "open":
            self._set(
                stage,
                StageState.FAILED,
                f"PR #{stage.pr_number} was {seen.state} outside promoter; start a new promotion to open another",
            )
            stage.finished_at = workflow.now()
            self._finish(PromotionState.FAILED, f"{stage.env}: {stage.message}")
            self._notify(stage, "failed", f"{self.plan.app} @ {self.plan.short_commit}: {stage.env}: {stage.message}")
            return False
        if seen.head_sha != stage.head_sha:
            old, stage.head_sha = stage.head_sha, seen.head_sha
            voided, stage.approvals = stage.approvals, []
            stage.voided.extend(voided)
            note = (
                f"new commit {(seen.head_sha or '?')[:7]} on {stage.branch} (was {(old or '?')[:7]}): "
                f"{len(voided)} earlier approval(s) no longer count"
            )
            self._audit(
                stage.env, "voided", detail=note + (": " + ", ".join(a.approver for a in voided) if voided else "")
            )
            self._set(stage, StageState.AWAITING_APPROVAL, f"{note}; " + self._waiting_message(stage, planned))
        for review in seen.reviews:
            stage.review_states[review.id] = review.state
            if review.state in WITHDRAWN:
                self._withdraw(stage, planned, review.author, review.state)
                continue
            if review.state != "approved":
                self._audit(stage.env, "review", actor=review.author, via="pull_request", detail=review.state)
                continue
            if review.commit and review.commit != stage.head_sha:
                continue  # given on an older head: stale, as on a hosted forge
            d = Decision(env=stage.env, approver=review.author, comment=review.body, via="pull_request")
            reason = await self._decide(d, True)
            if reason is not None:
                self._refused(d, reason)
        return None

    def _withdraw(self, stage: StageStatus, planned: PlannedEnvironment, who: str, how: str) -> None:
        """A review dismissed, or an approval withdrawn, on the forge: the approval it gave stops counting."""
        gone = [a for a in stage.approvals if a.via == "pull_request" and a.approver == who]
        if not gone:
            return
        stage.approvals = [a for a in stage.approvals if a not in gone]
        stage.voided.extend(gone)
        note = f"{who}'s approving review was {how} on the forge; it no longer counts"
        self._audit(stage.env, "voided", actor=who, via="pull_request", detail=note)
        self._set(stage, StageState.AWAITING_APPROVAL, f"{note}; " + self._waiting_message(stage, planned))

    async def _sync_and_judge(self, stage: StageStatus, revision: str) -> HealthResult:
        cfg = self.envs[stage.env].config
        reverting = stage.state == StageState.REVERTING  # the revert's sync keeps the stage `reverting`
        self._set(stage, stage.state if reverting else StageState.SYNCING, f"syncing {revision[:7]}")
        synced: SyncResult = await self._act(
            "sync",
            SyncInput(
                promotion_id=self.status.id, app=self.plan.app, env=stage.env, revision=revision, cluster=cfg.cluster
            ),
            SyncResult,
            f"sync {stage.env} to {revision[:7]}",
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=15),  # a worker that dies mid-sync is noticed at once
            schedule_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        if not reverting:
            self._set(
                stage,
                StageState.VERIFYING,
                f"{synced.applied} applied, {synced.unchanged} unchanged, {synced.pruned} pruned",
            )
        timeout = cfg.health.timeout or timedelta(minutes=5)
        health: HealthResult = await self._act(
            "check_health",
            HealthInput(
                app=self.plan.app,
                env=stage.env,
                revision=revision,
                cluster=cfg.cluster,
                timeout=cfg.health.timeout,
                http=cfg.health.http,
            ),
            HealthResult,
            f"health of {stage.env} at {revision[:7]}",
            start_to_close_timeout=timeout + timedelta(minutes=1),
            heartbeat_timeout=timedelta(seconds=15),
            schedule_to_close_timeout=timeout + timedelta(minutes=5),
            retry_policy=RETRY,
        )
        return health

    async def _sync_and_verify(self, stage: StageStatus, revision: str) -> bool:
        health = await self._sync_and_judge(stage, revision)
        if health.healthy:
            self._set(stage, StageState.HEALTHY, health.reason)
            stage.finished_at = workflow.now()
            self._notify(stage, "succeeded", f"{self.plan.app} @ {self.plan.short_commit} is healthy in {stage.env}")
            return True
        healthy = await self._revert(stage, self.envs[stage.env].config.revert.automatic, health.reason)
        event = "reverted" if stage.state == StageState.REVERTED else "failed"
        self._notify(stage, event, f"{self.plan.app} @ {self.plan.short_commit} in {stage.env}: {stage.message}")
        return healthy

    async def _revert(self, stage: StageStatus, automatic: bool, reason: str) -> bool:
        if stage.source or stage.merge_commit is None or stage.pr_number is None:
            self._set(
                stage,
                StageState.FAILED,
                f"unhealthy: {reason}; the source environment has nothing to "
                "revert to: fix it in the source folder and promote again",
            )
            stage.finished_at = workflow.now()
            self._finish(PromotionState.FAILED, f"{stage.env}: unhealthy: {reason}")
            return False
        if not automatic:
            self._set(
                stage,
                StageState.FAILED,
                f"unhealthy: {reason}; revert.automatic is off, the environment "
                "is left as it is: fix forward, or revert the merge by hand",
            )
            stage.finished_at = workflow.now()
            self._finish(PromotionState.FAILED, f"{stage.env}: unhealthy: {reason}")
            return False
        self._set(stage, StageState.REVERTING, reason)
        result: RevertResult = await self._act(
            "revert",
            RevertInput(
                app=self.plan.app,
                env=stage.env,
                merge_commit=stage.merge_commit,
                pr_number=stage.pr_number,
                reason=reason,
            ),
            RevertResult,
            f"revert {stage.env}",
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=15),
            schedule_to_close_timeout=timedelta(minutes=15),
            retry_policy=RETRY,
        )
        assert result.revert_commit is not None
        stage.revert_commit, stage.revert_pr_number = result.revert_commit, result.pr_number
        self._audit(
            stage.env, "revert", detail=f"{reason}; reverted by {result.revert_commit[:12]} (PR #{result.pr_number})"
        )
        workflow.metric_meter().create_counter("promoter_reverts", "automatic reverts of a merged stage").add(
            1, {"app": self.plan.app, "env": stage.env}
        )
        restored = await self._sync_and_judge(stage, result.revert_commit)
        stage.finished_at = workflow.now()
        if not restored.healthy:
            self._set(
                stage,
                StageState.FAILED,
                f"unhealthy: {reason}; reverted by {result.revert_commit[:7]} "
                f"(PR #{result.pr_number}), but still unhealthy: {restored.reason}",
            )
            self._finish(PromotionState.FAILED, f"{stage.env}: the revert did not restore health: {restored.reason}")
            return False
        self._set(
            stage,
            StageState.REVERTED,
            f"unhealthy: {reason}; reverted by {result.revert_commit[:7]} (PR #{result.pr_number}), healthy again",
        )
        self._finish(PromotionState.REVERTED, f"{stage.env}: unhealthy: {reason}")
        return False

    async def _close(self, number: int, comment: str) -> None:
        await self._act(
            "close_pull_request", PullRequestRef(number=number, comment=comment), PullRequest, f"close PR #{number}"
        )

    async def _close_open_prs(self, comment: str) -> None:
        for stage in self.status.stages:
            if stage.pr_number is not None and stage.state in OPEN_PR_STATES:
                await self._close(stage.pr_number, comment)

    async def _fail(self, stage: StageStatus, err: ActivityError) -> bool:
        """End the promotion `failed`, and close the stage's PR with the reason: it belongs to a
        promotion that is over, and a new promotion of the same commit opens a fresh one."""
        message = _cause(err)
        step = stage.state.value
        had_open_pr = stage.pr_number is not None and stage.state in OPEN_PR_STATES | {StageState.MERGING}
        self._set(stage, StageState.FAILED, message)
        stage.finished_at = workflow.now()
        self._finish(PromotionState.FAILED, f"{stage.env}: {message}")
        self._notify(stage, "failed", f"{self.plan.app} @ {self.plan.short_commit} failed in {stage.env}: {message}")
        if had_open_pr and stage.pr_number is not None:
            try:
                await self._close(
                    stage.pr_number,
                    f"Promotion `{self.status.id}` failed while {step}: {message}\n\n"
                    "Fix the cause, then start a new promotion.",
                )
            except ActivityError as close_err:  # best effort: the failure itself is already recorded
                stage.message += f" (closing PR #{stage.pr_number} failed too: {_cause(close_err)})"
        return False

    # ------------------------------------------------------------------ cancellation

    async def _act(self, name: str, arg: Any, result_type: type, summary: str, **options: Any) -> Any:
        """Run an activity to its end even when the promotion is cancelled meanwhile: a side effect in
        flight (a push, a PR, a merge) is always known to the workflow, so cancel can clean it up and
        a merge is never left without its sync. The cancel then takes effect at `_checkpoint`."""
        task = asyncio.ensure_future(
            workflow.execute_activity(name, arg, result_type=result_type, summary=summary, **(options or GIT_TIMEOUTS))
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.cancel_requested = True
            self.status.message = f"cancel requested: finishing '{summary}' first"
            return await task

    def _checkpoint(self) -> None:
        if self.cancel_requested:
            raise asyncio.CancelledError()

    # ------------------------------------------------------------------ bookkeeping

    def _set(self, stage: StageStatus, state: StageState, message: str = "") -> None:
        stage.state = state
        stage.message = message
        workflow.set_current_details(
            self._details(stage)
            if self.v2
            else (
                f"{self.plan.app} @ {self.plan.short_commit} — {stage.env}: {state.value}"
                + (f" — {message}" if message else "")
                + (f" — PR {stage.pr_url}" if stage.pr_url else "")
            )
        )
        workflow.upsert_memo(
            {
                "app": self.plan.app,
                "commit": self.plan.commit,
                "state": self.status.state.value,
                "stage": stage.env,
                "stage_state": state.value,
            }
        )
        self._index(stage.env, state.value)

    def _details(self, stage: StageStatus) -> str:
        """The workflow page's "current details" (markdown): the stage, and for a gate who may open it,
        where, and the exact update to send from the UI."""
        lines = [f"**{self.plan.app} @ {self.plan.short_commit} — {stage.env}: {stage.state.value}**", ""]
        if stage.message:
            lines.append(stage.message)
        if stage.pr_url:
            lines += ["", f"Pull request #{stage.pr_number}: {stage.pr_url}"]
        if stage.state == StageState.AWAITING_APPROVAL:
            people = ", ".join(a for a in stage.approvers if a not in stage.screened) or "nobody"
            lines += ["", f"May approve: {people}."]
            if stage.deadline is not None:
                lines.append(f"Deadline: {stage.deadline:%Y-%m-%d %H:%M} UTC.")
            lines += [
                "",
                "Approve: More Actions → Send an Update → `approve`, input "
                f'`{{"env": "{stage.env}", "approver": "<you>", "comment": "..."}}`',
                f"(or `promoter approve {self.status.id} --env {stage.env} --as <you>`).",
            ]
        return "\n".join(lines)

    def _index(self, env: str, state: str) -> None:
        """Search attributes, upserted only when they change (each upsert is a history event)."""
        if not self.indexed:
            return
        values = {"env": env, "state": state}
        if values == self.indexed_values:
            return
        self.indexed_values = values
        workflow.upsert_search_attributes([search.ENV.value_set(env), search.STATE.value_set(state)])

    def _finish(self, state: PromotionState, message: str) -> None:
        self.status.state = state
        self.status.message = message
        self.status.finished_at = workflow.now()
        workflow.upsert_memo({"state": state.value})
        self._index(self.indexed_values.get("env", ""), state.value)
        meter = workflow.metric_meter()  # the SDK skips these while replaying: each is counted once
        meter.create_counter("promoter_promotions", "promotions ended, by outcome").add(
            1, {"app": self.plan.app, "outcome": state.value}
        )
        for stage in self.status.stages:
            if stage.started_at is not None and stage.state not in (StageState.PENDING, StageState.SKIPPED):
                seconds = ((stage.finished_at or workflow.now()) - stage.started_at).total_seconds()
                meter.create_histogram_float(
                    "promoter_stage_duration", "a stage from its start to its end", "seconds"
                ).record(seconds, {"app": self.plan.app, "env": stage.env, "state": stage.state.value})

    def _audit(self, env: str, kind: str, actor: str = "promoter", via: str = "", detail: str = "") -> None:
        self.status.audit.append(AuditEntry(at=workflow.now(), env=env, kind=kind, actor=actor, via=via, detail=detail))

    def _entries(self, env: str) -> list[AuditEntry]:
        return [e for e in self.status.audit if e.env == env]

    def _notify(self, stage: StageStatus, event: str, text: str) -> None:
        """Post to the environment's webhooks in the background; a failure is noted, never fatal."""
        if not self.v2:
            return
        for hook in self.envs[stage.env].config.notify:
            if hook.events and event not in hook.events:
                continue
            req = NotifyInput(
                url=hook.url,
                event=event,
                text=text,
                promotion_id=self.status.id,
                app=self.plan.app,
                env=stage.env,
                commit=self.plan.commit,
                state=stage.state.value,
                pr_url=stage.pr_url,
            )
            self.notifications.append(asyncio.ensure_future(self._post(req)))

    async def _post(self, req: NotifyInput) -> None:
        try:
            await workflow.execute_activity(
                "notify", req, result_type=int, summary=f"notify {req.event}", **NOTIFY_TIMEOUTS
            )
        except ActivityError as e:
            self.status.notices.append(f"{req.env}: the {req.event} webhook failed: {_cause(e)}")

    async def _notifications_sent(self) -> None:
        if self.notifications:
            await asyncio.gather(*self.notifications)

    # ------------------------------------------------------------------ gates

    def _refusal(self, d: Decision, approving: bool) -> str | None:
        stage = self.stage_by_env.get(d.env)
        if stage is None:
            return f"this promotion has no environment '{d.env}'; it has: {', '.join(self.stage_by_env)}"
        if not d.approver.strip():
            return "say who decides: the approver is empty"
        if stage.source:
            return f"{d.env} is the source environment; it has no gate"
        if stage.state != StageState.AWAITING_APPROVAL:
            return f"{d.env} is not awaiting approval (it is {stage.state.value})"
        planned = self.envs[d.env]
        if d.approver not in planned.allowed_approvers:
            allowed = ", ".join(planned.config.approval.approvers) or "nobody"
            return f"{d.approver} may not decide {d.env}; its approvers are: {allowed}"
        if approving and any(a.approver == d.approver for a in stage.approvals):
            return f"{d.approver} has already approved {d.env}; one person counts once"
        if approving and d.approver in stage.screened:
            return stage.screened[d.approver]
        if not approving and not d.comment.strip():
            return "a rejection needs a reason"
        return None

    def _accept(self, d: Decision, approving: bool) -> StageStatus:
        stage = self.stage_by_env[d.env]
        if approving:
            stage.approvals.append(
                Approval(approver=d.approver, at=workflow.now(), via=d.via, comment=d.comment, head=stage.head_sha)
            )
            if self.v2 and not self._gate_open(stage, self.envs[d.env]):
                self._set(stage, StageState.AWAITING_APPROVAL, self._waiting_message(stage, self.envs[d.env]))
        else:
            self.rejection[d.env] = d
        self._audit(d.env, "approval" if approving else "rejection", actor=d.approver, via=d.via, detail=d.comment)
        return stage

    def _refused(self, d: Decision, reason: str) -> None:
        if d.env in self.stage_by_env:
            self.stage_by_env[d.env].refusals.append(
                Refusal(approver=d.approver, at=workflow.now(), via=d.via, reason=reason)
            )
            self._audit(d.env, "refusal", actor=d.approver, via=d.via, detail=reason)

    def _validate(self, d: Decision, approving: bool) -> None:
        reason = self._refusal(d, approving)
        if reason is not None:
            raise ApplicationError(reason, type="ApprovalRefused", non_retryable=True)

    async def _policy_says(self, d: Decision) -> str | None:
        """The `promotion` policies' word on one more approval (None: allowed)."""
        stage = self.stage_by_env[d.env]
        candidate = Approval(approver=d.approver, at=workflow.now(), via=d.via, comment=d.comment)
        try:
            check: ApprovalCheck = await workflow.execute_activity(
                "check_approval",
                self._policy_input(stage, "approval", approvals=[*stage.approvals, candidate]),
                result_type=ApprovalCheck,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
                summary=f"may {d.approver} approve {d.env}?",
            )
        except ActivityError as e:  # fail closed, and never let a signal handler fail the workflow
            return f"the approval could not be checked against the policies ({_cause(e)}); try again"
        return None if check.allowed else check.reason

    async def _decide(self, d: Decision, approving: bool) -> str | None:
        """Validate, ask the policies (approvals only), validate again (the gate may have moved
        meanwhile), accept. Returns the reason for a refusal, or None."""
        reason = self._refusal(d, approving)
        if reason is None and approving:
            reason = await self._policy_says(d)
            reason = reason or self._refusal(d, approving)
        if reason is None:
            self._accept(d, approving)
        return reason

    @workflow.update(name="approve")
    async def approve(self, d: Decision) -> StageStatus:
        reason = await self._decide(d, True)
        if reason is not None:
            self._refused(d, reason)  # accepted by the validator, refused by the policies: on record
            raise ApplicationError(reason, type="ApprovalRefused", non_retryable=True)
        return self.stage_by_env[d.env]

    @approve.validator
    def _approve_validator(self, d: Decision) -> None:
        self._validate(d, True)

    @workflow.update(name="reject")
    async def reject(self, d: Decision) -> StageStatus:
        reason = await self._decide(d, False)
        if reason is not None:
            raise ApplicationError(reason, type="ApprovalRefused", non_retryable=True)
        return self.stage_by_env[d.env]

    @reject.validator
    def _reject_validator(self, d: Decision) -> None:
        self._validate(d, False)

    async def _signalled(self, d: Decision, approving: bool) -> None:
        reason = await self._decide(d, approving)
        if reason is not None:
            self._refused(d, reason)

    @workflow.signal(name="approve")
    async def approve_signal(self, d: Decision) -> None:
        await self._signalled(d, True)

    @workflow.signal(name="reject")
    async def reject_signal(self, d: Decision) -> None:
        await self._signalled(d, False)

    @workflow.signal(name="supersede")
    def supersede(self, by: Supersede) -> None:
        """Sent by `promoter promote --supersede` just before it cancels this promotion: the cancel
        then closes the open PRs with a pointer to the newer promotion."""
        where = f" ({by.url})" if by.url else ""
        self.status.superseded_by = (
            f"the promotion of {self.plan.app} @ {by.commit[:7]} requested by {by.requested_by}{where}"
        )

    @workflow.query(name="status")
    def query_status(self) -> PromotionStatus:
        return self.status


@workflow.defn(name="PlanWorkflow")
class PlanWorkflow:
    """Resolves and validates a promotion request where the repository is: on a worker.

    The CLI runs it before starting a promotion, so bad input (unknown app or environment, a missing
    commit, a malformed environment.yaml) is refused with one line and nothing is started or pushed.
    """

    @workflow.run
    async def run(self, req: PlanInput) -> PromotionPlan:
        plan: PromotionPlan = await workflow.execute_activity(
            "plan",
            req,
            result_type=PromotionPlan,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="plan",
        )
        return plan
