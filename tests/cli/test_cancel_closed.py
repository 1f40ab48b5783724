"""`promoter cancel` reports how the promotion closed even when no worker answers for it afterwards.

A cancelled run has no result of its own: its final status (stages and all) is the `status` query,
which for a closed run is a worker's replay of its whole history. When no worker gives that answer
(the one that closed it has stopped, or it does not pick the query up), the cancel was still done:
the CLI must not wait the client's 30 s default and then fail with "RPCError: Timeout expired", as it
did in CI. It says what Temporal keeps without a worker: the memo's app and commit, and how the run
closed."""

from __future__ import annotations

import uuid

from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from promoter.api import GrpcPromotions
from promoter.models import PromotionState, PromotionStatus
from promoter.promotions import STATUS_QUERY, Execution


@workflow.defn(name="WaitsAtItsGate")
class WaitsAtItsGate:
    def __init__(self) -> None:
        self.status = PromotionStatus(id="", app="demo", commit="c" * 40)

    @workflow.run
    async def run(self) -> PromotionStatus:
        await workflow.wait_condition(lambda: False)  # until it is cancelled
        return self.status

    @workflow.query(name=STATUS_QUERY)
    def query_status(self) -> PromotionStatus:
        return self.status


async def test_a_cancelled_run_no_worker_answers_for_is_reported_from_its_description(
    dev_env: WorkflowEnvironment,
) -> None:
    client, queue, wid = dev_env.client, f"gate-{uuid.uuid4()}", f"promote-{uuid.uuid4()}"
    memo = {"app": "demo", "commit": "c" * 40, "state": "running"}
    async with Worker(
        client, task_queue=queue, workflows=[WaitsAtItsGate], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await client.start_workflow(WaitsAtItsGate.run, id=wid, task_queue=queue, memo=memo)
        await handle.query(WaitsAtItsGate.query_status)  # its first task ran: it waits
        await handle.cancel()
        try:
            await handle.result()
            raise AssertionError("a cancelled run has no result")
        except WorkflowFailureError:
            pass
    # the worker that closed it has stopped: nobody replays the run for the query; and a newer run of the
    # same ID (a `promote --supersede` waiting for this close) has started: it is not the one reported
    newer = await client.start_workflow(WaitsAtItsGate.run, id=wid, task_queue=queue, memo=memo)
    assert newer.result_run_id != handle.result_run_id
    cancelled = Execution(id=wid, run_id=str(handle.result_run_id), status="RUNNING", task_queue=queue, memo=memo)
    final = await GrpcPromotions(client).closed(cancelled, timeout_s=10)
    assert final is not None
    assert (final.id, final.app, final.commit, final.state) == (wid, "demo", "c" * 40, PromotionState.CANCELLED)
    assert final.run_id == handle.result_run_id
    await newer.terminate("the test's own")
    assert "no worker answered" in final.message and f"promoter status {wid}" in final.message
