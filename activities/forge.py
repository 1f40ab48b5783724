"""Forge activities: push a stage's branch and open its PR (idempotent by head branch), update,
merge (once), close, and the gate's watcher of a pull request's reviews and head."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import classified, classified_errors, glass
from promoter import holds, names, report
from promoter.errors import DECISION_EXPIRED, BadInput, TemporaryError
from promoter.forges import Forge
from promoter.forges.http import Blocked, PastDeadline, PollBudget, counting, sent_before
from promoter.models import (
    ClosePullRequest,
    EnvironmentConfig,
    LiftHoldInput,
    MergePullRequest,
    MergeResult,
    OpenChangeInput,
    OpenedChange,
    OpenedLift,
    OpenPullRequestInput,
    PrepareInput,
    PrepareResult,
    PullRequest,
    ReviewEvent,
    UpdatePullRequest,
    WatchInput,
    WatchResult,
)
from promoter.names import app_folder
from promoter.secrets import redact

# the PR watchers of one worker send the server about this many heartbeats a second at most: each sends
# one every `watchers / HEARTBEATS_PER_S` seconds, within these bounds (the watch step's heartbeat timeout
# is twice the longest), so 1,000 waiting gates make 8 a second, not 200: each heartbeat is a write of
# the promotion's state on the server (docs/benchmarks.md, "A thousand waiting gates")
HEARTBEATS_PER_S = 8.0
HEARTBEAT_EVERY_S = (1.0, 120.0)
WAKE_S = 10.0  # a waiting watcher wakes this often at most when no heartbeat is due
SEEN_PUSH_TRIES = 30  # seconds a lift's push may take to show on its PR before the merge step is retried
# the lift-hold workflow's merge message names the lift-hold PR's branch (workflows/lift_hold.py)
_LIFT_MERGE = re.compile(r"Merge pull request #\d+ from (release-hold/\S+)")


class Pulse:
    """A PR watcher's heartbeats: one when `every` seconds have passed since the last, or at once when
    what it says changed in kind (the first poll's answer, a forge error, the forge back). Its polls come
    far more often than its heartbeats are due when many gates wait (every 15 s against every 2 minutes at
    1,000): a heartbeat after each poll was 66 a second from 1,000 gates, not 8. A forge error's text can
    change at every poll ("asks to wait 37s"): the error is news once, its next texts when a beat is due."""

    def __init__(self, detail: str) -> None:
        self.at = time.monotonic()
        self.detail = detail  # what the next heartbeat says
        self.kind: str | None = None  # what the last one said, in kind

    def beat(self, detail: str, every: float, kind: str) -> None:
        """A poll's outcome: `detail` to say, `kind` what it says (news when it differs from the last)."""
        self.detail = detail
        if kind != self.kind:
            self._send(kind)
        else:
            self.tick(every)

    def tick(self, every: float) -> None:
        """The latest detail again, when `every` seconds have passed since the last heartbeat."""
        if time.monotonic() - self.at >= every:
            self._send(self.kind)

    def _send(self, kind: str | None) -> None:
        activity.heartbeat(self.detail)
        self.at, self.kind = time.monotonic(), kind


class ForgeGit(glass.GlassGit, Protocol):
    """What the forge activities need of the git side (promoter.git.ports): a stage's branch pushed,
    the folders' trees a merge must still have, and a hold, its lift-hold request and the sealed lift."""

    def push_branch(self, req: PrepareInput) -> PrepareResult: ...
    def folder_trees(self, rev: str, folders: list[str]) -> dict[str, str]: ...
    def held(self, app: str, env: str, commit: str) -> tuple[holds.Hold, EnvironmentConfig, str]: ...
    def push_lift_request(self, hold: holds.Hold, who: str, why: str) -> tuple[str, str]: ...
    def lift_request(self, commit: str) -> tuple[str, str, str, str]: ...
    def seal_lift(self, branch: str, request: str, approvals: Sequence[str] = ...) -> str: ...

    # and a break-glass's request and seal, the trusted rules and their trust/ (glass.GlassGit)


class ForgeActivities:
    def __init__(
        self, forge: Forge, repo: ForgeGit, poll_seconds: float = 15.0, poll_budget: float | None = None
    ) -> None:
        """`poll_budget`: requests an hour the PR watchers may spend on the forge's token (None: the
        forge's own `poll_budget`, which PROMOTER_FORGE_POLL_BUDGET sets; none: no limit)."""
        self.forge = forge
        self.repo = repo
        self.poll_seconds = poll_seconds
        api = getattr(forge, "api", None)  # a hosted forge's client: the rate limit its answers state
        per_hour = poll_budget if poll_budget is not None else getattr(forge, "poll_budget", None)
        self.budget = PollBudget(per_hour, poll_seconds, rate=lambda: getattr(api, "rate", None))
        self.watching = 0  # the watchers waiting now

    @activity.defn(name="open_change")
    @classified
    def open_change(self, req: OpenChangeInput) -> OpenedChange:
        """Commit the change on the stage's branch and push it, then open its PR: both idempotent, so
        a retry finds the same branch and the same PR again. No PR when main already has the change
        (it landed there since it was checked), and none when this promotion's PR of the stage was merged
        or closed already (see `_ended`)."""
        ended = self._ended(req)
        if ended is not None:
            return ended
        prepared = self.repo.push_branch(req.change)
        if prepared.branch is None or prepared.head is None:
            return OpenedChange(prepared=prepared)
        pr = self.open_pull_request(
            OpenPullRequestInput(branch=prepared.branch, title=req.title, body=req.body, labels=req.labels)
        )
        folders = [app_folder(req.change.target_env, app) for app in req.change.apps]
        return OpenedChange(prepared=prepared, pr=pr, trees=self.repo.folder_trees(prepared.head, folders))

    def _ended(self, req: OpenChangeInput) -> OpenedChange | None:
        """This promotion's own PR of the stage when it is merged or closed already. A local step runs
        again when its workflow task times out (a worker starved or lost): that second run may still be
        going after the first's result let the promotion merge or close the PR, and must then push
        nothing and open no second PR. Another promotion of the same commit is not this one: its PR
        body names another promotion ID."""
        if not req.promotion_id:
            return None
        change = req.change
        branch = names.promotion_branch(change.app, change.target_env, change.commit)
        pr = self.forge.find_pull_request(branch)
        if pr is None or pr.state == "open" or not report.opened_by(pr.body, req.promotion_id):
            return None
        prepared = PrepareResult(changed=True, branch=branch, head=pr.head_sha, base=change.base)
        return OpenedChange(prepared=prepared, pr=pr)

    def open_pull_request(self, req: OpenPullRequestInput) -> PullRequest:
        """Open (or find again) the stage's PR, then close older promotion PRs of the same app and
        environment with a pointer to it, so the repository does not fill with stale ones."""
        pr = self.forge.open_pull_request(req.branch, req.title, req.body, labels=req.labels)
        family = names.family_of(req.branch)  # promote/<app>/<env>/
        for stale in self.forge.list_open(family):
            if stale.number != pr.number:
                self.forge.close(
                    stale.number, f"Superseded by #{pr.number} ({pr.url}), which promotes a newer commit: {req.title}."
                )
        return pr

    @activity.defn(name="update_pull_request")
    @classified
    def update_pull_request(self, req: UpdatePullRequest) -> PullRequest:
        return self.forge.update_body(req.number, req.body)

    @activity.defn(name="merge_pull_request")
    @classified
    def merge_pull_request(self, req: MergePullRequest) -> MergeResult:
        """Merge the PR at its approved head, while the policies' decision stands (`not_after`): the
        forge is asked nothing after it, not even after a wait it asked for within the attempt."""
        left = None if req.not_after is None else (req.not_after - _attempt_time()).total_seconds()
        if left is not None and left <= 0:
            return self._expired(req)
        expected, method = req.expected_head, req.merge_method
        lift = _LIFT_MERGE.match(req.comment) or glass.MERGE.match(req.comment)
        if lift is not None:  # an approved lift-hold (or break-glass) PR: promoter signs the lift, then merges it
            sealed = self._seal_lift(req, lift.group(1))
            if isinstance(sealed, MergeResult):
                return sealed
            # the signed commit itself must reach main: a merge commit, never a squash
            expected, method = sealed, "merge"
        try:
            with sent_before(left):
                pr = self.forge.merge(req.number, req.comment or None, expected, method)
        except PastDeadline:
            return self._expired(req)
        except Blocked as e:  # retried under the stage's merge.wait, unless merge.on_blocked is fail
            raise ApplicationError(str(e), type="Blocked", non_retryable=req.fail_when_blocked) from None
        assert pr.merge_commit is not None
        return MergeResult(number=pr.number, merge_commit=pr.merge_commit)

    def _expired(self, req: MergePullRequest) -> MergeResult:
        """A merge asked after the decision it rests on stood: the merge when an earlier request (this
        attempt's, an earlier one's, a person's) made it, else `DecisionExpired`."""
        assert req.not_after is not None
        pr = self.forge.get_pull_request(req.number)
        if pr.state == "merged" and pr.merge_commit:  # an earlier attempt (or a person) merged it: sync it
            return MergeResult(number=pr.number, merge_commit=pr.merge_commit)
        if pr.state == "merged":  # merged, its merge commit not known yet: never closed as denied
            raise TemporaryError(f"PR #{req.number} is merged; its merge commit is not known yet")
        raise ApplicationError(
            f"not merged: the policies' decision on PR #{req.number} stood until "
            f"{req.not_after:%Y-%m-%dT%H:%M:%SZ}; they are asked again first",
            type=DECISION_EXPIRED,
            non_retryable=True,
        )

    def _seal_lift(self, req: MergePullRequest, branch: str) -> str | MergeResult:
        """The commit that lifts the hold an approved lift-hold PR asks to lift, to merge at once: its
        branch holds only promoter's request, which lifts nothing; now that the gate approved, promoter
        writes and signs the lift on top of the approved head and pushes it (promoter.holds). The
        merge's result when the PR is merged already (a retry). A PR merged by hand before that lifted
        nothing: the hold stays, and this says so. A break-glass PR's: activities/glass.py."""
        if branch.startswith("break-glass/"):
            return glass.seal(self.forge, self.repo, req, branch)
        if req.expected_head is None:
            raise BadInput(f"the lift-hold PR #{req.number} must be merged at its approved head")
        app, env, held, _ = self.repo.lift_request(req.expected_head)
        pr = self.forge.get_pull_request(req.number)
        if pr.state == "merged":
            try:
                self.repo.held(app, env, held)
            except BadInput:  # no longer held: lifted by this PR's merge, made by an earlier attempt
                assert pr.merge_commit is not None
                return MergeResult(number=pr.number, merge_commit=pr.merge_commit)
            raise BadInput(
                f"PR #{pr.number} was merged on the forge before promoter wrote the commit that lifts the hold; "
                "it lifted nothing, "
                f"and {app} @ {held[:7]} stays held in {env}: run `promoter lift-hold` again"
            )
        glass.keys_still_trusted(self.repo, req.comment)
        approvals = [f"{k}: {v}" for k, v in holds.trailer_block(req.comment) if k == holds.APPROVAL]
        sealed = self.repo.seal_lift(branch, req.expected_head, approvals)
        activity.heartbeat(f"lift {sealed[:12]} pushed")
        # a hosted forge may show the PR at its old head for a moment after the push; the merge names the new one
        for _ in range(SEEN_PUSH_TRIES):
            if self.forge.get_pull_request(req.number).head_sha == sealed:
                return sealed
            time.sleep(1.0)
            activity.heartbeat(f"waiting for PR #{req.number} to show {sealed[:12]}")
        raise TemporaryError(f"the forge does not show PR #{req.number} at {sealed[:12]} yet; trying again")

    @activity.defn(name="open_release")  # its first name, kept for runs in flight
    @classified
    def open_lift(self, req: LiftHoldInput) -> OpenedLift:
        """Push the commit that lifts a hold and open its PR (both idempotent); `BadInput` when there
        is no such hold. With `until`, a break-glass's PR instead (activities/glass.py). Its gate's
        signed approvals are verified against trust/ at the trusted rules revision of main that its
        environment was read at (read before and after: when it moved meanwhile, this is retried)."""
        if req.until is not None:
            return glass.open_pr(self.forge, self.repo, req)
        rules = self.repo.rules().commit
        hold, environment, author = self.repo.held(req.app, req.env, req.commit)
        if self.repo.rules().commit != rules:
            raise TemporaryError("main's trusted rules changed while the lift-hold was read; reading them again")
        branch, _ = self.repo.push_lift_request(hold, req.requested_by, req.reason)
        body = (
            f"Lifts the hold of **{req.app}** @ `{hold.commit}` in **{req.env}**, so that it may be promoted "
            f"there again.\n\n- held because: {hold.reason}\n- revert: {hold.pr_url or hold.recorded_in}\n"
            f"- asked by {req.requested_by}: {req.reason}\n\nMerged by promoter once {req.env}'s approvers "
            "have approved it (`promoter approve`, or the `approve` update in the Temporal Web UI). This branch "
            "only asks: the commit that lifts the hold is written and signed by promoter after the approvals, "
            "so merging this PR by hand lifts nothing."
        )
        pr = self.forge.open_pull_request(
            branch,
            f"Lift the hold of {req.app} @ {hold.commit[:7]} in {req.env}",
            body,
            labels=["release-hold", f"env:{req.env}", f"app:{req.app}"],  # the label's first name, kept on the forge
        )
        trust = self.repo.trust(rules)
        return OpenedLift(
            pr=pr, commit=hold.commit, author=author, hold_reason=hold.reason, environment=environment, trust=trust
        )

    @activity.defn(name="close_pull_request")
    @classified
    def close_pull_request(self, req: ClosePullRequest) -> PullRequest:
        return self.forge.close(req.number, req.comment)

    def _look(self, req: WatchInput) -> WatchResult | None:
        """One read of the PR and its reviews: a result when something changed, else None."""
        pr = self.forge.get_pull_request(req.number)
        fresh = [
            ReviewEvent(id=r.id, author=r.author, state=r.state, at=r.at, commit=r.commit, body=r.body)
            for r in self.forge.reviews(req.number)
            if req.review_states.get(r.id) != r.state
        ]
        if pr.state != "open" or pr.head_sha != req.head_sha or fresh:
            moved = pr.state == "open" and pr.head_sha is not None and pr.head_sha != req.head_sha
            return WatchResult(
                state=pr.state,
                head_sha=pr.head_sha,
                trees=self.repo.folder_trees(pr.head_sha, req.folders) if moved and pr.head_sha else {},
                merge_commit=pr.merge_commit,
                reviews=fresh,
                # only a forge that authenticates its users proves who reviewed; one that does not say is taken not to
                authenticated=getattr(self.forge, "authenticates", False),
                # a forge that pins reviews to a commit vouches for no review that names none
                pins_reviews=getattr(self.forge, "pins_reviews", False),
            )
        return None

    @activity.defn(name="watch_pull_request")
    async def watch_pull_request(self, req: WatchInput) -> WatchResult:
        """Poll the PR until its head moves, a review arrives or it is closed outside promoter.

        The gate runs it while it waits, so history grows by one activity per change, not per poll.
        The watchers of a worker share the forge's poll budget (`PollBudget`): each polls every
        PROMOTER_REVIEW_POLL seconds, or less often when many wait. It heartbeats while it waits (less
        often when many wait: `HEARTBEATS_PER_S`): a worker that dies is noticed by the heartbeat timeout
        and the watch starts again elsewhere; a worker that shuts down hands its watchers back at once
        (a retryable error, taken by another worker). A forge that errs is polled again later (its error
        is in the heartbeat details, its secrets masked as an activity error's are); a permanent error
        (a bad token, a deleted PR) ends the watch.
        """
        self.watching += 1
        pulse = Pulse("waiting for a turn to poll")
        try:
            with classified_errors():  # a permanent error ends the watch; a temporary one is polled through
                while True:
                    await self._wait_turn(pulse)
                    try:
                        changed = await self._poll(pulse, req)
                        detail = kind = "ok"
                    except (TemporaryError, OSError) as e:
                        changed, kind = None, "forge error"  # one kind: a flapping forge is not news each poll
                        # heartbeat details are kept by Temporal and shown like an error: masked the same way
                        detail = redact(f"forge error, polling again: {e}")
                    if changed is not None:
                        return changed
                    pulse.beat(detail, self._every(), kind)  # a poll that said something new says it at once
                    await self._pause(pulse, time.monotonic() + self.poll_seconds)
        finally:
            self.watching -= 1

    async def _poll(self, pulse: Pulse, req: WatchInput) -> WatchResult | None:
        """One poll, in a thread, heartbeating as it is due meanwhile: a poll can take minutes (the
        client's retries, a forge's Retry-After), longer than the watch step's heartbeat timeout. A
        cancel, or the worker's shutdown, ends the wait at once and cancels a poll not yet begun."""
        look = asyncio.ensure_future(asyncio.to_thread(self._counted_look, req))
        shutdown = asyncio.ensure_future(activity.wait_for_worker_shutdown())
        try:
            while not look.done():
                nap = max(0.01, pulse.at + self._every() - time.monotonic())
                await asyncio.wait({look, shutdown}, timeout=nap, return_when=asyncio.FIRST_COMPLETED)
                if activity.is_worker_shutdown():
                    raise _handed_back_watch()
                if not look.done():
                    pulse.tick(self._every())
            return look.result()
        finally:
            shutdown.cancel()
            if not look.done():
                look.cancel()  # not begun: it never runs; begun: its thread ends, its outcome goes nowhere
                look.add_done_callback(_outcome_dropped)

    def _counted_look(self, req: WatchInput) -> WatchResult | None:
        """`_look`, the requests it sent spent from the budget."""
        with counting() as sent:
            try:
                return self._look(req)
            finally:
                self.budget.spent(sent[0])

    async def _wait_turn(self, pulse: Pulse) -> None:
        """Wait for this watcher's turn of the shared budget (at once while it is not spent); a turn of a
        window the forge has reset since is taken again."""
        end, epoch = self.budget.turn()
        while not await self._pause(pulse, end, epoch):
            end, epoch = self.budget.turn()

    def _every(self) -> float:
        """Seconds between two heartbeats of each watcher of this worker (`HEARTBEATS_PER_S` in all)."""
        low, high = HEARTBEAT_EVERY_S
        return min(high, max(low, self.watching / HEARTBEATS_PER_S))

    async def _pause(self, pulse: Pulse, end: float, epoch: int | None = None) -> bool:
        """Wait until `end` (the clock's), heartbeating: a cancel (the gate decided) reaches the watcher
        with a heartbeat's answer, so the watcher ends within a heartbeat's interval of the decision
        (the SDK sends at most one per the watch worker's `WATCH_HEARTBEAT_THROTTLE`; fewer when many
        wait, see `HEARTBEATS_PER_S`). On the worker's shutdown it hands the watch back at once. With a
        turn's `epoch`: False as soon as the budget voids the turn (the forge's window reset)."""
        while (left := end - time.monotonic()) > 0:
            every = self._every()
            # asleep until the next heartbeat or the end, waking at most every WAKE_S (1 s while a turn
            # waits on the forge's window): a thousand watchers ticking every second kept the worker's
            # event loop too busy for its workflow tasks; the worker's shutdown wakes it at once
            nap = min(left, pulse.at + every - time.monotonic(), 1.0 if epoch is not None else WAKE_S)
            try:
                await asyncio.wait_for(activity.wait_for_worker_shutdown(), max(nap, 0.01))
            except TimeoutError:
                pass
            if activity.is_worker_shutdown():
                raise _handed_back_watch()
            pulse.tick(every)
            if epoch is not None and self.budget.refresh() != epoch:
                return False
        return True


def _handed_back_watch() -> ApplicationError:
    """The watch handed back on a worker's shutdown: retried at once, by another worker."""
    return ApplicationError("this worker is shutting down; another worker takes the watch over", type="WorkerShutdown")


def _outcome_dropped(look: asyncio.Future[Any]) -> None:
    if not look.cancelled():
        look.exception()  # retrieved: the watch ended meanwhile, this poll's outcome goes nowhere


def _attempt_time() -> datetime:
    """When this attempt started, by the Temporal server's clock, which the workflow's decisions were
    made by (this machine's may be off; a test server that skips time is ahead of it): a task that
    waited in the queue is judged when a worker took it."""
    info = activity.info()
    times = [info.current_attempt_scheduled_time, info.started_time]
    return max(at if at.tzinfo is not None else at.replace(tzinfo=UTC) for at in times)
