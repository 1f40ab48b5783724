"""A gate's PR watcher: an activity that watches the stage's PR while its gate waits, and what the gate
takes in from it. A review counts as an approval, a new commit voids the approvals given on the older
head, a review withdrawn stops counting, and a PR merged or closed by hand ends the wait. Deterministic:
workflow code only."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter.models import (
        Decision,
        PlannedEnvironment,
        PromotionState,
        StageState,
        StageStatus,
        WatchInput,
        WatchResult,
    )
    from workflows import steps
    from workflows.decisions import Decisions, waiting_message
    from workflows.recorder import Promotion, Recorder
    from workflows.signatures import DECLARED, FORGE

WITHDRAWN = ("dismissed", "unapproved")  # review states that take an approval back
WATCH_WINDOW = timedelta(days=30)  # a watcher attempt's limit; a gate with no deadline starts another
# how long a finished promotion waits for its cancelled PR watchers to end: a watcher sees its cancel at its
# next heartbeat (every 2 minutes at most with a thousand gates waiting), and one on a worker that died, only
# at its heartbeat timeout (4 minutes); the run, which `promoter promote` of the same app waits out, must
# not stay open that long after its outcome. A watcher still running afterwards finds the run closed at its
# next heartbeat and stops; it only reads the forge.
WATCHERS_GRACE = timedelta(seconds=5)
# the patch that made a decided gate's watcher end before the promotion does (histories recorded
# before it replay without waiting)
WATCHERS_AWAITED = "watchers-awaited"
Outcome = bool | Literal["merged"]  # a gate open, the stage ended, or merged on the forge by hand


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Watcher:
    def __init__(self, promotion: Promotion, recorder: Recorder, decisions: Decisions) -> None:
        self.p = promotion
        self.r = recorder
        self.decisions = decisions
        self.ending: list[asyncio.Task[WatchResult]] = []  # cancelled watchers, until they have ended

    def start(self, stage: StageStatus, deadline: datetime | None) -> asyncio.Task[WatchResult]:
        """Watch the stage's PR (up to the gate's deadline) from what the gate knows of it."""
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

    def stop(self, task: asyncio.Task[WatchResult]) -> None:
        """The gate decided: cancel its watcher, which `ended` waits for."""
        task.cancel()
        self.ending.append(task)

    async def ended(self) -> None:
        """Wait for the cancelled PR watchers to end, so that a finished promotion leaves no pending
        activity behind, for WATCHERS_GRACE at most (see there). The gate does not wait for them: the
        merge, sync and health check go on meanwhile."""
        if not self.ending:
            return
        if not workflow.patched("watchers-grace"):  # a run from before: it waited for every watcher
            await asyncio.wait(self.ending)
            return
        try:
            await workflow.wait_condition(
                lambda: all(task.done() for task in self.ending),
                timeout=WATCHERS_GRACE,
                timeout_summary="cancelled PR watchers",
            )
        except TimeoutError:
            pass  # the run ends without them (a dead worker's, or one that heartbeats minutes apart)

    async def take_in(self, stage: StageStatus, planned: PlannedEnvironment, seen: WatchResult) -> Outcome | None:
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
                self.decisions.record_refusal(
                    d, f"the review names no commit; the forge pins each review to one, so it cannot count for {head}"
                )
            elif not review.commit or review.commit == stage.head_sha:  # one on an older head is stale
                # the one place a `pull_request` approval is made: from what this workflow's watcher read
                d = Decision(env=stage.env, approver=review.author, comment=review.body, via="pull_request")
                reason = await self.decisions.decide(d, True, FORGE if seen.authenticated else DECLARED)
                if reason is not None:
                    self.decisions.record_refusal(d, reason)
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
        self.r.set(stage, StageState.AWAITING_APPROVAL, f"{note}; " + waiting_message(stage, planned))

    def _withdraw(self, stage: StageStatus, planned: PlannedEnvironment, who: str, how: str) -> None:
        """A review dismissed, or an approval withdrawn, on the forge: the approval it gave stops counting."""
        gone = [a for a in stage.approvals if a.via == "pull_request" and a.approver == who]
        if not gone:
            return
        stage.approvals = [a for a in stage.approvals if a not in gone]
        stage.voided.extend(gone)
        note = f"{who}'s approving review was {how} on the forge; it no longer counts"
        self.r.audit(stage.env, "voided", actor=who, via="pull_request", detail=note)
        self.r.set(stage, StageState.AWAITING_APPROVAL, f"{note}; " + waiting_message(stage, planned))
