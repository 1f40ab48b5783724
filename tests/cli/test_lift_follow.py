"""`promoter status <lift> --follow` follows as `promote --wait` does: a query no worker answered this
time is asked again, Temporal unreachable for `UNREACHABLE_FOR_S` ends it with exit 3 and the line that
says how to follow again. The run itself is played by a stand-in of the `Promotions` client (the CLI's
loop is what is under test here; the real clients are tested against a real server in
tests/cli/test_cli_commands.py, which follows a lift to its end)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from promoter import promotions as promotions_module
from promoter.cli import lift
from promoter.errors import PromoterError
from promoter.models import StageState, StageStatus
from promoter.promotions import Execution
from promoter.settings import Settings

WID = "release-hold-demo-staging"


class Run:
    """A lift's run as a client sees it: `describe` and `lift` answer from a script of steps."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps  # each ask: "waiting", "unanswered" (no worker this time), "gone" (no server), "done"
        self.asked = 0

    def execution(self, status: str = "RUNNING") -> Execution:
        return Execution(WID, "r1", status, "promoter", {"app": "demo", "env": "staging", "commit": "c" * 40})

    async def describe(self, wid: str) -> Execution:
        step = self.steps[min(self.asked, len(self.steps) - 1)]
        self.asked += 1
        if step == "gone":
            raise PromoterError("cannot reach Temporal at 127.0.0.1:1")
        return self.execution("COMPLETED" if step == "done" else "RUNNING")

    async def lift(self, execution: Execution) -> StageStatus:
        if self.steps[min(self.asked - 1, len(self.steps) - 1)] == "unanswered":
            raise PromoterError("the worker did not answer within 5s; try again")
        done = execution.status == "COMPLETED"
        return StageStatus(env="staging", order=2, state=StageState.HEALTHY if done else StageState.AWAITING_APPROVAL)


def follow(run: Run, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    settings: Any = Settings.load(None)
    code = asyncio.run(lift.lift_of(settings, run, run.execution(), as_json=False, follow=True))  # type: ignore[arg-type]
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_query_no_worker_answered_is_asked_again_until_the_lift_ends(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("promoter.cli.lift.POLL_S", 0.01)
    code, out, err = follow(Run(["waiting", "unanswered", "unanswered", "waiting", "done"]), capsys)
    assert (code, err) == (0, ""), (out, err)
    assert "staging: awaiting_approval" in out and "succeeded" in out, out


def test_temporal_gone_for_too_long_is_exit_3_saying_how_to_follow_again(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("promoter.cli.lift.POLL_S", 0.01)
    monkeypatch.setattr(promotions_module, "UNREACHABLE_FOR_S", 0.05)
    code, out, err = follow(Run(["waiting", "gone"]), capsys)
    assert code == 3, (out, err)
    run = Run(["waiting", "gone"])  # with --json, stdout says the outcome is unknown, as `promote --wait --json`
    settings: Any = Settings.load(None)
    assert asyncio.run(lift.lift_of(settings, run, run.execution(), as_json=True, follow=True)) == 3  # type: ignore[arg-type]
    unknown = json.loads(capsys.readouterr().out)
    assert (unknown["id"], unknown["run_id"], unknown["state"]) == (WID, "r1", "unknown") and "url" in unknown
    assert err.strip().splitlines() == [
        f"error: lost the connection to Temporal at {Settings.load(None).temporal_address} (cannot reach Temporal "
        f"at 127.0.0.1:1); the lift is still running: follow it again with `promoter status {WID} --follow`"
    ], err
