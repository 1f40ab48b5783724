"""A local activity (a policy check, an approval's) never waits for a long thread activity's thread.

The main worker runs both kinds on one executor. When its threads were as many as either kind's slots,
a full set of long activities (health checks waiting out rollouts, merges waiting for the push lock)
held every thread: an approval's policy check, a PR's opening or a resolve queued behind them, for
as long as a rollout takes, while its workflow task held its slot. (The 1,000-gate runs of
docs/benchmarks.md showed no clear difference either way: this test is the evidence.) The real SDK
worker, with the main worker's slots and executor, on the session's dev server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from promoter.worker import ACTIVITY_SLOTS, activity_slots, activity_threads

pytestmark = pytest.mark.asyncio

RELEASE = threading.Event()  # the long activities hold their threads until the test sets it
HELD = {"started": 0, "returned": 0}  # the long activities so far
HELD_LOCK = threading.Condition()


@activity.defn(name="hold_a_thread")
def hold_a_thread() -> None:
    with HELD_LOCK:
        HELD["started"] += 1
        HELD_LOCK.notify_all()
    RELEASE.wait()  # released by the test only: no long activity returns before the local one has run
    with HELD_LOCK:
        HELD["returned"] += 1


def all_started(n: int, timeout_s: float) -> bool:
    with HELD_LOCK:
        return HELD_LOCK.wait_for(lambda: HELD["started"] >= n, timeout=timeout_s)


@activity.defn(name="quick_check")
def quick_check() -> str:
    return "checked"


@workflow.defn(name="LongThenLocal")
class LongThenLocal:
    def __init__(self) -> None:
        self.all_held = False

    @workflow.run
    async def run(self, longs: int) -> str:
        held = [
            workflow.start_activity(hold_a_thread, start_to_close_timeout=timedelta(minutes=2)) for _ in range(longs)
        ]
        await workflow.wait_condition(lambda: self.all_held)
        checked = await workflow.execute_local_activity(quick_check, start_to_close_timeout=timedelta(minutes=2))
        await asyncio.gather(*held)
        return checked

    @workflow.signal
    def held(self) -> None:
        self.all_held = True


async def test_a_local_activity_runs_while_every_activity_slot_holds_a_long_activity(
    dev_env: WorkflowEnvironment,
) -> None:
    queue = f"threads-{uuid.uuid4()}"
    RELEASE.clear()
    HELD.update(started=0, returned=0)
    with activity_threads() as executor:
        async with Worker(
            dev_env.client,
            task_queue=queue,
            workflows=[LongThenLocal],
            activities=[hold_a_thread, quick_check],
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
            **activity_slots(),
        ):
            try:
                handle = await dev_env.client.start_workflow(
                    LongThenLocal.run, ACTIVITY_SLOTS, id=f"threads-{uuid.uuid4()}", task_queue=queue
                )
                started = await asyncio.to_thread(all_started, ACTIVITY_SLOTS, 60)
                assert started, "the long activities never all started"  # every activity slot holds a thread
                await handle.signal(LongThenLocal.held)
                # the local activity ran while the long ones still hold every activity slot's thread
                deadline = asyncio.get_running_loop().time() + 60
                while not any(
                    e.HasField("marker_recorded_event_attributes") for e in (await handle.fetch_history()).events
                ):
                    waited = "the local activity waited for a long activity's thread"
                    assert asyncio.get_running_loop().time() < deadline, waited
                    await asyncio.sleep(0.1)
                assert HELD["returned"] == 0  # while every long activity still held its thread
            finally:
                RELEASE.set()
            assert await handle.result() == "checked"
