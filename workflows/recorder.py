"""What a promotion knows and records: its plan and status (`Promotion`), and everything that tells
the world about it (`Recorder`): stage states, the Web UI's current details, the memo and search
attributes, the audit trail, metrics and webhooks. Deterministic: workflow code only."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from promoter import environments, report, search
    from promoter.models import (
        Approval,
        AuditEntry,
        AuditKind,
        Event,
        HistoryEntry,
        NotifyInput,
        Phase,
        PlannedEnvironment,
        PolicyCheckInput,
        PrepareResult,
        PromotionInput,
        PromotionPlan,
        PromotionState,
        PromotionStatus,
        Proof,
        StageState,
        StageStatus,
        Via,
        proof_note,
    )
    from workflows import steps


# the patch that upserts the search attributes once per workflow task rather than once per activation:
# the worker keeps a workflow task open while a local step runs, so the states set before and after
# one (checking_policy, opening_pr, merging) reached the server together, each its own history event
# and visibility write, and only the last of them was ever seen
INDEX_PER_TASK = "index-per-task"


class Promotion:
    """The plan and the status of one promotion, and the policy input built from them."""

    def __init__(self, inp: PromotionInput) -> None:
        self.plan = inp.plan
        self.envs: dict[str, PlannedEnvironment] = {e.config.name: e for e in inp.plan.environments}
        # what each stage waits for: the one before it in a line, every `after` in a graph
        self.graph = environments.is_graph(inp.plan.environments)
        self.upstreams = environments.upstreams(inp.plan.environments)
        levels = environments.levels(inp.plan.environments)
        self.status = PromotionStatus(
            id=workflow.info().workflow_id,
            run_id=workflow.info().run_id,
            app=inp.plan.app,
            members=inp.plan.members,
            commit=inp.plan.commit,
            author=inp.plan.author,
            requested_by=inp.requested_by,
            started_at=workflow.info().start_time,
            stages=[
                StageStatus(
                    env=e.config.name,
                    order=levels[e.config.name],
                    after=self.upstreams[e.config.name] if self.graph else [],
                    source=i == 0,
                    approvals_required=0 if i == 0 else e.config.approval.required,
                )
                for i, e in enumerate(inp.plan.environments)
            ],
        )
        self.stage_by_env = {s.env: s for s in self.status.stages}

    def adopt(self, fresh: PromotionPlan) -> None:
        """Take the plan as a worker read it from the repository (same environments, same commit): its
        configurations, trust/ and rules revision replace the starter's, which nothing checked."""
        self.plan.environments, self.plan.trust, self.plan.rules = fresh.environments, fresh.trust, fresh.rules
        self.plan.author, self.plan.message = fresh.author, fresh.message
        self.envs = {e.config.name: e for e in fresh.environments}
        self.status.author = fresh.author
        self.graph, self.upstreams = (
            environments.is_graph(fresh.environments),
            environments.upstreams(fresh.environments),
        )
        levels = environments.levels(fresh.environments)
        for stage, planned in zip(self.status.stages, fresh.environments, strict=True):
            stage.approvals_required = 0 if stage.source else planned.config.approval.required
            if self.graph:  # the repository's graph, not the starter's
                stage.order, stage.after = levels[stage.env], self.upstreams[stage.env]
        if fresh.rules.notice():  # judged by the last trusted rules: say what on main is not used
            self.status.notices.append(fresh.rules.notice())

    @property
    def label(self) -> str:
        return f"{self.plan.title} @ {self.plan.short_commit}"

    def soak(self, env: str) -> timedelta:
        return self.envs[env].config.soak or timedelta(0)

    def policy_input(
        self,
        stage: StageStatus,
        phase: Phase,
        diff: PrepareResult | None = None,
        approvals: list[Approval] | None = None,
    ) -> PolicyCheckInput:
        index = self.status.stages.index(stage)
        return PolicyCheckInput(
            promotion_id=self.status.id,
            app=self.plan.app,
            members=self.plan.members,
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
                    soak_seconds=self.soak(s.env).total_seconds(),
                )
                for s in self.status.stages[:index]
            ],
            phase=phase,
            head=stage.head_sha if phase == "merge" else None,  # what the merge would take
            pr_head=stage.head_sha,
            evaluated_at=workflow.now(),
            diff=diff.diff if diff else PrepareResult(changed=False).diff,
            approvals=stage.approvals if approvals is None else approvals,
        )


def pr_link(stage: StageStatus) -> str:
    """The stage's PR for the Web UI's markdown: a link to its page when it has one on the web."""
    if stage.pr_url and stage.pr_url.startswith(("http://", "https://")):
        return f"[#{stage.pr_number}]({stage.pr_url})"
    return f"#{stage.pr_number}: {stage.pr_url}"


def graph_entry(stage: StageStatus) -> str:
    """A stage of a graph in the Web UI's details: `prod (after staging-eu, staging-us): pending`."""
    after = f" (after {', '.join(stage.after)})" if stage.after else " (source)" if stage.source else ""
    return f"{stage.env}{after}: {stage.state.value}"


class Recorder:
    """Every record of a promotion, kept in step with its status."""

    def __init__(self, promotion: Promotion) -> None:
        self.p = promotion
        self.status = promotion.status
        # indexed only when the starter could set the attributes (they are registered in the namespace)
        self.indexed = workflow.info().typed_search_attributes.get(search.APP) is not None
        self.indexed_values: dict[str, str] = {}
        self.pending_index: dict[str, str] | None = None  # set within this activation, upserted at its end
        self.per_task = workflow.patched(INDEX_PER_TASK)  # ... or, while a local step runs, after it
        self.memo_stage = ""  # the stage the memo names
        # a graph's branches run side by side: while `branches` is set, the first ending (a failure in one
        # branch) is kept in `first_end` and the promotion ends with it once every branch has ended
        self.branches = False
        self.first_end: tuple[PromotionState, str] | None = None
        self.notifications: list[asyncio.Task[None]] = []
        self.gate_opened_at: dict[str, datetime] = {}

    # ------------------------------------------------------------------ states

    def set(self, stage: StageStatus, state: StageState, message: str = "") -> None:
        stage.state = state
        stage.message = message
        workflow.set_current_details(self.details(stage))
        # each upsert is a history event: with search attributes (which follow every state), the memo
        # follows only the stage; without them it is what `promoter list` reads, so it follows every state
        if not self.indexed or self.memo_stage != stage.env:
            self.memo_stage = stage.env
            workflow.upsert_memo(
                {
                    "app": self.p.plan.app,
                    "commit": self.p.plan.commit,
                    "state": self.status.state.value,
                    "stage": stage.env,
                    "stage_state": state.value,
                }
            )
        self._index(stage.env, state.value)

    def end(self, stage: StageStatus, state: StageState, message: str, outcome: PromotionState, summary: str) -> None:
        """The stage ends in `state`, and with it the promotion, in `outcome`."""
        self.set(stage, state, message)
        stage.finished_at = workflow.now()
        self.finish(outcome, f"{stage.env}: {summary}")

    def details(self, stage: StageStatus) -> str:
        """The workflow page's "current details" (markdown): the stage, and for a gate who may open it,
        where, and the exact update to send from the UI."""
        lines = [f"**{self.p.label} — {stage.env}: {stage.state.value}**", ""]
        if stage.message:
            lines.append(stage.message)
        if self.p.graph:  # the environments run as a graph: where each one stands, and what runs beside
            lines += ["", "Environments: " + "; ".join(graph_entry(s) for s in self.status.stages) + "."]
        if self.p.plan.rules.untrusted:
            lines += ["", f"Rules: {self.p.plan.rules.notice()}."]
        if stage.pr_url:
            lines += ["", f"Pull request {pr_link(stage)}"]
        if stage.state == StageState.AWAITING_APPROVAL:
            people = ", ".join(report.may_approve(stage)) or "nobody"
            lines += ["", f"May approve: {people}."]
            last = stage.refusals[-1] if stage.refusals else None
            if last is not None and not any(a.at > last.at for a in stage.approvals):
                # a refused signal has no dialog to show its reason: it shows here, until the next decision
                lines.append(f"Refused: {last.approver} via {last.via}: {last.reason}")
            if stage.deadline is not None:
                lines.append(f"Deadline: {stage.deadline:%Y-%m-%d %H:%M} UTC.")
            if stage.signed_required:
                lines += [
                    "",
                    f"{stage.env} requires signed approvals. Approve with "
                    f"`promoter approve {self.status.id} --env {stage.env} --as <you> --sign-key <your SSH key>`, "
                    "or add `--print-payload` and paste what it prints into More Actions → Send an Update → "
                    "`approve` (a signature is good for 10 minutes).",
                ]
            else:
                lines += [
                    "",
                    "Approve: More Actions → Send an Update → `approve`, input "
                    f'`{{"env": "{stage.env}", "approver": "<you>", "comment": "..."}}`',
                    f"(or `promoter approve {self.status.id} --env {stage.env} --as <you>`).",
                ]
        return "\n".join(lines)

    def outcome(self) -> str:
        """The workflow page's details once the promotion has ended: its outcome, and per stage how it
        ended, who approved it and how, and its PR (a list: the UI draws no markdown tables)."""
        lines = [f"**{self.p.label}: {self.status.state.value}**", "", self.status.message, ""]
        for stage in self.status.stages:
            line = "- " + (graph_entry(stage) if self.p.graph else f"{stage.env}: {stage.state.value}")
            if stage.approvals:
                line += " — approved by " + ", ".join(
                    f"{a.approver} via {a.via}{proof_note(a.proof, a.via)}" for a in stage.approvals
                )
            if stage.pr_url:
                line += f" — PR {pr_link(stage)}"
            lines.append(line)
        return "\n".join(lines)

    def _index(self, env: str, state: str) -> None:
        """Search attributes, upserted once per activation with the last values set in it, and only
        when they changed (each upsert is a history event and a visibility write: the states a
        stage passes through without waiting, e.g. pr_open → approved → merging, are one upsert)."""
        if not self.indexed:
            return
        if self.pending_index is None:
            asyncio.get_running_loop().call_soon(self.flush_index)  # after this activation's code
        self.pending_index = {"env": env, "state": state}

    def flush_index(self, now: bool = False) -> None:
        """Upsert the attributes set last, unless a local step is in flight: the workflow task stays open
        until it ends, so they are upserted once it has (and the code it resumes has set its own)."""
        runner = getattr(workflow.instance(), "runner", None)  # the workflow's steps.Runner
        if not now and self.per_task and runner is not None and runner.local_steps:
            runner.after_local_steps(self.flush_index)
            return
        values, self.pending_index = self.pending_index, None
        if values is None or values == self.indexed_values:
            return
        self.indexed_values = values
        workflow.upsert_search_attributes(
            [search.ENV.value_set(values["env"]), search.STATE.value_set(values["state"])]
        )

    def finish(self, state: PromotionState, message: str) -> None:
        if self.branches:
            self.first_end = self.first_end or (state, message)
            return
        self.status.state = state
        self.status.message = message
        self.status.finished_at = workflow.now()
        workflow.set_current_details(self.outcome())
        workflow.upsert_memo({"state": state.value})
        last = self.pending_index or self.indexed_values
        self._index(last.get("env", ""), state.value)
        self.flush_index(now=True)  # now: the workflow may return before the activation's callbacks run
        meter = workflow.metric_meter()  # the SDK skips these while replaying: each is counted once
        meter.create_counter("promoter_promotions", "promotions ended, by outcome").add(
            1, {"app": self.p.plan.app, "outcome": state.value}
        )
        durations = meter.create_histogram_float(
            "promoter_stage_duration", "a stage from its start to its end", "seconds"
        )
        for stage in self.status.stages:
            if stage.started_at is not None and stage.state not in (StageState.PENDING, StageState.SKIPPED):
                seconds = ((stage.finished_at or workflow.now()) - stage.started_at).total_seconds()
                durations.record(seconds, {"app": self.p.plan.app, "env": stage.env, "state": stage.state.value})

    # ------------------------------------------------------------------ audit and metrics

    def audit(
        self,
        env: str,
        kind: AuditKind,
        actor: str = "promoter",
        via: Via | Literal[""] = "",
        detail: str = "",
        proof: Proof | Literal[""] = "",
    ) -> None:
        entry = AuditEntry(at=workflow.now(), env=env, kind=kind, actor=actor, via=via, detail=detail, proof=proof)
        self.status.audit.append(entry)

    def entries(self, env: str) -> list[AuditEntry]:
        return [e for e in self.status.audit if e.env == env]

    def gate_opened(self, env: str) -> None:
        self.gate_opened_at[env] = workflow.now()

    def gate_waited(self, stage: StageStatus, outcome: str) -> None:
        opened = self.gate_opened_at.get(stage.env)
        if opened is not None:
            workflow.metric_meter().create_histogram_float(
                "promoter_gate_wait", "from a gate starting to wait to its decision", "seconds"
            ).record(
                (workflow.now() - opened).total_seconds(),
                {"app": self.p.plan.app, "env": stage.env, "outcome": outcome},
            )

    def reverted(self, env: str) -> None:
        workflow.metric_meter().create_counter("promoter_reverts", "automatic reverts of a merged stage").add(
            1, {"app": self.p.plan.app, "env": env}
        )

    # ------------------------------------------------------------------ webhooks

    def notify(self, stage: StageStatus, event: Event, text: str) -> None:
        """Post to the environment's webhooks in the background; a failure is noted, never fatal."""
        for hook in self.p.envs[stage.env].config.notify:
            if hook.events and event not in hook.events:
                continue
            req = NotifyInput(
                url=hook.url,
                event=event,
                text=text,
                promotion_id=self.status.id,
                app=self.p.plan.app,
                env=stage.env,
                commit=self.p.plan.commit,
                state=stage.state.value,
                pr_url=stage.pr_url,
            )
            self.notifications.append(asyncio.ensure_future(self._post(req)))

    async def _post(self, req: NotifyInput) -> None:
        try:
            await steps.NOTIFY.call(req, f"notify {req.event}")
        except ActivityError as e:
            self.status.notices.append(f"{req.env}: the {req.event} webhook failed: {steps.cause(e)}")

    async def notifications_sent(self) -> None:
        if self.notifications:
            await asyncio.gather(*self.notifications)
