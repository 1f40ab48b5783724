"""`promoter promote` and `dry-run`: what starts work on a worker, and following it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from promoter.cli.common import (
    AsJson,
    CommitOpt,
    SetName,
    StateDir,
    app,
    checked_request,
    client,
    err,
    out,
    release,
    run_async,
    whoami,
)
from promoter.cli.render import KIND, nothing_to_promote, stage_lines, stage_plan, subject, table
from promoter.errors import ConnectionLost
from promoter.names import workflow_id
from promoter.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client

    from promoter.models import PromotionPlan, PromotionStatus
    from promoter.promotions import Execution, Promotions

EXIT_CONNECTION_LOST = 3  # `--wait` lost Temporal: the promotion's outcome is unknown, not failed
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


@app.command()
def promote(
    app_names: Annotated[list[str], typer.Argument(metavar="APP...", help="one app, or several: one release set")],
    commit: CommitOpt = None,
    to: Annotated[str | None, typer.Option(help="last environment to promote to")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow live; exit 0 only on succeeded")] = False,
    as_json: AsJson = False,
    requested_by: Annotated[str | None, typer.Option("--as", help="who asks (default: $USER)")] = None,
    supersede: Annotated[
        bool, typer.Option("--supersede", help="replace a running promotion of APP: it is cancelled and its PRs closed")
    ] = False,
    name: SetName = None,
    state_dir: StateDir = None,
) -> None:
    """Start a promotion of APP (several APPs: one release set, moved together); prints its ID and UI link."""
    app_name, members = release(app_names, name)
    run_async(_promote(Settings.load(state_dir), app_name, commit, to, wait, as_json, requested_by, supersede, members))


async def _promote(
    s: Settings,
    app_name: str,
    commit: str | None,
    to: str | None,
    wait: bool,
    as_json: bool,
    requested_by: str | None,
    supersede: bool = False,
    members: list[str] | None = None,
) -> int:
    from promoter import api
    from promoter import promotions as promotions_api

    wid = checked_request(app_name, to, commit)
    temporal = await client(s)
    promotions = api.GrpcPromotions(temporal)
    running = await _ended_or_running(promotions, wid)
    if not supersede and running is not None and running.status == "RUNNING":
        if running.parent_id:  # a release set's claim on the app: name the set, not the claim
            raise promotions_api.member_of_set(app_name, running.parent_id)
        if not wait or not await _same_request(temporal, s, running, app_name, commit, to, members or []):
            raise api.already_running(app_name)
        if not as_json:  # its own promotion, asked for again with --wait: follow it rather than refuse
            out.print(f"{wid} is already running this request: following it", markup=False)
        return await _wait(s, promotions, wid, running.run_id, as_json)
    plan = await api.resolve(temporal, s.task_queue, app_name, commit, to, members or [])
    handle = await api.start(temporal, s.task_queue, plan, requested_by or whoami(), supersede, s.ui_url)
    run_id = handle.result_run_id
    if plan.members:  # so that `promoter status <member>` answers as soon as this returns
        await _claimed(promotions, wid, plan.members)
    if not (as_json and wait):  # following with --json prints only the outcome
        _started(s, plan, wid, run_id, as_json)
    return await _wait(s, promotions, wid, run_id, as_json) if wait else 0


async def _same_request(
    temporal: Client,
    s: Settings,
    running: Execution,
    app_name: str,
    commit: str | None,
    to: str | None,
    members: list[str],
) -> bool:
    """Whether the running promotion moves what this request asks for: the same commit (the newest of the
    app when none is named: resolved on a worker), the same members, and the same last environment."""
    from promoter import api

    if sorted(running.memo.get("members") or []) != sorted(members):
        return False
    plan = await api.resolve(temporal, s.task_queue, app_name, commit, to, members)
    if running.memo.get("commit") != plan.commit:
        return False
    stages = (await api.GrpcPromotions(temporal).status(running)).stages
    return [st.env for st in stages] == [e.config.name for e in plan.environments]


async def _wait(s: Settings, promotions: Promotions, wid: str, run_id: str | None, as_json: bool) -> int:
    """Follow the run to its end: exit 0 on succeeded, 1 otherwise, 3 when Temporal was lost, 130 on
    Ctrl-C, which stops following only (the promotion goes on: the line says how to follow it again)."""
    import asyncio

    url = s.workflow_url(wid, run_id)
    try:
        status = await _follow(promotions, wid, run_id, quiet=as_json)
    except ConnectionLost as e:
        line = (
            f"lost the connection to Temporal at {s.temporal_address} ({e}); the promotion is still running: "
            f"follow it with `promoter status {wid}`, live with `promoter status {wid} --follow`"
        )
        if as_json:
            print(json.dumps({"id": wid, "run_id": run_id, "state": "unknown", "message": line, "url": url}))
        err.print(f"error: {line}", markup=False)
        return EXIT_CONNECTION_LOST
    except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C: asyncio.run cancels this task
        err.print(
            f"interrupted: stopped following; the promotion goes on: follow it again with "
            f"`promoter status {wid} --follow`",
            markup=False,
        )
        return EXIT_INTERRUPTED
    if as_json:
        print(json.dumps({**status.model_dump(mode="json"), "kind": KIND, "run_id": run_id, "url": url}))
    else:
        out.print(f"{wid}: [bold]{status.state.value}[/bold]" + (f" — {status.message}" if status.message else ""))
    return 0 if status.state.value == "succeeded" else 1


def _started(s: Settings, plan: PromotionPlan, wid: str, run_id: str | None, as_json: bool) -> None:
    """Say what started: its ID and UI link (as JSON when asked and not waiting; nothing else then)."""
    url = s.workflow_url(wid, run_id)
    if as_json:
        environments = [e.config.name for e in plan.environments]
        shown = {"id": wid, "run_id": run_id, "app": plan.app, "members": plan.members, "commit": plan.commit}
        print(json.dumps({**shown, "environments": environments, "url": url}))
        return
    from promoter.environments import path_line  # here: `promoter --help` never loads pydantic

    envs = path_line(plan.environments)
    out.print(f"started {wid} ({subject(plan.app, plan.members)} @ {plan.short_commit}: {envs})", markup=False)
    if url:
        out.print(f"UI: {url}")


async def _claimed(promotions: Promotions, wid: str, members: list[str], timeout_s: float = 30.0) -> None:
    """Wait until the release set `wid` holds each member's ID (its claims start as it starts), or it
    ended (it could not take one: its status says why), or `timeout_s` passed (no worker yet: the
    set takes them once one runs)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    pending = [workflow_id(m) for m in members]
    while pending and time.monotonic() < deadline:
        for member in list(pending):
            held = await promotions.describe(member)
            if held is not None and held.status == "RUNNING" and held.parent_id == wid:
                pending.remove(member)
        the_set = await promotions.describe(wid)
        if pending and (the_set is None or the_set.status != "RUNNING"):
            return
        if pending:
            await asyncio.sleep(0.2)


async def _ended_or_running(promotions: Promotions, wid: str, timeout_s: float = 60.0) -> Execution | None:
    """The latest run of `wid`. One that has reached its outcome (its memo says so) but is still closing
    (a decided gate's PR watcher ends within seconds; one on a worker that died, within its heartbeat
    timeout) is waited for, so that `promote` right after `status` said `succeeded` is not refused."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        execution = await promotions.describe(wid)
        running = execution is not None and execution.status == "RUNNING"
        ending = running and execution is not None and execution.memo.get("state", "running") != "running"
        if not ending or time.monotonic() > deadline:
            return execution
        await asyncio.sleep(0.2)


async def _follow(promotions: Promotions, wid: str, run_id: str | None, quiet: bool) -> PromotionStatus:
    """Follow the promotion until it closes: a live table on a terminal, lines otherwise, nothing when
    `quiet`. `ConnectionLost` when Temporal cannot be reached any more: the outcome is then unknown."""
    from rich.live import Live

    live = Live(console=out.real(), auto_refresh=False) if (out.is_terminal and not quiet) else None
    seen: dict[str, str] = {}

    def show(status: PromotionStatus) -> None:
        if live:
            live.update(table(status), refresh=True)
        elif not quiet:
            for line in stage_lines(status, seen):
                out.print(line)

    try:
        if live:
            live.start()
        final = await promotions.follow(wid, run_id, show)
    finally:
        if live:
            live.stop()
    if live:
        out.print(table(final))
    return final


@app.command("dry-run")
def dry_run(
    app_names: Annotated[list[str], typer.Argument(metavar="APP...", help="one app, or several: one release set")],
    commit: CommitOpt = None,
    to: Annotated[str | None, typer.Option(help="last environment to look at")] = None,
    diff: Annotated[bool, typer.Option("--diff", help="each environment's change as a unified diff too")] = False,
    as_json: AsJson = False,
    name: SetName = None,
    state_dir: StateDir = None,
) -> None:
    """What promoting APP (or the release set of several APPs) would do in every environment, without
    starting anything: exit 0 when every stage could pass, 1 when one would be denied."""
    app_name, members = release(app_names, name)
    run_async(_dry_run(Settings.load(state_dir), app_name, commit, to, diff, as_json, members))


# the old name, hidden: click says on stderr that it is deprecated, and it runs the dry run
app.command("plan", hidden=True, deprecated=True)(dry_run)


async def _dry_run(
    s: Settings,
    app_name: str,
    commit: str | None,
    to: str | None,
    diff: bool,
    as_json: bool,
    members: list[str] | None = None,
) -> int:
    from promoter import api

    checked_request(app_name, to, commit)
    dry = await api.dry_run(await client(s), s.task_queue, app_name, commit, to, with_patch=diff, members=members or [])
    if as_json:
        print(json.dumps({**dry.model_dump(mode="json"), "denied": dry.denied}))
        return 1 if dry.denied else 0
    p = dry.plan
    from promoter.environments import path_line

    envs = path_line(p.environments)
    out.print(
        f"plan of {subject(p.app, p.members)} @ {p.short_commit} by {p.author}: {envs}", markup=False, highlight=False
    )
    for st in dry.stages:
        for line in stage_plan(st):
            out.print(line, markup=False, highlight=False)
        if st.patch:
            out.print(st.patch.rstrip("\n"), markup=False, highlight=False)
    if dry.denied:
        err.print(f"{dry.denied[0]} would be denied: a promotion of {p.app} would stop there", markup=False)
        return 1
    out.print(nothing_to_promote(dry) or "every stage could pass", markup=False)
    return 0
