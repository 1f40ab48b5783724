"""Cluster faults inside promotions: an API server that answers 500 or stalls is retried with backoff
and the promotion succeeds; one that is down is a denial before its PR (who owns the objects there
cannot be read: fails closed), and nothing is opened or merged there. HTTP probes decide health too."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, StageState
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio


async def test_500s_and_a_stall_are_retried_then_succeed(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any, clusters: Callable[[list[str]], dict[str, KubeSim]]
) -> None:
    origin.bump(tag="4.0.0")
    async with run_worker(dev_env, origin) as tq:
        staging = clusters([])["staging"]
        staging.fail_next(500, count=3)
        staging.stall_next(1.5, count=1)
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo", to_env="staging"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert staging.objects[("apps", "deployments", "apps", "demo")]["metadata"]["generation"] == 1
    assert not staging._faults  # every injected fault was met


async def test_api_down_before_the_pr_is_a_denial_and_nothing_opens(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory(
        [{"name": "dev", "order": 1}, {"name": "staging", "order": 2}, {"name": "prod", "order": 3}]
    )
    origin.bump()
    forge = origin.forge()
    async with run_worker(ts_env, origin) as tq:
        clusters([])["staging"].stop()  # staging's API server is down, and stays down
        handle = await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))
        result = await handle.result()
    assert result.state == PromotionState.POLICY_DENIED
    staging = result.stages[1]
    # who owns the objects there cannot be read before the PR: fails closed, nothing opened or merged
    assert staging.state == StageState.POLICY_DENIED and staging.merge_commit is None and staging.pr_number is None
    assert staging.policy is not None
    [unread] = [d for d in staging.policy.deny if d.rule == "promoter.ownership_unchecked"]
    assert "cannot reach the Kubernetes API at http://127.0.0.1:" in unread.message
    assert result.stages[2].state == StageState.PENDING
    assert [p.head for p in forge.list_pull_requests() if "/dev/" not in p.head] == []


@pytest.fixture
def probe_server() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(state["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    yield state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
async def test_http_probes_decide_health(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    probe_server: dict[str, Any],
    status: int,
    healthy: bool,
) -> None:
    probe_server["status"] = status
    origin = origin_factory(
        [
            {"name": "dev", "order": 1},
            {
                "name": "staging",
                "order": 2,
                "health": {"timeout": "2s", "http": [{"url": probe_server["url"], "expect_status": 200}]},
            },
        ]
    )
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()
    if healthy:
        assert result.state == PromotionState.SUCCEEDED
        assert "1 HTTP probe(s) answered as expected" in result.stages[1].message
    else:
        assert result.state in (PromotionState.REVERTED, PromotionState.FAILED)
        assert f"HTTP probe {probe_server['url']} answered status 503, expected 200" in result.message
