"""The schema gate in a promotion, on the time-skipping server with real git and simulated clusters
that validate as a real API server does: a typo in dev's change is denied before any PR, with its
path in the report; where the gate is off, the cluster refuses the same typo at sync (as a real API
server does under promoter's `fieldValidation=Strict`), and the stage says why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import git
import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, StageState
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio


def typo(origin: Origin) -> str:
    """A commit to dev's demo that misspells `replicas` (and changes the image, so there is a change)."""
    path = "environments/dev/demo/deployment.yaml"
    text = (origin.work / path).read_text().replace("replicas: 2", "replicsa: 2").replace("demo:1.0.0", "demo:1.2.0")
    assert "replicsa" in text
    return origin.commit({path: text}, "demo 1.2.0 (with a typo)")


async def test_a_typo_in_dev_is_denied_before_any_pr_with_its_path(
    ts_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    typo(origin)
    before = {h.name: h.commit.hexsha for h in git.Repo(origin.path).heads}
    async with run_worker(ts_env, origin) as tq:
        result = await (await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))).result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    [stage] = [s for s in result.stages if s.state == StageState.POLICY_DENIED]
    assert stage.policy is not None
    [finding] = [v for v in stage.policy.deny if v.rule == "schemas.kubernetes.deny_invalid"]
    assert (finding.object, finding.path) == ("Deployment/-/demo", "spec.replicsa")
    assert finding.message == 'spec.replicsa: unknown field "replicsa"'
    assert "spec.replicsa" in stage.message
    assert origin.forge().list_pull_requests() == []  # nothing opened, nothing pushed
    assert {h.name: h.commit.hexsha for h in git.Repo(origin.path).heads} == before


async def test_with_the_gate_off_the_cluster_refuses_the_typo_at_sync_and_the_stage_says_why(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    off = {"enforce": ["promotion"], "warn_only": ["kubernetes"]}  # no schemas: the old way
    origin = origin_factory(
        [{"name": "dev", "order": 1, "policy": off}, {"name": "staging", "order": 2, "policy": off}]
    )
    typo(origin)
    async with run_worker(ts_env, origin) as tq:
        result = await (await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))).result()
    assert result.state == PromotionState.FAILED, result.message
    [failed] = [s for s in result.stages if s.state == StageState.FAILED]  # dev's sync: its API server refused
    assert failed.env == "dev"
    assert (
        failed.message == 'apply Deployment/demo: 400 Bad Request: strict decoding error: unknown field "spec.replicsa"'
    )
    live = clusters([])["dev"].objects.get(("apps", "deployments", "apps", "demo"))
    assert live is None or "replicsa" not in live["spec"]  # nothing of the typo was stored


async def test_a_kubernetes_version_without_schemas_denies_naming_it(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    old = {"context": "staging", "namespace": "apps", "version": "1.19"}
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "staging", "order": 2, "cluster": old}])
    origin.bump()
    async with run_worker(ts_env, origin) as tq:
        result = await (await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))).result()
    assert result.state == PromotionState.POLICY_DENIED  # fail closed: no schemas, no promotion
    [denial] = result.stages[1].policy.deny if result.stages[1].policy else []
    assert denial.rule == "promoter.input_error"
    assert denial.message.startswith("cluster.version 1.19: the schemas here cover Kubernetes 1.25 to")


async def test_a_custom_resource_is_checked_against_the_crd_the_cluster_has(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    from tests.policy.test_schemas import CRD

    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "staging", "order": 2}])
    origin.commit(
        {
            "environments/dev/demo/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
            "spec: {size: many}\n"
        },
        "a widget of the wrong size",
    )
    async with run_worker(ts_env, origin) as tq:
        for sim in clusters([]).values():  # installed by the platform team, not in the repository
            sim.create(sim.kinds[("apiextensions.k8s.io", "v1", "customresourcedefinitions")], "", CRD)
        result = await (await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))).result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    dev = result.stages[0]
    assert dev.policy is not None
    assert [(v.rule, v.object, v.path) for v in dev.policy.deny if v.rule.startswith("schemas.")] == [
        ("schemas.kubernetes.deny_invalid", "Widget/-/w", "spec.size")
    ]
