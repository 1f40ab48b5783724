"""`promoter drift` and `history`: how environments differ from Git now, and what main says happened."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from promoter.cli.common import AsJson, StateDir, app, check_known, client, out, run_async
from promoter.cli.render import difference
from promoter.errors import PromoterError
from promoter.names import check as check_name
from promoter.names import workflow_id
from promoter.settings import Settings

if TYPE_CHECKING:
    from promoter.models import AppDrift, DriftReport


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
    run_async(_drift(Settings.load(state_dir), env, apps or [], heal, as_json))


async def _drift(s: Settings, env: str | None, apps: list[str], heal: bool | None, as_json: bool) -> int:
    from promoter import api
    from promoter.models import DriftInput

    for app_name in apps:
        workflow_id(app_name)
    if env is not None:
        envs = [check_name(env, "environment")]
    else:  # every environment on main: read from the GitOps repository, as `history` does
        if not s.repo_url:
            raise PromoterError("name the environment, or set PROMOTER_REPO_URL so that its environments can be read")
        envs = [e.name for e in s.repository("cli").environments()]
    temporal = await client(s)
    reports = [await api.drift(temporal, s.task_queue, DriftInput(env=e, apps=apps, heal=heal)) for e in envs]
    remaining = [a for r in reports for a in r.drifted if not a.healed]
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in reports]))
        return 1 if remaining else 0
    for report in reports:
        out.print(f"{report.env} against main @ {report.revision[:7]}", markup=False)
        for a in report.apps:
            _print_app(report, a)
    return 1 if remaining else 0


def _print_app(report: DriftReport, a: AppDrift) -> None:
    if a.paused:
        out.print(f"  {a.app}: not compared, a promotion of it is in flight", markup=False)
        return
    # each app is compared with its folder as promoter last promoted it (the merge's commit)
    promoted = f" (as promoted @ {a.revision[:7]})" if a.revision and a.revision != report.revision else ""
    if not a.drifts:
        out.print(f"  {a.app}: matches Git{promoted}", markup=False)
    else:
        healed = ", healed: re-applied from Git (live differed from Git; who changed it is not known)"
        line = f"  {a.app}: {len(a.drifts)} difference(s){promoted}" + (healed if a.healed else "")
        out.print(line, markup=False)
    for d in a.drifts:
        out.print(f"    {difference(d.model_dump(mode='json'))}", markup=False, highlight=False)
    for u in a.unpromoted:  # on main, never promoted: never applied by a heal
        out.print(f"    {u.line()}", markup=False, highlight=False)
    if a.note:
        out.print(f"    {a.note}", markup=False, highlight=False)


@app.command()
def history(
    app_name: Annotated[str, typer.Argument(metavar="APP")],
    env: Annotated[str | None, typer.Option(help="only this environment")] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """Every promotion, revert and lifted hold of APP, per environment, newest first: read from the
    GitOps repository's main alone (no Temporal server needed)."""
    workflow_id(app_name)
    if env is not None:
        check_name(env, "environment")
    s = Settings.load(state_dir, stopped_stack=True)
    if not s.repo_url:
        raise PromoterError("no GitOps repository: set PROMOTER_REPO_URL (or use `--state-dir` of `promoter up`)")
    repository = s.repository("cli")
    events = [e for e in repository.history(app_name) if env is None or e.env == env]
    if not events:  # a mistyped name is bad input (exit 2, naming the real ones), not "no promotions yet"
        check_known(repository, app_name, env)
    if as_json:
        print(json.dumps([e.as_json() for e in events]))
        return
    if not events:
        out.print(f"no promotions of {app_name} on main yet", markup=False)
    for e in events:
        # a lifted hold's record names no PR of its own (its lift-hold PR is not in main's trailers): nothing there
        where = f"PR #{e.pr_number}" if e.pr_number else ("" if e.kind == "hold-released" else e.main_commit[:12])
        line = f"{e.at[:19]}  {e.env:<10} {e.kind:<13} {e.commit[:7]}  {where}".rstrip()
        line += f"  {e.promotion}" if e.promotion else ""
        line += f"  {e.reason}" if e.reason else ""
        out.print(line, markup=False, highlight=False)
        for decision in e.decisions:
            out.print(f"      {decision}", markup=False, highlight=False)
        for a in e.approvals:  # verified again from Git alone: verified, unsigned or INVALID: why
            via = f" via {a['via']}" if a["via"] else ""
            out.print(f"      approval by {a['approver']}{via}: {a['verdict']}", markup=False, highlight=False)
