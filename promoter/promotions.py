"""What a client asks Temporal about promotions, however it reaches Temporal.

The CLI's everyday commands (`status`, `approve`, `reject`, `list`) go through `Promotions`, and so
do following a promotion to its end (`promote --wait`) and waiting for the lift of a hold to open its
PR (`lift-hold`): the CLI itself never touches an SDK handle or a transport's errors. It has two
implementations with the same answers: `promoter.api.GrpcPromotions` (the Temporal SDK's client,
used by the worker, `promote` and the tests) and `promoter.temporal_http.HttpPromotions` (Temporal's
HTTP API, for a command that must start fast: it imports neither the SDK nor its protobufs).

This module also holds the names both sides share with the workflow: its query, its updates and the
search attributes it keeps. It imports nothing of Temporal, so the fast path stays fast.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from promoter.errors import ConnectionLost as ConnectionLost
from promoter.errors import PromoterError
from promoter.models import Decision, PromotionState, PromotionStatus, StageState, StageStatus

STATUS_QUERY = "status"
SUPERSEDE = "supersede"  # the tools' signal that a newer promotion replaces this one
APPROVE = "approve"
REJECT = "reject"

APP_ATTRIBUTE = "PromotionApp"  # the app, or a release set's name
APPS_ATTRIBUTE = "PromotionApps"  # every app it moves (a keyword list: a release set's members)
ENV_ATTRIBUTE = "PromotionEnv"
COMMIT_ATTRIBUTE = "PromotionCommit"
STATE_ATTRIBUTE = "PromotionState"  # the stage's state while running, then the outcome
# the keyword attributes every indexed promotion carries, in this order: `promoter.search` makes the SDK's
# typed keys of them, the HTTP client reads them from a listing's raw fields
INDEXED = (APP_ATTRIBUTE, ENV_ATTRIBUTE, COMMIT_ATTRIBUTE, STATE_ATTRIBUTE)

PROMOTION_QUERY = "WorkflowType = 'PromotionWorkflow'"
LIFT_QUERY = "WorkflowType = 'ReleaseHoldWorkflow'"  # the lifts of holds (`promoter lift-hold`), by their first name
DRIFT_QUERY = "WorkflowType = 'DriftWorkflow' AND ExecutionStatus = 'Completed'"
DRIFT_MEMO = "drift"  # a drift check's summary, in its memo: what `promoter status` shows of an app's drift
QUERY_TIMEOUT_S = 5.0  # a worker answers the status query within this, or the CLI says why not
POLLER_STALE_S = 90.0  # an idle worker polls again at least every ~70 s
UNREACHABLE_FOR_S = 10.0  # how long following keeps asking an unreachable Temporal before it says so
HOLD_PR_WAIT_S = 60.0  # lifting a hold opens its PR within this, or the CLI asks whether a worker runs
DECIDE_DEADLINE_S = 60.0  # an approval or rejection is sent again (the same update ID) until it has an outcome
# The server refuses an update while the run's workflow task is being retried (one timed out on a starved
# worker, as in a burst of approvals): `WorkflowNotReady`, "... due to Workflow Task in failed state". Not a
# refusal of the decision: it is sent again, with the same update ID, once the task can run.
NOT_READY = "Workflow Task in failed state"


def retry_pause(attempt: int) -> float:
    """How long to wait before sending an update again that the server could not take yet (0.25 s, doubling
    up to 4 s)."""
    return float(min(4.0, 0.25 * 2**attempt))


# how a run that closed without reaching an outcome of its own is listed (its memo still says "running")
CLOSED_STATES = {"CANCELED": "cancelled", "TERMINATED": "failed", "TIMED_OUT": "failed", "FAILED": "failed"}


def memo_state(status: str, memo: dict[str, Any]) -> str:
    """A run's state (a `PromotionState` value) from its memo's outcome, else from how it closed."""
    state = str(memo.get("state", "running"))
    if status != "RUNNING" and state == "running":
        return CLOSED_STATES.get(status) or "failed"
    return state


@dataclass(frozen=True)
class Execution:
    """One run of a promotion, as Temporal describes it."""

    id: str
    run_id: str
    status: str  # Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT, ...
    task_queue: str
    memo: dict[str, Any]
    parent_id: str = ""  # the workflow that started it: a release set, when this is a member's claim


@dataclass(frozen=True)
class Listed:
    """One row of a visibility listing."""

    id: str
    run_id: str
    status: str
    memo: dict[str, Any]
    attributes: dict[str, str]  # the promotion's keyword search attributes that are set
    started_at: datetime | None
    closed_at: datetime | None

    @property
    def state(self) -> str:
        """The promotion's state (a `PromotionState` value): its memo's outcome, else how the run closed."""
        return memo_state(self.status, self.memo)

    @property
    def stage(self) -> tuple[str | None, str | None]:
        """(the environment it is at, that stage's state). An indexed running promotion's search
        attributes follow every state; its memo, only the stage."""
        stage, stage_state = self.memo.get("stage"), self.memo.get("stage_state")
        if self.status == "RUNNING" and self.attributes.get(STATE_ATTRIBUTE):
            return self.attributes.get(ENV_ATTRIBUTE) or stage, self.attributes[STATE_ATTRIBUTE]
        return stage, stage_state


class Promotions(Protocol):
    async def describe(self, workflow_id: str) -> Execution | None:
        """The latest run of `workflow_id`, or None when there is none."""

    async def status(self, execution: Execution) -> PromotionStatus:
        """A completed run's result, else the `status` query; `PromoterError` when no worker answers."""

    async def lift(self, execution: Execution) -> StageStatus:
        """A lift-hold run's one stage: a completed run's result, else the `status` query (a run that
        closed without a result: `lift_ended`); `PromoterError` when no worker answers."""

    async def decide(self, workflow_id: str, update: str, decision: Decision) -> StageStatus:
        """The `approve` or `reject` update; `PromoterError("<update> refused: <why>")` when refused."""

    def listing(self, query: str, page_size: int = ...) -> AsyncIterator[Listed]:
        """The executions matching a visibility query, as Temporal orders them (newest first), fetched
        `page_size` at a time."""

    async def follow(
        self, workflow_id: str, run_id: str | None, seen: Callable[[PromotionStatus], None]
    ) -> PromotionStatus:
        """Ask the `status` query until the run closes, handing each answer to `seen`; then its final
        status (a run that closed without an outcome of its own is `failed`, saying why). Raises
        `ConnectionLost` when Temporal cannot be reached for `UNREACHABLE_FOR_S`."""

    async def hold_pr(self, workflow_id: str, timeout_s: float = ...) -> StageStatus:
        """The stage of a hold's lift once its PR is open and its gate waits; `PromoterError` when the
        run failed (no such hold: its own message) or opened nothing within `timeout_s`."""


def recent(last_polls: Iterable[float], within: float = POLLER_STALE_S) -> int:
    """How many of the pollers (their last poll, in epoch seconds) polled within the last `within`
    seconds: a killed worker's last poll lingers on the server for minutes, so it counts only while it
    is recent. A live worker's poll waits on the server up to a minute, so a poll a minute old says
    little; but a worker that was handed a query polls again as soon as it answers, so a query that went
    unanswered for `QUERY_TIMEOUT_S` while nothing polled (`within=SILENT_S`) means no worker is there."""
    now = time.time()
    return sum(1 for at in last_polls if now - at < within)


SILENT_S = QUERY_TIMEOUT_S + 1.0
# A live worker whose workflow task runs local activities (resolve, a policy check, opening a PR)
# answers a query only when that task heartbeats (~8 s): an unanswered query is asked once more with
# this patience, and only a query unanswered both times while nothing polled (SILENT_S + PATIENCE_S)
# means no worker is there.
PATIENCE_S = 12.0


def ended(status: PromotionStatus, why: str) -> PromotionStatus:
    """A run's last status, once it closed: still `running`, it closed without an outcome of its own
    (terminated, timed out, failed outside a stage), so it is `failed`, saying why."""
    if status.state == PromotionState.RUNNING:
        status.state = PromotionState.FAILED
        status.message = why
    return status


def unanswered_close(execution: Execution) -> PromotionStatus:
    """A closed run's status when no worker answered the `status` query: what Temporal keeps without
    one (the memo's app, commit and outcome, and how the run closed), no stages."""
    return PromotionStatus(
        id=execution.id,
        run_id=execution.run_id,
        app=str(execution.memo.get("app", "")),
        commit=str(execution.memo.get("commit", "")),
        state=PromotionState(memo_state(execution.status, execution.memo)),
        message=f"closed ({execution.status.lower()}); no worker answered for its stages: "
        f"`promoter status {execution.id}` shows them once one does",
    )


def lift_ended(why: str) -> StageStatus:
    """A lift-hold run that closed without a result of its own (it failed: no such hold; cancelled; terminated)."""
    return StageStatus(env="", order=0, state=StageState.FAILED, message=why)


def member_of_set(app: str, set_id: str) -> PromoterError:
    """Promoting `app` while the release set `set_id` moves it (its claim holds `app`'s promotion ID),
    or while a drift heal (`drift-…`, which takes the same claim) re-applies it."""
    if set_id.startswith("drift-"):
        return PromoterError(
            f"{app} is held for the drift heal {set_id}, which re-applies it now; promote it again once "
            f"the heal has ended (`promoter status {app}` says when)"
        )
    return PromoterError(
        f"{app} is moving as a member of the release set {set_id}; follow it with `promoter status {set_id}`, "
        f"end the set with `promoter cancel {set_id}`, or replace the set with `promoter promote {app} --supersede`"
    )


def no_worker(task_queue: str) -> PromoterError:
    return PromoterError(
        f"no worker is polling task queue '{task_queue}'; start one with `promoter worker` "
        "(or `promoter up` for the embedded stack)"
    )


def unanswered(task_queue: str, why: str) -> PromoterError:
    return PromoterError(
        f"the worker on task queue '{task_queue}' did not answer within {QUERY_TIMEOUT_S:g}s ({why}); try again"
    )
