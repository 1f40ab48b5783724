"""A decision sent while the run's workflow task is being retried (one that failed or timed out, as a
starved worker's do in a burst of approvals): the server answers `WorkflowNotReady` ("Workflow Task in
failed state"), which is no refusal of the decision. Both transports (the SDK's gRPC client and
Temporal's HTTP API, promoter/api.py and promoter/temporal_http.py) send it again with the same update
ID until the task runs; the decision then counts once. On the real dev server: a test workflow whose
workflow task fails on purpose until the test lets it run."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from promoter.api import GrpcPromotions
from promoter.converter import DATA_CONVERTER
from promoter.models import Approval, Decision, StageState, StageStatus
from promoter.stack import binary, free_port
from promoter.temporal_http import HttpPromotions

pytestmark = pytest.mark.asyncio(loop_scope="session")


@workflow.defn(name="NotReadyTestWorkflow", sandboxed=False)
class NotReadyWorkflow:
    """Counts approvals; while the file a `wedge` signal named is missing, every workflow task fails (a
    plain exception fails the task, not the run, and the signal is handled again in each new attempt)."""

    def __init__(self) -> None:
        self.stage = StageStatus(env="prod", order=0, state=StageState.AWAITING_APPROVAL)

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: len(self.stage.approvals) >= 1)
        return len(self.stage.approvals)

    @workflow.signal
    def wedge(self, path: str) -> None:
        if not Path(path).exists():
            raise RuntimeError("wedged on purpose by the test")

    @workflow.update(name="approve")
    async def approve(self, d: Decision) -> StageStatus:
        self.stage.approvals.append(Approval(approver=d.approver, at=workflow.now(), via=d.via))
        return self.stage


async def wedged(client: Client, queue: str, go: Path) -> str:
    """A run whose workflow task fails (until `go` exists), once the server has begun retrying it."""
    handle = await client.start_workflow(NotReadyWorkflow.run, id=f"wedged-{uuid.uuid4().hex[:8]}", task_queue=queue)
    await handle.signal(NotReadyWorkflow.wedge, str(go))
    deadline = time.monotonic() + 60
    while (await handle.describe()).raw_description.pending_workflow_task.attempt < 2:
        assert time.monotonic() < deadline, "the wedged run's workflow task was never retried"
        await asyncio.sleep(0.1)
    return handle.id  # the server retries the task about every 10 s: the next attempt is seconds away


async def test_a_decision_sent_while_the_task_is_retried_is_sent_again_and_counts_once(tmp_path: Path) -> None:
    """Over both transports at once, each to a run of its own."""
    http = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=binary("temporal"),
        dev_server_extra_args=["--http-port", str(http)],
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    try:
        queue = f"not-ready-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=queue, workflows=[NotReadyWorkflow]):
            by_grpc, by_http = await asyncio.gather(*(wedged(env.client, queue, tmp_path / n) for n in ("g", "h")))
            with pytest.raises(RPCError, match="Workflow Task in failed state"):  # what the server answers now
                await env.client.get_workflow_handle(by_grpc).execute_update(
                    "approve", Decision(env="prod", approver="probe", via="cli")
                )
            decision = Decision(env="prod", approver="alice", via="cli")
            http_api = HttpPromotions(f"http://127.0.0.1:{http}", "default")
            sent = asyncio.gather(
                GrpcPromotions(env.client).decide(by_grpc, "approve", decision),
                # the HTTP API's calls block: on a thread (and a loop) of its own, as the CLI runs them
                asyncio.to_thread(asyncio.run, http_api.decide(by_http, "approve", decision)),
            )
            for name in ("g", "h"):  # each task's next attempt (seconds away) runs: its update is taken then
                (tmp_path / name).touch()
            stages = await asyncio.wait_for(sent, timeout=120)
            assert [[a.approver for a in stage.approvals] for stage in stages] == [["alice"], ["alice"]]
            for wid in (by_grpc, by_http):  # counted once: the run ends with one approval
                assert await env.client.get_workflow_handle(wid).result() == 1
    finally:
        await env.shutdown()
