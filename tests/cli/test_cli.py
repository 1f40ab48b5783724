"""The CLI end to end on the embedded stack, as a person runs it: `promoter up --detach`, a promotion
followed with `--wait` and prod approved with `promoter approve`; bad input refused with one line and
exit 2 and nothing pushed; every command's exit code stable over 20 runs in a row; `down`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import git
import pytest
import yaml

from tests.support.gitops import PROMOTER, Cli, Origin, fresh_ports
from tests.support.keys import commit_signed
from tests.support.workflows import copy_app, dry_run_matches, failing_in


def refs(origin: Origin) -> dict[str, str]:
    return {h.name: h.commit.hexsha for h in git.Repo(origin.path).heads}


def same_over_both(http: Cli, grpc: Cli, *commands: list[str]) -> None:
    """Each command answers the same over Temporal's HTTP API (the stack's default) and over gRPC.
    The promotion lives on between the two calls (a drift check can land in between), so a pair that
    differs is asked again: the answers must agree on one of three tries, when nothing moved."""
    for args in commands:
        for _ in range(3):
            one, other = http(*args), grpc(*args)
            if (one.returncode, one.stdout, one.stderr) == (other.returncode, other.stdout, other.stderr):
                break
        assert (one.returncode, one.stdout, one.stderr) == (other.returncode, other.stdout, other.stderr), args


def test_up_is_idempotent_and_writes_its_state(stack: tuple[Cli, Origin]) -> None:
    cli, _ = stack
    info = json.loads((cli.state_dir / "stack.json").read_text())
    r = cli("up", "--detach", "--state-dir", str(cli.state_dir))
    assert r.returncode == 0 and info["ui_url"] in r.stdout
    assert info["temporal_http_url"].startswith("http://127.0.0.1:") and info["temporal_http_url"] in r.stdout
    assert (cli.state_dir / "origin.git").is_dir() and (cli.state_dir / "temporal.db").is_file()
    kubeconfig = yaml.safe_load((cli.state_dir / "kubeconfig").read_text())
    assert sorted(c["name"] for c in kubeconfig["contexts"]) == ["dev", "prod", "staging"]
    assert all(c["cluster"]["server"].startswith("http://127.0.0.1:") for c in kubeconfig["clusters"])
    assert drift_schedules(cli) == ["drift-dev", "drift-staging", "drift-prod"]  # the worker made them


def drift_schedules(cli: Cli) -> list[str]:
    """The drift schedules the stack's Temporal server has, one per environment."""
    from temporalio.client import Client

    address = json.loads((cli.state_dir / "stack.json").read_text())["temporal_address"]

    async def ids() -> list[str]:
        client = await Client.connect(address)
        return [(await client.get_schedule_handle(f"drift-{e}").describe()).id for e in ("dev", "staging", "prod")]

    return asyncio.run(ids())


def test_promote_wait_with_prod_approved_through_the_cli(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    commit = origin.bump(tag="4.2.0")
    dry = cli("dry-run", "demo", "--json")  # what the promotion will do, before it starts
    assert dry.returncode == 0, dry.stderr
    foretold = json.loads(dry.stdout)
    assert foretold["denied"] == [] and foretold["plan"]["commit"] == commit
    follower = cli.popen("promote", "demo", "--wait", "--json")
    try:
        waiting = cli.wait_status(
            "promote-demo", lambda s: s["commit"] == commit and s["stages"][2]["state"] == "awaiting_approval"
        )
        assert waiting["state"] == "running" and waiting["url"]
        grpc = cli.over_grpc()
        following = grpc.popen("status", "promote-demo", "--follow", "--json")  # re-attached, as --wait follows
        refused = cli("approve", "promote-demo", "--env", "prod", "--as", "mallory")
        assert refused.returncode == 2 and "mallory may not decide prod" in refused.stderr
        same_over_both(cli, grpc, ["approve", "promote-demo", "--env", "prod", "--as", "mallory"])
        same_over_both(cli, grpc, ["status", "promote-demo", "--json"], ["status", "--json"], ["list", "--json"])
        # the sample's prod requires signed approvals: unsigned is refused with how to sign, and
        # --print-payload signs without sending (the payload is for the Web UI's update dialog)
        unsigned = grpc("approve", "promote-demo", "--env", "prod", "--as", "alice", "--comment", "go")
        assert unsigned.returncode == 2 and "prod requires signed approvals" in unsigned.stderr, unsigned.stderr
        key = str(cli.state_dir / "keys" / "alice")
        payload = cli("approve", "promote-demo", "--env", "prod", "--as", "alice", "--sign-key", key, "--print-payload")
        assert payload.returncode == 0, payload.stderr
        printed = json.loads(payload.stdout)
        assert set(printed) == {"env", "approver", "comment", "statement", "signature"}
        assert "\nenv prod\n" in printed["statement"] and cli.status("promote-demo")["stages"][2]["approvals"] == []
        ok = grpc("approve", "promote-demo", "--env", "prod", "--as", "alice", "--comment", "go", "--sign-key", key)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "promote-demo: prod approved by alice; the gate is open"
        out, errs = follower.communicate(timeout=120)
        followed, errs_followed = following.communicate(timeout=60)
    finally:
        follower.kill()
        following.kill()
    assert follower.returncode == 0, errs
    final = json.loads(out.strip().splitlines()[-1])
    assert final["state"] == "succeeded"
    assert following.returncode == 0, errs_followed
    assert (json.loads(followed)["state"], json.loads(followed)["run_id"]) == ("succeeded", final["run_id"])
    status = cli.status("promote-demo")
    same_over_both(cli, grpc, ["status", "promote-demo", "--json"], ["status", "promote-demo"])  # the result
    dry_run_matches(foretold, status)
    assert [s["state"] for s in status["stages"]] == ["healthy", "healthy", "healthy"]
    assert status["stages"][2]["approvals"][0]["approver"] == "alice"
    assert status["stages"][2]["approvals"][0]["via"] == "cli"
    audit = [(e["env"], e["kind"], e["actor"]) for e in status["audit"]]  # the audit trail, in --json too
    assert ("prod", "approval", "alice") in audit and ("prod", "merge", "promoter") in audit
    # mallory never entered history (the validator refused her); alice's unsigned approval is on record
    refusals = [(e["actor"], e["via"]) for e in status["audit"] if e["kind"] == "refusal"]
    assert refusals == [("alice", "cli")], refusals
    human = cli("status", "promote-demo")
    assert "prod approval by alice via cli (signed): go" in human.stdout, human.stdout
    history = cli("history", "demo", "--env", "prod")
    assert history.returncode == 0 and "approval by alice via cli: verified (SHA256:" in history.stdout, history.stdout
    bare = git.Repo(origin.path)
    for env in ("staging", "prod"):
        for f in ("deployment.yaml", "service.yaml"):
            assert bare.git.rev_parse(f"main:environments/{env}/demo/{f}") == bare.git.rev_parse(
                f"{commit}:environments/dev/demo/{f}"
            )
    with sqlite3.connect(cli.state_dir / "forge.sqlite") as db:
        pulls = db.execute("SELECT head, state FROM pulls WHERE head LIKE ?", (f"%/{commit[:7]}",)).fetchall()
    assert sorted(pulls) == [
        (f"promote/demo/prod/{commit[:7]}", "merged"),
        (f"promote/demo/staging/{commit[:7]}", "merged"),
    ]
    listed = json.loads(cli("list", "--json", "--app", "demo").stdout)
    assert listed[0]["id"] == "promote-demo" and listed[0]["state"] == "succeeded"


def test_worker_killed_and_stack_restarted_mid_gate_loses_nothing(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    commit = origin.bump(tag="7.0.0")
    started = cli("promote", "demo", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["commit"] == commit
    cli.wait_status("promote-demo", lambda s: s["commit"] == commit and s["stages"][2]["state"] == "awaiting_approval")
    pids = json.loads((cli.state_dir / "stack.json").read_text())["pids"]
    os.kill(pids["worker"], signal.SIGKILL)  # a crash, not a shutdown
    assert cli("down", "--state-dir", str(cli.state_dir)).returncode == 0
    again = cli("up", "--detach", "--state-dir", str(cli.state_dir), *fresh_ports())
    assert again.returncode == 0, again.stderr
    assert json.loads((cli.state_dir / "stack.json").read_text())["pids"]["worker"] != pids["worker"]
    waiting = cli.status("promote-demo")  # the gate survived the crash and the server's restart
    assert drift_schedules(cli) == ["drift-dev", "drift-staging", "drift-prod"]  # and so did the schedules
    assert waiting["state"] == "running" and waiting["stages"][2]["state"] == "awaiting_approval"
    bob = str(cli.state_dir / "keys" / "bob")  # over the HTTP API, signed with the key in the environment
    approved = subprocess.run(
        [*PROMOTER, "approve", "promote-demo", "--env", "prod", "--as", "bob"],
        env={**cli.env, "PROMOTER_SIGNING_KEY": bob},
        capture_output=True,
        text=True,
    )
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == "promote-demo: prod approved by bob; the gate is open"
    done = cli.wait_status("promote-demo", lambda s: s["state"] != "running")
    assert done["state"] == "succeeded", done["message"]
    with sqlite3.connect(cli.state_dir / "forge.sqlite") as db:
        pulls = db.execute("SELECT head, state FROM pulls WHERE head LIKE ?", (f"%/{commit[:7]}",)).fetchall()
    assert sorted(pulls) == [
        (f"promote/demo/prod/{commit[:7]}", "merged"),
        (f"promote/demo/staging/{commit[:7]}", "merged"),
    ]
    subjects = [line.split(" ", 1)[1] for line in origin.main_log()]
    assert (
        subjects.count(f"Merge pull request #{done['stages'][2]['pr_number']} from promote/demo/prod/{commit[:7]}") == 1
    )


@pytest.mark.parametrize("ending", ["reject", "cancel"])
def test_wait_exits_1_when_the_promotion_does_not_succeed(stack: tuple[Cli, Origin], ending: str) -> None:
    cli, origin = stack
    commit = origin.bump(tag=f"8.0.0-{ending}")
    follower = cli.popen("promote", "demo", "--wait")
    try:
        try:
            waiting = cli.wait_status(
                "promote-demo", lambda s: s["commit"] == commit and s["stages"][2]["state"] == "awaiting_approval"
            )
        except TimeoutError as e:
            follower.kill()
            said, complained = follower.communicate()
            raise AssertionError(f"{e}; `promote demo --wait` said: {said[-600:]!r} {complained[-600:]!r}") from None
        if ending == "reject":
            r = cli("reject", "promote-demo", "--env", "prod", "--as", "carol", "--reason", "freeze")
        else:
            r = cli("cancel", "promote-demo")
        assert r.returncode == 0, r.stderr
        out, _ = follower.communicate(timeout=120)
    finally:
        follower.kill()
    assert follower.returncode == 1
    expected = {"reject": "rejected", "cancel": "cancelled"}[ending]
    assert f"promote-demo: {expected}" in out
    assert cli.status("promote-demo")["state"] == expected
    with sqlite3.connect(cli.state_dir / "forge.sqlite") as db:
        state = db.execute("SELECT state FROM pulls WHERE number = ?", (waiting["stages"][2]["pr_number"],)).fetchone()
    assert state == ("closed",)


@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [
        (["promote", "nosuchapp"], {}, "unknown app 'nosuchapp'"),
        (["promote", "demo", "--to", "qa"], {}, "unknown environment 'qa'"),
        (["promote", "demo", "--commit", "deadbeefdeadbeef"], {}, "commit 'deadbeefdeadbeef' does not exist"),
        (
            ["promote", "demo"],
            {"environments/staging/environment.yaml": "name: staging\norder: 2\ncluster: [\n"},
            "environments/staging/environment.yaml: line 3: invalid YAML",
        ),
        (
            ["promote", "demo"],
            {"environments/staging/environment.yaml": "name: staging\norder: 3\n"},
            "environments 'prod' and 'staging' both have order 3",
        ),
    ],
    ids=["unknown-app", "unknown-env", "missing-commit", "malformed-yaml", "same-order"],
)
def test_bad_input_is_one_line_exit_2_and_nothing_pushed(
    stack: tuple[Cli, Origin], args: list[str], files: dict[str, str], expected: str
) -> None:
    cli, origin = stack
    platform = cli.state_dir / "keys" / "platform"  # a rule change counts once the platform key signed it
    if files:
        commit_signed(origin, platform, files, "break the configuration")
    before = refs(origin)
    try:
        r = cli(*args)
        assert r.returncode == 2, r.stdout + r.stderr
        assert expected in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert refs(origin) == before
    finally:
        if files:
            sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={platform}.pub"]
            origin.repo.git.execute(["git", *sign, "revert", "-S", "--no-edit", "HEAD"])
            origin.repo.git.push("-q", "origin", "main")


def test_dry_run_exits_1_naming_the_stage_a_latest_image_is_denied_at_and_writes_nothing(
    stack: tuple[Cli, Origin],
) -> None:
    cli, origin = stack
    origin.bump(tag="latest")
    before = refs(origin)
    try:
        r = cli("dry-run", "demo")
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stderr.strip() == "staging would be denied: a promotion of demo would stop there"
        assert "policy: DENY" in r.stdout and "latest" in r.stdout
        as_json = cli("dry-run", "demo", "--json")
        assert as_json.returncode == 1 and json.loads(as_json.stdout)["denied"] == ["staging", "prod"]
        unknown = cli("dry-run", "nothing")
        assert unknown.returncode == 2 and "unknown app 'nothing'" in unknown.stderr
        head = origin.repo.head.commit.hexsha
        lift = ["lift-hold", "demo", "--env", "staging", "--commit", head, "--as", "alice"]
        not_held = cli(*lift, "--reason", "it was fine")
        assert not_held.returncode == 2 and f"demo @ {head[:12]} is not held in staging" in not_held.stderr
        assert cli(*lift, "--reason", " ").returncode == 2
        every = cli("drift", "--json")  # every environment, named from the repository (dev drifts: :latest)
        assert every.returncode == 1 and [r["env"] for r in json.loads(every.stdout)] == ["dev", "staging", "prod"]
        assert "dev against main @ " in cli("drift", "dev").stdout
        unknown_env = cli("drift", "nope")
        assert unknown_env.returncode == 2 and "unknown environment 'nope'" in unknown_env.stderr
        assert refs(origin) == before
    finally:
        origin.repo.git.revert("--no-edit", "HEAD")
        origin.repo.git.push("-q", "origin", "main")


def test_a_reverted_commit_is_held_and_lifted_through_the_cli(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    bad = failing_in(origin, "staging", tag="6.6.6")
    reverted = cli("promote", "demo", "--to", "staging", "--wait", "--json")
    assert reverted.returncode == 1 and json.loads(reverted.stdout.strip().splitlines()[-1])["state"] == "reverted"
    assert any("is now held out of staging" in n for n in cli.status("promote-demo")["notices"])  # type: ignore[union-attr]
    held = cli("dry-run", "demo", "--commit", bad, "--to", "staging")
    assert held.returncode == 2 and f"demo @ {bad[:7]} is held out of staging" in held.stderr
    assert "promoter lift-hold demo --env staging" in held.stderr

    asked = cli("lift-hold", "demo", "--env", "staging", "--commit", bad, "--as", "alice", "--reason", "cluster fault")
    assert asked.returncode == 0, asked.stderr
    assert "release-hold-demo-staging: PR #" in asked.stdout and "/pulls/" in asked.stdout
    refused = cli("approve", "release-hold-demo-staging", "--env", "staging", "--as", "mallory")
    assert refused.returncode == 2 and "mallory may not decide staging" in refused.stderr
    lifting = cli("status", "release-hold-demo-staging")  # a lift of a hold: its one stage, its gate and PR
    assert lifting.returncode == 0 and f"lift of the hold of demo @ {bad[:7]} in staging  [running]" in lifting.stdout
    assert "staging PR #" in lifting.stdout and "0/1" in lifting.stdout
    same_over_both(cli, cli.over_grpc(), ["status", "release-hold-demo-staging", "--json"])
    shown = cli.status("release-hold-demo-staging")
    assert (shown["kind"], shown["app"], shown["state"]) == ("lift-hold", "demo", "running")
    assert [(s["env"], s["state"]) for s in shown["stages"]] == [("staging", "awaiting_approval")]  # type: ignore[union-attr,index]
    ok = cli("approve", "release-hold-demo-staging", "--env", "staging", "--as", "bob")
    assert ok.returncode == 0 and "staging approved by bob; the gate is open" in ok.stdout, ok.stdout + ok.stderr
    deadline = time.monotonic() + 60  # the lift merges its PR once approved
    while (again := cli("dry-run", "demo", "--commit", bad, "--to", "staging")).returncode == 2:
        assert time.monotonic() < deadline, again.stderr
    assert again.returncode == 0, again.stderr
    assert cli("status", "release-hold-demo-staging", "--follow").returncode == 0  # lifted: its success
    listed = {r["id"]: r for r in reversed(json.loads(cli("list", "--app", "demo", "--json").stdout))}  # the newest
    lift = listed["release-hold-demo-staging"]
    assert (lift["kind"], lift["app"], lift["state"], lift["stage"]) == ("lift-hold", "demo", "succeeded", "staging")
    reverted_row = listed["promote-demo"]  # the reverted promotion: its outcome, at the stage it ended at
    assert (reverted_row["state"], reverted_row["stage"], reverted_row["stage_state"]) == ("reverted", "staging", None)
    lines = cli("list", "--app", "demo").stdout  # not a terminal: aligned lines, nothing cut
    assert "checking_policy" not in lines and "release-hold-demo-staging  lift-hold  demo" in lines, lines
    events = json.loads(cli("history", "demo", "--env", "staging", "--json").stdout)
    assert [(e["kind"], e["commit"]) for e in events[:3]] == [
        ("hold-released", bad),
        ("reverted", bad),
        ("promoted", bad),
    ]

    # a person scales staging by hand: the drift check says so, and so does the app's status
    scaled = subprocess.run(
        ["kubectl", "--kubeconfig", str(cli.state_dir / "kubeconfig"), "--context", "staging", "-n", "apps"]
        + ["scale", "deployment", "demo", "--replicas", "5"],
        capture_output=True,
        text=True,
    )
    assert scaled.returncode == 0, scaled.stderr
    seen = cli("drift", "staging", "--no-heal")
    assert seen.returncode == 1 and "Deployment/apps/demo spec.replicas: Git 2, live 5 (since 20" in seen.stdout
    shown = cli("status", "demo")
    assert "drift (the latest check of each environment):" in shown.stdout, shown.stdout
    assert "  staging: 1 difference(s) (checked " in shown.stdout
    assert "Deployment/apps/demo spec.replicas: Git 2, live 5 (since " in shown.stdout
    assert cli.status("promote-demo")["drift"]["staging"]["drifts"][0]["live"] == 5  # type: ignore[index]
    healing = cli("drift", "staging", "--heal")
    assert healing.returncode == 0, healing.stdout + healing.stderr
    after = cli("status", "demo").stdout
    assert "  staging: 1 difference(s), healed from Git (live differed from Git; " in after, healing.stdout + after
    assert "  staging: matches Git (checked " in (cli("drift", "staging"), cli("status", "demo"))[1].stdout

    origin.repo.git.pull("-q", "--rebase", "origin", "main")  # dev as it was: staging matches it again
    origin.repo.git.revert("--no-edit", bad)
    origin.repo.git.push("-q", "origin", "main")


def test_each_command_exits_with_its_documented_code_again_and_again(stack: tuple[Cli, Origin]) -> None:
    """Each command twice (the same code the second time: nothing the first run left changes it); a whole
    (skipped) promotion twice too, which costs a resolve run and a workflow each (each run is a fresh
    process: 5 runs of each took 49 s of the suite)."""
    cli, origin = stack
    empty = cli.state_dir.parent / "empty-state"
    calls: list[tuple[list[str], int]] = [
        (["status", "promote-demo"], 0),
        (["status", "--json"], 0),
        (["status", "promote-nothing"], 2),
        (["list"], 0),
        (["list", "--state", "bogus"], 2),
        (["approve", "promote-demo", "--env", "prod", "--as", "alice"], 2),  # the promotion has ended
        (["reject", "promote-demo", "--env", "prod", "--as", "alice", "--reason", "no"], 2),
        (["cancel", "promote-nothing"], 2),
        (["promote", "nosuchapp"], 2),
        (["promote", "demo", "--to", "staging", "--wait"], 0),  # nothing new for staging: skipped
        (["up", "--detach", "--state-dir", str(cli.state_dir)], 0),
        (["down", "--state-dir", str(empty)], 0),
        (["--help"], 0),
        (["approve"], 2),
    ]
    for args, code in calls:
        for i in range(2):
            r = cli(*args)
            assert r.returncode == code, f"run {i + 1} of `promoter {' '.join(args)}`: {r.returncode} {r.stderr}"


def test_a_release_set_through_the_cli(stack: tuple[Cli, Origin]) -> None:
    """`promoter promote demo duo2 --name duo`: one run, one PR per environment with both folders."""
    cli, origin = stack
    copy_app(origin, "demo", "duo2")
    try:
        path = "environments/dev/duo2/deployment.yaml"
        text = (origin.work / path).read_text()
        commit = origin.commit({path: re.sub(r"(duo2):[\w.\-]+", r"\1:9.9.9", text)}, "duo2 9.9.9")
        plan = cli("dry-run", "demo", "duo2", "--name", "duo", "--to", "staging")
        assert plan.returncode == 0 and "plan of duo = demo + duo2 @ " in plan.stdout, plan.stdout + plan.stderr
        r = cli("promote", "demo", "duo2", "--name", "duo", "--to", "staging", "--wait", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        done = json.loads(r.stdout.strip().splitlines()[-1])
        assert (done["id"], done["members"], done["state"], done["commit"]) == (
            "promote-duo",
            ["demo", "duo2"],
            "succeeded",
            commit,
        )
        assert "promote-duo  duo = demo + duo2 @ " in cli("status", "duo").stdout
        member = cli("status", "duo2")  # its claim: no empty table, the set it moved in
        assert member.returncode == 0 and "approvals" not in member.stdout, member.stdout
        assert "moved as a member of the release set promote-duo: succeeded" in member.stdout, member.stdout
        assert cli("status", "promote-duo", "--follow").returncode == 0  # ended: its outcome at once
        assert any(e["promotion"] == "promote-duo" for e in json.loads(cli("history", "duo2", "--json").stdout))
        listed = json.loads(cli("list", "--json", "--app", "duo2").stdout)  # the sets holding it too
        assert [(r["id"], r["app"]) for r in listed] == [("promote-duo", "duo")]
        from promoter.cli import _listing
        from promoter.temporal_http import HttpPromotions

        http = HttpPromotions(json.loads((cli.state_dir / "stack.json").read_text())["temporal_http_url"], "default")
        refused = (
            "WorkflowType = 'PromotionWorkflow' AND NoSuchAttribute = 'x'"  # as PromotionApps is where unregistered
        )

        async def rows() -> list[str]:
            return [wf.id async for wf in _listing(http, [refused, "WorkflowId = 'promote-duo'"])]

        assert asyncio.run(rows()) == ["promote-duo"]  # the server refused the first query: the second answered
        named_as_an_app = cli("promote", "demo", "duo2", "--name", "demo")
        assert named_as_an_app.returncode == 2 and "the release set's name 'demo' is an app's" in named_as_an_app.stderr
    finally:
        origin.repo.git.pull("-q", "--rebase", "origin", "main")
        origin.commit(
            {
                p.replace("/dev/", f"/{env}/"): None
                for env in ("dev", "staging", "prod")
                for p in [f"environments/dev/duo2/{f.name}" for f in (origin.work / "environments/dev/duo2").iterdir()]
            },
            "remove duo2",
        )


def test_policy_trust_names_unsigned_rule_changes_until_the_platform_key_signs(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    root = json.loads((cli.state_dir / "stack.json").read_text())["trust_root"]
    first = cli("policy", "trust")
    assert first.returncode == 0 and "trusted rules revision: " in first.stdout, first.stdout + first.stderr
    unsigned = origin.commit({"policies/NOTES.md": "who owns what\n"}, "policies: notes, unsigned")
    listed = cli("policy", "trust")
    assert (
        listed.returncode == 1 and f"untrusted: {unsigned[:12]} by dana <dana@example.com>: unsigned" in listed.stdout
    )
    data = json.loads(cli("policy", "trust", "--json").stdout)
    assert data["root"] == root and [c["commit"] for c in data["untrusted"]] == [unsigned]
    signed = commit_signed(origin, cli.state_dir / "keys" / "platform", {"policies/NOTES.md": "reviewed\n"}, "ok")
    done = cli("policy", "trust")
    assert done.returncode == 0 and f"trusted rules revision: {signed}" in done.stdout, done.stdout


def test_history_verifies_signed_approvals_after_temporal_s_database_is_gone(stack: tuple[Cli, Origin]) -> None:
    """Last in this module: the stack goes down, its Temporal database is deleted, and the history of
    prod (promoted by earlier tests with signed approvals) is read and verified from Git alone."""
    cli, origin = stack
    assert cli("down", "--state-dir", str(cli.state_dir)).returncode == 0
    (cli.state_dir / "temporal.db").unlink()
    alone = Cli(cli.state_dir.parent / "no-stack")
    alone.env["PROMOTER_REPO_URL"] = str(origin.path)
    shown = alone("history", "demo", "--env", "prod")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"approval by (alice|bob) via (cli|ui): verified \(SHA256:", shown.stdout), shown.stdout
    assert "INVALID" not in shown.stdout, shown.stdout
    stopped = cli("history", "demo", "--env", "prod")  # no PROMOTER_REPO_URL: the stopped stack's origin.json
    assert stopped.returncode == 0, stopped.stderr
    assert re.search(r"approval by (alice|bob) via (cli|ui): verified \(SHA256:", stopped.stdout), stopped.stdout
    # the stack comes back (with a new, empty Temporal database) for whatever runs after
    assert cli("up", "--detach", "--state-dir", str(cli.state_dir), *fresh_ports()).returncode == 0
