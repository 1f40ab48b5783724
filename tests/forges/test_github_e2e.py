"""A whole promotion through the GitHub provider, against a loopback stand-in of GitHub's REST API
whose git remote is a local bare repository: PRs opened, approved by an approving review, merged,
exactly once each; and a token planted in the settings appears in no log line, no workflow history,
no PR body or comment and no status output."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.models import PromotionState, PromotionStatus, StageState
from promoter.settings import Settings
from promoter.sim.kube import KubeSim
from promoter.stack import wait_until
from promoter.worker import build_worker
from tests.support.github_standin import GitHubStandIn
from tests.support.gitops import Origin
from workflows.promotion import PromotionWorkflow

BOT = "ghp_PLANTED0123456789abcdefSECRETtoken"  # the worker's token: must never leak
ALICE = "ghp_alice0123456789abcdefghijklmnopq"


@pytest.fixture
def github(origin: Origin) -> Iterator[GitHubStandIn]:
    standin = GitHubStandIn(origin=origin.url, tokens={BOT: "promoter-bot", ALICE: "alice"}).start()
    yield standin
    standin.stop()


def on_github(standin: GitHubStandIn, origin: Origin, tmp_path: Path) -> Settings:
    """A worker's settings for the GitHub provider at the stand-in, with `origin` as its git remote."""
    return Settings(
        task_queue=str(uuid.uuid4()),
        repo_url=origin.url,
        forge="github",
        forge_repo="acme/gitops",
        forge_url=standin.url,
        forge_token=BOT,
        cache_dir=str(tmp_path / "cache"),
        review_poll_s=0.1,
    )


def review(standin: GitHubStandIn, number: int, token: str, event: str = "APPROVE", body: str = "") -> None:
    request = urllib.request.Request(
        f"{standin.url}/repos/acme/gitops/pulls/{number}/reviews",
        method="POST",
        data=json.dumps({"event": event, "body": body}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


@pytest.mark.asyncio
async def test_promotion_on_github_opens_approves_merges_exactly_once_and_never_leaks_the_token(
    dev_env: WorkflowEnvironment,
    origin: Origin,
    github: GitHubStandIn,
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    prod_yaml = origin.work / "environments/prod/environment.yaml"
    signed = prod_yaml.read_text().replace("approval:\n", "approval:\n  require_signed: true\n", 1)
    origin.commit({"environments/prod/environment.yaml": signed}, "prod requires proven approvals")
    commit = origin.bump(tag="8.0.0")
    clusters(["dev", "staging", "prod"])
    settings = on_github(github, origin, tmp_path)
    github.page_size = 2  # reviews and PR lists come back in pages of two: pagination is exercised
    async with build_worker(dev_env.client, settings, executor):
        handle = await api.start(
            dev_env.client, settings.task_queue, await api.resolve(dev_env.client, settings.task_queue, "demo"), "dana"
        )
        waiting = await api.wait_for(handle, lambda s: s.stages[2].state == StageState.AWAITING_APPROVAL)
        number = waiting.stages[2].pr_number or 0
        assert waiting.stages[2].signed_required

        # alice reviews three times, as a person would, each after the gate has read the one before: with
        # pages of two, the third lands on a page 2 while page 1 answers 304 with its cached Link, which
        # names no next page (the ETag gap promoter.forges.http closes by asking for the next page)
        def read_since(start: int) -> bool:
            return any(r.method == "GET" and r.path.endswith(f"/{number}/reviews") for r in github.requests[start:])

        for event, body in (("COMMENT", "reading"), ("REQUEST_CHANGES", "hm"), ("APPROVE", "ship it")):
            seen = len(github.requests)
            review(github, number, ALICE, event, body)
            await asyncio.to_thread(wait_until, partial(read_since, seen), 30, f"the gate to read the {event} review")
        result = await handle.result()
        history = (await handle.fetch_history()).to_json()
        status = (await handle.query(PromotionWorkflow.query_status)).model_dump_json()
    assert result.state == PromotionState.SUCCEEDED, result.message
    prod = result.stages[2]
    # GitHub authenticated the review's author: it opens a gate that requires signed approvals
    assert [(a.approver, a.via, a.comment, a.proof) for a in prod.approvals] == [
        ("alice", "pull_request", "ship it", "forge")
    ]
    assert prod.pr_url == f"https://github.example/acme/gitops/pull/{number}"

    # exactly once each: two PRs opened, two merges, on the right branches, with the merge trailers
    sent = [(r.method, r.path) for r in github.requests]
    assert sent.count(("POST", "/repos/acme/gitops/pulls")) == 2
    assert sent.count(("PUT", f"/repos/acme/gitops/pulls/{number}/merge")) == 1
    assert sorted((p["head"]["ref"], p["merged"]) for p in github.pulls.values()) == [
        (f"promote/demo/prod/{commit[:7]}", True),
        (f"promote/demo/staging/{commit[:7]}", True),
    ]
    merge = next(r for r in github.requests if r.method == "PUT" and r.path.endswith(f"/{number}/merge"))
    assert merge.body["sha"] == prod.approvals[0].head and merge.body["merge_method"] == "merge"
    assert "Promoter-Approval: alice via pull_request" in merge.body["commit_message"]
    assert all(
        r.headers["Authorization"] == f"Bearer {BOT}"
        for r in github.requests
        if not r.path.endswith("/reviews") or r.method == "GET"
    )
    labels = next(r.body for r in github.requests if r.path.endswith(f"/issues/{number}/labels"))
    assert labels == {"labels": ["promotion", "env:prod", "app:demo"]}
    assert any("If-None-Match" in r.headers for r in github.requests)  # polling revalidates with ETags

    # the planted token is nowhere a person or Temporal can read
    texts = {
        "logs": caplog.text,
        "history": history,
        "status": status,
        "PR bodies": json.dumps([p["body"] for p in github.pulls.values()]),
        "comments": json.dumps(github.comments),
        "settings repr": repr(settings),
    }
    leaked = [where for where, text in texts.items() if BOT in text or BOT[4:20] in text]
    assert leaked == [], f"the token appears in: {leaked}"
    assert len(caplog.text) > 0 and len(history) > 10000  # the grep looked at something real


def test_a_bad_token_is_a_one_line_error_naming_what_to_fix(github: GitHubStandIn) -> None:
    from promoter.forges import make_forge
    from promoter.forges.http import Unauthorized

    forge = make_forge("github", repository="acme/gitops", token="ghp_wrong", api_url=github.url)
    with pytest.raises(Unauthorized) as err:
        forge.get_pull_request(1)
    message = str(err.value)
    assert "answered 401: Bad credentials" in message and "PROMOTER_FORGE_TOKEN" in message
    assert "ghp_wrong" not in message and "\n" not in message
    assert len([r for r in github.requests if r.path.endswith("/pulls/1")]) == 1  # a 401 is never retried


async def promote_on(
    github: GitHubStandIn,
    origin: Origin,
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,
    during: Callable[[], Awaitable[None]] | None = None,
) -> PromotionStatus:
    settings = on_github(github, origin, tmp_path)
    async with build_worker(dev_env.client, settings, executor):
        handle = await api.start(
            dev_env.client, settings.task_queue, await api.resolve(dev_env.client, settings.task_queue, "demo")
        )
        if during is not None:
            await api.wait_for(handle, lambda s: s.stages[1].state == StageState.MERGING)
            await during()
        return await handle.result()


@pytest.mark.asyncio
@pytest.mark.parametrize("on_blocked", ["fail", "wait"])
async def test_a_merge_blocked_by_a_required_check_fails_or_waits_as_configured(
    on_blocked: str,
    dev_env: WorkflowEnvironment,
    origin_factory: Callable[..., Origin],
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,
    clusters: Callable[[list[str]], dict[str, KubeSim]],
) -> None:
    origin = origin_factory(
        [
            {"name": "dev", "order": 1},
            {"name": "staging", "order": 2, "merge": {"on_blocked": on_blocked, "wait": "5m", "method": "squash"}},
        ]
    )
    origin.bump(tag="9.0.0")
    clusters(["dev", "staging"])
    github = GitHubStandIn(origin=origin.url, tokens={BOT: "promoter-bot"}, required=["ci"]).start()
    try:

        async def ci_passes() -> None:  # the required check turns green after a merge was refused
            await asyncio.to_thread(
                wait_until,
                lambda: any(r.method == "PUT" for r in github.requests),
                30,
                "a first, blocked, merge attempt",
            )
            with github.lock:  # after the refused attempt has been answered (it is recorded before)
                for pr in github.open_pulls():
                    github.checks[pr["head"]["sha"]] = "success"

        result = await promote_on(
            github, origin, dev_env, tmp_path, executor, ci_passes if on_blocked == "wait" else None
        )
    finally:
        github.stop()
    merges = [r for r in github.requests if r.method == "PUT" and r.path.endswith("/merge")]
    assert merges and all(r.body["merge_method"] == "squash" for r in merges)  # environment.yaml's method
    staging = result.stages[1]
    if on_blocked == "fail":
        assert result.state == PromotionState.FAILED
        assert "PR #1 is blocked by required check ci (pending)" in staging.message
        assert len(merges) == 1 and not any(p["merged"] for p in github.pulls.values())  # never reported merged
    else:
        assert result.state == PromotionState.SUCCEEDED, result.message
        assert staging.merge_commit and github.pulls[1]["merged"] and len(merges) == 2  # refused, then merged
