"""A whole promotion with the `opa` backend: the worker asks an OPA server over its Data API (a
loopback stand-in that evaluates with OPA's own Go engine, see tests/policy/opa_standin.py), a clean
change reaches staging, and a `:latest` image is denied there by OPA, naming the rule."""

from __future__ import annotations

import re
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState
from tests.support.gitops import ROOT, Origin
from tests.support.opa_standin import OpaStandIn

pytestmark = pytest.mark.asyncio


async def test_a_promotion_judged_by_opa(dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any) -> None:
    with OpaStandIn(ROOT / "policies") as opa:
        async with run_worker(dev_env, origin, opa_url=opa.url, policy_engine="opa") as tq:
            origin.bump(tag="2.0.0")
            ok = await (
                await api.start(dev_env.client, tq, await api.plan(dev_env.client, tq, "demo", to_env="staging"))
            ).result()
            text = (origin.work / "environments/dev/demo/deployment.yaml").read_text()
            origin.commit({"environments/dev/demo/deployment.yaml": re.sub(r"(image: \S+):\S+", r"\1:latest", text)})
            plan = await api.plan(dev_env.client, tq, "demo", to_env="staging")
            denied = await (await api.start(dev_env.client, tq, plan, "dana")).result()
        posts = [path for method, path, _ in opa.requests if method == "POST"]
    assert ok.state == PromotionState.SUCCEEDED, ok.message
    assert {s.policy.engine for s in ok.stages if s.policy} == {"opa"}
    assert denied.state == PromotionState.POLICY_DENIED and denied.stages[1].state == "policy_denied"
    policy = denied.stages[1].policy
    assert policy is not None and policy.engine == "opa"
    assert "kubernetes.images.deny_unpinned_image" in {v.rule for v in policy.deny}
    assert posts and set(posts) == {"/v1/data/promoter/decision"}
