"""A custom resource whose CRD is nowhere (not in the environment's folder, not in the target cluster)
is denied before any PR where the `schemas` concern is enforced, and only warned of under
`warn_only: [schemas]` (issue 25: no fail-open defaults)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState
from promoter.sim.kube import KubeSim
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio

GADGET = "apiVersion: example.org/v2\nkind: Gadget\nmetadata: {name: g}\nspec: {size: 1}\n"


async def test_a_custom_resource_without_a_crd_anywhere_is_denied_before_the_pr(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory([{"name": "dev", "order": 1}, {"name": "staging", "order": 2}])
    origin.commit({"environments/dev/demo/gadget.yaml": GADGET}, "a gadget no CRD describes")
    async with run_worker(ts_env, origin) as tq:
        clusters([])  # the clusters answer, and have no CRD for it either
        result = await (await api.start(ts_env.client, tq, await api.resolve(ts_env.client, tq, "demo"))).result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    dev = result.stages[0]
    assert dev.policy is not None
    [denial] = [v for v in dev.policy.deny if v.rule.startswith("schemas.")]
    assert (denial.rule, denial.object) == ("schemas.kubernetes.deny_not_validated", "Gadget/-/g")
    assert denial.message.startswith("not validated: no CustomResourceDefinition for Gadget (example.org/v2)")
    assert origin.forge().list_pull_requests() == []  # nothing opened


async def test_under_warn_only_it_is_a_warning(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    warned = {"enforce": ["promotion", "kubernetes"], "warn_only": ["schemas"]}
    origin = origin_factory([{"name": "dev", "order": 1, "policy": warned}, {"name": "staging", "order": 2}])
    origin.commit({"environments/dev/demo/gadget.yaml": GADGET}, "a gadget no CRD describes")
    async with run_worker(ts_env, origin) as tq:
        clusters([])
        plan = await api.resolve(ts_env.client, tq, "demo", to_env="dev")
        result = await (await api.start(ts_env.client, tq, plan)).result()
    dev = result.stages[0]
    assert dev.policy is not None
    assert not [v for v in dev.policy.deny if v.rule.startswith("schemas.")]
    assert "schemas.kubernetes.deny_not_validated" in {v.rule for v in dev.policy.warn}
