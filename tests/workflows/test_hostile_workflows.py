"""Hostile input through whole promotions on a real Temporal dev server: twenty promotions started at
once right after a worker starts, dev -> staging -> prod, three times, all succeeding with nothing lost
(our own engine's race once denied most of them); a deterministic error (a `..` entry in the target
folder, a kustomization whose tree holds an absolute symlink) ends its stage at once instead of being
retried for many minutes; a YAML alias bomb is a denial naming its file, and the worker's memory
stays flat."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import psutil
import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, PromotionStatus, StageState
from tests.support.bombs import bomb
from tests.support.gitops import Origin
from tests.support.trees import blob, plant

pytestmark = pytest.mark.asyncio
APPS = tuple(f"app{i:02d}" for i in range(20))


async def promote(env: WorkflowEnvironment, tq: str, app: str, to_env: str | None = None) -> PromotionStatus:
    plan = await api.resolve(env.client, tq, app, to_env=to_env)
    handle = await api.start(env.client, tq, plan, "dana")
    return await asyncio.wait_for(handle.result(), timeout=120)


async def test_twenty_promotions_at_once_right_after_a_worker_starts_all_succeed_and_lose_nothing(
    dev_env: WorkflowEnvironment, origin_factory: Any, run_worker: Any
) -> None:
    """Three rounds of twenty apps changed in one commit and promoted at once, dev -> staging -> prod,
    each by a fresh worker (a cold policy engine, an empty git cache): every promotion succeeds (a
    single false denial or failure fails the test), main gets exactly one merge per app and stage,
    and every target folder carries its new image."""
    envs = [{"name": "dev", "order": 1}, {"name": "staging", "order": 2}, {"name": "prod", "order": 3}]
    origin: Origin = origin_factory(envs, apps=APPS)
    for round_ in range(3):
        tag = f"9.{round_}.0"
        paths = [f"environments/dev/{app}/deployment.yaml" for app in APPS]
        origin.repo.git.pull("--quiet", "--rebase", "origin", "main")
        origin.commit({p: re.sub(r"(image: \S+):[\w.\-]+", rf"\1:{tag}", (origin.work / p).read_text()) for p in paths})
        merges_before = sum(" Merge pull request" in line for line in origin.main_log())
        async with run_worker(dev_env, origin) as tq:
            results = await asyncio.gather(*(promote(dev_env, tq, app) for app in APPS))
        outcomes = {r.app: (r.state.value, r.message) for r in results if r.state != PromotionState.SUCCEEDED}
        assert outcomes == {}, f"round {round_ + 1}: {outcomes}"
        assert sum(" Merge pull request" in line for line in origin.main_log()) - merges_before == 2 * len(APPS)
        lost = [
            f"{env}/{app}"
            for app in APPS
            for env in ("staging", "prod")
            if f":{tag}" not in origin.show("main", f"environments/{env}/{app}/deployment.yaml")
        ]
        assert lost == [], f"round {round_ + 1}: changes lost in {lost}"


async def test_a_bad_entry_in_the_target_folder_fails_the_stage_at_once(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.bump()
    plant(origin, "environments/staging/demo", [("100644", "blob", blob(origin, "x"), "..")])
    async with run_worker(dev_env, origin) as tq:
        result = await promote(dev_env, tq, "demo", "staging")  # retried, this took 15 minutes
    staging = result.stages[1]
    assert result.state == PromotionState.FAILED and staging.state == StageState.FAILED
    assert "'environments/staging/demo/..': a path component named '..' cannot be promoted" in staging.message


async def test_a_kustomization_over_a_tree_with_an_absolute_symlink_is_denied_at_once(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.commit({"environments/dev/demo/kustomization.yaml": "resources: [deployment.yaml, service.yaml]\n"})
    plant(origin, "environments", [("120000", "blob", blob(origin, "/etc"), "shared")])
    async with run_worker(dev_env, origin) as tq:
        result = await promote(dev_env, tq, "demo", "dev")
    dev = result.stages[0]
    assert result.state == PromotionState.POLICY_DENIED, result.message
    assert dev.policy is not None and dev.policy.deny[0].rule == "promoter.input_error"
    assert "cannot be checked out safely" in dev.message and "environments/shared" in dev.message


async def test_a_yaml_bomb_is_a_denial_naming_its_file_and_memory_stays_flat(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any, tmp_path: Path
) -> None:
    origin.commit({"environments/dev/demo/lol.yaml": bomb()}, "a 1.5 KB alias bomb")
    me = psutil.Process()
    async with run_worker(dev_env, origin) as tq:
        before = me.memory_info().rss
        result = await promote(dev_env, tq, "demo", "dev")
        grown = me.memory_info().rss - before
    dev = result.stages[0]
    assert result.state == PromotionState.POLICY_DENIED, result.message
    assert "environments/dev/demo/lol.yaml: its YAML aliases expand to more than 1,000,000 nodes" in dev.message
    assert grown < 50 * 1024 * 1024, f"the worker grew by {grown / 2**20:.0f} MiB"
    assert dev.started_at is not None and dev.finished_at is not None
    assert (dev.finished_at - dev.started_at).total_seconds() < 10  # at once, not after retries
