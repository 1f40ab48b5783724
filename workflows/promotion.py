"""PromotionWorkflow: carries one commit of an app through the environments, in their `order`, or
through their graph (`after`: stages with the same upstreams side by side, a fan-in after all of them).

Only orchestration lives here: no I/O, no clock but `workflow.now()`. Every side effect is a typed
step (`workflows/steps.py`) whose arguments derive from the input, so a retry or a replay never opens
a second PR. The gate (`workflows/gate.py`, with the decisions it is sent in `workflows/decisions.py`),
the stage's pull request (`workflows/pull_request.py`), the rollout (`workflows/rollout.py`), a release
set's claims (`workflows/claim.py`) and the record (`workflows/recorder.py`) are units of their own;
this class runs the stages and takes the handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from promoter import environments
    from promoter.converter import REFUSED
    from promoter.models import (
        ChangeCheck,
        Decision,
        Phase,
        PlannedEnvironment,
        PolicyDecision,
        PrepareResult,
        PromotionInput,
        PromotionRequest,
        PromotionState,
        PromotionStatus,
        PullRequest,
        StageState,
        StageStatus,
        Supersede,
    )
    from promoter.promotions import APPROVE, REJECT, STATUS_QUERY, SUPERSEDE
    from workflows import steps
    from workflows.claim import Claims
    from workflows.decisions import Decisions
    from workflows.gate import Gate
    from workflows.pull_request import OPEN_PR_STATES, PullRequests
    from workflows.recorder import Promotion, Recorder
    from workflows.resolve import ResolveWorkflow as ResolveWorkflow  # its own module; callers import it here
    from workflows.rollout import Rollout

# states of a stage that a cancel ends before its change is merged (its audit says "cancelled")
UNSTARTED_STATES = {StageState.PENDING, StageState.CHECKING_POLICY, StageState.OPENING_PR}
# the patch that made a promotion read its environments, trust/ and rules on a worker as it starts, instead
# of taking the starter's (histories recorded before it replay without that step); the patch ID keeps its
# first name, which histories hold
RESOLVED_ON_WORKER = "plan-on-worker"


@workflow.defn(name="PromotionWorkflow")
class PromotionWorkflow:
    @workflow.init
    def __init__(self, inp: PromotionInput) -> None:
        self.p = Promotion(inp)
        self.plan, self.status = self.p.plan, self.p.status
        self.runner = steps.Runner(self.status)
        self.r = Recorder(self.p)
        self.decisions = Decisions(self.p, self.r)
        self.prs = PullRequests(self.p, self.r, self.runner)
        self.gate = Gate(self.p, self.r, self.runner, self.decisions, self.prs.close)
        self.rollout = Rollout(self.p, self.r, self.runner)
        self.claims = Claims(self.p, self.r)

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: PromotionInput) -> PromotionStatus:
        try:
            if workflow.patched(RESOLVED_ON_WORKER) and not await self._resolve_on_worker():
                return self.status
            if self.plan.members and not await self.claims.take():
                await self.claims.release()
                return self.status
            if self.p.graph:
                await self._run_graph()
            else:
                for index, stage in enumerate(self.status.stages):
                    self.runner.checkpoint()
                    done = await (self._source_stage(stage) if index == 0 else self._stage(stage))
                    if not done:
                        break
                else:
                    self.r.finish(PromotionState.SUCCEEDED, f"{self.p.label} promoted")
        except asyncio.CancelledError:
            await self._cancelled()
            await self.claims.release()
            raise
        await self.claims.release()
        await self.gate.watchers_ended()
        await self.r.notifications_sent()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status

    async def _run_graph(self) -> None:
        """A graph (`after`): the source, then each stage as soon as every stage it comes after is healthy
        (or skipped), each in a task of its own, so that stages with the same upstreams run side by side
        (each one's work as in a line) and a fan-in waits for all of its upstreams, soaked. A stage that
        ends the promotion (failed, reverted, denied, rejected, expired) stops only the stages after it:
        the other branches run to their own end, then the promotion ends as the first such stage said."""
        self.r.branches = True
        ran: dict[str, asyncio.Task[bool]] = {}
        for index, stage in enumerate(self.status.stages):  # in graph order: every upstream has its task
            ups = [ran[up] for up in self.p.upstreams[stage.env]]
            ran[stage.env] = asyncio.ensure_future(self._branch(stage, index == 0, ups))
        try:
            await workflow.wait_condition(lambda: all(t.done() for t in ran.values()))
        except asyncio.CancelledError:  # each stage finishes its step in flight (steps.Runner), then stops
            for task in ran.values():
                task.cancel()
            await workflow.wait_condition(lambda: all(t.done() for t in ran.values()))
            raise
        finally:
            self.r.branches = False
        for task in ran.values():
            task.result()  # an error that is no verdict fails the workflow task, as it does in a line
        end = self.r.first_end
        self.r.finish(*(end or (PromotionState.SUCCEEDED, f"{self.p.label} promoted")))

    async def _branch(self, stage: StageStatus, source: bool, ups: list[asyncio.Task[bool]]) -> bool:
        """One stage of a graph, once every stage it comes after has ended: run when all took the
        commit, left pending (with the reason) when one did not."""
        took = [await up for up in ups]
        stopped = [env for env, ok in zip(self.p.upstreams[stage.env], took, strict=True) if not ok]
        if stopped:
            ended = ", ".join(f"{env} ({self.p.stage_by_env[env].state.value})" for env in stopped)
            stage.message = f"not started: it comes after {ended}"
            return False
        self.runner.checkpoint()
        return await (self._source_stage(stage) if source else self._stage(stage))

    async def _resolve_on_worker(self) -> bool:
        """The rules a promotion obeys are the repository's, read on a worker as it starts: whoever
        starts the workflow chooses what to promote (app, commit, how far), never its gates, approvers
        or trusted keys. False (the promotion ends failed, nothing done) when that reading fails or
        names other environments than the starter's plan."""
        given = self.plan
        ask = PromotionRequest(
            app=given.app, members=given.members, commit=given.commit, to_env=environments.last(given.environments)
        )
        try:
            fresh = await self.runner.run(steps.RESOLVE, ask, "read the environments, trust/ and rules on a worker")
        except ActivityError as e:
            self.r.finish(
                PromotionState.FAILED, f"the promotion's request could not be resolved on a worker: {steps.cause(e)}"
            )
            return False
        names = [e.config.name for e in fresh.environments]
        if names != [e.config.name for e in given.environments] or fresh.commit != given.commit:
            self.r.finish(
                PromotionState.FAILED,
                f"it was started with a plan ({' → '.join(e.config.name for e in given.environments)} @ "
                f"{given.commit[:7]}) that is not the repository's ({' → '.join(names)} @ {fresh.commit[:7]}); "
                "start it again",
            )
            return False
        self.p.adopt(fresh)
        return True

    async def _cancelled(self) -> None:
        by = self.status.superseded_by
        reason = f"superseded by {by}" if by else "cancelled"
        await self.prs.close_open(
            f"Superseded: promotion `{self.status.id}` was replaced by {by}."
            if by
            else f"Promotion `{self.status.id}` was cancelled."
        )
        for stage in self.status.stages:
            if stage.state not in (StageState.HEALTHY, StageState.SKIPPED):
                if stage.state in OPEN_PR_STATES | UNSTARTED_STATES:
                    self.r.audit(stage.env, "cancelled", detail=reason)
                self.r.set(stage, StageState.CANCELLED, reason if by else "")
        self.r.finish(PromotionState.CANCELLED, reason)
        await self.gate.watchers_ended()
        await self.r.notifications_sent()

    async def _source_stage(self, stage: StageStatus) -> bool:
        """The source already has the commit: policy, sync and health, no pull request."""
        stage.started_at = workflow.now()
        try:
            if not await self._policy(stage):
                return False
            return await self.rollout.verify(stage, self.plan.commit)
        except ActivityError as e:
            return await self._fail(stage, e)

    async def _stage(self, stage: StageStatus) -> bool:
        """A later environment: the change and its policy check, PR, gate, merge, then the rollout's verdict."""
        planned = self.p.envs[stage.env]
        stage.started_at = workflow.now()
        await self._soak_previous(stage)
        self.runner.checkpoint()
        self.r.set(stage, StageState.CHECKING_POLICY, "preparing the change and checking it")
        try:
            check = self.p.policy_input(stage, "pre_pr")
            checked: ChangeCheck = await self.runner.run(
                steps.CHECK_CHANGE, check, f"change and policy for {stage.env}"
            )
            if checked.decision is None:
                return self._skip(stage)
            if not self._judge(stage, "pre_pr", checked.decision):
                return False  # denied before anything was pushed or opened
            # the branch builds on the main the policies judged: a change made to the folder on main
            # since then is a merge conflict to reconcile, never silently overwritten
            change = check.change(base=checked.prepared.base)
            opened = await self.prs.open(stage, planned, change, checked.prepared, checked.decision)
            if opened is None:
                return self._skip(stage)
            pr, body = opened
            gate = await self.gate.wait(stage, planned)
            if gate == "merged":  # merged on the forge by hand: sync what main has now
                assert stage.merge_commit is not None
                healthy = await self.rollout.verify(stage, stage.merge_commit)
                await self.prs.record_verdict(stage, body)
                return healthy
            if not gate:
                return False
            return await self._merge(stage, planned, checked.prepared, pr, body)
        except ActivityError as e:
            return await self._fail(stage, e)

    def _skip(self, stage: StageStatus) -> bool:
        folder = ", ".join(f"environments/{stage.env}/{app}" for app in self.plan.apps)
        source = self.status.stages[0].env
        self.r.set(stage, StageState.SKIPPED, f"{folder} already match(es) {source} @ {self.plan.short_commit}")
        stage.finished_at = workflow.now()
        return True

    async def _merge(
        self, stage: StageStatus, planned: PlannedEnvironment, prepared: PrepareResult, pr: PullRequest, body: str
    ) -> bool:
        """Check the policies once more (a gated stage), record the decisions, merge, and verify.
        From the merge on, the stage runs to its verdict even if cancelled: never a merge without sync."""
        gated = bool(planned.config.approval.required or planned.config.approval.require_review)
        merge_commit = await self.prs.merge(stage, planned, pr, partial(self._policy, stage, "merge", prepared), gated)
        if merge_commit is None:  # the policies deny it at merge time: its PR is closed
            return False
        healthy = await self.rollout.verify(stage, merge_commit)
        await self.prs.record_verdict(stage, body)
        return healthy

    # ------------------------------------------------------------------ steps

    async def _policy(self, stage: StageStatus, phase: Phase = "pre_pr", diff: PrepareResult | None = None) -> bool:
        """The policy step (the source's check, and a gated stage's check before its merge)."""
        self.r.set(stage, StageState.CHECKING_POLICY, "before merging" if phase == "merge" else "")
        decision = await self.runner.run(
            steps.CHECK_POLICY, self.p.policy_input(stage, phase, diff), f"policy ({phase}) for {stage.env}"
        )
        return self._judge(stage, phase, decision)

    def _judge(self, stage: StageStatus, phase: Phase, decision: PolicyDecision) -> bool:
        """The decision is kept on the stage and audited; a denial ends the promotion there."""
        stage.policy = decision
        verdict = "allow" if decision.allow else "deny"
        counts = f"{len(decision.deny)} denial(s), {len(decision.warn)} warning(s)"
        detail = f"{phase} {verdict}, revision {decision.revision or '?'}, {counts}"
        audit_policy(self.r, stage, decision, detail)
        if decision.allow:
            return True
        reasons = "; ".join(f"{v.rule}: {v.message}" for v in decision.deny) or "denied"
        self.r.end(stage, StageState.POLICY_DENIED, reasons, PromotionState.POLICY_DENIED, reasons)
        self.r.notify(stage, "denied", f"Policy denied {self.p.label} for {stage.env}: {reasons}")
        return False

    async def _soak_previous(self, stage: StageStatus) -> None:
        """Wait until every environment it comes after (in a line, the previous one) has been healthy for
        its soak time: one durable timer, to the last of their soaks."""
        ups = [self.p.stage_by_env[env] for env in self.p.upstreams[stage.env]]
        soaks = [
            (up.finished_at + self.p.soak(up.env), up.env)
            for up in ups
            if up.state == StageState.HEALTHY and up.finished_at is not None
        ]
        waiting = [(at, env) for at, env in soaks if workflow.now() < at]
        if not waiting:
            return
        ready, names = max(at for at, _ in waiting), ", ".join(env for _, env in waiting)
        self.r.set(stage, StageState.PENDING, f"waiting for {names} to soak until {ready:%Y-%m-%d %H:%M:%S}Z")
        await workflow.sleep(ready - workflow.now(), summary=f"soak of {names}")

    async def _fail(self, stage: StageStatus, err: ActivityError) -> bool:
        """End the promotion `failed`, and close the stage's PR with the reason: it belongs to a
        promotion that is over, and a new promotion of the same commit opens a fresh one."""
        message = steps.cause(err)
        step = stage.state.value
        had_open_pr = stage.pr_number is not None and stage.state in OPEN_PR_STATES | {StageState.MERGING}
        self.r.end(stage, StageState.FAILED, message, PromotionState.FAILED, message)
        self.r.notify(stage, "failed", f"{self.p.label} failed in {stage.env}: {message}")
        if had_open_pr and stage.pr_number is not None:
            try:
                await self.prs.close(
                    stage.pr_number,
                    f"Promotion `{self.status.id}` failed while {step}: {message}\n\n"
                    "Fix the cause, then start a new promotion.",
                )
            except ActivityError as close_err:  # best effort: the failure itself is already recorded
                stage.message += f" (closing PR #{stage.pr_number} failed too: {steps.cause(close_err)})"
        return False

    # ------------------------------------------------------------------ handlers

    @workflow.update(name=APPROVE)
    async def approve(self, d: Decision) -> StageStatus:
        return await self._decide_update(d, True)

    @approve.validator
    def _approve_validator(self, d: Decision) -> None:
        self.decisions.validate(d, True)

    @workflow.update(name=REJECT)
    async def reject(self, d: Decision) -> StageStatus:
        return await self._decide_update(d, False)

    @reject.validator
    def _reject_validator(self, d: Decision) -> None:
        self.decisions.validate(d, False)

    async def _decide_update(self, d: Decision, approving: bool) -> StageStatus:
        reason = await self.decisions.decide_sent(d, approving)
        if reason is not None:  # accepted by the validator, refused by its channel, its signature or the policies
            raise ApplicationError(reason, type=REFUSED, non_retryable=True)
        return self.p.stage_by_env[d.env]

    @workflow.signal(name=APPROVE)
    async def approve_signal(self, d: Decision) -> None:
        await self.decisions.decide_sent(d, True)  # a refusal is on record: a signal has no answer

    @workflow.signal(name=REJECT)
    async def reject_signal(self, d: Decision) -> None:
        await self.decisions.decide_sent(d, False)

    @workflow.signal(dynamic=True)
    def tools_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Signals for tools, not people: a dynamic handler is not offered in the Web UI's Signal
        dialog. `supersede` is sent by `promoter promote --supersede` (see `api.supersede_signal`)."""
        if name == SUPERSEDE and args:
            self.supersede(workflow.payload_converter().from_payload(args[0].payload, Supersede))

    def supersede(self, by: Supersede) -> None:
        """A newer promotion of the app replaces this one, just before it is cancelled: the cancel then
        closes the open PRs with a pointer to the newer promotion."""
        where = f" ({by.url})" if by.url else ""
        self.status.superseded_by = (
            f"the promotion of {by.what or self.plan.app} @ {by.commit[:7]} requested by {by.requested_by}{where}"
        )

    @workflow.query(name=STATUS_QUERY)
    def query_status(self) -> PromotionStatus:
        return self.status


def audit_policy(r: Recorder, stage: StageStatus, decision: PolicyDecision, detail: str) -> None:
    """The policy check, audited; and each break-glass that let a freeze through (an excepted finding the
    policies name so), once per stage: the PR body, the merge's trailers (Promoter-Break-Glass) and
    `promoter history` name it."""
    r.audit(stage.env, "policy", actor=decision.engine or "policy", detail=detail)
    seen = {e.detail for e in r.entries(stage.env) if e.kind == "break-glass"}
    for v in decision.excepted:
        if v.exception.startswith("break-glass ") and v.exception not in seen:
            seen.add(v.exception)
            r.audit(stage.env, "break-glass", detail=v.exception)
