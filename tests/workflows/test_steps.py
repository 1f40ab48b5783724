"""The typed steps and the worker agree: the worker registers exactly the activities of
`workflows/steps.py` (the watcher on its own queue), and each activity takes the step's input model
and returns its result model, so a call can never drift from the activity's signature. Every ordinary
step heartbeats with a short timeout, which the worker keeps alive for a thread that is blocked."""

from __future__ import annotations

import concurrent.futures
import inspect
import time
import typing
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from promoter.settings import Settings
from promoter.worker import build_worker, losing_a_worker
from tests.support.gitops import Origin
from workflows import steps


async def test_the_worker_registers_exactly_the_steps_with_their_signatures(
    ts_env: WorkflowEnvironment, origin: Origin, tmp_path: Path
) -> None:
    settings = Settings(
        task_queue=str(uuid.uuid4()),
        repo_url=origin.url,
        forge_db=str(origin.path.parent / "forge.sqlite"),
        cache_dir=str(tmp_path / "cache"),
    )
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        workers = build_worker(ts_env.client, settings, pool)
    registered: dict[str, tuple[str, object]] = {}
    for worker in workers.workers:
        queue = worker.config()["task_queue"]
        for fn in worker.config().get("activities", []):
            definition = activity._Definition.must_from_callable(fn)
            registered[definition.name] = (queue, fn)
    by_name = {s.name: s for s in steps.ALL}
    assert set(registered) == set(by_name)
    for name, (queue, fn) in registered.items():
        step = by_name[name]
        assert queue.endswith(steps.WATCH_QUEUE_SUFFIX) == step.watch_queue, name
        hints = typing.get_type_hints(fn)
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert hints[params[0]] is step.input, f"{name} takes {hints[params[0]]}, its step says {step.input}"
        assert hints["return"] == step.result, f"{name} returns {hints['return']}, its step says {step.result}"


def test_every_ordinary_step_but_the_watcher_heartbeats_within_ten_seconds() -> None:
    """A worker that dies holds its ordinary activities until their heartbeat (or, without one, their
    start-to-close) timeout: each must be short. The watcher's is its own (workflows/watcher.py)."""
    ordinary = [s for s in (*steps.ALL, steps.health_step(timedelta(minutes=30))) if not s.local and not s.watch_queue]
    assert ordinary
    for step in ordinary:
        assert step.heartbeat is not None and step.heartbeat <= timedelta(seconds=10), step.name
    for step in steps.ALL:
        assert step.local or step.watch_queue or step.heartbeat is not None, (
            f"{step.name} is ordinary but never heartbeats"
        )


@activity.defn(name="blocked")
def blocked(seconds: float) -> int:
    """A thread activity that never heartbeats itself, as one blocked on git's push lock or a slow forge."""
    time.sleep(seconds)
    return activity.info().attempt


@workflow.defn(name="BlockedStep", sandboxed=False)
class BlockedStep:
    @workflow.run
    async def run(self, seconds: float) -> int:
        attempt: int = await workflow.execute_activity(
            blocked,
            seconds,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return attempt


async def test_a_thread_activity_blocked_past_its_heartbeat_timeout_lives_on(dev_env: WorkflowEnvironment) -> None:
    """The worker heartbeats for a thread activity from its event loop (`activities.Heartbeats`): one
    blocked twice as long as its heartbeat timeout ends in its first attempt, where it would time out."""
    tq = str(uuid.uuid4())
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        async with Worker(
            dev_env.client,
            task_queue=tq,
            workflows=[BlockedStep],
            activities=[blocked],
            activity_executor=pool,
            **losing_a_worker(),
        ):
            attempt = await dev_env.client.execute_workflow(BlockedStep.run, 4.0, id=str(uuid.uuid4()), task_queue=tq)
    assert attempt == 1
