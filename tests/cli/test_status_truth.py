"""What `promoter status` and `promoter list` print is true: no approval counts on stages without a gate
or skipped; a lift of a hold shown as a run of one stage; a finished promotion listed with its outcome
(never its stale stage state); IDs never cut; a member of a running release set names the set and how to
follow it. Rendering rules on real model objects; the end-to-end cases are in tests/cli/test_cli.py."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime

from pytest_httpserver import HTTPServer
from rich.console import Console

from promoter.cli.common import print_status
from promoter.cli.render import KIND, approvals, lift_app, lift_status, list_row, listing, table, title
from promoter.models import Approval, PromotionState, PromotionStatus, StageState, StageStatus
from promoter.promotions import Execution, Listed
from promoter.temporal_http import HttpPromotions

LONG = "promote-a-rather-long-release-set-name-that-goes-past-eighty-columns"


def drawn(renderable: object, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def stage(env: str, state: StageState, required: int = 0, approved: int = 0, **fields: object) -> StageStatus:
    given = [Approval(approver=f"a{i}", at=datetime.now(UTC), via="cli") for i in range(approved)]
    return StageStatus(env=env, order=0, state=state, approvals_required=required, approvals=given, **fields)  # type: ignore[arg-type]


def test_counts_only_on_stages_with_a_gate_that_was_not_skipped() -> None:
    assert approvals(stage("prod", StageState.SKIPPED, required=1)) == ""
    assert approvals(stage("staging", StageState.HEALTHY)) == ""
    assert approvals(stage("prod", StageState.AWAITING_APPROVAL, required=2, approved=1)) == "1/2"
    status = PromotionStatus(
        id="promote-demo",
        app="demo",
        commit="abcdef1234",
        state=PromotionState.SUCCEEDED,
        stages=[stage("staging", StageState.HEALTHY), stage("prod", StageState.SKIPPED, required=1)],
    )
    assert "0/1" not in drawn(table(status), width=200)


def test_a_lift_of_a_hold_is_a_run_of_one_stage() -> None:
    assert lift_app("release-hold-demo-api-staging", "staging") == "demo-api"
    assert lift_app("release-hold-demo-staging", "") == ""  # its env unknown (it failed at once, with no memo)
    named = lift_status(
        "release-hold-demo-staging",
        "r1",
        "FAILED",
        stage("", StageState.FAILED),
        {"app": "demo", "env": "staging", "commit": "abcdef1234"},
    )
    assert (named.app, named.commit, named.state) == ("demo", "abcdef1234", PromotionState.FAILED)
    assert title(named) == "release-hold-demo-staging  lift of the hold of demo @ abcdef1  [failed]"
    waiting = stage("staging", StageState.AWAITING_APPROVAL, required=1, pr_number=7, pr_url="http://forge/pulls/7")
    st = lift_status("release-hold-demo-staging", "r1", "RUNNING", waiting)
    assert (st.app, st.state, [s.env for s in st.stages]) == ("demo", PromotionState.RUNNING, ["staging"])
    assert title(st) == "release-hold-demo-staging  lift of the hold of demo in staging  [running]"
    shown = drawn(table(st), width=200)
    assert "#7" in shown and "0/1" in shown
    lifted = stage("staging", StageState.HEALTHY, required=1, approved=1, message="the hold is lifted")
    done = lift_status("release-hold-demo-staging", "r1", "COMPLETED", lifted)
    assert (done.state, done.message) == (PromotionState.SUCCEEDED, "the hold is lifted")
    rejected = lift_status("release-hold-demo-staging", "r1", "COMPLETED", stage("staging", StageState.REJECTED))
    assert rejected.state == PromotionState.REJECTED
    cancelled = lift_status("release-hold-demo-staging", "r1", "CANCELED", stage("", StageState.FAILED))
    assert (cancelled.state, cancelled.stages) == (PromotionState.CANCELLED, [])


def listed(wid: str, status: str, memo: dict[str, object], attributes: dict[str, str] | None = None) -> Listed:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return Listed(wid, "r1", status, memo, attributes or {}, at, None if status == "RUNNING" else at)


def test_a_finished_promotion_is_listed_with_its_outcome_never_its_stale_stage_state() -> None:
    stale = {"app": "demo", "commit": "abcdef1234", "stage": "prod", "stage_state": "checking_policy"}
    rows = [
        list_row(listed("promote-demo", "COMPLETED", {**stale, "state": "succeeded"})),
        list_row(listed("promote-api", "COMPLETED", {**stale, "app": "api", "state": "reverted", "stage": "staging"})),
        list_row(listed("promote-web", "CANCELED", {**stale, "app": "web"})),
        list_row(listed(LONG, "RUNNING", {**stale, "app": LONG[8:]}, {"PromotionState": "awaiting_approval"})),
    ]
    assert [(r["kind"], r["state"], r["stage"], r["stage_state"]) for r in rows] == [
        (KIND, "succeeded", "prod", None),
        (KIND, "reverted", "staging", None),
        (KIND, "cancelled", "prod", None),
        (KIND, "running", "prod", "awaiting_approval"),
    ]
    lines = listing(rows, terminal=False)
    assert isinstance(lines, list)
    text = "\n".join(lines)
    assert "checking_policy" not in text and LONG in text  # nothing is cut when stdout is not a terminal
    assert [line.split()[4:] for line in lines[1:3]] == [
        ["succeeded", "2026-01-02T03:04:05"],  # succeeded: no stage
        ["reverted", "at", "staging", "2026-01-02T03:04:05"],  # the stage it ended at
    ]
    assert "prod: awaiting_approval" in lines[4]
    on_terminal = drawn(listing(rows, terminal=True), width=80)
    assert LONG in on_terminal and "checking_policy" not in on_terminal  # the ID is never cut at 80 columns


def test_a_member_of_a_running_release_set_names_the_set_and_how_to_follow_it() -> None:
    """A claim has no stages: its message (the set's name and how to follow it, written by the claim,
    tests/workflows/test_release_sets.py) is printed whole under its title, never an empty table."""
    said = "moving as a member of the release set promote-duo; follow it with `promoter status promote-duo --follow`"
    claim = PromotionStatus(id="promote-api", app="api", commit="abcdef1234", message=said)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    from promoter.cli import common

    real, common.out._console = common.out._console, console
    try:
        print_status(claim, {}, None)
    finally:
        common.out._console = real
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert shown.splitlines() == ["promote-api  api @ abcdef1  [running]", f"  {said}"]


def _payloads(value: object) -> dict[str, object]:
    encoding = base64.b64encode(b"json/plain").decode()
    return {
        "payloads": [
            {"metadata": {"encoding": encoding}, "data": base64.b64encode(json.dumps(value).encode()).decode()}
        ]
    }


async def test_the_client_api_reads_a_lift_of_a_hold_as_its_stage(httpserver: HTTPServer) -> None:
    """`Promotions.lift` (here over the HTTP API; the gRPC side in test_cli.py): a finished lift's result,
    and a lift that failed (no such hold) as a failed stage saying why."""
    wid, history = "release-hold-demo-staging", "/api/v1/namespaces/default/workflows/release-hold-demo-staging/history"
    lifted = StageStatus(env="staging", order=0, state=StageState.HEALTHY, message="the hold is lifted")
    done = {"workflowExecutionCompletedEventAttributes": {"result": _payloads(lifted.model_dump(mode="json"))}}
    httpserver.expect_oneshot_request(history, "GET").respond_with_json({"history": {"events": [done]}})
    failed = {"workflowExecutionFailedEventAttributes": {"failure": {"message": "no hold of demo in staging"}}}
    httpserver.expect_oneshot_request(history, "GET").respond_with_json({"history": {"events": [failed]}})
    promotions = HttpPromotions(httpserver.url_for("/"), "default")
    assert await promotions.lift(Execution(wid, "r1", "COMPLETED", "promoter", {})) == lifted
    ended = await promotions.lift(Execution(wid, "r1", "FAILED", "promoter", {}))
    assert (ended.state, ended.message) == (StageState.FAILED, "no hold of demo in staging")
    shown = lift_status(wid, "r1", "FAILED", ended)
    assert (shown.app, shown.state, shown.stages) == ("", PromotionState.FAILED, [])


def test_a_dry_run_where_nothing_differs_says_so_and_how_to_make_a_change() -> None:
    from promoter.cli.render import nothing_to_promote
    from promoter.models import DryRun, PromotionPlan, StagePlan

    plan = PromotionPlan(
        app="demo", commit="a" * 40, short_commit="aaaaaaa", author="dana", message="m", environments=[]
    )
    fresh = DryRun(
        plan=plan,
        stages=[
            StagePlan(env="dev", source=True),
            StagePlan(env="staging", skipped=True),
            StagePlan(env="prod", skipped=True),
        ],
    )
    assert nothing_to_promote(fresh) == (
        "nothing to promote: staging, prod already match dev at aaaaaaa; "
        "commit a change to environments/dev/demo/ (e.g. a new image) and push it to main first"
    )
    moving = fresh.model_copy(update={"stages": [fresh.stages[0], StagePlan(env="staging"), fresh.stages[2]]})
    assert nothing_to_promote(moving) == ""  # one environment would change: the usual verdict
    both = fresh.model_copy(update={"plan": plan.model_copy(update={"app": "duo", "members": ["api", "worker"]})})
    assert "environments/dev/api/ and environments/dev/worker/" in nothing_to_promote(both)


def test_promoting_an_app_a_drift_heal_holds_names_the_heal_not_a_release_set() -> None:
    from promoter.promotions import member_of_set

    said = str(member_of_set("demo", "drift-staging-20261202T1200"))
    assert said.startswith("demo is held for the drift heal drift-staging-20261202T1200, which re-applies it now")
    assert "release set" not in said and "promoter cancel" not in said
    assert "release set promote-duo" in str(member_of_set("api", "promote-duo"))
