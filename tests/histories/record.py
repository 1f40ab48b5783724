"""Record workflow histories for the replay test: `python -m tests.histories.record`.

Run it only when a change to PromotionWorkflow is meant to be incompatible *and* is guarded by
`workflow.patched`, or is a documented cut-over (see CONTRIBUTING.md, "Versioning a workflow
change"); otherwise the replay test is exactly what should catch the change. Histories of earlier
versions stay and must keep replaying, unless a cut-over retired them (v1 was, by v2).
This script writes `<VERSION>_approved.json` (search attributes registered, a refused signal, the prod
gate opened by an approving review on the PR) and `<VERSION>_rejected.json` (rejected by update).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
import uuid
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api, search
from promoter.converter import DATA_CONVERTER
from promoter.models import Decision
from promoter.settings import Settings
from promoter.sim.kube import KubeSim, kubeconfig
from promoter.stack import binary, seed_origin
from promoter.worker import build_worker
from tests.support.gitops import Origin, make_gitops
from workflows.promotion import PromotionWorkflow

HERE = Path(__file__).parent
# v2.1: a decided gate's PR watcher ends before the promotion does (patch "watchers-awaited");
# v2: the steps folded and made local (issue 13); v1 was retired by a drained cut-over
VERSION = "v2.1"


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER, dev_server_existing_path=binary("temporal"), search_attributes=search.KEYS
    )
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(16) as pool:
        base = Path(tmp)
        seed_origin(make_gitops(base), base / "origin.git")
        origin = Origin(base / "origin.git", base / "person")
        sims = {e: KubeSim(env=e, rollout_delay_s=0.05).start() for e in ("dev", "staging", "prod")}
        (base / "kubeconfig").write_text(yaml.safe_dump(kubeconfig({e: sim.url for e, sim in sims.items()})))
        os.environ["KUBECONFIG"] = str(base / "kubeconfig")
        settings = Settings(
            task_queue=str(uuid.uuid4()),
            repo_url=origin.url,
            forge_db=str(base / "forge.sqlite"),
            cache_dir=str(base / "cache"),
            review_poll_s=0.1,
        )
        async with build_worker(env.client, settings, pool):
            for name, decide in (("approved", "approve"), ("rejected", "reject")):
                origin.bump(tag=f"{name}-1")
                handle = await api.start(
                    env.client, settings.task_queue, await api.plan(env.client, settings.task_queue, "demo")
                )
                status = await api.wait_for(handle, lambda s: s.stages[2].state == "awaiting_approval")
                await handle.signal(PromotionWorkflow.approve_signal, Decision(env="prod", approver="mallory"))
                if decide == "approve":  # by an approving review on the PR
                    origin.forge().add_review(status.stages[2].pr_number or 0, "alice", "approved", "recorded")
                else:
                    await handle.execute_update(
                        PromotionWorkflow.reject, Decision(env="prod", approver="alice", comment="recorded")
                    )
                await handle.result()
                history = await handle.fetch_history()
                (HERE / f"{VERSION}_{name}.json").write_text(history.to_json())
        for sim in sims.values():
            sim.stop()
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
