"""Sync, health and automatic revert inside real promotions, on simulated clusters: a demo commit that
adds `sim.promoter.dev/fail-in: staging` is merged into staging, fails its rollout, and is reverted
(origin's main shows the revert, the cluster runs the previous pod template and is healthy), the
promotion ends `reverted` with the reason, prod is untouched and has no PR; the reverted content is
held out of staging (any commit carrying it), a lift written by hand lifts nothing, and only the
lift promoter signs once the gate approved does; with `revert.automatic: false` the stage fails and
says what to do."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.errors import PromoterError
from promoter.models import Decision, LiftHoldInput, PromotionState, StageState, StageStatus
from promoter.sim.kube import KubeSim
from promoter.stack import demo_keys, seed_origin
from tests.support.gitops import PROMOTER, Origin, make_gitops
from tests.support.workflows import deployment, failing_in

pytestmark = pytest.mark.asyncio


async def wait_query(handle: WorkflowHandle[Any, Any], check: Callable[[StageStatus], bool]) -> StageStatus:
    deadline = time.monotonic() + 60
    while True:
        try:
            stage = await handle.query("status", result_type=StageStatus)
            if check(stage):
                return stage
        except Exception:  # noqa: BLE001 - its first workflow task has not run yet
            pass
        assert time.monotonic() < deadline, "the lift never got there"
        await asyncio.sleep(0.05)


@pytest.fixture
def signed_origin(tmp_path: Path) -> tuple[Origin, Path]:
    """An origin whose trust/allowed_signers lists promoter's commit signing key (principal promoter,
    namespace git), as `promoter up` seeds it, and that key."""
    public = demo_keys(tmp_path / "keys", ("promoter",))
    base = tmp_path / "signed"
    base.mkdir()
    seed_origin(make_gitops(base), base / "origin.git", signers=public)
    return Origin(base / "origin.git", base / "person"), tmp_path / "keys" / "promoter"


async def test_unhealthy_staging_is_reverted_and_prod_untouched(
    dev_env: WorkflowEnvironment,
    signed_origin: tuple[Origin, Path],
    run_worker: Any,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    tmp_path: Path,
) -> None:
    origin, key = signed_origin
    forge = origin.forge()
    async with run_worker(dev_env, origin, commit_signing_key=str(key)) as tq:
        sims = clusters([])
        # a first, healthy promotion to staging gives staging a previous state to return to
        good = origin.bump(tag="3.0.0")
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo", to_env="staging"))
        assert (await handle.result()).state == PromotionState.SUCCEEDED
        healthy_template = deployment(sims["staging"])["spec"]["template"]
        assert "demo:3.0.0" in str(healthy_template)

        bad = failing_in(origin, "staging")
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()

        # the reverted commit is held out of staging: resolving it again is refused with the revert's
        # reason and PR; dev alone, and a newer commit, are not held; a commit on main lifts the hold
        staging_pr = result.stages[1].revert_pr_number
        with pytest.raises(PromoterError) as held:
            await api.resolve(dev_env.client, tq, "demo", commit=bad)
        said = str(held.value)
        assert f"demo @ {bad[:7]} is held out of staging" in said and "ProgressDeadlineExceeded" in said
        assert f"/pulls/{staging_pr}" in said
        assert (await api.resolve(dev_env.client, tq, "demo", commit=bad, to_env="dev")).commit == bad
        newer = origin.bump(tag="3.0.1")
        assert (await api.resolve(dev_env.client, tq, "demo", commit=newer)).commit == newer
        # the same content as the held commit, in a later commit: held too, naming the revert's PR
        failing_in(origin, "staging")
        same = origin.repo.head.commit.hexsha
        with pytest.raises(PromoterError) as content:
            await api.resolve(dev_env.client, tq, "demo", commit=same)
        said = str(content.value)
        assert f"demo @ {same[:7]} has the same content as {bad[:7]}, held out of staging by the revert" in said
        assert f"PR #{staging_pr}" in said and "promoter lift-hold demo --env staging" in said
        # a person pushes the lift's lines to main by hand: the hold stays
        lines = (
            f"Promoter-Release-Hold: {bad}\nPromoter-Held-App: demo\nPromoter-Held-Env: staging\n"
            "Promoter-Released-By: mallory: trust me\n"
        )
        origin.commit({"README.md": "lifted?\n"}, f"lift-hold(demo): staging may take it again\n\n{lines}")
        with pytest.raises(PromoterError, match=f"demo @ {bad[:7]} is held out of staging"):
            await api.resolve(dev_env.client, tq, "demo", commit=bad)
        # lifting the hold takes a PR that staging's approvers approve: refused approvers change nothing
        ask = LiftHoldInput(
            app="demo", env="staging", commit=bad, requested_by="alice", reason="the cluster was at fault"
        )
        lift = await api.lift_hold(dev_env.client, tq, ask)
        waiting = await wait_query(lift, lambda s: s.state == StageState.AWAITING_APPROVAL)
        assert waiting.pr_url and "bob" in waiting.approvers
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await lift.execute_update("approve", Decision(env="staging", approver="mallory", via="cli"))
        assert "mallory may not decide staging" in str(refused.value.cause)
        with pytest.raises(PromoterError):
            await api.resolve(dev_env.client, tq, "demo", commit=bad)  # still held
        await lift.execute_update("approve", Decision(env="staging", approver="bob", via="cli", comment="ok"))
        lifted = await lift.result()
        assert lifted.state == StageState.HEALTHY and lifted.merge_commit, lifted.message
        assert (await api.resolve(dev_env.client, tq, "demo", commit=bad)).commit == bad
        assert (await api.resolve(dev_env.client, tq, "demo", commit=same)).commit == same
        assert forge.get_pull_request(lifted.pr_number or 0).state == "merged"
        assert "Promoter-Approval: bob via cli at " in git.Repo(origin.path).git.log(
            "-1", "--format=%B", lifted.merge_commit
        )
        not_held = await api.lift_hold(dev_env.client, tq, ask.model_copy(update={"commit": newer}))
        with pytest.raises(WorkflowFailureError) as nothing:
            await not_held.result()
        assert "is not held in staging" in api.failure_message(nothing.value)
    assert any("is now held out of staging" in n for n in result.notices)
    assert result.state == PromotionState.REVERTED
    assert "ProgressDeadlineExceeded" in result.message and result.message.startswith("staging: unhealthy")
    dev, staging, prod = result.stages
    assert dev.state == StageState.HEALTHY  # the annotation names staging only
    assert staging.state == StageState.REVERTED and staging.revert_commit and staging.revert_pr_number
    assert prod.state == StageState.PENDING and prod.pr_number is None
    # origin's main: the merge, then the revert's merge on top; staging's folder is back to the good commit
    bare = git.Repo(origin.path)
    merges = bare.git.log("--format=%s", "--merges", "-3", "main").splitlines()  # the newest lifted the hold
    assert merges[0].startswith("Merge pull request #") and "from release-hold/demo/staging/" in merges[0]
    assert merges[1].startswith(f"Merge pull request #{staging.revert_pr_number} from revert/demo/staging/")
    revert_merge = bare.git.log("-1", "--format=%B", staging.revert_commit)  # the hold's record, in git
    assert f"Promoter-Held: {bad}\nPromoter-Held-App: demo\nPromoter-Held-Env: staging\n" in revert_merge
    assert bare.git.rev_parse("main:environments/staging/demo/deployment.yaml") == bare.git.rev_parse(
        f"{staging.merge_commit}^1:environments/staging/demo/deployment.yaml"
    )
    assert "3.0.0" in bare.git.show("main:environments/staging/demo/deployment.yaml")
    # the cluster runs the previous pod template again, and is healthy
    live = deployment(sims["staging"])
    assert live["spec"]["template"] == healthy_template
    assert any(c.get("reason") == "NewReplicaSetAvailable" for c in live["status"]["conditions"])
    # prod untouched, no prod PR; the revert PR is labelled and gives the evidence
    assert ("apps", "deployments", "apps", "demo") not in sims["prod"].objects
    prs = forge.list_pull_requests()
    assert not [p for p in prs if "/prod/" in p.head]
    revert_pr = forge.get_pull_request(staging.revert_pr_number)
    assert revert_pr.state == "merged" and "ProgressDeadlineExceeded" in revert_pr.body
    assert good != bad

    # the history, read from git alone: Temporal's address is a closed port, and it tells what status did
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        env = {
            **os.environ,
            "PROMOTER_REPO_URL": origin.url,
            "PROMOTER_TEMPORAL_ADDRESS": f"127.0.0.1:{closed.getsockname()[1]}",
            "PROMOTER_STATE_DIR": str(tmp_path / "no-stack"),
            "PROMOTER_CACHE_DIR": str(tmp_path / "cli-cache"),
        }
        shown = subprocess.run(
            [*PROMOTER, "history", "demo", "--env", "staging", "--json"], env=env, capture_output=True, text=True
        )
    assert shown.returncode == 0, shown.stderr
    lifted, reverted, promoted, first = json.loads(shown.stdout)
    assert (lifted["kind"], lifted["commit"]) == ("hold-released", bad)
    assert lifted["reason"] == "alice: the cluster was at fault"
    assert (reverted["kind"], reverted["commit"], reverted["pr_number"]) == ("reverted", bad, staging.revert_pr_number)
    assert reverted["main_commit"] == staging.revert_commit and "ProgressDeadlineExceeded" in reverted["reason"]
    assert (promoted["kind"], promoted["commit"], promoted["pr_number"]) == ("promoted", bad, staging.pr_number)
    assert promoted["main_commit"] == staging.merge_commit and promoted["promotion"] == result.id
    assert staging.policy is not None and any(staging.policy.revision in d for d in promoted["decisions"])
    assert (first["kind"], first["commit"]) == ("promoted", good)


async def test_revert_off_leaves_the_environment_and_fails(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(
        [{"name": "dev", "order": 1}, {"name": "staging", "order": 2, "revert": {"automatic": False}}]
    )
    failing_in(origin, "staging")
    async with run_worker(dev_env, origin) as tq:
        handle = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"))
        result = await handle.result()
    assert result.state == PromotionState.FAILED
    message = result.stages[1].message
    assert "revert.automatic is off" in message and "revert the merge by hand" in message
    assert "Merge pull request" in git.Repo(origin.path).git.log("-1", "--format=%s", "main")
