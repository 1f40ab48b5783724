"""Client-side calls shared by the CLI, the tests and the benchmark: plan, start, wait for a state."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from promoter.errors import PromoterError
from promoter.models import PlanInput, PromotionInput, PromotionPlan, PromotionStatus


def workflow_id(app_or_id: str) -> str:
    return app_or_id if app_or_id.startswith("promote-") else f"promote-{app_or_id}"


def failure_message(e: BaseException) -> str:
    cause: BaseException | None = e
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    msg = getattr(cause, "message", None) or str(cause)
    return str(msg).splitlines()[0] if msg else "failed"


async def plan(client: Client, task_queue: str, app: str, commit: str | None = None,
               to_env: str | None = None) -> PromotionPlan:
    """Resolve and validate on a worker (where the repository is); bad input raises `PromoterError`."""
    try:
        result: PromotionPlan = await client.execute_workflow(
            "PlanWorkflow", PlanInput(app=app, commit=commit, to_env=to_env), id=f"plan-{app}-{uuid.uuid4()}",
            task_queue=task_queue, result_type=PromotionPlan, execution_timeout=timedelta(minutes=2),
        )
        return result
    except WorkflowFailureError as e:
        message = failure_message(e)
        if "timed out" in message.lower() or "timeout" in message.lower():
            message = f"planning timed out: is a worker running on task queue '{task_queue}'? ({message})"
        raise PromoterError(message) from None


async def start(client: Client, task_queue: str, promotion_plan: PromotionPlan,
                requested_by: str = "unknown") -> WorkflowHandle[object, PromotionStatus]:
    wid = workflow_id(promotion_plan.app)
    try:
        return await client.start_workflow(
            "PromotionWorkflow",
            PromotionInput(plan=promotion_plan, requested_by=requested_by),
            id=wid, task_queue=task_queue, result_type=PromotionStatus,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"Promote {promotion_plan.app} @ {promotion_plan.short_commit}: "
                           + " → ".join(e.config.name for e in promotion_plan.environments),
        )
    except WorkflowAlreadyStartedError:
        raise PromoterError(f"a promotion of {promotion_plan.app} is already running ({wid}); follow it with "
                            f"`promoter status {wid}` or end it with `promoter cancel {wid}`") from None


async def wait_for(handle: WorkflowHandle[object, PromotionStatus], check: Callable[[PromotionStatus], bool],
                   timeout_s: float = 60.0) -> PromotionStatus:
    """Poll the `status` query until `check` holds (a condition with a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    last: PromotionStatus | None = None
    while time.monotonic() < deadline:
        last = await handle.query("status", result_type=PromotionStatus)
        if check(last):
            return last
        await asyncio.sleep(0.05)
    raise TimeoutError(f"condition not met within {timeout_s}s; last status: {last}")
