"""The workflows' typed steps: every activity by name, with its input and result models, its timeouts
and its retry policy, in one place. The workflows call these, never a name string with `Any`; the
worker registers exactly these names (tests/workflows/test_steps.py checks both sides).

Activities live in `activities/`, which a workflow may not import (`lint-imports`), so a step names
its activity; `Step.call` is the one place that turns a step into `workflow.execute_activity`.

Short idempotent steps whose retry is harmless (resolving a request, policy checks, pushing a branch and
opening its PR, a PR body, closing a PR) are *local* activities: they run in the worker that runs the workflow task and
are recorded as one marker event, with no round trip through the server's task queues. The merge,
the sync, the health check, the revert, the PR watcher and the webhooks stay ordinary activities:
they may wait long or heartbeat, and their retries are the server's (a local step's deadline is
judged on the worker's clock, which a time-skipping test server does not move).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from promoter.models import (
        ApprovalCheck,
        ChangeCheck,
        ClosePullRequest,
        DriftInput,
        DriftReport,
        HealthInput,
        HealthResult,
        LiftHoldInput,
        MeasureInput,
        Measurement,
        MergePullRequest,
        MergeResult,
        NotifyInput,
        OpenChangeInput,
        OpenedChange,
        OpenedLift,
        PolicyCheckInput,
        PolicyDecision,
        PrepareInput,
        PromotionPlan,
        PromotionRequest,
        PromotionStatus,
        PullRequest,
        RevertInput,
        RevertResult,
        ScreenInput,
        ScreenResult,
        SyncInput,
        SyncResult,
        UpdatePullRequest,
        WatchInput,
        WatchResult,
    )

In = TypeVar("In")
Out = TypeVar("Out")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30)
)
# a local step's retries wait in the worker up to this backoff; a longer one is a durable timer, so a
# step that keeps failing (a cluster down for minutes) does not hold a workflow task meanwhile
LOCAL_RETRY_THRESHOLD = timedelta(seconds=4)
# Every ordinary activity but the PR watcher heartbeats (the worker's `activities.Heartbeats` sends one
# every second from its event loop while the activity's thread works, whatever it waits on), so a
# worker that dies is noticed after this long and its activity retried on another worker: short, since
# the promotions it held wait that long. The worker sends at most one heartbeat per
# `promoter.worker.HEARTBEAT_THROTTLE` (2 s), four chances within it on a loaded machine.
HEARTBEAT = timedelta(seconds=8)
WATCH_QUEUE_SUFFIX = "-watch"  # the PR watchers' own task queue (see promoter.worker.Workers)


@dataclass(frozen=True)
class Step(Generic[In, Out]):
    name: str
    input: type[In]
    result: type[Out]
    start_to_close: timedelta
    schedule_to_close: timedelta | None = None
    retry: RetryPolicy = dataclasses.field(default_factory=lambda: RETRY)
    heartbeat: timedelta | None = None
    watch_queue: bool = False  # runs on `<task queue>-watch`
    wait_cancelled: bool = False  # a cancel resolves when the activity has ended, not when it is asked
    local: bool = False  # a local activity (see the module's docstring)

    def but(self, **changes: Any) -> Step[In, Out]:
        """This step with other timeouts (e.g. a merge that may wait for `merge.wait`)."""
        return dataclasses.replace(self, **changes)

    def call(self, arg: In, summary: str) -> Any:
        """`workflow.execute_activity` (or `execute_local_activity`) for this step: an awaitable of its result."""
        if self.local:
            return self._local(arg, summary)
        return workflow.execute_activity(
            self.name,
            arg,
            result_type=self.result,
            summary=summary,
            start_to_close_timeout=self.start_to_close,
            schedule_to_close_timeout=self.schedule_to_close,
            heartbeat_timeout=self.heartbeat,
            retry_policy=self.retry,
            task_queue=workflow.info().task_queue + WATCH_QUEUE_SUFFIX if self.watch_queue else None,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
            if self.wait_cancelled
            else ActivityCancellationType.TRY_CANCEL,
        )

    async def _local(self, arg: In, summary: str) -> Out:
        """A local step, whose failure is raised as an `ActivityError` like any step's (the SDK raises
        a local activity's error as it is), so that every caller handles both kinds alike."""
        try:
            result: Out = await workflow.execute_local_activity(
                self.name,
                arg,
                result_type=self.result,
                summary=summary,
                start_to_close_timeout=self.start_to_close,
                schedule_to_close_timeout=self.schedule_to_close,
                retry_policy=self.retry,
                local_retry_threshold=LOCAL_RETRY_THRESHOLD,
            )
            return result
        except (ApplicationError, TemporalTimeoutError) as e:
            raise ActivityError(
                f"local activity {self.name} failed",
                scheduled_event_id=0,
                started_event_id=0,
                identity="",
                activity_type=self.name,
                activity_id="",
                retry_state=None,
            ) from e


def _git(name: str, inp: type[In], out: type[Out], local: bool = False) -> Step[In, Out]:
    """A git or forge step: 2 minutes an attempt, retried for 15 minutes, then the stage fails with the
    last error; an ordinary one (the merge, which may wait on the push lock or a slow forge) heartbeats."""
    return Step(
        name,
        inp,
        out,
        start_to_close=timedelta(minutes=2),
        schedule_to_close=timedelta(minutes=15),
        heartbeat=None if local else HEARTBEAT,
        local=local,
    )


def _policy(name: str, inp: type[In], out: type[Out], minutes: int = 10) -> Step[In, Out]:
    """A policy step (local): 2 minutes an attempt; only our own engine's faults and an unreachable
    repository are retried, for `minutes` (a policy's own error is a denial, not a failure)."""
    return Step(
        name, inp, out, start_to_close=timedelta(minutes=2), schedule_to_close=timedelta(minutes=minutes), local=True
    )


RESOLVE = Step(
    "plan",
    PromotionRequest,
    PromotionPlan,
    start_to_close=timedelta(minutes=2),
    retry=RetryPolicy(maximum_attempts=3),
    local=True,
)
CHECK_CHANGE = _policy("check_change", PolicyCheckInput, ChangeCheck)  # prepare (dry) + policy, one fetch
CHANGE_PATCH = _git("change_patch", PrepareInput, str, local=True)  # `promoter dry-run --diff`: nothing written
OPEN_LIFT = _git("open_release", LiftHoldInput, OpenedLift, local=True)  # `promoter lift-hold`
OPEN_CHANGE = _git("open_change", OpenChangeInput, OpenedChange, local=True)  # push the branch + open its PR
UPDATE_PULL_REQUEST = _git("update_pull_request", UpdatePullRequest, PullRequest, local=True)
MERGE_PULL_REQUEST = _git("merge_pull_request", MergePullRequest, MergeResult)
CLOSE_PULL_REQUEST = _git("close_pull_request", ClosePullRequest, PullRequest, local=True)
CHECK_POLICY = _policy("check_policy", PolicyCheckInput, PolicyDecision)
CHECK_APPROVAL = _policy("check_approval", PolicyCheckInput, ApprovalCheck, minutes=2)
SCREEN_APPROVERS = _policy("screen_approvers", ScreenInput, ScreenResult, minutes=2)
SYNC = Step(  # an ordinary activity: it heartbeats, and a cluster down for minutes is retried by the server
    "sync",
    SyncInput,
    SyncResult,
    start_to_close=timedelta(minutes=5),
    heartbeat=HEARTBEAT,  # a worker that dies mid-sync is noticed within seconds
    schedule_to_close=timedelta(minutes=10),
)
RUNNING_PROMOTIONS = Step(  # the drift check leaves an app alone while it is being promoted
    "running_promotions",
    str,
    list[str],
    start_to_close=timedelta(seconds=30),
    local=True,
)
DETECT_DRIFT = Step(  # `promoter drift` and the environments' drift schedules
    "detect_drift",
    DriftInput,
    DriftReport,
    start_to_close=timedelta(minutes=10),
    heartbeat=HEARTBEAT,
    schedule_to_close=timedelta(minutes=15),
)
CHECK_HEALTH = Step(  # its timeouts grow with the environment's health.timeout (see `health_step`)
    "check_health", HealthInput, HealthResult, start_to_close=timedelta(minutes=6), heartbeat=HEARTBEAT
)
MEASURE = Step(  # one measurement of a `verify` check: a query or a GET, 10 s at most; a failed one is a result
    "measure",
    MeasureInput,
    Measurement,
    start_to_close=timedelta(seconds=30),
    schedule_to_close=timedelta(minutes=2),
    heartbeat=HEARTBEAT,
)
REVERT = Step(
    "revert",
    RevertInput,
    RevertResult,
    start_to_close=timedelta(minutes=5),
    heartbeat=HEARTBEAT,
    schedule_to_close=timedelta(minutes=15),
)
WATCH_PULL_REQUEST = Step(  # its limits follow the gate's deadline (see `watch_step`)
    "watch_pull_request",
    WatchInput,
    WatchResult,
    start_to_close=timedelta(days=30),
    # a watcher on a worker that died is retried (or ends, if cancelled) by then: twice the longest interval
    # between a watcher's heartbeats (activities.forge.HEARTBEAT_EVERY_S, when 960 or more gates wait on
    # one worker); the gate's approvals through the CLI, the Web UI and the HTTP API never wait for it
    heartbeat=timedelta(minutes=4),
    watch_queue=True,
)
NOTIFY = Step(
    "notify",
    NotifyInput,
    int,
    start_to_close=timedelta(seconds=15),
    schedule_to_close=timedelta(minutes=1),
    heartbeat=HEARTBEAT,
    retry=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
)

ALL: tuple[Step[Any, Any], ...] = (
    RESOLVE,
    CHECK_CHANGE,
    CHANGE_PATCH,
    OPEN_LIFT,
    RUNNING_PROMOTIONS,
    DETECT_DRIFT,
    OPEN_CHANGE,
    UPDATE_PULL_REQUEST,
    MERGE_PULL_REQUEST,
    CLOSE_PULL_REQUEST,
    CHECK_POLICY,
    CHECK_APPROVAL,
    SCREEN_APPROVERS,
    SYNC,
    CHECK_HEALTH,
    MEASURE,
    REVERT,
    WATCH_PULL_REQUEST,
    NOTIFY,
)


def health_step(timeout: timedelta) -> Step[HealthInput, HealthResult]:
    """The health check of an environment whose `health.timeout` is `timeout`."""
    return CHECK_HEALTH.but(
        start_to_close=timeout + timedelta(minutes=1), schedule_to_close=timeout + timedelta(minutes=5)
    )


def watch_step(window: timedelta, awaited: bool) -> Step[WatchInput, WatchResult]:
    """A PR watcher that may watch for `window` (up to the gate's deadline); `awaited`: its cancel
    resolves once the watcher has ended (see `Gate.watchers_ended`)."""
    return WATCH_PULL_REQUEST.but(start_to_close=window + timedelta(minutes=1), wait_cancelled=awaited)


def cause(err: BaseException) -> str:
    """What an activity error comes down to, in one line (a deadline says what kept failing)."""
    while err.__cause__ is not None and isinstance(err, ActivityError):
        err = err.__cause__
    message = getattr(err, "message", None) or str(err)
    if isinstance(err, TimeoutError) and err.__cause__ is not None:
        message = f"{message}; last error: {cause(err.__cause__)}"
    return message


class Runner:
    """Runs steps to their end even when the promotion is cancelled meanwhile: a side effect in flight
    (a push, a PR, a merge) is always known to the workflow, so a cancel can clean it up and a merge
    is never left without its sync. The cancel then takes effect at the next `checkpoint`."""

    def __init__(self, status: PromotionStatus) -> None:
        self.status = status
        self.cancel_requested = False
        # local steps in flight: the worker keeps the workflow task open until they end (see Recorder)
        self.local_steps = 0
        self._after_local_steps: list[Callable[[], None]] = []

    async def run(self, step: Step[In, Out], arg: In, summary: str) -> Out:
        self.local_steps += int(step.local)
        try:
            task = asyncio.ensure_future(step.call(arg, summary))
            try:
                result: Out = await asyncio.shield(task)
            except asyncio.CancelledError:
                self.cancel_requested = True
                self.status.message = f"cancel requested: finishing '{summary}' first"
                result = await task
        finally:
            self.local_steps -= int(step.local)
            if not self.local_steps:  # after the code this step's result resumes has run to its next wait
                waiting, self._after_local_steps = self._after_local_steps, []
                for later in waiting:
                    asyncio.get_running_loop().call_soon(later)
        return result

    def after_local_steps(self, callback: Callable[[], None]) -> None:
        """Call `callback` once no local step is in flight (once, however often it is asked meanwhile)."""
        if callback not in self._after_local_steps:
            self._after_local_steps.append(callback)

    def checkpoint(self) -> None:
        if self.cancel_requested:
            raise asyncio.CancelledError()
