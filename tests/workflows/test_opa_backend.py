"""Whole promotions with the `opa` backend: the worker pushes the repository's policies, data and
exceptions to an OPA server (a loopback stand-in with OPA's Policy and Data APIs that evaluates with
OPA's own Go engine, see tests/support/opa_standin.py) and asks it. The server was started with a
stale, permissive copy of the policies (no image rules at all), which never judges: a `:latest` image
is denied by the repository's rule, an exception committed to the repository reaches OPA and lets it
through, and the audit of each stage names the revision OPA answered with."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, PromotionStatus
from promoter.policy import PolicyBundle
from tests.support.gitops import Origin
from tests.support.opa_standin import OpaStandIn

pytestmark = pytest.mark.asyncio

DEPLOYMENT = "environments/dev/demo/deployment.yaml"


def audited(result: PromotionStatus, env: str = "staging") -> set[str]:
    """The revisions the audit of `env`'s policy checks names."""
    found = {
        m.group(1)
        for e in result.audit
        if e.kind == "policy" and e.env == env
        if (m := re.search(r"revision (\S+),", e.detail))
    }
    return found


async def test_a_promotion_judged_by_the_policies_pushed_from_the_repository(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any, tmp_path: Path
) -> None:
    stale = tmp_path / "stale-policies"
    shutil.copytree(origin.work / "policies", stale)
    (stale / "kubernetes" / "images.rego").unlink()  # what the server loaded itself allows any image
    with OpaStandIn(stale, token="opa-s3cret") as opa:
        async with run_worker(dev_env, origin, opa_url=opa.url, policy_engine="opa", opa_token="opa-s3cret") as tq:
            origin.bump(tag="2.0.0")
            ok = await (
                await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo", to_env="staging"))
            ).result()
            text = (origin.work / DEPLOYMENT).read_text()
            origin.commit({DEPLOYMENT: re.sub(r"(image: \S+):\S+", r"\1:latest", text)})
            plan = await api.resolve(dev_env.client, tq, "demo", to_env="staging")
            denied = await (await api.start(dev_env.client, tq, plan, "dana")).result()
            # an exception reviewed into the repository like the policies: OPA judges with it too
            until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
            changed = origin.commit(
                {
                    "policies/exceptions/debug.yaml": (
                        "demo-debug-image:\n  rule: kubernetes.images.deny_unpinned_image\n  app: demo\n"
                        f"  env: staging\n  reason: the debug build\n  owner: alice\n  expires: {until}\n"
                    )
                },
                "except the debug image in staging",
            )
            excepted_bundle = PolicyBundle.from_dir(origin.work / "policies")
            plan = await api.resolve(dev_env.client, tq, "demo", to_env="staging")
            excepted = await (await api.start(dev_env.client, tq, plan, "dana")).result()
        pushed = {
            p.rsplit("/", 1)[1]: b for m, p, b in opa.requests if m == "PUT" and p.startswith("/v1/data/promoter_rev/")
        }
        tokens = set(opa.authorization)
        stale_verdict = opa.query(["promoter", "decision"], {"environment": {"policy": {"enforce": ["kubernetes"]}}})
    assert stale_verdict is not None  # the stale copy is still loaded, and answers when asked directly

    assert ok.state == PromotionState.SUCCEEDED, ok.message
    assert {s.policy.engine for s in ok.stages if s.policy} == {"opa"}
    assert denied.state == PromotionState.POLICY_DENIED and denied.stages[1].state == "policy_denied"
    policy = denied.stages[1].policy
    assert policy is not None and policy.engine == "opa"
    assert "kubernetes.images.deny_unpinned_image" in {v.rule for v in policy.deny}  # the stale copy has no such rule

    assert excepted.state == PromotionState.SUCCEEDED, excepted.message
    policy = excepted.stages[1].policy
    assert policy is not None and policy.engine == "opa" and policy.deny == []
    [finding] = [v for v in policy.excepted if v.rule == "kubernetes.images.deny_unpinned_image"]
    assert finding.exception.startswith("exception demo-debug-image by alice until")

    # the audit names the revision OPA answered with: the one pushed from the repository each time
    revisions = {data["promoter_revision"]: data for data in pushed.values()}
    first, second = audited(ok), audited(excepted)
    assert len(first) == 1 and first == audited(denied) and first <= revisions.keys()
    assert len(second) == 1 and second <= revisions.keys() and second != first
    [name] = second
    assert name in (changed, excepted_bundle.revision)  # the rules' commit (or, off the trust chain, their hash)
    assert "demo-debug-image" in revisions[name]["exceptions"]  # the exception reached OPA
    assert "demo-debug-image" not in revisions[next(iter(first))].get("exceptions", {})
    assert tokens == {"Bearer opa-s3cret"}
