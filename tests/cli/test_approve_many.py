"""Deciding many gates in one command on the embedded stack: `promoter approve --env prod ID ID ID`
approves each (concurrently) with one line each and its own signature naming its own run, names the
one that failed on stderr and exits 1 while the others are still approved; `reject --waiting` decides
every promotion whose gate at the environment waits; malformed input is refused before anything is
decided."""

from __future__ import annotations

import json
import subprocess

from tests.support.gitops import PROMOTER, Cli, Origin
from tests.support.workflows import copy_app

APPS = ("burst-a", "burst-b", "burst-c")


def test_approve_several_at_once_each_signed_and_the_failed_one_named(stack: tuple[Cli, Origin]) -> None:
    cli, origin = stack
    for app in APPS:
        copy_app(origin, "demo", app)
    for app in APPS:
        origin.bump(app=app, tag="9.1.0")
        started = cli("promote", app, "--json")
        assert started.returncode == 0, started.stderr
    for app in APPS:
        cli.wait_status(f"promote-{app}", lambda s: s["stages"][2]["state"] == "awaiting_approval", timeout_s=240)

    key = str(cli.state_dir / "keys" / "alice")
    refused = cli("approve", "--env", "prod", "--as", "alice", "--sign-key", key, "promote-burst-a", "bad name!")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr  # one line, nothing decided
    assert cli.status("promote-burst-a")["stages"][2]["approvals"] == []  # type: ignore[index]

    both = cli("approve", "--env", "prod", "--as", "alice", "--sign-key", key, "promote-burst-a", "burst-b", "gone")
    assert both.returncode == 1, both.stderr
    assert sorted(both.stdout.splitlines()) == [
        "promote-burst-a: prod approved by alice; the gate is open",
        "promote-burst-b: prod approved by alice; the gate is open",
    ]
    assert "promote-gone: no promotion promote-gone" in both.stderr
    assert both.stderr.strip().splitlines()[-1] == "1 of 3 not approved: promote-gone"
    runs = set()
    for app in APPS[:2]:
        done = cli.wait_status(f"promote-{app}", lambda s: s["state"] != "running", timeout_s=120)
        assert done["state"] == "succeeded", done["message"]
        (approval,) = done["stages"][2]["approvals"]  # type: ignore[index]
        assert approval["proof"] == "signed" and approval["via"] == "cli"
        assert f"promotion promote-{app}\n" in approval["statement"]  # each statement names its own promotion
        runs.add(done["run_id"])
        assert str(done["run_id"]) in approval["statement"]  # and its own run
    assert len(runs) == 2

    rejected = subprocess.run(  # every gate still waiting at prod: burst-c
        [*PROMOTER, "reject", "--env", "prod", "--as", "alice", "--waiting", "--reason", "the CAB said no"],
        env={**cli.env, "PROMOTER_SIGNING_KEY": key},
        capture_output=True,
        text=True,
    )
    assert rejected.returncode == 0, rejected.stderr
    assert "promote-burst-c: prod rejected by alice" in rejected.stdout.splitlines()
    ended = cli.wait_status("promote-burst-c", lambda s: s["state"] != "running", timeout_s=120)
    assert ended["state"] == "rejected"
    nothing = cli("approve", "--env", "prod", "--as", "alice", "--waiting")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "no promotion waits at prod's gate", nothing.stdout
    assert json.loads(cli("list", "--json", "--app", "burst-c").stdout)[0]["state"] == "rejected"
