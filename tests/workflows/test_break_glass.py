"""Change calendars and break-glass end to end (issue 33, parts 2 and 3), on the Temporal dev server with
real git, the local forge and a trust root pinned in the worker's settings:

- prod is frozen by an event of a change calendar (policies/calendars/change-freeze.ics, named by
  policies/data.yaml's freeze_calendars): a promotion into prod is denied naming the event and its end;
- `promoter break-glass`'s workflow opens a PR whose gate is prod's `break_glass` (bob and carol, both
  needed; alice, prod's promotion approver, may not approve it); approved, promoter signs and merges the
  commit adding trust/break-glass/<id>.yaml, and the rules walk takes it into the trusted revision;
- the next promotion goes through the freeze, and says so: its audit, its PR body, its merge's
  `Promoter-Break-Glass` trailer and `promoter history` name the break-glass;
- judged one minute after the break-glass's end (the same trusted rules, read from git), the freeze
  denies again; a break-glass file pushed by hand counts for nothing;
- where prod's approvals must be signed (`approval.require_signed`), the break-glass's gate takes only a
  signature over its own statement by a key the trusted trust/allowed_signers lists (not revoked), each
  key once; its merge carries the signatures, which Git alone verifies again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.policy import PolicyActivities
from promoter import api, breakglass, history, holds, metrics, proofs, signing
from promoter.cli.status import _signed
from promoter.gitrepo import GitClone
from promoter.models import (
    Decision,
    EnvironmentConfig,
    LiftHoldInput,
    PolicyCheckInput,
    PromotionState,
    PromotionStatus,
    StageState,
    StageStatus,
)
from promoter.policy.embedded import EmbeddedEngine
from promoter.stack import demo_keys, seed_origin
from tests.support.gitops import Origin, make_gitops
from tests.support.keys import commit_signed

pytestmark = pytest.mark.asyncio

FREEZE = "Year-end change freeze"
ICS = "policies/calendars/change-freeze.ics"


def stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar(start: datetime, end: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//promoter tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:freeze@promoter.test\r\nSUMMARY:{FREEZE}\r\nDTSTART:{stamp(start)}\r\nDTEND:{stamp(end)}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def envs(signed: bool = False) -> list[dict[str, object]]:
    gate = {"required": 1, "approvers": ["alice"], "timeout": "24h", "pull_request_reviews": False}
    gate |= {"require_signed": True} if signed else {}
    glass = {"approvers": ["bob", "carol"], "required": 2}
    return [{"name": "dev", "order": 1}, {"name": "prod", "order": 2, "approval": gate, "break_glass": glass}]


@pytest.fixture
def frozen(tmp_path: Path) -> tuple[Origin, Path, str, datetime]:
    """An origin whose trusted rules (the trust root: its first commit) freeze prod by a calendar event
    from an hour ago to three hours on, and list promoter's commit signing key; that key, the root, and
    the event's end."""
    return frozen_origin(tmp_path)


def frozen_origin(tmp_path: Path, signed: bool = False) -> tuple[Origin, Path, str, datetime]:
    """`frozen`; `signed`: prod's approvals must be signed, and alice's, bob's and carol's keys (keys/<name>)
    are listed for approvals; carol's older key too, revoked, bob's key for carol as well, and alice's for bob;
    mallory's for nobody."""
    now = datetime.now(UTC).replace(microsecond=0)
    end = now + timedelta(hours=3)
    public = demo_keys(
        tmp_path / "keys", ("promoter", "alice", "bob", "carol", "carol-old", "mallory") if signed else ("promoter",)
    )
    base = tmp_path / "frozen"
    base.mkdir()
    source = make_gitops(base, envs(signed))
    if signed:
        (source / "trust").mkdir(exist_ok=True)
        lines = [f'carol namespaces="promoter-approval" {public[k]}\n' for k in ("carol-old", "bob")]
        lines.append(f'bob namespaces="promoter-approval" {public["alice"]}\n')
        (source / "trust" / "allowed_signers").write_text("".join(lines))
        (source / "trust" / "revoked_keys").write_text(f"{public['carol-old']} carol's old laptop\n")
    public = {k: v for k, v in public.items() if k in ("promoter", "alice", "bob", "carol")}
    (source / ICS).parent.mkdir(parents=True, exist_ok=True)
    (source / ICS).write_text(calendar(now - timedelta(hours=1), end))
    data = source / "policies" / "data.yaml"
    data.write_text(
        data.read_text() + "freeze_calendars:\n  - {file: calendars/change-freeze.ics, environments: [prod]}\n"
    )
    root = seed_origin(source, base / "origin.git", signers=public)
    return Origin(base / "origin.git", base / "person"), tmp_path / "keys" / "promoter", root, end


async def wait_stage(handle: Any, check: Callable[[StageStatus], bool]) -> StageStatus:
    deadline = time.monotonic() + 60
    while True:
        try:
            stage = await handle.query("status", result_type=StageStatus)
            if check(stage):
                return stage
        except Exception:  # noqa: BLE001 - its first workflow task has not run yet
            pass
        assert time.monotonic() < deadline, "the break-glass never got there"
        await _pause()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


def judged_at(origin: Origin, cache: Path, root: str, env: EnvironmentConfig, at: datetime) -> Any:
    """prod's policy decision on demo's promotion, evaluated at `at` on main's trusted rules as the
    worker reads them (git, the trust root, regorus)."""
    engine = EmbeddedEngine()
    try:
        activities = PolicyActivities(GitClone(origin.url, cache, trust_root=root), engine)
        req = PolicyCheckInput(
            promotion_id="promote-demo",
            app="demo",
            commit=origin.repo.head.commit.hexsha,
            author="dana <dana@example.com>",
            source_env="dev",
            target_env="prod",
            started_at=at,
            evaluated_at=at,
            environment=env,
            environments=["dev", "prod"],
            phase="merge",
            render_objects=False,
        )
        return activities.judge(req)
    finally:
        engine.close()


def freezes(decision: Any) -> list[str]:
    """The freeze's denials (the check judged here has no approvals nor history: those rules deny too)."""
    return [v.message for v in decision.deny if v.rule == "promotion.freeze.deny_freeze_window"]


async def test_a_calendar_freeze_denies_and_an_approved_break_glass_lets_through_until_its_end(
    dev_env: WorkflowEnvironment, run_worker: Any, frozen: tuple[Origin, Path, str, datetime], tmp_path: Path
) -> None:
    origin, key, root, freeze_end = frozen
    forge = origin.forge()
    origin.bump(tag="9.1.0")
    async with run_worker(dev_env, origin, commit_signing_key=str(key), trust_root=root) as tq:
        # inside the calendar's event, prod is frozen: the promotion is denied naming the event and its end
        first = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        denied: PromotionStatus = await first.result()
        assert denied.state == PromotionState.POLICY_DENIED, denied.message
        until_event = freeze_end.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f"prod is frozen by '{FREEZE}' ({ICS}) at " in denied.message, denied.message
        assert f"until {until_event}" in denied.message

        # a break-glass, through its own gate: prod's break_glass approvers, both of them
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        ask = LiftHoldInput(
            app="demo", env="prod", commit="", requested_by="alice", reason="fix for incident 4711", until=until
        )
        glass = await api.break_glass(dev_env.client, tq, ask)
        waiting = await wait_stage(glass, lambda s: s.state == StageState.AWAITING_APPROVAL)
        assert waiting.approvers == ["bob", "carol"] and waiting.approvals_required == 2
        with pytest.raises(WorkflowUpdateFailedError):  # prod's promotion approver is not a break-glass approver
            await glass.execute_update("approve", Decision(env="prod", approver="alice", via="cli"))
        await glass.execute_update("approve", Decision(env="prod", approver="bob", via="cli", comment="ok"))
        await glass.execute_update("approve", Decision(env="prod", approver="carol", via="cli", comment="ok"))
        placed: StageStatus = await glass.result()
        assert placed.state == StageState.HEALTHY and placed.merge_commit, placed.message
        assert "pass its freezes until" in placed.message
        tree = git.Repo(origin.path).git.ls_tree("-r", "--name-only", placed.merge_commit).split()
        files = [p for p in tree if "break-glass" in p]
        assert len(files) == 1 and files[0].startswith("trust/break-glass/demo-prod-"), files
        gid = Path(files[0]).stem

        # the next promotion passes the freeze (prod's own gate still holds) and says so everywhere
        second = await api.start(dev_env.client, tq, await api.resolve(dev_env.client, tq, "demo"), "dana")
        gated: PromotionStatus = await api.wait_for(second, lambda s: s.stages[1].state == StageState.AWAITING_APPROVAL)
        assert gated.stages[1].policy is not None and gated.stages[1].policy.allow
        await second.execute_update("approve", Decision(env="prod", approver="alice", via="cli", comment="ship"))
        done: PromotionStatus = await second.result()
    assert done.state == PromotionState.SUCCEEDED, done.message
    said = f"break-glass {gid} by alice until {breakglass.rfc3339(until)}: fix for incident 4711"
    assert [e.detail for e in done.audit if e.kind == "break-glass"] == [said]
    prod = done.stages[1]
    assert said in forge.get_pull_request(prod.pr_number or 0).body
    merged = git.Repo(origin.path).git.log("-1", "--format=%B", prod.merge_commit)
    assert "Promoter-Break-Glass: promoter at " in merged and said in merged, merged
    history = GitClone(origin.url, tmp_path / "history-cache").history("demo")
    promoted = next(e for e in history if e.env == "prod" and e.kind == "promoted")
    assert any(d.startswith("Promoter-Break-Glass: ") and said in d for d in promoted.decisions), promoted.decisions
    delivery, _ = GitClone(origin.url, tmp_path / "metrics-cache").delivery()  # what `promoter metrics` reads
    assert [(d.env, d.break_glass) for d in delivery.deployments] == [("prod", True)]
    _, figures = metrics.figures(delivery, ["dev", "prod"], int(time.time()))
    assert [(f.env, f.break_glass) for f in figures] == [("dev", 0), ("prod", 1)]

    # the same trusted rules, one minute after the break-glass's end: denied by the freeze again; a
    # minute before it, let through naming it
    prod_env = next(c for c in GitClone(origin.url, tmp_path / "c1").environments() if c.name == "prod")
    after = judged_at(origin, tmp_path / "c2", root, prod_env, until + timedelta(minutes=1))
    minute_after = breakglass.rfc3339(until + timedelta(minutes=1))
    assert freezes(after) == [f"prod is frozen by '{FREEZE}' ({ICS}) at {minute_after}, until {until_event}"]
    assert after.excepted == []
    before = judged_at(origin, tmp_path / "c3", root, prod_env, until - timedelta(minutes=1))
    assert freezes(before) == [] and [v.exception for v in before.excepted] == [said]

    # a break-glass file pushed by hand (unsigned, an hour past the real one's end) counts for nothing
    hand = {
        "app": "demo",
        "env": "prod",
        "reason": "by hand",
        "requested_by": "mallory",
        "until": breakglass.rfc3339(until + timedelta(hours=2)),
        "approved_at": breakglass.rfc3339(until),
        "approved_by": ["mallory"],
    }
    import yaml

    commit_signed(origin, None, {"trust/break-glass/demo-prod-hand.yaml": yaml.safe_dump(hand)}, "break glass")
    later = judged_at(origin, tmp_path / "c4", root, prod_env, until + timedelta(minutes=30))
    assert len(freezes(later)) == 1 and later.excepted == []


async def test_a_break_glass_not_approved_by_its_end_puts_nothing_in_place(
    dev_env: WorkflowEnvironment, run_worker: Any, frozen: tuple[Origin, Path, str, datetime]
) -> None:
    origin, key, root, _ = frozen
    forge = origin.forge()
    async with run_worker(dev_env, origin, commit_signing_key=str(key), trust_root=root) as tq:
        until = datetime.now(UTC) + timedelta(seconds=8)
        ask = LiftHoldInput(app="demo", env="prod", commit="", requested_by="alice", reason="too late", until=until)
        glass = await api.break_glass(dev_env.client, tq, ask)
        ended: StageStatus = await glass.result()
    assert ended.state == StageState.EXPIRED, ended.message
    assert ended.message.endswith("before its approvals; nothing was put in place")
    assert forge.get_pull_request(ended.pr_number or 0).state == "closed"
    tree = git.Repo(origin.path).git.ls_tree("-r", "--name-only", "main").split()
    assert not [p for p in tree if p.startswith("trust/break-glass/")]


async def test_where_approvals_must_be_signed_a_break_glass_takes_only_signatures_for_itself(
    dev_env: WorkflowEnvironment, run_worker: Any, tmp_path: Path
) -> None:
    origin, key, root, _ = frozen_origin(tmp_path, signed=True)
    keys = key.parent
    async with run_worker(dev_env, origin, commit_signing_key=str(key), trust_root=root) as tq:
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        ask = LiftHoldInput(
            app="demo", env="prod", commit="", requested_by="alice", reason="incident 4711", until=until
        )
        # alice asks as `promoter break-glass --sign-key` does: where approvals must be signed, so is the request
        ask.statement = breakglass.request_statement("demo", "prod", until, "alice", "incident 4711", datetime.now(UTC))
        ask.signature = signing.armor_to_line(signing.sign_file(ask.statement.encode(), keys / "alice"))
        glass = await api.break_glass(dev_env.client, tq, ask)  # not refused where approvals must be signed
        stage = await wait_stage(glass, lambda s: s.state == StageState.AWAITING_APPROVAL)
        main = git.Repo(origin.path).commit("main").hexsha
        assert stage.signed_required and stage.head_sha and stage.commit == main, stage
        run = (await glass.describe()).run_id
        now = datetime.now(UTC).replace(microsecond=0)

        def signed(who: str, with_key: str, **changes: Any) -> Decision:
            """`who`'s approval of this break-glass, its statement changed by `changes`, signed with `with_key`."""
            said = replace(proofs.lift_statement(glass.id, run, stage, "approve", who, now, "ok"), **changes)
            armored = signing.sign_file(said.text().encode(), keys / with_key)
            return Decision(env="prod", approver=who, comment="ok", statement=said.text(), signature=armored)

        async def refused(d: Decision) -> str:
            with pytest.raises(WorkflowUpdateFailedError) as e:
                await glass.execute_update("approve", d)
            return str(e.value.cause)

        unsigned = await refused(Decision(env="prod", approver="bob", via="cli", comment="ok"))
        assert unsigned == "ApprovalRefused: " + (
            "prod requires signed approvals; an unsigned one does not count: sign with `promoter approve "
            "break-glass-demo-prod --env prod --as bob --sign-key KEY`, or paste the payload that `--print-payload` "
            "prints into the Web UI's update dialog"
        )
        assert "environment staging, not prod" in await refused(signed("bob", "bob", env="staging"))
        other = await refused(signed("bob", "bob", promotion="release-hold-demo-prod"))
        assert "promotion release-hold-demo-prod, not break-glass-demo-prod" in other
        assert "another run of break-glass-demo-prod" in await refused(signed("bob", "bob", run="0" * 36))
        assert f"commit 000000000000, not {main[:12]}" in await refused(signed("bob", "bob", commit="0" * 40))
        assert "not in trust/allowed_signers for 'bob'" in await refused(signed("bob", "mallory"))
        assert "revoked" in await refused(signed("carol", "carol-old"))
        # alice's key is listed for bob too: the key that asked may not approve, whatever name it signs as
        asker = await refused(signed("bob", "alice"))
        assert "signed this break-glass's request; it may not approve it too" in asker, asker
        assert (await glass.query("status", result_type=StageStatus)).approvals == []

        await glass.execute_update("approve", signed("bob", "bob"))
        once = await refused(signed("carol", "bob"))  # bob's key is listed for carol too: it counts once
        assert "has already approved prod (as bob); one key counts once" in once, once
        # carol signs as `promoter approve break-glass-demo-prod --sign-key` does, from the run's own status
        carol = Decision(env="prod", approver="carol", comment="ok", via="cli")
        await glass.execute_update(
            "approve",
            await _signed(api.GrpcPromotions(dev_env.client), glass.id, carol, "approve", str(keys / "carol")),
        )
        placed: StageStatus = await glass.result()
    assert placed.state == StageState.HEALTHY and placed.merge_commit, placed.message
    assert [(a.approver, a.proof) for a in placed.approvals] == [("bob", "signed"), ("carol", "signed")]
    repo = git.Repo(origin.path)
    assert [p for p in repo.git.ls_tree("-r", "--name-only", placed.merge_commit).split() if "break-glass/" in p]
    # from Git alone: the merge's trailers carry each signature and the revision whose trust/ verified it
    fields = holds.trailer_block(repo.git.log("-1", "--format=%B", placed.merge_commit))
    assert [v.split(" at ")[0] for k, v in fields if k == "Promoter-Approval"] == [
        "bob via ui (signed)",
        "carol via cli (signed)",
    ]
    trust_at = next(v for k, v in fields if k == history.TRUST)
    assert trust_at == root  # the trusted rules revision when it opened: the trust root
    allowed = repo.git.show(f"{trust_at}:trust/allowed_signers")
    revoked = repo.git.show(f"{trust_at}:trust/revoked_keys")
    request = repo.commit(placed.merge_commit).parents[1].parents[0].hexsha  # the sealed commit's parent
    for value in [v for k, v in fields if k == history.SIGNED]:
        statement, line = history.parse_signed(value) or ("", "")
        said = signing.Statement.parse(statement)
        assert (said.promotion, said.env, said.commit, said.head, said.trees) == (glass.id, "prod", main, request, ())
        verified = signing.verify(
            statement.encode(),
            signing.line_to_armor(line),
            principal=said.approver,
            allowed_signers=allowed,
            revoked_keys=revoked,
            at=said.at,
        )
        assert verified.fingerprint.startswith("SHA256:")
