"""Record workflow histories for the replay test: `python -m tests.histories.record`.

Run it only when a change to PromotionWorkflow is meant to be incompatible *and* is guarded by
`workflow.patched`; otherwise the replay test is exactly what should catch the change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import Decision
from promoter.settings import Settings
from promoter.stack import binary, seed_origin
from promoter.worker import build_worker
from tests.conftest import Origin, make_gitops

HERE = Path(__file__).parent


async def main() -> None:
    env = await WorkflowEnvironment.start_local(data_converter=pydantic_data_converter,
                                                dev_server_existing_path=binary("temporal"))
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(16) as pool:
        base = Path(tmp)
        seed_origin(make_gitops(base), base / "origin.git")
        origin = Origin(base / "origin.git", base / "person")
        settings = Settings(task_queue=str(uuid.uuid4()), repo_url=origin.url, forge_db=str(base / "forge.sqlite"),
                            cache_dir=str(base / "cache"))
        async with build_worker(env.client, settings, pool):
            for name, decide in (("approved", "approve"), ("rejected", "reject")):
                origin.bump(tag=f"{name}-1")
                handle = await api.start(env.client, settings.task_queue,
                                         await api.plan(env.client, settings.task_queue, "demo"))
                await api.wait_for(handle, lambda s: s.stages[2].state == "awaiting_approval")
                await handle.signal("approve", Decision(env="prod", approver="mallory"))
                await handle.execute_update(decide, Decision(env="prod", approver="alice", comment="recorded"))
                await handle.result()
                history = await handle.fetch_history()
                (HERE / f"promotion_{name}.json").write_text(history.to_json())
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
