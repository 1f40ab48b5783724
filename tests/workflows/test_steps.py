"""The typed steps and the worker agree: the worker registers exactly the activities of
`workflows/steps.py` (the watcher on its own queue), and each activity takes the step's input model
and returns its result model, so a call can never drift from the activity's signature."""

from __future__ import annotations

import concurrent.futures
import inspect
import typing
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from promoter.settings import Settings
from promoter.worker import build_worker
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
