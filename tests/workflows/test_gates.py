"""Approval gates on a real Temporal dev server with real git and the local forge: quorums, approving
reviews on the PR, a new commit voiding approvals, require_review, supersede, webhooks, search
attributes and the audit trail (status, PR body, merge commit trailers)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import git
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from promoter import api, report, search
from promoter.models import Decision, PromotionState, PromotionStatus, StageState
from promoter.stack import wait_until
from tests.support.gitops import Origin
from workflows.promotion import PromotionWorkflow

pytestmark = pytest.mark.asyncio


def envs(**approval: Any) -> list[dict[str, object]]:
    gate = {"required": 1, "approvers": ["alice", "group:sre"], "timeout": "24h", **approval}
    return [{"name": "dev", "order": 1}, {"name": "prod", "order": 2, "approval": gate}]


def waiting(s: PromotionStatus) -> bool:
    return s.stages[1].state == StageState.AWAITING_APPROVAL


async def start(env: WorkflowEnvironment, tq: str, **options: Any) -> Any:
    return await api.start(env.client, tq, await api.resolve(env.client, tq, "demo"), "dana", **options)


async def accepted_updates(handle: Any) -> int:
    history = await handle.fetch_history()
    return len([e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED])


EXTRA = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  labels:\n"
    "    app.kubernetes.io/name: demo\n    app.kubernetes.io/part-of: demo\ndata:\n  a: b\n"
)


def push_to_branch(origin: Origin, branch: str, files: dict[str, str] | None = None) -> str:
    """A person pushes one more commit onto a promotion's branch (as onto a PR on a hosted forge)."""
    repo = origin.repo
    repo.git.fetch("-q", "origin", branch)
    repo.git.checkout("-q", "-B", "fix", f"origin/{branch}")
    for rel, text in (files or {"environments/prod/demo/extra.yaml": EXTRA}).items():
        (origin.work / rel).parent.mkdir(parents=True, exist_ok=True)
        (origin.work / rel).write_text(text)
    repo.git.add("-A")
    repo.git.commit("-qm", "a fix on the PR")
    repo.git.push("-q", "origin", f"fix:{branch}")
    sha = repo.head.commit.hexsha
    repo.git.checkout("-q", "main")
    return sha


async def test_quorum_of_two_counts_each_person_once_and_records_everything(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs(required=2))
    commit = origin.bump()
    forge = origin.forge()
    # a slow poll (as in production), so the PR watcher cannot see the merge and end by itself
    async with run_worker(dev_env, origin, review_poll_s=30) as tq:
        handle = await start(dev_env, tq)
        await api.wait_for(handle, waiting)
        await handle.execute_update(
            PromotionWorkflow.approve, Decision(env="prod", approver="sam", comment="lgtm", via="cli")
        )
        status = await handle.query(PromotionWorkflow.query_status)
        assert waiting(status)  # sam approved: the phrase names only who may still approve
        assert status.stages[1].message.startswith("needs 1 more approval(s) from alice, sue (PR #")
        before = await accepted_updates(handle)
        with pytest.raises(WorkflowUpdateFailedError) as twice:
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="sam", via="cli"))
        assert "sam has already approved prod; one person counts once" in str(twice.value.cause)
        assert await accepted_updates(handle) == before  # refused by the validator: history unchanged
        assert waiting(await handle.query(PromotionWorkflow.query_status))
        await handle.execute_update(
            PromotionWorkflow.approve, Decision(env="prod", approver="alice", comment="go", via="cli")
        )
        result = await handle.result()
        # the gate's PR watcher, cancelled by the decision, has ended before the promotion did
        kinds = [e.event_type for e in (await handle.fetch_history()).events]
        assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) == 1
        assert list((await handle.describe()).raw_description.pending_activities) == []
    assert result.state == PromotionState.SUCCEEDED, result.message
    prod = result.stages[1]
    assert [a.approver for a in prod.approvals] == ["sam", "alice"]
    kinds = [(e.kind, e.actor) for e in result.audit if e.env == "prod"]
    assert ("approval", "sam") in kinds and ("approval", "alice") in kinds and ("merge", "promoter") in kinds
    assert [k for k, _ in kinds].count("policy") == 2  # before the PR and before the merge
    policy = next(e for e in result.audit if e.kind == "policy" and e.env == "prod")
    assert prod.policy is not None and prod.policy.revision in policy.detail
    # the record outlives Temporal: trailers on the merge commit, a table in the PR body
    message = git.Repo(origin.path).git.log("-1", "--format=%B", prod.merge_commit)
    assert f"Promoter-Promotion: {result.id}" in message
    assert "Promoter-Approval: sam via cli (unsigned) at " in message and ": lgtm" in message
    assert f"revision {prod.policy.revision}" in message
    body = forge.get_pull_request(prod.pr_number or 0).body
    assert "### Audit" in body and "| approval | alice | cli (unsigned) | go |" in body and "| verdict |" in body
    assert commit in message or commit[:7] in message


async def test_the_committer_of_a_commit_with_a_forged_author_may_not_approve_prod(
    ts_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    """sam commits a change claiming alice wrote it: git's author is alice, yet sam touched it, so the
    policies refuse sam in prod as they refuse alice; sue, who touched nothing, opens the gate."""
    origin = origin_factory(envs())
    path = origin.work / "environments/dev/demo/deployment.yaml"
    path.write_text(re.sub(r"demo:[\w.\-]+", "demo:2.3.4", path.read_text()))
    origin.repo.git.execute(
        ["git", "-c", "user.name=sam", "-c", "user.email=sam@example.com", "commit", "-qam", "demo 2.3.4"]
        + ["--author=alice <alice@example.com>"]
    )
    origin.repo.git.push("-q", "origin", "main")
    async with run_worker(ts_env, origin) as tq:
        plan = await api.resolve(ts_env.client, tq, "demo")
        assert plan.author == "alice <alice@example.com>"  # all the commit's author field says
        handle = await api.start(ts_env.client, tq, plan, "dana")
        await api.wait_for(handle, waiting)
        for who, why in (("sam", "sam committed"), ("alice", "alice wrote commit")):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver=who, via="cli"))
            assert f"{why} {plan.short_commit}" in str(refused.value.cause)
            assert "may not approve it for prod" in str(refused.value.cause)
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="sue", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [a.approver for a in result.stages[1].approvals] == ["sue"]


async def test_an_approving_review_on_the_pr_opens_the_gate(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        number = status.stages[1].pr_number or 0
        forge.add_review(number, "mallory", "approved", "me too")  # not an approver: refused, recorded
        forge.add_review(number, "sue", "changes_requested", "hm")  # not an approval
        status = await api.wait_for(handle, lambda s: bool(s.stages[1].refusals))
        assert "mallory may not decide prod" in status.stages[1].refusals[0].reason
        assert status.stages[1].refusals[0].via == "pull_request" and waiting(status)
        forge.add_review(number, "sue", "approved", "fine now")
        result = await handle.result()
        assert list((await handle.describe()).raw_description.pending_activities) == []
    assert result.state == PromotionState.SUCCEEDED, result.message
    approvals = result.stages[1].approvals
    assert [(a.approver, a.via, a.comment) for a in approvals] == [("sue", "pull_request", "fine now")]
    assert ("review", "sue") in [(e.kind, e.actor) for e in result.audit]


async def test_a_review_dismissed_on_the_forge_stops_counting(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs(required=2))
    origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        number = status.stages[1].pr_number or 0
        forge.add_review(number, "sue", "approved", "ok")
        await api.wait_for(handle, lambda s: [a.approver for a in s.stages[1].approvals] == ["sue"])
        forge.dismiss_review(number, forge.reviews(number)[0].id)
        status = await api.wait_for(handle, lambda s: bool(s.stages[1].voided))
        prod = status.stages[1]
        assert prod.approvals == [] and [a.approver for a in prod.voided] == ["sue"] and waiting(status)
        assert "sue's approving review was dismissed on the forge" in prod.message
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="sam", via="cli"))
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [a.approver for a in result.stages[1].approvals] == ["sam", "alice"]
    assert ("voided", "sue") in [(e.kind, e.actor) for e in result.audit]


async def test_a_new_commit_on_the_waiting_pr_voids_earlier_approvals(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs(required=2))
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        branch = status.stages[1].branch or ""
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="sam", via="cli"))
        fix = push_to_branch(origin, branch)
        status = await api.wait_for(handle, lambda s: bool(s.stages[1].voided))
        prod = status.stages[1]
        assert prod.approvals == [] and [a.approver for a in prod.voided] == ["sam"]
        assert prod.head_sha == fix and waiting(status)
        assert f"new commit {fix[:7]} on {branch}" in prod.message and "no longer count" in prod.message
        await handle.execute_update(
            PromotionWorkflow.approve, Decision(env="prod", approver="sam", via="cli")
        )  # again, anew
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="sue", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    assert [a.head for a in result.stages[1].approvals] == [fix, fix]
    assert "extra" in origin.show("main", "environments/prod/demo/extra.yaml")  # what was approved was merged


async def test_a_commit_pushed_onto_the_pr_is_judged_by_the_policies_before_the_merge(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        path = "environments/prod/demo/deployment.yaml"
        text = re.sub(r"(image: \S+):[\w.\-]+", r"\1:latest", origin.show(status.stages[1].branch or "", path))
        fix = push_to_branch(origin, status.stages[1].branch or "", {path: text})
        await api.wait_for(handle, lambda s: s.stages[1].head_sha == fix)
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    assert ":latest" in result.stages[1].message or "latest" in result.stages[1].message
    assert forge.get_pull_request(result.stages[1].pr_number or 0).state == "closed"
    assert ":latest" not in origin.show("main", path)  # never merged


async def test_require_review_needs_a_review_besides_the_quorum(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs(require_review=True))
    origin.bump()
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        pr = status.stages[1].pr_number
        # one phrase, one list (group:sre expanded, as the policies expand it) in every message
        phrase = "needs 1 more approval(s) from alice, sam, sue; also needs an approving PR review"
        assert status.stages[1].message == f"{phrase} (PR #{pr})"
        assert f"{phrase[:1].upper()}{phrase[1:]}." in forge.get_pull_request(pr or 0).body
        with pytest.raises(WorkflowUpdateFailedError) as outsider:
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="dana", via="cli"))
        assert "dana may not decide prod; its approvers are: alice, sam, sue" in str(outsider.value.cause)
        # an update that claims to be a review on the PR: refused, on record, and the gate stays closed
        forged = Decision(env="prod", approver="alice", via="pull_request")
        with pytest.raises(WorkflowUpdateFailedError) as claimed:
            await handle.execute_update(PromotionWorkflow.approve, forged)
        assert "cannot say it came by 'pull_request'" in str(claimed.value.cause)
        await handle.signal(PromotionWorkflow.approve_signal, Decision(env="prod", approver="sam", via="pull_request"))
        status = await api.wait_for(handle, lambda s: len(s.stages[1].refusals) == 2)
        assert waiting(status) and status.stages[1].approvals == []
        assert [(r.approver, r.via) for r in status.stages[1].refusals] == [
            ("alice", "pull_request"),
            ("sam", "pull_request"),
        ]
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "Refused: sam via pull_request: an update or signal cannot say" in metadata.current_details  # in the UI
        stage = await handle.execute_update(
            PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli")
        )
        # the count is met: only the review is left, and the approve reply's stage says just that
        assert report.stage_needs(stage) == "needs an approving PR review"
        status = await handle.query(PromotionWorkflow.query_status)
        assert waiting(status) and status.stages[1].message == f"needs an approving PR review (PR #{pr})"
        forge.add_review(pr or 0, "sam", "approved")
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    prod = result.stages[1]
    said = [prod.message, *(e.detail for e in result.audit), *(r.reason for r in prod.refusals)]
    assert not [m for m in said if " of " in m and "approval" in m], said  # never "0 of 1", "1 of 1"
    assert [(a.via, a.proof) for a in prod.approvals] == [("cli", "declared"), ("pull_request", "declared")]
    message = git.Repo(origin.path).git.log("-1", "--format=%B", prod.merge_commit)
    # the local forge authenticates nobody: its review is marked so in the record that outlives Temporal
    assert "Promoter-Approval: sam via pull_request (unauthenticated) at " in message


async def test_supersede_cancels_the_waiting_promotion_and_points_to_the_new_one(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    origin.bump(tag="1.1.0")
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        old = await start(dev_env, tq)
        first = await api.wait_for(old, waiting)
        newer = origin.bump(tag="1.2.0")
        new = await start(dev_env, tq, supersede=True, ui_url="http://ui.example")
        ended = await dev_env.client.get_workflow_handle(old.id, run_id=old.result_run_id).query(
            "status", result_type=PromotionStatus
        )
        assert ended.state == PromotionState.CANCELLED and ended.superseded_by is not None
        assert newer[:7] in ended.superseded_by and "http://ui.example/namespaces/default/workflows/" in (
            ended.superseded_by
        )
        old_pr = forge.get_pull_request(first.stages[1].pr_number or 0)
        assert old_pr.state == "closed" and "Superseded" in forge.comments(old_pr.number)[-1]
        assert newer[:7] in forge.comments(old_pr.number)[-1]
        status = await api.wait_for(new, waiting)
        assert status.commit == newer
        await new.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        assert (await new.result()).state == PromotionState.SUCCEEDED


async def test_webhooks_are_sent_and_a_failing_one_never_fails_the_promotion(
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    run_worker: Any,
    hooks: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMOTER_TEST_HOOK", f"{hooks['url']}/ok")  # a secret URL stays out of history
    prod = envs()[1] | {
        "notify": [{"url": "${PROMOTER_TEST_HOOK}"}, {"url": f"{hooks['url']}/broken", "events": ["succeeded"]}]
    }
    origin = origin_factory([envs()[0], prod])
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        await api.wait_for(handle, waiting)
        await asyncio.to_thread(wait_until, lambda: bool(hooks["got"]), 30, "the waiting webhook")
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        result = await handle.result()
        history = json.dumps([str(e) for e in (await handle.fetch_history()).events])
    assert result.state == PromotionState.SUCCEEDED, result.message
    events = [h["event"] for h in hooks["got"]]
    assert events == ["waiting", "succeeded"]
    assert "waits for approval in prod" in hooks["got"][0]["text"] and hooks["got"][0]["pr_url"]
    assert [n for n in result.notices if "succeeded webhook failed" in n and "answered 500" in n]
    assert "/ok" not in history  # only ${PROMOTER_TEST_HOOK} is in the workflow's history


async def test_search_attributes_list_what_waits(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    commit = origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        await api.wait_for(handle, waiting)
        query = f'PromotionState="awaiting_approval" AND PromotionApp="demo" AND PromotionCommit="{commit}"'

        async def listed() -> list[str]:
            return [w.id async for w in dev_env.client.list_workflows(query)]

        found: list[str] = []
        for _ in range(200):  # visibility is eventually consistent: wait for it, with a deadline
            found = await listed()
            if found:
                break
            await asyncio.sleep(0.05)
        assert found == [handle.id]
        described = await handle.describe()
        summary, details = await described.static_summary(), await described.static_details()
        assert summary and summary.startswith("Promote demo @ ")
        assert details and "- **prod**: gate 1 approval(s); approvers alice, group:sre" in details
        assert "|" not in details  # lists: the Web UI draws no markdown tables
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice"))
        await handle.result()
    states = (await handle.describe()).typed_search_attributes
    assert states.get(search.STATE) == "succeeded" and states.get(search.ENV) == "prod"


async def test_denial_and_expiry_are_notified(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any, hooks: dict[str, Any]
) -> None:
    hook = {"url": f"{hooks['url']}/ok", "events": ["denied", "expired", "rejected"]}
    lenient = {"enforce": ["promotion"], "warn_only": ["kubernetes"]}  # dev only warns about hygiene
    origin = origin_factory(
        [
            {"name": "dev", "order": 1, "policy": lenient},
            {
                "name": "prod",
                "order": 2,
                "notify": [hook],
                "approval": {"required": 1, "approvers": ["alice"], "timeout": "2s"},
            },
        ]
    )
    origin.bump(tag="latest")  # denied in prod before any PR
    async with run_worker(dev_env, origin) as tq:
        denied = await (await start(dev_env, tq)).result()
        origin.bump(tag="2.0.0")  # then a clean change whose gate nobody decides within 2 s
        expired = await (await start(dev_env, tq)).result()
    assert (denied.state, expired.state) == (PromotionState.POLICY_DENIED, PromotionState.EXPIRED)
    assert [(h["event"], h["env"]) for h in hooks["got"]] == [("denied", "prod"), ("expired", "prod")]
    assert "deny_unpinned_image" in hooks["got"][0]["text"] and "expired after 2s" in hooks["got"][1]["text"]
    assert hooks["got"][1]["pr_url"] and hooks["got"][0]["pr_url"] is None  # a denial opens nothing


async def test_a_starter_cannot_choose_the_gates_the_worker_reads_them_from_the_repository(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        plan = await api.resolve(dev_env.client, tq, "demo")
        forged = plan.model_copy(deep=True)
        forged.environments[1].config.approval.required = 0  # a client that wants no gate
        forged.trust.allowed_signers = (
            "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
        )
        handle = await api.start(dev_env.client, tq, forged, "mallory")
        status = await api.wait_for(handle, waiting)  # the gate is the repository's: it waits
        assert status.stages[1].approvals_required == 1
        await handle.cancel()
        skipping = plan.model_copy(deep=True)
        skipping.environments = skipping.environments[1:]  # a plan that leaves dev out
        result = await (await api.start(dev_env.client, tq, skipping, "mallory", supersede=True)).result()
    assert result.state == PromotionState.FAILED
    assert "that is not the repository's (dev → prod" in result.message, result.message


async def test_a_commit_pushed_onto_the_pr_outside_the_app_folder_is_never_merged(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        branch = status.stages[1].branch or ""
        head = push_to_branch(origin, branch, {"trust/allowed_signers": "* ssh-ed25519 AAAAmallory\n"})
        await api.wait_for(handle, lambda s: s.stages[1].head_sha == head)  # the gate saw it
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.POLICY_DENIED, result.message
    prod = result.stages[1]
    assert prod.merge_commit is None and prod.policy is not None
    denial = next(v for v in prod.policy.deny if v.rule == "promoter.outside_folder")
    assert "changes trust/allowed_signers, outside environments/prod/demo" in denial.message
    assert "trust/allowed_signers" not in git.Repo(origin.path).git.ls_tree("-r", "--name-only", "main")


async def test_whoever_pushed_onto_the_pr_may_not_approve_it_in_prod(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory(envs())
    origin.bump()
    async with run_worker(dev_env, origin) as tq:
        handle = await start(dev_env, tq)
        status = await api.wait_for(handle, waiting)
        repo, branch = origin.repo, status.stages[1].branch or ""
        repo.git.fetch("-q", "origin", branch)
        repo.git.checkout("-q", "-B", "tweak", f"origin/{branch}")
        (origin.work / "environments/prod/demo/extra.yaml").write_text(EXTRA)
        repo.git.add("-A")
        repo.git.commit("-qm", "a tweak on the PR", "--author", "sam <sam@example.com>")  # sam, an approver
        repo.git.push("-q", "origin", f"tweak:{branch}")
        head = repo.head.commit.hexsha
        repo.git.checkout("-q", "main")
        await api.wait_for(handle, lambda s: s.stages[1].head_sha == head)
        with pytest.raises(WorkflowUpdateFailedError) as own:
            await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="sam", via="cli"))
        assert "sam" in str(own.value.cause) and "may not approve" in str(own.value.cause), str(own.value.cause)
        await handle.execute_update(PromotionWorkflow.approve, Decision(env="prod", approver="alice", via="cli"))
        result = await handle.result()
    assert result.state == PromotionState.SUCCEEDED, result.message
