"""Rule changes that were not reviewed do not judge, on a real Temporal dev server with real git: with a
trust root pinned in the worker's settings, an unsigned push that makes prod need no approval leaves
the promotion gated by the trusted rules (its status, its Web UI details and its audit name the trusted
revision and the untrusted change), and the same change signed by the platform key takes effect for the
next promotion. `source.require_signed` denies an unsigned commit before any PR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, PromotionStatus, StageState
from tests.support.gitops import Origin
from tests.support.keys import commit_signed, keygen

pytestmark = pytest.mark.asyncio

PROD = "environments/prod/environment.yaml"


def envs() -> list[dict[str, object]]:
    gate = {"required": 1, "approvers": ["alice"], "timeout": "24h"}
    return [{"name": "dev", "order": 1}, {"name": "prod", "order": 2, "approval": gate}]


async def test_an_unsigned_rule_change_is_not_used_and_a_signed_one_is(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any, tmp_path: Path
) -> None:
    platform = tmp_path / "platform"
    origin = origin_factory(envs())
    root = origin.commit({"trust/allowed_signers": f'platform namespaces="git" {keygen(platform)}\n'}, "trust")
    loosen = {PROD: (origin.work / PROD).read_text().replace("required: 1", "required: 0")}
    unsigned = origin.commit(loosen, "prod needs no approval")  # pushed to main, never reviewed
    origin.bump(tag="1.1.0")
    async with run_worker(dev_env, origin, trust_root=root) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        status: PromotionStatus = await api.wait_for(
            handle, lambda s: s.stages[1].state == StageState.AWAITING_APPROVAL
        )
        notice = f"main has untrusted rule changes since {root[:12]}: {unsigned[:12]} by dana <dana@example.com>"
        assert any(n.startswith(notice) for n in status.notices), status.notices
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert notice in metadata.current_details  # the Web UI says so too
        policy = next(e for e in status.audit if e.kind == "policy" and e.env == "prod")
        assert f"revision {root}" in policy.detail  # the audit names the trusted revision's commit
        await handle.cancel()
        # the platform engineer signs the change (here: the same content, signed): it judges from now on
        signed = commit_signed(origin, platform, {"policies/notes.txt": "reviewed: prod needs no approval"}, "ok")
        origin.bump(tag="1.2.0")
        second = await api.start(
            dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana", supersede=True
        )
        result = await second.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert result.stages[1].approvals == [] and result.notices == []
    assert any(f"revision {signed}" in e.detail for e in result.audit if e.kind == "policy"), result.audit


async def test_source_require_signed_denies_an_unsigned_commit_before_any_pr(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any, tmp_path: Path
) -> None:
    platform = tmp_path / "platform"
    environments = envs()
    environments[1]["source"] = {"require_signed": True}
    origin = origin_factory(environments)
    root = origin.commit({"trust/allowed_signers": f'platform namespaces="git" {keygen(platform)}\n'}, "trust")
    bad = origin.bump(tag="1.1.0")  # unsigned
    async with run_worker(dev_env, origin, trust_root=root) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        result = await handle.result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    prod = result.stages[1]
    assert prod.pr_number is None  # nothing was opened
    assert prod.policy is not None
    denial = next(v for v in prod.policy.deny if v.rule == "promoter.unsigned_source")
    assert denial.message.startswith(f"{bad[:12]} by dana <dana@example.com> in the promoted range of demo")
