"""The commands that change something, on the embedded stack: Ctrl-C during `promote --wait` says the
promotion goes on and how to follow it (exit 130), and `promote --wait` of the same request re-attaches
to it; the last JSON object of `promote --wait --json` names the run ID and UI URL; promoting a member
while its release set runs names the set; a mistyped app or environment in `history` (and in
`policy check --env`) is exit 2 naming the real ones; after the worker is killed `status` and `approve`
say at once that no worker polls the queue; when Temporal goes away `--wait` says so in one line of its
own, with none of the SDK's retry warnings."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

from tests.support.gitops import PROMOTER, Cli, Origin, make_gitops
from tests.support.workflows import copy_app, failing_in


def wait_for_line(process: subprocess.Popen[str], cli: Cli, wid: str, commit: str) -> dict[str, object]:
    """The promotion's status once prod waits for its approval (`process` still following it)."""
    waiting = cli.wait_status(
        wid, lambda s: s["commit"] == commit and s["stages"][-1]["state"] == "awaiting_approval", timeout_s=90
    )
    assert process.poll() is None, process.communicate()
    return waiting


def test_ctrl_c_says_the_promotion_goes_on_and_promote_wait_re_attaches(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    commit = origin.bump(tag="5.1.0")
    follower = cli.popen("promote", "demo", "--wait")
    try:
        waiting = wait_for_line(follower, cli, "promote-demo", commit)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 130, out + err
    assert err.strip().splitlines() == [
        "interrupted: stopped following; the promotion goes on: follow it again with "
        "`promoter status promote-demo --follow`"
    ]
    assert cli.status("promote-demo")["run_id"] == waiting["run_id"]  # it went on
    other = cli("promote", "demo", "--wait", "--to", "staging")
    assert other.returncode == 2 and "already running" in other.stderr  # a different request: refused as before
    again = cli.popen("promote", "demo", "--wait")  # the same request: follows the running one
    try:
        assert again.stdout is not None
        assert again.stdout.readline().strip() == "promote-demo is already running this request: following it"
        cancelled = cli("cancel", "promote-demo", "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        ended = json.loads(cancelled.stdout)
        assert (ended["id"], ended["run_id"], ended["state"]) == ("promote-demo", waiting["run_id"], "cancelled")
        assert ended["url"].endswith(f"/workflows/promote-demo/{waiting['run_id']}/history")
        out, err = again.communicate(timeout=90)
    finally:
        again.kill()
    assert again.returncode == 1 and "promote-demo: cancelled" in out, out + err


def test_the_last_json_object_of_promote_wait_names_the_run_and_its_url(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    commit = origin.bump(tag="5.1.1")
    r = cli("promote", "demo", "--to", "staging", "--wait", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert (last["id"], last["state"], last["commit"]) == ("promote-demo", "succeeded", commit)
    assert last["run_id"] == cli.status("promote-demo")["run_id"]
    assert last["url"].endswith(f"/workflows/promote-demo/{last['run_id']}/history")


def test_history_of_a_mistyped_app_or_environment_is_exit_2_naming_the_real_ones(stack: tuple[Cli, Origin]) -> None:
    cli, _ = stack
    app = cli("history", "dmeo")
    assert (app.returncode, app.stdout) == (2, "")
    assert app.stderr.strip() == "error: unknown app 'dmeo'; apps: demo"
    env = cli("history", "demo", "--env", "prdo")
    assert (
        env.returncode == 2
        and env.stderr.strip() == "error: unknown environment 'prdo'; environments: dev, staging, prod"
    )
    assert cli("history", "demo", "--json").returncode == 0
    listed = cli("list", "--app", "dmeo")  # as history: a mistyped app is no "no promotions"
    assert (listed.returncode, listed.stderr.strip()) == (2, "error: unknown app 'dmeo'; apps: demo"), listed.stdout


def test_policy_check_of_a_mistyped_environment_is_worded_as_every_command(tmp_path: Path) -> None:
    src = make_gitops(tmp_path)
    r = subprocess.run(
        [*PROMOTER, "policy", "check", "--repo", str(src), "--env", "prdo", "--app", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", "PROMOTER_STATE_DIR": str(tmp_path / "none")},
    )
    assert r.returncode == 2
    assert r.stderr.strip() == "error: unknown environment 'prdo'; environments: dev, prod, staging"


def test_promoting_a_member_of_a_running_release_set_names_the_set(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    copy_app(origin, "demo", "duo2")
    origin.bump("duo2", tag="7.7.7")  # a change to move: the set waits at prod's gate, whatever ran before
    try:
        started = cli("promote", "demo", "duo2", "--name", "duo")
        assert started.returncode == 0, started.stderr
        held = cli("status", "duo2")  # at once: `promote` returns once the set holds each member's ID
        assert held.returncode == 0 and "moving as a member of the release set promote-duo" in held.stdout, held
        r = cli("promote", "duo2")
        assert r.returncode == 2 and r.stderr.strip() == (
            "error: duo2 is moving as a member of the release set promote-duo; follow it with "
            "`promoter status promote-duo`, end the set with `promoter cancel promote-duo`, or replace the set "
            "with `promoter promote duo2 --supersede`"
        ), r.stderr
        assert cli("cancel", "promote-duo").returncode == 0
    finally:
        origin.repo.git.pull("-q", "--rebase", "origin", "main")
        folders = [f"environments/{env}/duo2" for env in ("dev", "staging", "prod")]
        origin.commit({f"{d}/{f.name}": None for d in folders for f in (origin.work / d).iterdir()}, "remove duo2")


def test_lift_hold_json_and_history_s_lifted_hold_row(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    bad = failing_in(origin, "staging", tag="6.6.7")
    try:
        reverted = cli("promote", "demo", "--to", "staging", "--wait", "--json")
        assert reverted.returncode == 1 and json.loads(reverted.stdout.strip().splitlines()[-1])["state"] == "reverted"
        asked = cli(
            "lift-hold", "demo", "--env", "staging", "--commit", bad, "--as", "alice", "--reason", "fault", "--json"
        )
        assert asked.returncode == 0, asked.stderr
        lift = json.loads(asked.stdout)
        assert (lift["id"], lift["app"], lift["env"], lift["commit"]) == (
            "release-hold-demo-staging",
            "demo",
            "staging",
            bad,
        )
        assert re.fullmatch(r"[0-9a-f-]{36}", lift["run_id"]), lift
        assert lift["pr_url"].endswith(f"/pulls/{lift['pr_number']}") and lift["state"] == "awaiting_approval"
        assert lift["url"].endswith(f"/workflows/release-hold-demo-staging/{lift['run_id']}/history")
        follower = cli.popen("status", "release-hold-demo-staging", "--follow")  # as `promote --wait` follows
        approved = cli("approve", "release-hold-demo-staging", "--env", "staging", "--as", "bob", "--json")
        assert approved.returncode == 0, approved.stderr
        followed, errors = follower.communicate(timeout=120)
        assert follower.returncode == 0 and errors == "", (followed, errors)  # to its end: succeeded
        # (whether it saw the gate wait first depends on when it started: the end is what it must see)
        # (a line when it followed the end, a table row when the lift had ended before it asked)
        assert re.search(r"staging\W+healthy", followed) and "release-hold-demo-staging" in followed, followed
        assert "[succeeded]" in followed, followed
        decided = json.loads(approved.stdout)
        assert (decided["id"], decided["run_id"], decided["decision"], decided["approver"]) == (
            "release-hold-demo-staging",
            lift["run_id"],
            "approve",
            "bob",
        )
        assert (decided["approvals"], decided["approvals_required"], decided["needs"]) == (1, 1, "")
        assert decided["url"] == lift["url"]
        deadline = time.monotonic() + 60  # the lift merges its PR once approved
        while not (
            released := [
                ln for ln in cli("history", "demo", "--env", "staging").stdout.splitlines() if " hold-released " in ln
            ]
        ):
            assert time.monotonic() < deadline
        assert re.fullmatch(rf"\S+  staging\s+hold-released {bad[:7]}  alice: fault", released[0]), released
    finally:
        origin.repo.git.pull("-q", "--rebase", "origin", "main")  # dev as it was
        origin.repo.git.revert("--no-edit", bad)
        origin.repo.git.push("-q", "origin", "main")


def test_a_killed_worker_is_said_at_once_and_a_lost_server_in_one_line(stack: tuple[Cli, Origin]) -> None:
    """Last in the module: it kills the stack's worker, then its Temporal server."""
    cli, origin = stack
    commit = origin.bump(tag="5.2.0")
    follower = cli.popen("promote", "demo", "--wait")
    try:
        wait_for_line(follower, cli, "promote-demo", commit)
        pids = json.loads((cli.state_dir / "stack.json").read_text())["pids"]
        os.kill(pids["worker"], signal.SIGKILL)
        psutil.Process(pids["worker"]).wait(timeout=30)
        asked = (["status", "promote-demo"], ["approve", "promote-demo", "--env", "prod", "--as", "bob"])
        # a status over HTTP and an approval over gRPC: each transport, and each kind of ask, once
        for args, transport in zip(asked, (cli, cli.over_grpc()), strict=True):
            began = time.monotonic()
            r = transport(*args)
            took = time.monotonic() - began
            assert r.returncode == 2, r.stdout + r.stderr
            assert r.stderr.strip().splitlines() == [
                "error: no worker is polling task queue 'promoter'; start one with `promoter worker` "
                "(or `promoter up` for the embedded stack)"
            ], args
            assert took < 30, (args, took)  # not the minute a killed worker's last poll lingers (5 + 12 s)
        temporal = psutil.Process(pids["temporal"])
        for child in temporal.children(recursive=True):
            child.kill()
        temporal.kill()
        out, err = follower.communicate(timeout=120)
    finally:
        follower.kill()
    assert follower.returncode == 3, out + err
    assert "\x1b[" not in err and "temporalio_client" not in err and "WARN" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, whatever else the follower said before it
    [line] = lines
    assert re.fullmatch(
        r"error: lost the connection to Temporal at 127\.0\.0\.1:\d+ \(.*\); the promotion is still running: "
        r"follow it with `promoter status promote-demo`, live with `promoter status promote-demo --follow`",
        line,
    ), line
