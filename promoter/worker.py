"""The worker: the one place that builds real adapters and hands them to the activities."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities.cluster import ClusterActivities
from activities.forge import ForgeActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyActivities
from activities.repository import GitActivities
from promoter.errors import BadInput
from promoter.forges import make_forge
from promoter.gitrepo import GitClone
from promoter.settings import Settings, connect
from workflows.promotion import PlanWorkflow, PromotionWorkflow

log = logging.getLogger("promoter.worker")


def build_worker(client: Client, settings: Settings, executor: concurrent.futures.Executor) -> Worker:
    if not settings.repo_url:
        raise BadInput("no GitOps repository: set PROMOTER_REPO_URL (or start the embedded stack with `promoter up`)")
    repo = GitClone(settings.repo_url, Path(settings.cache_dir))
    forge_settings: dict[str, object] = {"repo": repo}
    if settings.forge == "local":
        forge_settings["db_path"] = settings.forge_db or str(Path(settings.repo_url).parent / "forge.sqlite")
    forge = make_forge(settings.forge, **forge_settings)
    git_acts, forge_acts = GitActivities(repo), ForgeActivities(forge, settings.review_poll_s)
    policy, cluster = PolicyActivities(repo, settings.make_policy_engine()), ClusterActivities(repo, forge)
    notify = NotifyActivities()
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[PromotionWorkflow, PlanWorkflow],
        activities=[
            git_acts.plan, git_acts.prepare, git_acts.push_branch,
            forge_acts.open_pull_request, forge_acts.merge_pull_request,
            forge_acts.close_pull_request, forge_acts.comment_pull_request, forge_acts.update_pull_request,
            forge_acts.watch_pull_request, policy.check_policy, policy.check_approval, policy.screen_approvers,
            cluster.sync, cluster.check_health, cluster.revert, notify.notify,
        ],
        activity_executor=executor,
        max_concurrent_activities=16,
    )


async def run_worker(settings: Settings, ready_file: str | None = None) -> None:
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as executor:
        worker = build_worker(client, settings, executor)
        log.info("worker on %s, task queue %s, repository %s", settings.temporal_address,
                 settings.task_queue, settings.repo_url)
        async with worker:
            if ready_file:
                Path(ready_file).write_text(str(os.getpid()))
            await stop.wait()
