"""A live worker busy in a workflow task is never taken for a missing one.

While a workflow task runs local activities (resolving, a policy check, opening a PR all do), the
worker answers a query only when that task heartbeats (about every 8 s), and its last poll of the task
queue can be a minute old. `status` and `approve` must wait for that answer instead of saying "no
worker is polling" (and refusing the approval); the killed worker's case is in test_cli_commands.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from promoter.api import GrpcPromotions
from promoter.models import Decision, PromotionStatus, StageStatus
from promoter.promotions import APPROVE, STATUS_QUERY

BUSY_S = 25.0  # longer than the 5 s query timeout and two workflow-task heartbeats


@activity.defn(name="busy_for_a_while")
async def busy_for_a_while() -> None:
    await asyncio.sleep(BUSY_S)


@workflow.defn(name="BusyPromotion")
class BusyPromotion:
    def __init__(self) -> None:
        self.status = PromotionStatus(id="busy", app="demo", commit="a" * 40)
        self.approved = False

    @workflow.run
    async def run(self) -> PromotionStatus:
        self.status.message = "busy in a local activity"
        await workflow.execute_local_activity(busy_for_a_while, start_to_close_timeout=timedelta(minutes=2))
        await workflow.wait_condition(lambda: self.approved)
        return self.status

    @workflow.query(name=STATUS_QUERY)
    def query_status(self) -> PromotionStatus:
        return self.status

    @workflow.update(name=APPROVE)
    def approve(self, decision: Decision) -> StageStatus:
        self.approved = True
        return StageStatus(env=decision.env, order=1)


async def test_a_worker_busy_in_a_local_activity_is_waited_for_not_called_missing(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    promotions = GrpcPromotions(client)
    async with Worker(
        client,
        task_queue="busy",
        workflows=[BusyPromotion],
        activities=[busy_for_a_while],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(BusyPromotion.run, id="promote-busy", task_queue="busy")

        deadline = asyncio.get_running_loop().time() + 60
        while not (await handle.describe()).raw_description.pending_workflow_task.HasField("started_time"):
            assert asyncio.get_running_loop().time() < deadline, "the busy workflow task never started"
            await asyncio.sleep(0.1)
        execution = await promotions.describe("promote-busy")
        assert execution is not None
        asked = asyncio.get_running_loop().time()
        shown = await promotions.status(execution)  # answered once the task heartbeats, not "no worker"
        assert shown.message == "busy in a local activity"
        stage = await promotions.decide("promote-busy", APPROVE, Decision(env="prod", approver="alice", via="cli"))
        assert stage.env == "prod"
        assert asyncio.get_running_loop().time() - asked < BUSY_S + 5  # the approval went through, not refused
        assert (await handle.result()).app == "demo"
