"""An environment graph (`after:`) promoted end to end on the dev server, with real git, the local forge
and a simulated cluster per environment: dev → staging-eu ∥ staging-us → prod. Both staging branches
run at once (staging-us becomes healthy while staging-eu waits at its gate; their stage intervals in the
final status overlap) and prod starts only once both are healthy; a failure in one branch (staging-eu
reverted) stops prod, which never opens a PR, while the other branch (staging-us) runs to its own end; a
cancel while both branches wait at their gates closes both PRs and cancels every stage.
`promoter dry-run`, `status` and the Web UI's details show what each stage comes after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.cli.render import stage_plan, table
from promoter.models import Decision, PromotionState, PromotionStatus, StageState, StageStatus
from tests.support.gitops import Origin
from tests.support.workflows import awaiting, failing_in
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio

GATE = {"required": 1, "approvers": ["alice"], "pull_request_reviews": False}


def graph(prod_after: list[str], eu_gate: bool = False) -> list[dict[str, object]]:
    """The four environments; `prod_after` in either order, so that a fan-in that waited for one of
    its upstreams only (the first, or the last) fails one of the two tests."""
    return [
        {"name": "dev"},
        {"name": "staging-eu", "after": ["dev"], **({"approval": GATE} if eu_gate else {})},
        {"name": "staging-us", "after": ["dev"]},
        {"name": "prod", "after": prod_after},
    ]


def stages(status: PromotionStatus) -> dict[str, StageStatus]:
    return {s.env: s for s in status.stages}


def shown(status: PromotionStatus) -> str:
    console = Console(width=200, record=True)
    console.print(table(status))
    return console.export_text()


async def test_both_branches_run_at_once_and_prod_waits_for_both(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(graph(["staging-us", "staging-eu"], eu_gate=True))
    origin.bump(tag="4.0.0")
    async with run_worker(dev_env, origin) as tq:
        dry = await api.dry_run(dev_env.client, tq, "demo")
        assert [s.after for s in dry.stages] == [[], ["dev"], ["dev"], ["staging-us", "staging-eu"]]
        assert stage_plan(dry.stages[3])[0] == "prod (after staging-us, staging-eu):"

        plan = await api.resolve(dev_env.client, tq, "demo")
        assert [e.config.name for e in plan.environments] == ["dev", "staging-eu", "staging-us", "prod"]
        handle = await api.start(dev_env.client, tq, plan)
        # staging-us goes all the way while staging-eu waits at its gate: prod has not started
        both = lambda s: awaiting("staging-eu")(s) and stages(s)["staging-us"].state == StageState.HEALTHY  # noqa: E731
        status = await api.wait_for(handle, both)
        prod = stages(status)["prod"]
        assert prod.state == StageState.PENDING and prod.started_at is None and prod.pr_number is None
        assert status.state == PromotionState.RUNNING
        table_text = shown(status)
        assert "after" in table_text and "staging-us, staging-eu" in table_text and "(source)" in table_text
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert (  # the Web UI's details show the graph
            "Environments: dev (source): healthy; staging-eu (after dev): awaiting_approval; "
            "staging-us (after dev): healthy; prod (after staging-us, staging-eu): pending."
        ) in metadata.current_details

        await handle.execute_update(PromotionWorkflow.approve, Decision(env="staging-eu", approver="alice"))
        result = await handle.result()
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)

    assert result.state == PromotionState.SUCCEEDED, result.message
    assert "- prod (after staging-us, staging-eu): healthy" in metadata.current_details
    by = stages(result)
    assert all(s.state == StageState.HEALTHY for s in result.stages), [(s.env, s.state) for s in result.stages]
    eu, us, prod = by["staging-eu"], by["staging-us"], by["prod"]
    assert [s.order for s in result.stages] == [1, 2, 2, 3]
    assert prod.after == ["staging-us", "staging-eu"] and eu.after == ["dev"]
    for s in (eu, us, prod):
        assert s.started_at is not None and s.finished_at is not None
    assert eu.started_at and eu.finished_at and us.started_at and us.finished_at and prod.started_at
    # the two branches' intervals overlap: each started before the other finished
    assert eu.started_at < us.finished_at and us.started_at < eu.finished_at, (eu, us)
    assert us.finished_at < eu.finished_at  # staging-us was done while staging-eu still waited
    assert prod.started_at >= max(eu.finished_at, us.finished_at)  # the fan-in waited for both
    # the policies judged prod against both of its upstreams, and let it through
    assert any(e.env == "prod" and e.kind == "policy" and "allow" in e.detail for e in result.audit)
    subjects = [line.split(" ", 1)[1] for line in origin.main_log()]
    for env in ("staging-eu", "staging-us", "prod"):
        assert any(s.startswith(f"promote(demo): {env} <- dev") for s in subjects), (env, subjects)


async def test_a_failed_branch_stops_prod_and_the_other_branch_runs_to_its_end(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(graph(["staging-eu", "staging-us"]))
    bad = failing_in(origin, "staging-eu")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()

    by = stages(result)
    assert by["staging-eu"].state == StageState.REVERTED, by["staging-eu"].message
    assert by["staging-us"].state == StageState.HEALTHY, by["staging-us"].message
    prod = by["prod"]
    assert prod.state == StageState.PENDING and prod.started_at is None and prod.pr_number is None
    assert prod.message == "not started: it comes after staging-eu (reverted)"
    # the promotion ends as the failed branch said, once the other branch had ended too
    assert result.state == PromotionState.REVERTED and result.message.startswith("staging-eu: unhealthy")
    assert result.finished_at is not None and by["staging-us"].finished_at is not None
    assert result.finished_at >= by["staging-us"].finished_at
    subjects = [line.split(" ", 1)[1] for line in origin.main_log()]
    assert any(s.startswith(f"promote(demo): staging-us <- dev @ {bad[:7]}") for s in subjects), subjects
    assert not any("prod" in s for s in subjects), subjects
    assert not [pr for pr in origin.forge().list_pull_requests() if "prod" in pr.title]


async def test_a_cancel_stops_every_branch_and_closes_their_prs(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    envs = graph(["staging-eu", "staging-us"], eu_gate=True)
    envs[2]["approval"] = GATE  # both branches wait at their gates at once
    origin = origin_factory(envs)
    origin.bump(tag="4.1.0")
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        status = await api.wait_for(handle, lambda s: awaiting("staging-eu")(s) and awaiting("staging-us")(s))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await handle.query(PromotionWorkflow.query_status)
    assert final.state == PromotionState.CANCELLED
    assert [s.state for s in final.stages] == [StageState.HEALTHY] + [StageState.CANCELLED] * 3
    for env in ("staging-eu", "staging-us"):
        assert forge.get_pull_request(stages(status)[env].pr_number or 0).state == "closed", env
