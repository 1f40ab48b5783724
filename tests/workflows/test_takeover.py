"""The takeover reproduction of issue 25, as whole promotions on a real Temporal dev server: app `demo`
is promoted; then app `tools` ships a Deployment named `demo` in the same namespace. The promotion of
`tools` is denied before any PR, naming both apps and the object, and demo's Deployment is untouched
(same resourceVersion, same image) and still healthy in every environment. Before inventories, sync
relabelled the Deployment to `tools`, changed its image, and pruned it when `tools` dropped the file.

First, staging is made to look as a label-only sync (before inventories) left it: the next promotion
builds demo's inventory from the labels, and its stage says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.cluster import APP_LABEL
from promoter.models import PromotionState, StageState
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin
from tests.support.workflows import deployment

pytestmark = pytest.mark.asyncio
ENVS: list[dict[str, object]] = [{"name": "dev", "order": 1}, {"name": "staging", "order": 2}]


async def test_a_second_apps_deployment_of_the_same_name_is_denied_before_the_pr(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory(ENVS, apps=("demo", "tools"))
    origin.bump(tag="2.0.0")
    async with run_worker(dev_env, origin) as tq:
        sims = clusters([])
        promoted = await (await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))).result()
        assert promoted.state == PromotionState.SUCCEEDED, promoted.message
        kept = sims["staging"].objects[("", "configmaps", "apps", "promoter-inventory-demo")]
        kept["data"] = {"kinds": kept["data"]["kinds"]}  # as the label-only sync left it: kinds, no objects
        origin.bump(tag="2.0.1")
        promoted = await (await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))).result()
        assert promoted.state == PromotionState.SUCCEEDED, promoted.message
        said = f"inventory of demo built from its {APP_LABEL} labels (2 objects), once"  # its Deployment and Service
        assert [said in s.message for s in promoted.stages] == [False, True], [s.message for s in promoted.stages]
        before = {env: deployment(sims[env]) for env in ("dev", "staging")}
        assert all(d["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.1") for d in before.values())

        theirs = yaml.safe_load((origin.work / "environments/dev/demo/deployment.yaml").read_text())
        theirs["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/acme/tools:9.9.9"
        origin.commit({"environments/dev/tools/demo.yaml": yaml.safe_dump(theirs)}, "tools: ships a Deployment demo")
        denied = await (await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "tools"))).result()

    assert denied.state == PromotionState.POLICY_DENIED, denied.message
    first = denied.stages[0]
    assert first.state == StageState.POLICY_DENIED and first.pr_number is None
    assert first.policy is not None
    [claim] = [d for d in first.policy.deny if d.rule == "promoter.owned_by_another_app"]
    assert claim.message.startswith("Deployment/apps/demo belongs to app demo (")
    assert "app tools may not take it over" in claim.message
    assert [p for p in origin.forge().list_pull_requests() if "tools" in p.head] == []  # no PR, no branch
    assert not [b for b in origin.branches() if "tools" in b]
    for env, was in before.items():
        now = deployment(sims[env])
        assert now["metadata"]["resourceVersion"] == was["metadata"]["resourceVersion"], env  # untouched
        assert now["metadata"]["labels"]["promoter.dev/app"] == "demo"
        assert now["status"]["availableReplicas"] == now["spec"]["replicas"], env  # still healthy
