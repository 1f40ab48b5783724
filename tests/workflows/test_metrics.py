"""The worker's /metrics endpoint: the Temporal SDK's Prometheus metrics and the product's own
(promotions by outcome, stage durations, gate wait time, reverts), from a real promotion."""

from __future__ import annotations

import concurrent.futures
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.converter import DATA_CONVERTER
from promoter.models import Decision, PromotionState, StageState
from promoter.settings import Settings, metrics_runtime
from promoter.sim.kube import KubeSim
from promoter.stack import free_port
from promoter.worker import build_worker
from tests.support.gitops import Origin
from workflows.promotion import PromotionWorkflow


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(
        f"no {name} with {labels} in:\n" + "\n".join(ln for ln in text.splitlines() if ln.startswith("promoter_"))
    )


@pytest.mark.asyncio
async def test_metrics_endpoint_has_the_sdk_and_the_product_metrics(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory(
        [
            {"name": "dev", "order": 1},
            {
                "name": "prod",
                "order": 2,
                "approval": {"required": 1, "approvers": ["alice"], "pull_request_reviews": False},
            },
        ]
    )
    origin.bump()
    clusters(["dev", "prod"])
    port = free_port()
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=DATA_CONVERTER,
        runtime=metrics_runtime(port, "127.0.0.1"),
    )
    settings = Settings(
        task_queue=str(uuid.uuid4()),
        repo_url=origin.url,
        cache_dir=str(tmp_path / "cache"),
        forge_db=str(origin.path.parent / "forge.sqlite"),
    )
    async with build_worker(client, settings, executor):
        handle = await api.start(client, settings.task_queue, await api.resolve(client, settings.task_queue, "demo"))
        await api.wait_for(handle, lambda s: s.stages[1].state == StageState.AWAITING_APPROVAL)
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        assert (await handle.result()).state == PromotionState.SUCCEEDED
        text = scrape(port)
    assert value(text, "promoter_promotions_total", app="demo", outcome="succeeded") == 1
    assert value(text, "promoter_gate_wait_seconds_count", env="prod", outcome="approved") == 1
    assert value(text, "promoter_stage_duration_seconds_count", env="prod", state="healthy") == 1
    assert value(text, "promoter_stage_duration_seconds_sum", env="dev", state="healthy") > 0
    assert any(ln.startswith("promoter_gate_wait_seconds_bucket") and 'le="3600"' in ln for ln in text.splitlines())
    assert "temporal_workflow_completed" in text and "temporal_activity_execution_latency" in text
