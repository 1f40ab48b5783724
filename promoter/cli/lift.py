"""`promoter lift-hold`, and a lift's status: a hold an automatic revert put on a commit, lifted
through a PR that the environment's approvers must approve (the `LiftHoldWorkflow`), shown and followed
by `promoter status` as a promotion is."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from promoter.cli.common import AsJson, StateDir, app, changed, client, err, out, print_status, run_async
from promoter.cli.render import lift_kind, lift_status, stage_lines
from promoter.errors import ConnectionLost, PromoterError
from promoter.names import check as check_name
from promoter.names import check_revision, workflow_id
from promoter.settings import Settings

if TYPE_CHECKING:
    from promoter.models import PromotionStatus
    from promoter.promotions import Execution, Promotions

POLL_S = 0.5  # how often following a lift asks for its state


@app.command("lift-hold")
def lift_hold(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    env: Annotated[str, typer.Option("--env", help="the environment the commit is held out of")],
    commit: Annotated[str, typer.Option("--commit", help="the held commit")],
    requested_by: Annotated[str, typer.Option("--as", help="who asks")],
    reason: Annotated[str, typer.Option(help="why it may be promoted there again (required)")],
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """Lift the hold an automatic revert put on a commit, through a PR that ENV's approvers must approve."""
    run_async(_lift_hold(Settings.load(state_dir), app_name, env, commit, requested_by, reason, as_json))


# the old name, hidden: click says on stderr that it is deprecated, and it lifts the hold
app.command("release-hold", hidden=True, deprecated=True)(lift_hold)


async def _lift_hold(
    s: Settings, app_name: str, env: str, commit: str, who: str, reason: str, as_json: bool = False
) -> int:
    from promoter import api
    from promoter.models import LiftHoldInput

    workflow_id(app_name)
    check_name(env, "environment")
    check_revision(commit)
    if not reason.strip():
        raise PromoterError("lifting a hold needs a reason: add --reason TEXT")
    temporal = await client(s)
    req = LiftHoldInput(app=app_name, env=env, commit=commit, requested_by=who, reason=reason)
    handle = await api.lift_hold(temporal, s.task_queue, req)
    stage = await api.GrpcPromotions(temporal).hold_pr(handle.id)
    if as_json:
        pr = {"pr_number": stage.pr_number, "pr_url": stage.pr_url, "state": stage.state.value}
        changed(s, handle.id, handle.result_run_id, app=app_name, env=env, commit=commit, **pr, message=stage.message)
        return 0
    out.print(f"{handle.id}: PR #{stage.pr_number} {stage.pr_url}", markup=False, highlight=False)
    out.print(f"{stage.message}; approve with `promoter approve {handle.id} --env {env} --as <you>`", markup=False)
    return 0


async def lift_of(s: Settings, promotions: Promotions, execution: Execution, as_json: bool, follow: bool) -> int:
    """A lift of a hold (`promoter lift-hold`): its one stage, its gate and PR; followed to its end when
    asked, as `promote --wait` follows: a query that fails (no worker yet, a busy one) is asked again,
    Temporal unreachable for `UNREACHABLE_FOR_S` is exit 3 (the outcome is unknown), Ctrl-C exit 130;
    each says how to follow again."""
    import asyncio

    from promoter.cli.promote import EXIT_CONNECTION_LOST, EXIT_INTERRUPTED

    st = lift_status(execution.id, execution.run_id, execution.status, await promotions.lift(execution), execution.memo)
    again = f"follow it again with `promoter status {execution.id} --follow`"
    try:
        if follow and execution.status == "RUNNING":
            st, execution = await _follow_lift(promotions, execution, st, as_json)
    except ConnectionLost as e:
        line = f"lost the connection to Temporal at {s.temporal_address} ({e}); the lift is still running: {again}"
        if as_json:  # as `promote --wait --json`: the outcome is unknown
            url = s.workflow_url(execution.id, execution.run_id)
            unknown = {"id": execution.id, "run_id": execution.run_id, "state": "unknown", "message": line}
            print(json.dumps({**unknown, "url": url}))
        err.print(f"error: {line}", markup=False)
        return EXIT_CONNECTION_LOST
    except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C: stop following, the lift goes on
        err.print(f"interrupted: stopped following; the lift goes on: {again}", markup=False)
        return EXIT_INTERRUPTED
    url = s.workflow_url(execution.id, execution.run_id)
    if as_json:
        print(json.dumps({**st.model_dump(mode="json"), "kind": lift_kind(execution.id), "url": url}))
    else:
        print_status(st, {}, url)
    return (0 if st.state.value == "succeeded" else 1) if follow else 0


async def _follow_lift(
    promotions: Promotions, execution: Execution, st: PromotionStatus, as_json: bool
) -> tuple[PromotionStatus, Execution]:
    """The lift's status once its run closed, printing each change of its stage on the way (unless
    `as_json`); `ConnectionLost` when Temporal could not be asked for `UNREACHABLE_FOR_S`."""
    import asyncio
    import time

    from promoter.promotions import UNREACHABLE_FOR_S

    seen: dict[str, str] = {}
    unreachable_since: float | None = None
    while execution.status == "RUNNING":
        for line in [] if as_json else stage_lines(st, seen):
            out.print(line, markup=False, highlight=False)
        await asyncio.sleep(POLL_S)
        try:
            execution = await promotions.describe(execution.id) or execution
            unreachable_since = None
        except Exception as e:  # noqa: BLE001 - Temporal away: ask again until it has been away too long
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_FOR_S:
                raise ConnectionLost(str(e) or type(e).__name__) from None
            continue
        try:
            stage = await promotions.lift(execution)
        except PromoterError:  # no worker answered this time (restarting, busy): keep following
            continue
        st = lift_status(execution.id, execution.run_id, execution.status, stage, execution.memo)
    return st, execution
