"""Argo CD and Flux as the syncer of an environment (`cluster.sync`), on a real Temporal dev server
with real git and a simulated cluster whose Application / Kustomization a stand-in controller answers
(tests/support/controllers.py): promoter asks for a reconcile after the merge, waits for the merge
commit to be reported synced and healthy, reverts through Git when it is reported degraded, and
writes nothing to the app's own objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import DriftInput, PromotionState, StageState
from promoter.sim.kube import KubeSim
from tests.support.controllers import Controller
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio


def envs(engine: str) -> list[dict[str, object]]:
    syncer = {"context": "staging", "namespace": "apps", "sync": engine}
    return [{"name": "dev", "order": 1}, {"name": "staging", "order": 2, "cluster": syncer}]


def writes_to_app_objects(sim: KubeSim) -> list[tuple[str, str]]:
    return [
        (m, p)
        for m, p in sim.requests
        if m in ("POST", "PUT", "PATCH", "DELETE") and "/applications/" not in p and "/kustomizations/" not in p
    ]


@pytest.mark.parametrize(("engine", "fail"), [("argocd", 1), ("flux", 0)])
async def test_the_syncer_reconciles_the_merge_and_a_degraded_one_is_reverted_through_git(
    engine: str,
    fail: int,
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory(envs(engine))
    origin.bump(env="dev", tag="5.5.5")
    async with run_worker(dev_env, origin) as tq:
        staging = clusters([])["staging"]
        with Controller(staging, origin.path, engine, ["demo-staging"], fail=fail) as controller:
            staging.requests.clear()
            handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
            result = await handle.result()
            stage = result.stages[1]
            drift = await api.drift(dev_env.client, tq, DriftInput(env="staging"))
    assert writes_to_app_objects(staging) == []  # promoter asked; the controller applied
    if fail:  # Degraded at the merge: the usual revert through Git, which the controller then syncs
        assert result.state == PromotionState.REVERTED, result.message
        assert stage.state == StageState.REVERTED and "Degraded" in stage.message
        assert controller.reconciled == [stage.merge_commit, stage.revert_commit]
    else:
        assert result.state == PromotionState.SUCCEEDED, result.message
        assert controller.reconciled == [stage.merge_commit]
        assert "Ready at" in stage.message
    assert [(a.app, a.drifts) for a in drift.apps] == [("demo", [])]  # read from the controller's status
