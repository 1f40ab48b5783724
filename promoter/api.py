"""Client-side calls shared by the CLI, the tests and the benchmark: resolve, start, wait for a state."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest, DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from promoter import names, promotions, search
from promoter.environments import path_line
from promoter.errors import PromoterError
from promoter.models import (
    Decision,
    DriftInput,
    DriftReport,
    DryRun,
    LiftHoldInput,
    PromotionInput,
    PromotionPlan,
    PromotionRequest,
    PromotionStatus,
    StageState,
    StageStatus,
    Supersede,
)
from promoter.names import workflow_id
from promoter.promotions import SUPERSEDE
from workflows.drift import DriftWorkflow
from workflows.dry_run import DryRunWorkflow
from workflows.lift_hold import LiftHoldWorkflow
from workflows.promotion import PromotionWorkflow, ResolveWorkflow

In = TypeVar("In")
Out = TypeVar("Out")


def _timed_out(e: BaseException) -> bool:
    """Whether a failure really is a timeout (its chain holds one), whatever its words say."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, TemporalTimeout):
            return True
        cause = cause.__cause__
    return False


def failure_message(e: BaseException) -> str:
    cause: BaseException | None = e
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    msg = getattr(cause, "message", None) or str(cause)
    return str(msg).splitlines()[0] if msg else "failed"


def _request(app: str, members: Sequence[str], commit: str | None, to_env: str | None) -> PromotionRequest:
    """A promotion request, its names checked first, so that a bad one never reaches Temporal."""
    for name in (app, *members):
        names.check(name, "app")
    if to_env is not None:
        names.check(to_env, "environment")
    return PromotionRequest(app=app, members=list(members), commit=commit, to_env=to_env)


async def resolve(
    client: Client,
    task_queue: str,
    app: str,
    commit: str | None = None,
    to_env: str | None = None,
    members: Sequence[str] = (),
) -> PromotionPlan:
    """Resolve and validate on a worker (where the repository is); bad input raises `PromoterError`.
    Names are checked here first, so a bad one never reaches Temporal. With `members`, `app` names a
    release set of those apps."""
    req = _request(app, members, commit, to_env)
    return await _short_run(client, task_queue, ResolveWorkflow.run, req, f"resolve-{app}", "resolving the request")


async def dry_run(
    client: Client,
    task_queue: str,
    app: str,
    commit: str | None = None,
    to_env: str | None = None,
    with_patch: bool = False,
    members: Sequence[str] = (),
) -> DryRun:
    """What promoting `app` (or the release set `app` of `members`) would do in every environment,
    without starting anything (`DryRunWorkflow` on a worker, deleted once it has answered)."""
    req = _request(app, members, commit, to_env).model_copy(update={"with_patch": with_patch})
    result: DryRun = await _short_run(
        client, task_queue, DryRunWorkflow.run, req, f"dry-run-{app}", "the dry run", timedelta(minutes=5)
    )
    return result


def lift_id(app: str, env: str) -> str:
    return f"release-hold-{names.check(app, 'app')}-{names.check(env, 'environment')}"


async def lift_hold(
    client: Client, task_queue: str, req: LiftHoldInput
) -> WorkflowHandle[LiftHoldWorkflow, StageStatus]:
    """Start lifting a hold (`LiftHoldWorkflow`): its PR is opened at once; `BadInput` (raised on the
    worker, shown as one line) when there is no such hold. A second lift in the same app and environment,
    while one runs, is refused."""
    memo = {"app": req.app, "env": req.env, "commit": req.commit}  # `list` and `status` name what it lifts
    summary = f"Lift the hold of {req.app} @ {req.commit[:7]} in {req.env}"
    return await _start_lift(client, task_queue, req, lift_id(req.app, req.env), memo, summary, "a lift of a hold")


async def _start_lift(
    client: Client, task_queue: str, req: LiftHoldInput, wid: str, memo: dict[str, str], summary: str, what: str
) -> WorkflowHandle[LiftHoldWorkflow, StageStatus]:
    """Start `LiftHoldWorkflow` as `wid`; one at a time per ID (`what` names it in the refusal)."""
    try:
        return await client.start_workflow(
            LiftHoldWorkflow.run,
            req,
            id=wid,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            memo=memo,
            static_summary=summary,
        )
    except WorkflowAlreadyStartedError:
        raise PromoterError(f"{what} of {req.app} in {req.env} is already waiting ({wid})") from None


def glass_id(app: str, env: str) -> str:
    return f"{names.GLASS_PREFIX}{names.check(app, 'app')}-{names.check(env, 'environment')}"


async def break_glass(
    client: Client, task_queue: str, req: LiftHoldInput
) -> WorkflowHandle[LiftHoldWorkflow, StageStatus]:
    """Start a break-glass (`promoter break-glass`, promoter.breakglass): the lift gate's workflow with
    `until` set, whose PR needs the environment's break_glass approvers; bad input (raised on the worker)
    when the environment has none, or `until` is not within 24 hours. One at a time per app and env."""
    assert req.until is not None
    until = f"{req.until:%Y-%m-%dT%H:%M:%SZ}"
    memo = {"app": req.app, "env": req.env, "commit": "", "break_glass_until": until}
    summary = f"Break-glass: {req.app} through a freeze in {req.env} until {until}"
    return await _start_lift(client, task_queue, req, glass_id(req.app, req.env), memo, summary, "a break-glass")


async def drift(client: Client, task_queue: str, req: DriftInput) -> DriftReport:
    """Compare an environment with Git now (`DriftWorkflow` on a worker). The run is kept, as a scheduled
    one is: it is the latest drift of the apps it checked, which `promoter status` shows."""
    names.check(req.env, "environment")
    for app in req.apps:
        names.check(app, "app")
    report: DriftReport = await _short_run(
        client,
        task_queue,
        DriftWorkflow.run,
        req,
        f"drift-check-{req.env}",
        "the drift check",
        timedelta(minutes=15),
        keep=True,
    )
    return report


async def _short_run(
    client: Client,
    task_queue: str,
    run: MethodAsyncSingleParam[Any, In, Out],
    arg: In,
    prefix: str,
    what: str,
    timeout: timedelta = timedelta(minutes=2),
    keep: bool = False,
) -> Out:
    """Run a short workflow on a worker (resolving a request, a dry run, a drift check) and return its answer; its
    failure is one line (its own message as it is, a timeout said as one), and the run is forgotten
    once it has answered unless it is to be kept."""
    wid = f"{prefix}-{uuid.uuid4()}"
    try:
        return await client.execute_workflow(run, arg, id=wid, task_queue=task_queue, execution_timeout=timeout)
    except WorkflowFailureError as e:
        message = failure_message(e)
        if _timed_out(e):
            message = f"{what} timed out: is a worker running on task queue '{task_queue}'? ({message})"
        raise PromoterError(message) from None
    finally:
        if not keep:
            await _forget(client, wid)


async def _forget(client: Client, wid: str) -> None:
    """Ask the server to delete a finished resolve (or dry) run, so that the Web UI's workflow list
    shows promotions, not one `resolve-…` row per promotion. Best effort: the server deletes in the
    background, one run after another (the dev server takes about 25 s each), so under load the rows
    linger for a while; docs/approving.md gives the list's query that shows promotions only."""
    try:
        run = WorkflowExecution(workflow_id=wid)
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(namespace=client.namespace, workflow_execution=run)
        )
    except RPCError:
        pass


def already_running(app: str) -> PromoterError:
    wid = workflow_id(app)
    return PromoterError(
        f"a promotion of {app} is already running ({wid}); follow it with `promoter status {wid}`, "
        f"end it with `promoter cancel {wid}`, or replace it with "
        f"`promoter promote {app} --supersede`"
    )


def static_details(plan: PromotionPlan, requested_by: str) -> str:
    """The workflow page's summary details (markdown), fixed at the start: a list per environment,
    since the Web UI draws no markdown tables."""
    lines = [
        f"**{plan.app}** @ `{plan.commit}` by {plan.author}",
        "",
        *(
            [f"Release set of {', '.join(f'**{m}**' for m in plan.members)}: one PR per environment for all.", ""]
            if plan.members
            else []
        ),
        f"> {plan.message}",
        "",
        f"Requested by {requested_by}.",
        "",
    ]
    for i, e in enumerate(plan.environments):
        a = e.config.approval
        gate = (
            "source"
            if i == 0
            else (
                f"{a.required} approval(s)" + (" + PR review" if a.require_review else "")
                if a.required or a.require_review
                else "none"
            )
        )
        line = f"- **{e.config.name}**: gate {gate}"
        if a.approvers and i:
            line += f"; approvers {', '.join(a.approvers)}"
        if e.config.soak:
            line += f"; soaks {e.config.soak}"
        lines.append(line)
    return "\n".join(lines)


async def _registered(client: Client) -> set[str]:
    """The Promotion* search attributes the namespace has, each with the type promoter gives it (one
    registered with another type is left unset, so that a start never fails on it). `promoter up`
    registers them; a production namespace needs them created once (docs/approving.md). Without the
    four of `search.BASE` promotions run unindexed."""
    try:
        found = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError:  # e.g. the time-skipping test server has no operator service
        return set()
    return {
        key.name for key in search.KEYS if int(found.custom_attributes.get(key.name, -1)) == int(key.indexed_value_type)
    }


def _indexing(plan: PromotionPlan, with_apps: bool) -> TypedSearchAttributes:
    first = plan.environments[0].config.name
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(search.APP, plan.app),
        SearchAttributePair(search.ENV, first),
        SearchAttributePair(search.COMMIT, plan.commit),
        SearchAttributePair(search.STATE, "pending"),
    ]
    if with_apps:
        pairs.append(SearchAttributePair(search.APPS, plan.apps))
    return TypedSearchAttributes(pairs)


async def _overlapping(client: Client, plan: PromotionPlan, wid: str, registered: set[str]) -> list[str]:
    """The running promotions (other than `wid`) that move one of the plan's apps: a member's own,
    for a release set; and every set holding one of them (as `PromotionApps` lists, when registered)."""
    found: list[str] = []
    if plan.members:
        for member in plan.members:
            try:
                desc = await client.get_workflow_handle(workflow_id(member)).describe()
            except RPCError:
                continue
            if desc.status == WorkflowExecutionStatus.RUNNING:
                found.append(desc.id)
    if search.APPS.name in registered:
        apps = ", ".join(f"'{a}'" for a in plan.apps)
        query = f"{promotions.PROMOTION_QUERY} AND ExecutionStatus = 'Running' AND {search.APPS.name} IN ({apps})"
        async for wf in client.list_workflows(query):
            if wf.id != wid and wf.id not in found:
                found.append(wf.id)
    return found


async def start(
    client: Client,
    task_queue: str,
    promotion_plan: PromotionPlan,
    requested_by: str = "unknown",
    supersede: bool = False,
    ui_url: str | None = None,
) -> WorkflowHandle[PromotionWorkflow, PromotionStatus]:
    """Start the promotion (indexed by search attributes when the namespace has them registered).

    With `supersede`, a running promotion of the same app is told who replaces it, cancelled (its open
    PRs are closed with a pointer to this one), and waited for, before this one starts.
    """
    wid = workflow_id(promotion_plan.app)
    what = promotion_plan.title
    summary = f"Promote {what} @ {promotion_plan.short_commit}: " + path_line(promotion_plan.environments)
    arg = PromotionInput(plan=promotion_plan, requested_by=requested_by)
    registered = await _registered(client)
    base = all(key.name in registered for key in search.BASE)
    attributes = _indexing(promotion_plan, search.APPS.name in registered) if base else None
    for other in await _overlapping(client, promotion_plan, wid, registered):
        if not supersede:
            raise PromoterError(
                f"{other} is running and moves an app of {what}; a release set and a promotion of one of its apps "
                f"never run at once: wait for it, end it with `promoter cancel {other}`, or add --supersede"
            )
        await _supersede(client, other, promotion_plan, requested_by, ui_url)
    for attempt in range(2):
        try:
            return await client.start_workflow(
                PromotionWorkflow.run,
                arg,
                id=wid,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                static_summary=summary,
                static_details=static_details(promotion_plan, requested_by),
                memo={
                    "app": promotion_plan.app,
                    "commit": promotion_plan.commit,
                    "state": "running",
                    **({"members": promotion_plan.members} if promotion_plan.members else {}),
                },
                search_attributes=attributes,
            )
        except WorkflowAlreadyStartedError:
            if not supersede or attempt:
                raise already_running(promotion_plan.app) from None
            await _supersede(client, wid, promotion_plan, requested_by, ui_url)
    raise AssertionError("unreachable")


async def _supersede(client: Client, wid: str, plan: PromotionPlan, requested_by: str, ui_url: str | None) -> None:
    """Tell the running `wid` who replaces it (the promotion of `plan`), cancel it and wait for it."""
    old = client.get_workflow_handle(wid, result_type=PromotionStatus)
    new = workflow_id(plan.app)
    url = f"{ui_url}/namespaces/{client.namespace}/workflows/{new}" if ui_url else None
    what = f"the release set {plan.title}" if plan.members else plan.app
    try:
        async with asyncio.timeout(120):
            await _end(old, Supersede(commit=plan.commit, requested_by=requested_by, url=url, what=what))
    except TimeoutError:
        raise PromoterError(
            f"{wid} did not end within 2 minutes of its cancel (is a worker running?); nothing new was started"
        ) from None


async def _end(handle: WorkflowHandle[Any, Any], by: Supersede) -> None:
    """Signal `by` to a running workflow, cancel it and wait for it to close."""
    try:
        await handle.signal(SUPERSEDE, by)
        await handle.cancel()
        await handle.result()
    except (WorkflowFailureError, RPCError):
        pass  # cancelled (the expected end), or it ended by itself meanwhile: either way it is over


async def pollers(client: Client, task_queue: str, within: float = promotions.POLLER_STALE_S) -> int:
    """How many workers polled `task_queue` for workflow tasks within `within` seconds (a killed
    worker's last poll lingers on the server for minutes: it counts only while it is recent)."""
    found = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return promotions.recent((p.last_access_time.ToSeconds() for p in found.pollers), within)


class GrpcPromotions:
    """`promotions.Promotions` over the Temporal SDK's client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def describe(self, workflow_id: str) -> promotions.Execution | None:
        try:
            desc = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return await _execution(desc)

    async def status(self, execution: promotions.Execution) -> PromotionStatus:
        handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=PromotionStatus)
        if execution.status == "COMPLETED":
            done: PromotionStatus = await handle.result()
            return done
        return await self._asked(handle, execution.task_queue, PromotionStatus)

    async def lift(self, execution: promotions.Execution) -> StageStatus:
        handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id, result_type=StageStatus)
        if execution.status != "RUNNING":
            try:
                done: StageStatus = await handle.result()
            except WorkflowFailureError as e:  # no such hold, cancelled, terminated: no result of its own
                return promotions.lift_ended(failure_message(e))
            return done
        return await self._asked(handle, execution.task_queue, StageStatus)

    async def _asked(self, handle: WorkflowHandle[Any, Any], task_queue: str, answer_type: type[Out]) -> Out:
        """The `status` query's answer, or why no worker gave one."""
        if await pollers(self.client, task_queue) == 0:
            raise promotions.no_worker(task_queue)
        try:
            timeout = timedelta(seconds=promotions.QUERY_TIMEOUT_S)
            answer: Out = await handle.query(promotions.STATUS_QUERY, result_type=answer_type, rpc_timeout=timeout)
            return answer
        except RPCError:
            pass
        try:  # a worker busy in a workflow task answers when the task heartbeats: within PATIENCE_S
            timeout = timedelta(seconds=promotions.PATIENCE_S)
            answer = await handle.query(promotions.STATUS_QUERY, result_type=answer_type, rpc_timeout=timeout)
            return answer
        except RPCError as e:
            if await pollers(self.client, task_queue, promotions.SILENT_S + promotions.PATIENCE_S) == 0:
                raise promotions.no_worker(task_queue) from None
            raise promotions.unanswered(task_queue, e.message) from None

    async def decide(self, workflow_id: str, update: str, decision: Decision) -> StageStatus:
        """The update, sent again with the same update ID while the server cannot take it yet (the run's
        workflow task is being retried) or the call timed out: Temporal runs an update ID once and answers
        a repeat with the first one's outcome, so a decision sent twice counts once."""
        await self._answering(workflow_id)
        handle = self.client.get_workflow_handle(workflow_id)
        update_id, deadline, attempt = str(uuid.uuid4()), time.monotonic() + promotions.DECIDE_DEADLINE_S, 0
        stage: StageStatus
        while True:
            try:
                stage = await handle.execute_update(update, decision, id=update_id, result_type=StageStatus)
                return stage
            except WorkflowUpdateFailedError as e:
                raise PromoterError(f"{update} refused: {failure_message(e)}") from None
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as e:
                why = e.message if isinstance(e, RPCError) else "the call timed out"
                again = isinstance(e, WorkflowUpdateRPCTimeoutOrCancelledError) or promotions.NOT_READY in e.message
                if not again or time.monotonic() >= deadline:
                    raise PromoterError(f"{update} refused: {why}") from None
            await asyncio.sleep(min(promotions.retry_pause(attempt), max(0.0, deadline - time.monotonic())))
            attempt += 1

    async def _answering(self, workflow_id: str) -> None:
        """`no_worker` at once when no worker polls the run's task queue: an update would wait a minute
        for one. A worker that is there but slow to answer is left to the update."""
        execution = await self.describe(workflow_id)
        if execution is None or execution.status != "RUNNING":
            return  # the update says why
        if await pollers(self.client, execution.task_queue) == 0:
            raise promotions.no_worker(execution.task_queue)
        handle = self.client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        for patience in (promotions.QUERY_TIMEOUT_S, promotions.PATIENCE_S):  # as `_asked` asks
            try:
                await handle.query(promotions.STATUS_QUERY, rpc_timeout=timedelta(seconds=patience))
                return
            except RPCError:
                continue
            except WorkflowQueryFailedError:  # a worker answered: it is there
                return
        if await pollers(self.client, execution.task_queue, promotions.SILENT_S + promotions.PATIENCE_S) == 0:
            raise promotions.no_worker(execution.task_queue)  # else a worker polls: slow; the update waits

    async def follow(
        self, workflow_id: str, run_id: str | None, seen: Callable[[PromotionStatus], None]
    ) -> PromotionStatus:
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id, result_type=PromotionStatus)
        result = asyncio.ensure_future(handle.result())
        status: PromotionStatus | None = None
        unreachable_since: float | None = None
        while not result.done():
            try:
                status = await self._query(handle)
                unreachable_since = None
            except RPCError as e:  # Temporal unreachable for a while: the outcome cannot be known from here
                status = None
                if e.status == RPCStatusCode.UNAVAILABLE:
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since > promotions.UNREACHABLE_FOR_S:
                        raise promotions.ConnectionLost(failure_message(e)) from None
            except Exception:  # noqa: BLE001 - a query can fail transiently (no worker yet); keep following
                status = None
            if status is not None:
                seen(status)
            await asyncio.wait([result], timeout=0.3)
        failure = result.exception()
        if failure is not None and not isinstance(failure, WorkflowFailureError):
            raise promotions.ConnectionLost(failure_message(failure))  # no outcome: the server could not be asked
        if failure is None:
            done: PromotionStatus = result.result()  # a completed run's own result
            return done
        try:
            final = await self._query(handle)
        except Exception:  # noqa: BLE001 - the workflow ended without an answer to give
            final = status or PromotionStatus(id=workflow_id, app="", commit="")
        return promotions.ended(final, failure_message(failure))

    @staticmethod
    async def _query(handle: WorkflowHandle[Any, PromotionStatus]) -> PromotionStatus:
        timeout = timedelta(seconds=promotions.QUERY_TIMEOUT_S)
        return await handle.query(PromotionWorkflow.query_status, rpc_timeout=timeout)

    async def hold_pr(self, workflow_id: str, timeout_s: float = promotions.HOLD_PR_WAIT_S) -> StageStatus:
        handle = self.client.get_workflow_handle(workflow_id)
        deadline = time.monotonic() + timeout_s
        while True:  # until its PR is open and its gate waits, or it failed (no such hold)
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.FAILED:
                try:
                    await handle.result()
                except WorkflowFailureError as e:
                    raise PromoterError(failure_message(e)) from None
            try:
                stage: StageStatus | None = await handle.query(promotions.STATUS_QUERY, result_type=StageStatus)
            except (RPCError, WorkflowQueryFailedError):  # its first workflow task has not run yet
                stage = None
            if stage is not None and stage.state != StageState.OPENING_PR:
                return stage
            if time.monotonic() > deadline:
                raise PromoterError(f"{workflow_id} did not open its PR within {timeout_s:g} s; is a worker running?")
            await asyncio.sleep(0.1)

    async def cancel(self, execution: promotions.Execution, timeout_s: float = 60.0) -> PromotionStatus | None:
        """Cancel a running promotion's run and wait for it to close its PRs: its final status (`closed`),
        or None when it has not closed within `timeout_s`."""
        await self.client.get_workflow_handle(execution.id, run_id=execution.run_id).cancel()
        return await self.closed(execution, timeout_s)

    async def closed(self, execution: promotions.Execution, timeout_s: float = 60.0) -> PromotionStatus | None:
        """That run's final status once it closes (a newer run of the ID is not asked), or None when it
        has not within `timeout_s`: its result when it completed (a cancel that came too late); else the
        `status` query, given `QUERY_TIMEOUT_S` (a closed run's answer is a worker's replay of its whole
        history, which no worker may give; a run that closed without an outcome is `failed`, saying why);
        else `unanswered_close`, from how the run closed."""
        wid, run_id = execution.id, execution.run_id
        handle = self.client.get_workflow_handle(wid, run_id=run_id, result_type=PromotionStatus)
        try:
            done: PromotionStatus = await asyncio.wait_for(handle.result(), timeout=timeout_s)
            return done
        except TimeoutError:
            return None
        except WorkflowFailureError as e:  # cancelled, failed or terminated: no result of its own
            why = failure_message(e)
        try:
            return promotions.ended(await self._query(handle), why)
        except (RPCError, WorkflowQueryFailedError):  # no worker answered
            try:
                desc = await handle.describe()
            except RPCError as e:
                raise PromoterError(f"{wid} closed, but Temporal did not describe it: {e.message}") from None
            return promotions.unanswered_close(await _execution(desc))

    async def listing(self, query: str, page_size: int = 1000) -> AsyncIterator[promotions.Listed]:
        async for wf in self.client.list_workflows(query, page_size=page_size):
            found = {key.name: wf.typed_search_attributes.get(key) for key in search.BASE}
            yield promotions.Listed(
                id=wf.id,
                run_id=wf.run_id,
                status=wf.status.name if wf.status else "RUNNING",
                memo=dict(await wf.memo()),
                attributes={name: value for name, value in found.items() if value},
                started_at=wf.start_time,
                closed_at=wf.close_time,
            )


async def _execution(desc: WorkflowExecutionDescription) -> promotions.Execution:
    return promotions.Execution(
        id=desc.id,
        run_id=desc.run_id,
        status=desc.status.name if desc.status else "RUNNING",
        task_queue=desc.task_queue,
        memo=dict(await desc.memo()),
        parent_id=desc.parent_id or "",
    )


async def wait_for(
    handle: WorkflowHandle[Any, PromotionStatus], check: Callable[[PromotionStatus], bool], timeout_s: float = 60.0
) -> PromotionStatus:
    """Poll the `status` query until `check` holds (a condition with a deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    last: PromotionStatus | None = None
    while time.monotonic() < deadline:
        current = await handle.query(PromotionWorkflow.query_status)
        last = current
        if check(current):
            return current
        await asyncio.sleep(0.05)
    raise TimeoutError(f"condition not met within {timeout_s}s; last status: {last}")
