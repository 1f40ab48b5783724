"""Release sets: several apps promoted as one release (`promoter promote api worker --name release`),
on real git, the local forge and simulated clusters. Per environment one PR carries every member's
folder, one gate and one policy decision judge it, every member is synced and must be healthy; when
one is not, one revert PR puts every member back and holds the commit out of that environment for
each of them. A set and a promotion of one of its members never run at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.errors import PromoterError
from promoter.gitrepo import GitClone
from promoter.models import Decision, DriftInput, PromotionState, PromotionStatus, StageState, Supersede
from promoter.promotions import SUPERSEDE
from promoter.sim.kube import FAIL_IN, KubeSim
from tests.support.gitops import Origin
from tests.support.workflows import awaiting, dry_run_matches
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio

ENVS: list[dict[str, object]] = [
    {"name": "dev", "order": 1},
    {"name": "staging", "order": 2},
    {"name": "prod", "order": 3, "approval": {"required": 1, "approvers": ["alice"]}},
]
APPS = ("api", "worker")


def two_apps(origin_factory: Callable[..., Origin]) -> Origin:
    """An origin with the apps `api` and `worker`, each the demo with its objects named after it."""
    return origin_factory(ENVS, apps=APPS)  # make_gitops names each app's objects after it


def release(origin: Origin, tag: str, failing: dict[str, str] | None = None) -> str:
    """One commit that moves both apps' dev images to `tag` (`failing`: app → where its rollout fails)."""
    files = {}
    for app in APPS:
        path = f"environments/dev/{app}/deployment.yaml"
        doc = yaml.safe_load((origin.work / path).read_text())
        template = doc["spec"]["template"]
        template["spec"]["containers"][0]["image"] = f"ghcr.io/promoter-dev/{app}:{tag}"
        if failing and app in failing:
            template["metadata"]["annotations"] = {FAIL_IN: failing[app]}
        files[path] = yaml.safe_dump(doc, sort_keys=False)
    return origin.commit(files, f"release {tag}")


def image(sim: KubeSim, app: str) -> str:
    obj = sim.objects[("apps", "deployments", "apps", app)]
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


async def answered_status(client: Any, wid: str, run_id: str | None) -> PromotionStatus:
    """The `status` query of a run, asked again while the server's query deadline passes (a closed
    run is answered by a worker replaying it, which a loaded machine may take a while to do)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            status: PromotionStatus = await client.get_workflow_handle(wid, run_id=run_id).query(
                "status", result_type=PromotionStatus
            )
            return status
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def end_leftovers(client: Any, task_queue: str, ids: list[str]) -> None:
    """Terminate what a test left running on its task queue (a running workflow without a worker keeps
    the time-skipping server from skipping time for every later test)."""
    for wid in ids:
        try:
            desc = await client.get_workflow_handle(wid).describe()
            if desc.status is not None and desc.status.name == "RUNNING" and desc.task_queue == task_queue:
                await client.get_workflow_handle(wid).terminate("left running by a failed test")
        except RPCError:
            continue


def folder_image(origin: Origin, env: str, app: str) -> str:
    doc = yaml.safe_load(origin.show("main", f"environments/{env}/{app}/deployment.yaml"))
    return str(doc["spec"]["template"]["spec"]["containers"][0]["image"])


async def test_two_apps_reach_prod_together_one_pr_per_environment(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = two_apps(origin_factory)
    commit = release(origin, "2.0.0")
    async with run_worker(ts_env, origin) as tq:
        dry = await api.dry_run(ts_env.client, tq, "release", members=list(APPS), with_patch=True)
        assert dry.denied == [] and dry.plan.members == list(APPS)
        patch = dry.stages[1].patch or ""  # the set's one change: both folders
        assert "environments/staging/api/deployment.yaml" in patch and "environments/staging/worker/" in patch
        plan = await api.resolve(ts_env.client, tq, "release", members=list(APPS))
        assert (plan.app, plan.members, plan.commit) == ("release", list(APPS), commit)
        handle = await api.start(ts_env.client, tq, plan, "dana")
        assert handle.id == "promote-release"
        waiting = await api.wait_for(handle, awaiting("prod"))
        assert waiting.members == list(APPS)
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    prs = origin.forge().list_pull_requests()
    assert sorted(p.head for p in prs) == [
        f"promote/release/prod/{commit[:7]}",
        f"promote/release/staging/{commit[:7]}",
    ]
    for env in ("staging", "prod"):
        for app in APPS:
            assert folder_image(origin, env, app) == f"ghcr.io/promoter-dev/{app}:2.0.0"
            assert image(clusters([])[env], app) == f"ghcr.io/promoter-dev/{app}:2.0.0"
    staging = result.stages[1]
    assert staging.policy is not None and staging.policy.allow  # one decision over both apps' objects
    dry_run_matches(dry.model_dump(mode="json"), result.model_dump(mode="json"))  # the dry run foretold it


async def test_one_unhealthy_member_reverts_every_member_in_one_pr_and_holds_them(
    ts_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = two_apps(origin_factory)
    commit = release(origin, "3.0.0", failing={"worker": "staging"})
    async with run_worker(ts_env, origin) as tq:
        plan = await api.resolve(ts_env.client, tq, "release", members=list(APPS))
        result = await (await api.start(ts_env.client, tq, plan)).result()
        assert result.state == PromotionState.REVERTED, result.message
        staging = result.stages[1]
        assert staging.state == StageState.REVERTED and "worker" in staging.message
        assert result.stages[2].state == StageState.PENDING  # prod untouched
        reverts = [p for p in origin.forge().list_pull_requests() if p.head.startswith("revert/")]
        assert [p.head for p in reverts] == [f"revert/release/staging/{(staging.merge_commit or '')[:7]}"]
        for app in APPS:  # both back as they were, in Git and in the cluster
            assert folder_image(origin, "staging", app) == "ghcr.io/promoter-dev/demo:1.0.0".replace("demo", app)
            assert image(clusters([])["staging"], app) == f"ghcr.io/promoter-dev/{app}:1.0.0"
        assert not [p for p in origin.forge().list_pull_requests() if "/prod/" in p.head]
        for app in APPS:  # the commit is held out of staging for each member, alone or in a set
            with pytest.raises(PromoterError, match=f"{app} @ {commit[:7]} is held out of staging"):
                await api.resolve(ts_env.client, tq, app, commit=commit, to_env="staging")
        assert any("api, worker @" in n and "held out of staging" in n for n in result.notices)
    for app in APPS:  # each member's history, from git alone, has the set's promotion and its revert
        events = GitClone(origin.url, origin.path.parent / f"history-{app}").history(app)
        assert [(e.env, e.kind, e.commit, e.promotion) for e in events if e.env == "staging"][:2] == [
            ("staging", "reverted", commit, ""),
            ("staging", "promoted", commit, "promote-release"),
        ]


async def test_a_set_and_a_promotion_of_a_member_never_run_at_once(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = two_apps(origin_factory)
    release(origin, "4.0.0")
    async with run_worker(dev_env, origin) as tq:
        single = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "api"))
        await api.wait_for(single, awaiting("prod"))
        plan = await api.resolve(dev_env.client, tq, "release", members=list(APPS))
        with pytest.raises(PromoterError, match="promote-api is running and moves an app of release"):
            await api.start(dev_env.client, tq, plan)
        moving = await api.start(dev_env.client, tq, plan, supersede=True)  # the member's own is replaced
        ended = await dev_env.client.get_workflow_handle(single.id, run_id=single.result_run_id).query(
            "status", result_type=PromotionStatus
        )
        assert ended.state == PromotionState.CANCELLED and "release" in (ended.superseded_by or "")
        await api.wait_for(moving, awaiting("prod"))
        query = f"WorkflowId = 'promote-release' AND ExecutionStatus = 'Running' AND TaskQueue = '{tq}'"
        deadline = time.monotonic() + 30
        while not [wf async for wf in dev_env.client.list_workflows(query)]:  # visible to the next start
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        with pytest.raises(PromoterError, match="promote-release is running and moves an app of worker"):
            await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "worker"))
        during = await api.drift(dev_env.client, tq, DriftInput(env="staging", heal=True))
        assert [(a.app, a.paused) for a in during.apps] == [("api", True), ("worker", True)]  # no fight with its sync
        # A starter of worker alone whose visibility missed the set meets worker's claim instead (its
        # start fails on the ID) and supersedes that: the claim passes it on, and the set ends replaced.
        # (On the time-skipping test server this cancel could hang: a watcher scheduled in a workflow
        # task that ran long is known there under another event ID, ACTIVITY_UNKNOWN.)
        claim = dev_env.client.get_workflow_handle("promote-worker")
        await claim.signal(SUPERSEDE, Supersede(commit=plan.commit, requested_by="bob", url=None, what="worker"))
        await claim.cancel()
        with pytest.raises(WorkflowFailureError):  # ended while its worker runs: this server outlives the test
            await moving.result()
        replaced = await answered_status(dev_env.client, "promote-release", moving.result_run_id)
        assert replaced.state == PromotionState.CANCELLED
        assert replaced.superseded_by is not None and replaced.superseded_by.startswith("the promotion of worker")
        assert origin.forge().list_pull_requests("open") == []  # its prod PR was closed


async def test_a_denial_of_one_member_denies_the_set_before_any_pr(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = two_apps(origin_factory)
    release(origin, "5.0.0")
    path = "environments/dev/worker/deployment.yaml"
    origin.commit({path: (origin.work / path).read_text().replace("worker:5.0.0", "worker:latest")}, "worker :latest")
    async with run_worker(ts_env, origin) as tq:
        plan = await api.resolve(ts_env.client, tq, "release", members=list(APPS))
        result = await (await api.start(ts_env.client, tq, plan)).result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    [denied] = [s for s in result.stages if s.state == StageState.POLICY_DENIED]
    assert denied.policy is not None
    assert [v.object for v in denied.policy.deny if v.rule == "kubernetes.images.deny_unpinned_image"] == [
        "Deployment/-/worker"
    ]
    assert origin.forge().list_pull_requests() == []
    assert folder_image(origin, "staging", "api") == "ghcr.io/promoter-dev/api:1.0.0"  # api did not go alone


async def test_the_members_ids_are_held_so_even_racing_starts_never_run_together(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    """Past the starters' checks (two people starting at the same instant both pass them), Temporal's
    one-run-per-ID decides: a set holds `promote-<member>` for each member while it runs.

    On the real dev server: the time-skipping test server, loaded, sometimes refused the cancel of a
    gate's PR watcher (ACTIVITY_UNKNOWN: it had filed the watcher under another event ID) and the
    cancelled promotion then never ended."""
    from promoter.models import PromotionInput

    origin = two_apps(origin_factory)
    release(origin, "7.0.0")
    client = dev_env.client
    async with run_worker(dev_env, origin) as tq:
        try:
            set_plan = await api.resolve(client, tq, "release", members=list(APPS))
            single = await api.start(client, tq, await api.resolve(client, tq, "api"))
            await api.wait_for(single, awaiting("prod"))
            raced = await client.start_workflow(  # as a second starter whose check ran a moment too early
                PromotionWorkflow.run, PromotionInput(plan=set_plan), id="promote-release", task_queue=tq
            )
            lost = await raced.result()
            assert lost.state == PromotionState.FAILED
            assert lost.message.startswith("promote-api is running: a release set and a promotion of one of its apps")
            assert [p.head for p in origin.forge().list_pull_requests() if "release" in p.head] == []  # nothing started
            other = await api.GrpcPromotions(client).describe("promote-worker")
            assert other is None or other.status != "RUNNING"  # nothing else was held
            await single.cancel()
            with pytest.raises(WorkflowFailureError):
                await single.result()

            held = await api.start(client, tq, set_plan)
            await api.wait_for(held, awaiting("prod"))
            # refused by the set's listing, or (visibility is eventually consistent) by the member's ID
            refused = "promote-release is running and moves an app of worker|a promotion of worker is already running"
            with pytest.raises(PromoterError, match=refused):
                await api.start(client, tq, await api.resolve(client, tq, "worker"))
            with pytest.raises(WorkflowAlreadyStartedError):  # past any check: the ID itself is taken
                await client.start_workflow(
                    PromotionWorkflow.run,
                    PromotionInput(plan=await api.resolve(client, tq, "worker")),
                    id="promote-worker",
                    task_queue=tq,
                )
            claim = client.get_workflow_handle("promote-worker", result_type=PromotionStatus)
            holding = await claim.query("status", result_type=PromotionStatus)  # what `promoter status worker` shows
            assert holding.message == (
                "moving as a member of the release set promote-release; "
                "follow it with `promoter status promote-release --follow`"
            )
            await held.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
            assert (await held.result()).state == PromotionState.SUCCEEDED
            ended = await claim.result()  # released with the set's outcome
            assert (ended.state, ended.message) == (
                PromotionState.SUCCEEDED,
                "moved as a member of the release set promote-release: succeeded",
            )

        finally:  # this server is shared: a failure here must not leave a workflow that stops its clock
            await end_leftovers(client, tq, ["promote-api", "promote-worker", "promote-release"])
