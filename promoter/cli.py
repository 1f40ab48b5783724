"""The `promoter` command line. It parses and dispatches; each command is a function returning an exit
code: 0 success, 1 the promotion or check did not succeed, 2 bad input (one line saying what to fix).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from promoter.errors import PromoterError
from promoter.settings import DEFAULT_STATE_DIR, Settings


def _state_dir(given: str | None) -> Path:
    """--state-dir, else $PROMOTER_STATE_DIR, else .promoter: the same for every command."""
    return Path(given or os.environ.get("PROMOTER_STATE_DIR") or DEFAULT_STATE_DIR)


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Policy-gated GitOps promotion on Temporal.",
)


class _Console:
    """rich's Console, made on first use: importing rich costs every command ~25 ms at start."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def real(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)

StateDir = Annotated[str | None, typer.Option("--state-dir", help="the embedded stack's state directory")]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output (see README)")]
CommitOpt = Annotated[
    str | None, typer.Option("--commit", help="commit of main (default: the newest touching the source app folder)")
]

STAGE_COLOURS = {
    "healthy": "green",
    "skipped": "dim",
    "awaiting_approval": "yellow",
    "failed": "red",
    "policy_denied": "red",
    "rejected": "red",
    "expired": "red",
    "reverted": "red",
    "cancelled": "red",
}


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _run(coro: Awaitable[int]) -> None:
    import asyncio  # here, not at the top: `policy check` never needs an event loop

    raise Exit(asyncio.run(coro))  # type: ignore[arg-type]


from promoter.names import check as _check_name  # noqa: E402
from promoter.names import check_revision, promotion_id, workflow_id  # noqa: E402

# ------------------------------------------------------------------------------------ stack


@app.command()
def up(
    repo: Annotated[Path, typer.Option(help="GitOps repository whose environments/ and policies/ seed origin")] = Path(
        "."
    ),
    state_dir: StateDir = None,
    detach: Annotated[bool, typer.Option("--detach", help="return once everything is up")] = False,
    port: Annotated[int | None, typer.Option(help="Temporal gRPC port (default 7233, or a free one)")] = None,
    ui_port: Annotated[int | None, typer.Option(help="Web UI port (default 8233, or a free one)")] = None,
) -> None:
    """Start the embedded stack: Temporal dev server with its Web UI, a worker, origin and local forge."""
    from promoter.stack import Stack, alive, wait_until

    stack = Stack(_state_dir(state_dir))
    info = stack.up(repo, port=port, ui_port=ui_port)
    out.print(f"Temporal UI   {info['ui_url']}")
    out.print(f"Temporal      {info['temporal_address']}")
    if info.get("temporal_http_url"):
        out.print(f"Temporal HTTP {info['temporal_http_url']}")
    if info.get("forge_url"):
        out.print(f"Forge         {info['forge_url']}/pulls")
    out.print(f"origin        {info['repo_url']}")
    out.print(f"state         {stack.dir}")
    if detach:
        raise Exit(0)
    out.print("Press Ctrl-C to stop.")
    pids: dict[str, int] = info["pids"]  # type: ignore[assignment]
    try:
        wait_until(lambda: not all(alive(p) for p in pids.values()), float("inf"), "a stack process to exit", 0.5)
        err.print("error: a stack process exited; see the logs in " + str(stack.logs))
        raise Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.down()
    raise Exit(0)


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop what `promoter up` started (its state stays for the next `up`)."""
    from promoter.stack import Stack

    where = _state_dir(state_dir)
    stopped = Stack(where).down()
    out.print("stopped" if stopped else f"nothing running in {where}")
    raise Exit(0)


@app.command()
def worker(ready_file: Annotated[str | None, typer.Option(hidden=True)] = None) -> None:
    """Run a worker against PROMOTER_TEMPORAL_ADDRESS (default localhost:7233)."""
    import logging

    from promoter.secrets import install_log_filter
    from promoter.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_filter()  # every line: secrets masked
    _run(_worker(Settings.load(), ready_file, run_worker))


async def _worker(settings: Settings, ready_file: str | None, runner: Callable[..., Awaitable[None]]) -> int:
    await runner(settings, ready_file)
    return 0


# ------------------------------------------------------------------------------------ promotions


SetName = Annotated[
    str | None,
    typer.Option("--name", help="a release set's name (default: its apps joined by '-'); its ID is promote-NAME"),
]


@app.command()
def promote(
    app_names: Annotated[list[str], typer.Argument(metavar="APP...", help="one app, or several: one release")],
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
    app_name, members = _release(app_names, name)
    _run(_promote(Settings.load(state_dir), app_name, commit, to, wait, as_json, requested_by, supersede, members))


def _subject(app_name: str, members: list[str]) -> str:
    """What a promotion moves, as the CLI prints it: `demo`, or a release set `release = api + worker`."""
    return app_name + (f" = {' + '.join(members)}" if members else "")


def _release(app_names: list[str], name: str | None) -> tuple[str, list[str]]:
    """(the promotion's subject, its members): one app alone, or a release set's name and apps."""
    for app_name in app_names:
        _check_name(app_name, "app")
    if len(set(app_names)) != len(app_names):
        raise PromoterError("name each app of a release set once")
    if len(app_names) == 1:
        if name is not None:
            raise PromoterError("--name names a release set: give two apps or more")
        return app_names[0], []
    set_name = name if name is not None else "-".join(app_names)
    if name is None and len(set_name) > 50:
        raise PromoterError("the apps' names make too long a set name: give the set one with --name")
    return _check_name(set_name, "release set"), app_names


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

    wid = _checked_request(app_name, to, commit)
    client = await _client(s)
    running = await _ended_or_running(api.GrpcPromotions(client), wid)
    if not supersede and running is not None and running.status == "RUNNING":
        raise api.already_running(app_name)
    plan = await api.plan(client, s.task_queue, app_name, commit, to, members or [])
    handle = await api.start(client, s.task_queue, plan, requested_by or _whoami(), supersede, s.ui_url)
    url = s.workflow_url(wid, handle.result_run_id)
    if as_json and not wait:
        print(
            json.dumps(
                {
                    "id": wid,
                    "run_id": handle.result_run_id,
                    "app": plan.app,
                    "members": plan.members,
                    "commit": plan.commit,
                    "environments": [e.config.name for e in plan.environments],
                    "url": url,
                }
            )
        )
        return 0
    if not as_json:
        envs = " → ".join(e.config.name for e in plan.environments)
        out.print(f"started {wid} ({_subject(plan.app, plan.members)} @ {plan.short_commit}: {envs})", markup=False)
        if url:
            out.print(f"UI: {url}")
    if not wait:
        return 0
    try:
        status = await _follow(client, wid, handle.result_run_id, quiet=as_json)
    except ConnectionLost as e:
        line = (
            f"lost the connection to Temporal at {s.temporal_address} ({e}); the promotion is still running: "
            f"follow it with `promoter status {wid}`"
        )
        if as_json:
            print(json.dumps({"id": wid, "run_id": handle.result_run_id, "state": "unknown", "message": line}))
        err.print(f"error: {line}", markup=False)
        return EXIT_CONNECTION_LOST
    if as_json:
        print(status.model_dump_json())
    else:
        out.print(f"{wid}: [bold]{status.state.value}[/bold]" + (f" — {status.message}" if status.message else ""))
    return 0 if status.state.value == "succeeded" else 1


EXIT_CONNECTION_LOST = 3  # `--wait` lost Temporal: the promotion's outcome is unknown, not failed
UNREACHABLE_FOR_S = 10.0  # how long `--wait` keeps asking an unreachable Temporal before it says so


class ConnectionLost(Exception):
    pass


@app.command()
def plan(
    app_names: Annotated[list[str], typer.Argument(metavar="APP...", help="one app, or several: one release")],
    commit: CommitOpt = None,
    to: Annotated[str | None, typer.Option(help="last environment to plan for")] = None,
    diff: Annotated[bool, typer.Option("--diff", help="each environment's change as a unified diff too")] = False,
    as_json: AsJson = False,
    name: SetName = None,
    state_dir: StateDir = None,
) -> None:
    """What promoting APP (or the release set of several APPs) would do in every environment, without
    starting anything: exit 0 when every stage could pass, 1 when one would be denied."""
    app_name, members = _release(app_names, name)
    _run(_plan(Settings.load(state_dir), app_name, commit, to, diff, as_json, members))


async def _plan(
    s: Settings,
    app_name: str,
    commit: str | None,
    to: str | None,
    diff: bool,
    as_json: bool,
    members: list[str] | None = None,
) -> int:
    from promoter import api

    _checked_request(app_name, to, commit)
    dry = await api.dry_run(
        await _client(s), s.task_queue, app_name, commit, to, with_patch=diff, members=members or []
    )
    if as_json:
        print(json.dumps({**dry.model_dump(mode="json"), "denied": dry.denied}))
        return 1 if dry.denied else 0
    p = dry.plan
    envs = " → ".join(st.env for st in dry.stages)
    out.print(
        f"plan of {_subject(p.app, p.members)} @ {p.short_commit} by {p.author}: {envs}", markup=False, highlight=False
    )
    for st in dry.stages:
        for line in _stage_plan(st):
            out.print(line, markup=False, highlight=False)
        if st.patch:
            out.print(st.patch.rstrip("\n"), markup=False, highlight=False)
    if dry.denied:
        err.print(f"{dry.denied[0]} would be denied: a promotion of {p.app} would stop there", markup=False)
        return 1
    out.print("every stage could pass", markup=False)
    return 0


def _stage_plan(st: Any) -> list[str]:
    """A stage of `promoter plan`, as lines: the change, the policies' decision, the gate."""
    head = f"{st.env} (source)" if st.source else st.env
    if st.skipped:
        return [f"{head}: skipped, its folder already matches"]
    lines = [head + ":"]
    if not st.source:
        changes = [f"{what} {', '.join(files)}" for what, files in st.diff.model_dump().items() if files]
        lines.append("  change: " + ("; ".join(changes) or "none"))
    if st.decision is not None:
        d = st.decision
        verdict = "allow" if d.allow else "DENY"
        lines.append(f"  policy: {verdict} (revision {d.revision or '?'}, {d.engine})")
        lines += [f"    deny {v.rule}: {v.message}" for v in d.deny]
        lines += [f"    warn {v.rule}: {v.message}" for v in d.warn]
        lines += [f"    excepted {v.rule}: {v.message}" for v in d.excepted]
    if not st.source:
        if st.approvals_required or st.require_review:
            may = [a for a in st.approvers if a not in st.screened]
            gate = f"  gate: {st.approvals_required} approval(s) from {', '.join(may) or 'nobody'}"
            gate += " + a PR review" if st.require_review else ""
            gate += "; an approving PR review counts" if st.pull_request_reviews else ""
            lines.append(gate)
            lines += [f"    {who} may not approve: {why}" for who, why in st.screened.items()]
        else:
            lines.append("  gate: none")
    if st.soak_s:
        lines.append(f"  soak: {timedelta(seconds=int(st.soak_s))} healthy before the next environment takes it")
    return lines


@app.command("release-hold")
def release_hold(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    env: Annotated[str, typer.Option("--env", help="the environment the commit is held out of")],
    commit: Annotated[str, typer.Option("--commit", help="the held commit")],
    requested_by: Annotated[str, typer.Option("--as", help="who asks")],
    reason: Annotated[str, typer.Option(help="why it may be promoted there again (required)")],
    state_dir: StateDir = None,
) -> None:
    """Lift the hold an automatic revert put on a commit, through a PR that ENV's approvers must approve."""
    _run(_release_hold(Settings.load(state_dir), app_name, env, commit, requested_by, reason))


async def _release_hold(s: Settings, app_name: str, env: str, commit: str, who: str, reason: str) -> int:
    import asyncio
    import time

    from temporalio.client import WorkflowFailureError, WorkflowQueryFailedError
    from temporalio.service import RPCError

    from promoter import api
    from promoter.models import ReleaseHoldInput, StageState, StageStatus
    from promoter.promotions import STATUS_QUERY

    workflow_id(app_name)
    _check_name(env, "environment")
    check_revision(commit)
    if not reason.strip():
        raise PromoterError("a release of a hold needs a reason: add --reason TEXT")
    client = await _client(s)
    req = ReleaseHoldInput(app=app_name, env=env, commit=commit, requested_by=who, reason=reason)
    handle = await api.release_hold(client, s.task_queue, req)
    deadline = time.monotonic() + 60
    while True:  # until its PR is open and its gate waits, or it failed (no such hold)
        desc = await handle.describe()
        if desc.status is not None and desc.status.name == "FAILED":
            try:
                await handle.result()
            except WorkflowFailureError as e:
                raise PromoterError(api.failure_message(e)) from None
        try:
            stage = await handle.query(STATUS_QUERY, result_type=StageStatus)
        except (RPCError, WorkflowQueryFailedError):  # its first workflow task has not run yet
            stage = None
        if stage is not None and stage.state != StageState.OPENING_PR:
            break
        if time.monotonic() > deadline:
            raise PromoterError(f"{handle.id} did not open its PR within 60 s; is a worker running?")
        await asyncio.sleep(0.1)
    out.print(f"{handle.id}: PR #{stage.pr_number} {stage.pr_url}", markup=False, highlight=False)
    out.print(f"{stage.message}; approve with `promoter approve {handle.id} --env {env} --as <you>`", markup=False)
    return 0


@app.command()
def drift(
    env: Annotated[str | None, typer.Argument(metavar="[ENV]", help="default: every environment")] = None,
    apps: Annotated[list[str] | None, typer.Option("--app", help="only this app (repeatable)")] = None,
    heal: Annotated[
        bool | None, typer.Option("--heal/--no-heal", help="re-apply from Git what differs (default: drift.self_heal)")
    ] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """How ENV's (or every environment's) live objects differ from Git now, field by field: exit 0 when
    they match (or were healed), 1 when something differs."""
    _run(_drift(Settings.load(state_dir), env, apps or [], heal, as_json))


async def _drift(s: Settings, env: str | None, apps: list[str], heal: bool | None, as_json: bool) -> int:
    from promoter import api
    from promoter.models import DriftInput

    for app_name in apps:
        workflow_id(app_name)
    if env is not None:
        envs = [_check_name(env, "environment")]
    else:  # every environment on main: read from the GitOps repository, as `history` does
        if not s.repo_url:
            raise PromoterError("name the environment, or set PROMOTER_REPO_URL so that its environments can be read")
        envs = [e.name for e in s.repository("cli").environments()]
    client = await _client(s)
    reports = [await api.drift(client, s.task_queue, DriftInput(env=e, apps=apps, heal=heal)) for e in envs]
    remaining = [a for r in reports for a in r.drifted if not a.healed]
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in reports]))
        return 1 if remaining else 0
    for report in reports:
        out.print(f"{report.env} against main @ {report.revision[:7]}", markup=False)
        for a in report.apps:
            if a.paused:
                out.print(f"  {a.app}: not compared, a promotion of it is in flight", markup=False)
                continue
            # each app is compared with its folder as promoter last promoted it (the merge's commit)
            promoted = f" (as promoted @ {a.revision[:7]})" if a.revision and a.revision != report.revision else ""
            if not a.drifts:
                out.print(f"  {a.app}: matches Git{promoted}", markup=False)
            else:
                healed = ", healed: re-applied from Git (live differed from Git; who changed it is not known)"
                line = f"  {a.app}: {len(a.drifts)} difference(s){promoted}" + (healed if a.healed else "")
                out.print(line, markup=False)
            for d in a.drifts:
                out.print(f"    {_difference(d.model_dump(mode='json'))}", markup=False, highlight=False)
            for u in a.unpromoted:  # on main, never promoted: never applied by a heal
                out.print(f"    {u.line()}", markup=False, highlight=False)
            if a.note:
                out.print(f"    {a.note}", markup=False, highlight=False)
    return 1 if remaining else 0


@app.command()
def history(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    env: Annotated[str | None, typer.Option(help="only this environment")] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """Every promotion, revert and released hold of APP, per environment, newest first: read from the
    GitOps repository's main alone (no Temporal server needed)."""
    workflow_id(app_name)
    if env is not None:
        _check_name(env, "environment")
    s = Settings.load(state_dir)
    if not s.repo_url:
        raise PromoterError("no GitOps repository: set PROMOTER_REPO_URL (or use `--state-dir` of `promoter up`)")
    events = [e for e in s.repository("cli").history(app_name) if env is None or e.env == env]
    if as_json:
        print(json.dumps([e.as_json() for e in events]))
        return
    if not events:
        out.print(f"no promotions of {app_name} on main yet", markup=False)
    for e in events:
        where = f"PR #{e.pr_number}" if e.pr_number else e.main_commit[:12]
        line = f"{e.at[:19]}  {e.env:<10} {e.kind:<13} {e.commit[:7]}  {where}"
        line += f"  {e.promotion}" if e.promotion else ""
        line += f"  {e.reason}" if e.reason else ""
        out.print(line, markup=False, highlight=False)
        for decision in e.decisions:
            out.print(f"      {decision}", markup=False, highlight=False)
        for a in e.approvals:  # verified again from Git alone: verified, unsigned or INVALID: why
            via = f" via {a['via']}" if a["via"] else ""
            out.print(f"      approval by {a['approver']}{via}: {a['verdict']}", markup=False, highlight=False)


async def _ended_or_running(promotions: Any, wid: str, timeout_s: float = 60.0) -> Any:
    """The latest run of `wid`. One that has reached its outcome (its memo says so) but is still closing
    (a decided gate's PR watcher ends within seconds; one on a worker that died, within its heartbeat
    timeout) is waited for, so that `promote` right after `status` said `succeeded` is not refused."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        execution = await promotions.describe(wid)
        running = execution is not None and execution.status == "RUNNING"
        ending = running and execution.memo.get("state", "running") != "running"
        if not ending or time.monotonic() > deadline:
            return execution
        await asyncio.sleep(0.2)


async def _follow(client: Any, wid: str, run_id: str | None, quiet: bool) -> Any:
    """Poll the `status` query until the workflow closes; a live table on a terminal, lines otherwise.
    Raises `ConnectionLost` when Temporal cannot be reached any more: the outcome is then unknown."""
    import asyncio
    import time

    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError, RPCStatusCode

    from promoter.models import PromotionState, PromotionStatus
    from workflows.promotion import PromotionWorkflow

    handle = client.get_workflow_handle(wid, run_id=run_id, result_type=PromotionStatus)
    result = asyncio.ensure_future(handle.result())
    seen: dict[str, str] = {}
    from rich.live import Live

    live = Live(console=out.real(), auto_refresh=False) if (out.is_terminal and not quiet) else None
    status: PromotionStatus | None = None
    unreachable_since: float | None = None
    try:
        if live:
            live.start()
        while not result.done():
            try:
                status = await handle.query(PromotionWorkflow.query_status, rpc_timeout=timedelta(seconds=5))
                unreachable_since = None
            except RPCError as e:  # Temporal unreachable for a while: the outcome cannot be known from here
                status = None
                if e.status == RPCStatusCode.UNAVAILABLE:
                    unreachable_since = unreachable_since or time.monotonic()
                    if time.monotonic() - unreachable_since > UNREACHABLE_FOR_S:
                        raise ConnectionLost(_failure_message(e)) from None
            except Exception:  # noqa: BLE001 - a query can fail transiently (no worker yet); keep following
                status = None
            if status is not None:
                if live:
                    live.update(_table(status), refresh=True)
                elif not quiet:
                    for st in status.stages:
                        line = f"{st.state.value}" + (f" — {st.message}" if st.message else "")
                        if seen.get(st.env) != line:
                            seen[st.env] = line
                            out.print(f"  {st.env}: {line}")
            await asyncio.wait([result], timeout=0.3)
    finally:
        if live:
            live.stop()
    failure = result.exception()
    if failure is not None and not isinstance(failure, WorkflowFailureError):
        raise ConnectionLost(_failure_message(failure))  # no outcome: the server could not be asked
    final: PromotionStatus | None = result.result() if failure is None else None  # a completed one's result
    if final is None:
        try:
            final = await handle.query(PromotionWorkflow.query_status, rpc_timeout=timedelta(seconds=5))
        except Exception:  # noqa: BLE001 - the workflow ended without an answer to give
            final = status or PromotionStatus(id=wid, app="", commit="")
        if final.state == PromotionState.RUNNING:
            final.state = PromotionState.FAILED
            final.message = _failure_message(failure) if failure is not None else "ended"
    if live:
        out.print(_table(final))
    return final


def _failure_message(e: BaseException) -> str:
    from promoter.api import failure_message

    return failure_message(e)


def _table(status: Any) -> Any:
    from rich.table import Table

    table = Table(
        title=f"{status.id}  {_subject(status.app, status.members)} @ {status.commit[:7]}  [{status.state.value}]"
    )
    for col in ("env", "state", "PR", "approvals", "message"):
        table.add_column(col)
    for st in status.stages:
        colour = STAGE_COLOURS.get(st.state.value, "cyan")
        approvals = f"{len(st.approvals)}/{st.approvals_required}" if st.approvals_required else ""
        table.add_row(
            st.env,
            f"[{colour}]{st.state.value}[/{colour}]",
            f"#{st.pr_number}" if st.pr_number else "",
            approvals,
            st.message,
        )
    return table


@app.command()
def status(
    promotion: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """The stages of one promotion, or the running ones."""
    _run(_status(Settings.load(state_dir), promotion, as_json))


async def _status(s: Settings, promotion: str | None, as_json: bool) -> int:
    from promoter.models import PromotionStatus, proof_note

    wid = promotion_id(promotion) if promotion is not None else None
    promotions = await _promotions(s)
    if wid is None:
        return await _list(s, None, "running", as_json, 50, promotions)
    execution = await promotions.describe(wid)
    if execution is None:
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    st: PromotionStatus = await promotions.status(execution)
    # no stages: the latest run of the ID held it for a release set or a drift heal (its message says which)
    drift = await _app_drift(promotions, st.app, [stage.env for stage in st.stages] or None)
    if as_json:
        data = st.model_dump(mode="json")
        data["run_id"] = execution.run_id
        data["url"] = s.workflow_url(wid, execution.run_id)
        data["drift"] = drift
        print(json.dumps(data))
    else:
        out.print(_table(st))
        if not st.stages and st.message:
            out.print(f"  {st.message}", markup=False, highlight=False)
        for stage in st.stages:
            if stage.pr_url:
                out.print(f"  {stage.env} PR #{stage.pr_number}: {stage.pr_url}", markup=False, highlight=False)
        if st.audit:
            out.print("audit:")
        for e in st.audit:  # every decision, in order: policy, approvals, refusals, voided, merge, revert
            who = f"{e.actor} via {e.via}{proof_note(e.proof, e.via)}" if e.via else e.actor
            out.print(
                f"  {e.at:%Y-%m-%d %H:%M:%S}Z {e.env} {e.kind} by {who}" + (f": {e.detail}" if e.detail else ""),
                markup=False,
                highlight=False,
            )
        for notice in st.notices:
            out.print(f"  note: {notice}", markup=False, highlight=False)
        if drift:
            out.print("drift (the latest check of each environment):")
        for env, seen in drift.items():
            out.print(f"  {env}: {_drift_line(seen)}", markup=False, highlight=False)
            for d in seen["drifts"]:
                out.print(f"    {_difference(d)}", markup=False, highlight=False)
        url = s.workflow_url(wid, execution.run_id)
        if url:
            out.print(f"UI: {url}")
    return 0


DRIFT_ROWS = 50  # the newest drift checks `status` reads (one page), for the latest of each environment


async def _app_drift(promotions: Any, app_name: str, envs: list[str] | None) -> dict[str, dict[str, Any]]:
    """The app's drift in each environment, as the newest drift check that compared it says (its
    memo): {env: {checked_at, revision, count, healed, paused, drifts}}; an environment no recent
    check compared is left out. `envs` None: every environment a check compared the app in."""
    from promoter.promotions import DRIFT_MEMO, DRIFT_QUERY

    found: dict[str, dict[str, Any]] = {}
    async for row in promotions.listing(DRIFT_QUERY, page_size=DRIFT_ROWS):
        memo = row.memo.get(DRIFT_MEMO)
        if not isinstance(memo, dict) or (envs is not None and memo.get("env") not in envs) or memo.get("env") in found:
            continue
        mine = (memo.get("apps") or {}).get(app_name)
        if app_name in (memo.get("checked") or []) or mine is not None:
            found[memo["env"]] = {
                "checked_at": memo.get("checked_at"),
                "revision": memo.get("revision", ""),
                "count": 0,
                "healed": False,
                "paused": False,
                "drifts": [],
                **(mine or {}),
            }
        if envs is not None and len(found) == len(envs):
            break
    return {env: found[env] for env in envs if env in found} if envs is not None else found


def _drift_line(seen: dict[str, Any]) -> str:
    when = f"checked {str(seen['checked_at'])[:19].replace('T', ' ')}Z against main @ {seen['revision'][:7]}"
    if seen["paused"]:
        return f"not compared, a promotion was in flight ({when})"
    if not seen["count"]:
        return f"matches Git ({when})"
    healed = ", healed from Git (live differed from Git; who changed it is not known)" if seen["healed"] else ""
    shown = f", the first {len(seen['drifts'])}" if len(seen["drifts"]) < seen["count"] else ""
    return f"{seen['count']} difference(s){healed} ({when}{shown})"


def _difference(d: dict[str, Any]) -> str:
    """One difference, as `promoter drift` and `status` print it."""
    since = f" (since {str(d['since'])[:19].replace('T', ' ')}Z)" if d.get("since") else ""
    if not d.get("path"):
        return f"{d['object']} is missing{since}" if d.get("git") else f"{d['object']} is not in Git{since}"
    from promoter.cluster import masked

    # masked again here: a memo written before drift reports hid secrets may still hold one
    kind, path = str(d["object"]).split("/", 1)[0], tuple(str(d["path"]).split("."))
    git, live = masked(kind, path, d.get("git")), masked(kind, path, d.get("live"))
    if git == live:  # what differs is hidden on both sides
        return f"{d['object']} {d['path']}: differs from Git (secret values hidden){since}"
    return f"{d['object']} {d['path']}: Git {git!r}, live {live!r}{since}"


SignKey = Annotated[
    str | None,
    typer.Option(
        "--sign-key",
        envvar="PROMOTER_SIGNING_KEY",
        help="an OpenSSH private key: sign the decision (its public key in trust/allowed_signers for --as)",
    ),
]
PrintPayload = Annotated[
    bool,
    typer.Option("--print-payload", help="print the signed payload for the Web UI's update dialog; send nothing"),
]


@app.command()
def approve(
    promotion: Annotated[str, typer.Argument(metavar="ID")],
    env: Annotated[str, typer.Option("--env", help="environment whose gate to approve")],
    approver: Annotated[str, typer.Option("--as", help="who approves")],
    comment: Annotated[str, typer.Option(help="a note kept with the approval")] = "",
    sign_key: SignKey = None,
    print_payload: PrintPayload = False,
    state_dir: StateDir = None,
) -> None:
    """Approve a gate (the workflow's `approve` update), signed with --sign-key."""
    _run(_decide(Settings.load(state_dir), promotion, "approve", env, approver, comment, sign_key, print_payload))


@app.command()
def reject(
    promotion: Annotated[str, typer.Argument(metavar="ID")],
    env: Annotated[str, typer.Option("--env", help="environment whose gate to reject")],
    approver: Annotated[str, typer.Option("--as", help="who rejects")],
    reason: Annotated[str, typer.Option(help="why (required)")],
    sign_key: SignKey = None,
    print_payload: PrintPayload = False,
    state_dir: StateDir = None,
) -> None:
    """Reject a gate (the workflow's `reject` update); the promotion ends `rejected`."""
    _run(_decide(Settings.load(state_dir), promotion, "reject", env, approver, reason, sign_key, print_payload))


async def _decide(
    s: Settings,
    promotion: str,
    update: str,
    env: str,
    approver: str,
    comment: str,
    sign_key: str | None = None,
    print_payload: bool = False,
) -> int:
    from promoter.models import Decision

    if update == "reject" and not comment.strip():
        raise PromoterError("a rejection needs a reason: add --reason TEXT")
    if print_payload and not sign_key:
        raise PromoterError("--print-payload prints a signed payload: give --sign-key PATH (or PROMOTER_SIGNING_KEY)")
    wid = promotion_id(promotion)
    _check_name(env, "environment")
    promotions = await _promotions(s)
    await _require_running(promotions, wid)
    decision = Decision(env=env, approver=approver, comment=comment, via="cli")
    if sign_key:
        decision = await _signed(promotions, wid, decision, update, sign_key)
    if print_payload:  # for the Web UI's "Send an Update" dialog: `via` left out, the UI is the channel
        print(json.dumps(decision.model_dump(include={"env", "approver", "comment", "statement", "signature"})))
        return 0
    stage = await promotions.decide(wid, update, decision)
    verb = "approved" if update == "approve" else "rejected"
    extra = f" ({len(stage.approvals)}/{stage.approvals_required})" if update == "approve" else ""
    out.print(f"{wid}: {env} {verb} by {approver}{extra}")
    return 0


@app.command()
def cancel(promotion: Annotated[str, typer.Argument(metavar="ID")], state_dir: StateDir = None) -> None:
    """End a promotion, closing its open pull requests."""
    _run(_cancel(Settings.load(state_dir), promotion))


async def _cancel(s: Settings, promotion: str) -> int:
    from promoter.api import GrpcPromotions
    from workflows.promotion import PromotionWorkflow

    wid = promotion_id(promotion)
    promotions = GrpcPromotions(await _client(s))
    await _require_running(promotions, wid)
    import asyncio

    handle = promotions.client.get_workflow_handle(wid)
    await handle.cancel()
    try:
        await asyncio.wait_for(handle.result(), timeout=60)
    except TimeoutError:
        err.print(f"{wid}: cancel requested; the workflow has not finished closing its PRs yet")
        return 1
    except Exception:  # noqa: BLE001 - a cancelled workflow's result is a cancellation failure
        pass
    final = await handle.query(PromotionWorkflow.query_status)
    if final.state.value == "cancelled":
        out.print(f"{wid}: cancelled")
        return 0
    # the cancel arrived while a merge was in flight: that stage ran to its verdict, and that was the last
    out.print(f"{wid}: cancel came too late: {final.state.value} — {final.message}")
    return 1


@app.command("list")
def list_(
    app_name: Annotated[str | None, typer.Option("--app", help="only this application")] = None,
    state: Annotated[str | None, typer.Option(help="only promotions in this state")] = None,
    as_json: AsJson = False,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 50,
    state_dir: StateDir = None,
) -> None:
    """Promotions, newest first."""
    _run(_list(Settings.load(state_dir), app_name, state, as_json, limit))


async def _listing(promotions: Any, queries: list[str]) -> Any:
    """The rows of the first query the server takes (a namespace without an attribute refuses a
    query naming it): an error after the first row is not a refusal and is raised."""
    for i, query in enumerate(queries):
        started = False
        try:
            async for wf in promotions.listing(query):
                started = True
                yield wf
            return
        except Exception:
            if started or i == len(queries) - 1:
                raise


async def _list(
    s: Settings, app_name: str | None, state: str | None, as_json: bool, limit: int, promotions: Any = None
) -> int:
    from promoter import promotions as names
    from promoter.models import PromotionState

    if state is not None and state not in {x.value for x in PromotionState}:
        raise PromoterError(f"unknown state '{state}'; choose one of: {', '.join(x.value for x in PromotionState)}")
    if app_name is not None:
        workflow_id(app_name)  # checks it: the query below quotes it
    promotions = promotions or await _promotions(s)
    queries = [names.PROMOTION_QUERY]
    if app_name:  # its own promotions, and the release sets holding it where `PromotionApps` is registered
        own = f"WorkflowId = '{workflow_id(app_name)}'"
        queries = [
            f"{names.PROMOTION_QUERY} AND ({own} OR {names.APPS_ATTRIBUTE} = '{app_name}')",
            f"{names.PROMOTION_QUERY} AND {own}",
        ]
    closed = {"CANCELED": "cancelled", "TERMINATED": "failed", "TIMED_OUT": "failed", "FAILED": "failed"}
    rows: list[dict[str, Any]] = []
    async for wf in _listing(promotions, queries):
        memo = wf.memo
        row_state = memo.get("state", "running")
        if wf.status != "RUNNING" and row_state == "running":
            row_state = closed.get(wf.status) or "failed"
        stage, stage_state = memo.get("stage"), memo.get("stage_state")
        if wf.status == "RUNNING" and wf.attributes.get(names.STATE_ATTRIBUTE):
            # indexed: the search attributes follow every state (the memo only the stage)
            stage = wf.attributes.get(names.ENV_ATTRIBUTE) or stage
            stage_state = wf.attributes[names.STATE_ATTRIBUTE]
        if state is not None and row_state != state:
            continue
        rows.append(
            {
                "id": wf.id,
                "run_id": wf.run_id,
                "app": memo.get("app", wf.id.removeprefix("promote-")),
                "commit": memo.get("commit", ""),
                "state": row_state,
                "stage": stage,
                "stage_state": stage_state,
                "started_at": wf.started_at.isoformat() if wf.started_at else None,
                "closed_at": wf.closed_at.isoformat() if wf.closed_at else None,
            }
        )
        if len(rows) >= limit:
            break
    rows.sort(key=lambda r: r["started_at"] or "", reverse=True)
    if as_json:
        print(json.dumps(rows))
        return 0
    from rich.table import Table

    table = Table()
    for col in ("id", "app", "commit", "state", "stage", "started"):
        table.add_column(col)
    for r in rows:
        stage = f"{r['stage']}: {r['stage_state']}" if r["stage"] else ""
        table.add_row(r["id"], r["app"], r["commit"][:7], r["state"], stage, (r["started_at"] or "")[:19])
    out.print(table if rows else "no promotions")
    return 0


# ------------------------------------------------------------------------------------ policy

policy_app = typer.Typer(no_args_is_help=True, help="Rego policies: unit tests, shift-left checks, evaluation.")
app.add_typer(policy_app, name="policy")
RepoOpt = Annotated[Path, typer.Option("--repo", help="the GitOps repository (its policies/ and environments/)")]


@policy_app.command("test")
def policy_test(repo: RepoOpt = Path("."), as_json: AsJson = False) -> None:
    """Run every test_* rule of every *_test.rego on each engine; non-zero exit on any failure."""
    from promoter.policy import PolicyBundle
    from promoter.policy.goopa import INSTALL, available
    from promoter.policy.testing import run_tests, test_engines

    engines = test_engines()
    results = run_tests(PolicyBundle.from_dir(repo / "policies"), engines)
    if not results:
        raise PromoterError(f"no Rego tests under {repo / 'policies'}; write *_test.rego files with test_* rules")
    failed = [r for r in results if not r.passed]
    counts = {e.name: sum(1 for r in results if r.engines.get(e.name)) for e in engines}
    if as_json:
        print(
            json.dumps(
                {
                    "passed": len(results) - len(failed),
                    "failed": len(failed),
                    "engines": {name: {"passed": n, "failed": len(results) - n} for name, n in counts.items()},
                    "tests": [
                        {"name": r.name, "passed": r.passed, "error": r.error, "engines": r.engines} for r in results
                    ],
                }
            )
        )
    else:
        for r in results:
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            out.print(f"{mark} {r.name}" + (f"  — {r.error}" if r.error else ""))
        for name, n in counts.items():
            out.print(f"{name}: {n} of {len(results)} passed")
        if not available():
            out.print(f"opa-go: not installed, so OPA itself did not run these tests ({INSTALL})")
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    raise Exit(1 if failed else 0)


@policy_app.command("trust")
def policy_trust(as_json: AsJson = False, state_dir: StateDir = None) -> None:
    """Which revision of the rule files (policies/, environment.yaml, trust/) judges promotions now,
    and every rule change on main that is not used because no trusted key signed it (exit 1 when any)."""
    s = Settings.load(state_dir)
    rules = s.repository("cli").rules()
    if as_json:
        print(json.dumps(rules.model_dump(mode="json")))
    elif rules.root is None:
        out.print(
            f"no trust root is set (PROMOTER_TRUST_ROOT): main's rule files are used as they stand, "
            f"last changed in {rules.commit[:12]}; nothing checks who changed them",
            markup=False,
        )
    else:
        out.print(f"trusted rules revision: {rules.commit} (from the trust root {rules.root[:12]})", markup=False)
        for change in rules.untrusted:
            out.print(f"  untrusted: {change.commit[:12]} by {change.author}: {change.reason}", markup=False)
        if not rules.untrusted:
            out.print("every rule change on main since then is trusted", markup=False)
    raise Exit(1 if rules.untrusted or rules.root is None else 0)


@policy_app.command("check")
def policy_check(
    env: Annotated[
        str | None,
        typer.Option(
            "--env", help="the environment whose rules apply (default: each PATH's: environments/ENV/APP/...)"
        ),
    ] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="check environments/ENV/APP")] = None,
    paths: Annotated[list[Path] | None, typer.Argument(metavar="[PATH]...", help="files or folders")] = None,
    repo: RepoOpt = Path("."),
    as_json: AsJson = False,
) -> None:
    """Check manifests on disk against the policies (exit 1 on deny): for CI and pre-commit.

    Without --env, each PATH must lie in environments/ENV/APP/: every app folder a PATH touches is
    checked whole, with its environment's rules (what a pre-commit hook passes: the changed files)."""
    from promoter.policy import PolicyBundle

    bundle = PolicyBundle.from_dir(repo / "policies")
    if env is None:
        if app_name is not None:
            raise PromoterError("--app needs --env")
        groups = _app_folders(repo, paths or [])
    else:
        _check_name(env, "environment")
        targets = list(paths or [])
        if app_name is not None:
            targets.append(repo / "environments" / env / _check_name(app_name, "app"))
        groups = [(env, app_name or "", targets)]
    if not groups or not any(targets for _, _, targets in groups):
        raise PromoterError("say what to check: --env ENV --app APP, or PATHs (files or folders)")
    settings, engine = Settings.load(), _one_shot_engine()  # one of each, however many app folders
    allowed = True
    for group_env, app, targets in groups:
        verdict = _check_group(engine, bundle, repo, group_env, app, targets, settings.max_file_bytes, as_json)
        allowed = verdict and allowed
    raise Exit(0 if allowed else 1)


def _app_folders(repo: Path, paths: list[Path]) -> list[tuple[str, str, list[Path]]]:
    """(env, app, [its folder]) for every app folder the paths touch; an environment.yaml touches
    every app of its environment; files elsewhere (policies/, docs) are not manifests and are skipped."""
    root = repo.resolve()
    found: dict[tuple[str, str], Path] = {}
    for path in paths:
        try:
            parts = path.resolve().relative_to(root).parts
        except ValueError:
            raise PromoterError(f"{path} is not inside the repository {repo}; give --env for files elsewhere") from None
        if len(parts) < 3 or parts[0] != "environments":
            continue
        env = _check_name(parts[1], "environment")
        if len(parts) == 3 and parts[2] == "environment.yaml":
            for folder in sorted(p for p in (root / "environments" / env).iterdir() if p.is_dir()):
                found[(env, folder.name)] = folder
        else:
            folder = root / "environments" / env / parts[2]
            if folder.is_dir():  # a file beside the apps, or a deleted folder: nothing to check
                found[(env, _check_name(parts[2], "app"))] = folder
    return [(env, app, [folder]) for (env, app), folder in sorted(found.items())]


def _check_group(
    engine: Any, bundle: Any, repo: Path, env: str, app: str, targets: list[Path], limit: int, as_json: bool
) -> bool:
    from datetime import UTC, datetime

    from promoter.environments import load_environment
    from promoter.models import PolicyCheckInput
    from promoter.policy import build_input, decide, schema_input
    from promoter.render import render_dir

    config = load_environment(repo / "environments" / env / "environment.yaml", env)
    objects = [o for target in targets for o in render_dir(target, limit)]
    now = datetime.now(UTC)
    req = PolicyCheckInput(
        promotion_id="check",
        app=app,
        commit="",
        author="",
        source_env=env,
        target_env=env,
        started_at=now,
        evaluated_at=now,
        environment=config,
        phase="check",
    )
    decision = decide(engine, bundle, build_input(req, objects, schema_input(config, objects, _disk_crds(repo, env))))
    if as_json:
        print(decision.model_dump_json())
    else:
        from promoter.report import decision_table

        where = f"{app} in {env}" if app else env
        out.print(decision_table(decision, f"{len(objects)} object(s) of {where}"))
    return decision.allow


def _disk_crds(repo: Path, env: str) -> Callable[[], tuple[list[dict[str, Any]], str]]:
    """The CustomResourceDefinitions in environments/ENV on disk, for the schema gate (no cluster is
    asked from a pre-commit hook: a custom resource without one there is reported not validated)."""

    def lookup() -> tuple[list[dict[str, Any]], str]:
        from promoter.render import parse_manifests

        found: list[dict[str, Any]] = []
        for path in sorted((repo / "environments" / env).rglob("*.y*ml")):
            text = path.read_bytes()
            if b"CustomResourceDefinition" in text:
                try:
                    found += [
                        o
                        for o in parse_manifests({path.name: text}, str(path))
                        if o.get("kind") == "CustomResourceDefinition"
                    ]
                except PromoterError:
                    continue  # a broken file is reported where it is checked
        return found, " (the CLI does not read the cluster)"

    return lookup


@policy_app.command("eval")
def policy_eval(
    input_file: Annotated[Path, typer.Option("--input", help="a JSON (or YAML) policy input document")],
    repo: RepoOpt = Path("."),
) -> None:
    """Evaluate data.promoter.decision for an input document; prints the decision as JSON."""
    from promoter import yamlsafe
    from promoter.policy import PolicyBundle, decide

    if not input_file.is_file():
        raise PromoterError(f"{input_file} does not exist")
    doc = yamlsafe.load(input_file.read_bytes(), str(input_file))
    if not isinstance(doc, dict):
        raise PromoterError(f"{input_file}: the input must be an object")
    decision = decide(_one_shot_engine(), PolicyBundle.from_dir(repo / "policies"), doc)
    print(decision.model_dump_json(indent=2))
    raise Exit(0 if decision.allow else 1)


# ------------------------------------------------------------------------------------ helpers


def _one_shot_engine() -> Any:
    """The configured engine; the embedded one in process (no engine process to start for one check)."""
    settings = Settings.load()
    if (settings.policy_engine or ("opa" if settings.opa_url else "embedded")) == "embedded":
        from promoter.policy.embedded import InProcessEngine

        return InProcessEngine()
    return settings.make_policy_engine()


def _checked_request(app_name: str, to: str | None, commit: str | None) -> str:
    """The promotion's ID, once the app, the last environment and the commit asked for are checked:
    a bad one is refused before anything reaches Temporal."""
    wid = workflow_id(app_name)
    if to is not None:
        _check_name(to, "environment")
    if commit is not None:
        check_revision(commit)
    return wid


async def _client(s: Settings) -> Any:
    from promoter.settings import connect

    return await connect(s)


async def _promotions(s: Settings) -> Any:
    """How the everyday commands reach Temporal: its HTTP API when one is configured (the embedded stack
    serves it), which starts in half the time, else the SDK's gRPC client."""
    if s.temporal_http_url:
        from promoter.temporal_http import HttpPromotions

        identity = f"promoter-cli {_whoami()}"
        tls = s.temporal_tls_config()  # as for gRPC: the CA bundle, client certificate and server name
        return HttpPromotions(s.temporal_http_url, s.namespace, identity, tls, s.temporal_api_key)
    from promoter.api import GrpcPromotions

    return GrpcPromotions(await _client(s))


async def _signed(promotions: Any, wid: str, decision: Any, update: str, key: str) -> Any:
    """The decision with its statement (what the gate will check: this run, the environment, the
    commit, the trees its PR would merge, now) and the statement's SSH signature by `key`."""
    from datetime import UTC, datetime

    from promoter import proofs, signing

    status = await promotions.status(await promotions.describe(wid))
    stage = next((st for st in status.stages if st.env == decision.env), None)
    if stage is None:
        envs = ", ".join(st.env for st in status.stages)
        raise PromoterError(f"promotion {wid} has no environment '{decision.env}'; it has: {envs}")
    if not status.run_id or not stage.trees:
        raise PromoterError(
            f"{decision.env} has no pull request to sign for yet ({stage.state.value}); sign once its gate waits"
        )
    at = datetime.now(UTC).replace(microsecond=0)
    text = proofs.statement_for(status, stage, update, decision.approver, at, decision.comment).text()
    signature = signing.armor_to_line(signing.sign_file(text.encode(), key))
    return decision.model_copy(update={"statement": text, "signature": signature})


async def _require_running(promotions: Any, wid: str) -> None:
    execution = await promotions.describe(wid)
    if execution is None:
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    if execution.status != "RUNNING":
        state = execution.memo.get("state") or execution.status.lower()
        raise PromoterError(f"promotion {wid} has already ended ({state}); start a new one with `promoter promote`")


def _whoami() -> str:
    import getpass

    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    """Entry point. Exits through `os._exit` with the documented code: a Python process that used a
    Temporal client can otherwise abort at interpreter exit (temporalio/sdk-python#300, exit 134)."""
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """--help is click's own (exit 0); a usage error and our errors are one line each (exit 2)."""
    try:
        code = app(args=argv, prog_name="promoter", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except Exit as e:
        return e.code
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0))
    except typer.TyperException as e:  # click's usage errors (typer bundles click): one line, exit 2
        ctx = getattr(e, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join((e.format_message() if hasattr(e, "format_message") else str(e)).split())
        if message:  # empty: the help was shown instead (a group called with no command)
            err.print(f"error: {message}{where}", markup=False)
        return int(getattr(e, "exit_code", 2))
    except PromoterError as e:
        err.print(f"error: {' '.join(str(e).split())}", markup=False)
        return 2
    except Exception as e:  # noqa: BLE001 - an unexpected failure still exits with a line, not a trace
        err.print(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", markup=False)
        return 1
