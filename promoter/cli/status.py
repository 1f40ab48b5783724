"""`promoter status`, `list`, `approve`, `reject` and `cancel`: reading and deciding promotions and lifts of
holds, over whichever transport `promotions_of` picks (`Promotions`); `cancel` needs the SDK's client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promoter.cli.common import (
    StateDir,
    app,
    changed,
    check_known,
    client,
    err,
    out,
    print_status,
    promotions_of,
    run_async,
)
from promoter.cli.lift import lift_of
from promoter.cli.render import KIND, lift_status, list_row, listing
from promoter.errors import PromoterError
from promoter.names import GLASS_PREFIX, LIFT_PREFIX, promotion_id, workflow_id
from promoter.names import check as check_name
from promoter.settings import Settings

if TYPE_CHECKING:
    from promoter.models import Decision
    from promoter.promotions import Execution, Listed, Promotions

DRIFT_ROWS = 50  # the newest drift checks `status` reads (one page), for the latest of each environment
# its formats are in docs/cli.md (the README shows none)
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output (its format: docs/cli.md)")]


@app.command()
def status(
    promotion: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", help="follow it live to its end, as `promote --wait` does; exit 0 only on succeeded"),
    ] = False,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """The stages of one promotion or lift of a hold (ID, or an app), or the running ones.

    The JSON formats are described in docs/cli.md."""
    if follow and promotion is None:
        raise PromoterError("--follow follows one promotion: give its ID (`promoter status` lists the running ones)")
    run_async(_status(Settings.load(state_dir), promotion, as_json, follow))


async def _status(s: Settings, promotion: str | None, as_json: bool, follow: bool = False) -> int:
    wid = promotion_id(promotion) if promotion is not None else None
    promotions = await promotions_of(s)
    if wid is None:
        return await _list(s, None, "running", as_json, 50, promotions)
    execution = await promotions.describe(wid)
    if execution is None:
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    if wid.startswith((LIFT_PREFIX, GLASS_PREFIX)):
        return await lift_of(s, promotions, execution, as_json, follow)
    if follow:  # as `promote --wait` follows what it started: its output, its exit codes, its Ctrl-C
        from promoter.cli.promote import _wait

        return await _wait(s, promotions, wid, execution.run_id, as_json)
    st = await promotions.status(execution)
    # no stages: the latest run of the ID held it for a release set or a drift heal (its message says which)
    drift = await _app_drift(promotions, st.app, [stage.env for stage in st.stages] or None)
    url = s.workflow_url(wid, execution.run_id)
    if as_json:
        print(
            json.dumps(
                {**st.model_dump(mode="json"), "kind": KIND, "run_id": execution.run_id, "url": url, "drift": drift}
            )
        )
    else:
        print_status(st, drift, url)
    return 0


async def _app_drift(promotions: Promotions, app_name: str, envs: list[str] | None) -> dict[str, dict[str, Any]]:
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
            seen = {"checked_at": memo.get("checked_at"), "revision": memo.get("revision", "")}
            found[memo["env"]] = {**seen, "count": 0, "healed": False, "paused": False, "drifts": [], **(mine or {})}
        if envs is not None and len(found) == len(envs):
            break
    return {env: found[env] for env in envs if env in found} if envs is not None else found


SignKey = Annotated[
    str | None,
    typer.Option(
        "--sign-key",
        envvar="PROMOTER_SIGNING_KEY",
        help="an OpenSSH private key: sign the decision (its public key in trust/allowed_signers for --as)",
    ),
]
ChangeJson = Annotated[bool, typer.Option("--json", help="one JSON object: the run it changed (ID, run ID, URL)")]
PrintPayload = Annotated[
    bool,
    typer.Option("--print-payload", help="print the signed payload for the Web UI's update dialog; send nothing"),
]
Ids = Annotated[list[str] | None, typer.Argument(metavar="ID...", help="one promotion or several (or --waiting)")]
Waiting = Annotated[bool, typer.Option("--waiting", help="also each running promotion whose gate at --env waits")]
DECIDE_AT_ONCE = 16  # decisions in flight at once when several promotions are named


@app.command()
def approve(
    env: Annotated[str, typer.Option("--env", help="environment whose gate to approve")],
    approver: Annotated[str, typer.Option("--as", help="who approves")],
    promotions: Ids = None,
    comment: Annotated[str, typer.Option(help="a note kept with the approval")] = "",
    waiting: Waiting = False,
    sign_key: SignKey = None,
    print_payload: PrintPayload = False,
    as_json: ChangeJson = False,
    state_dir: StateDir = None,
) -> None:
    """Approve a gate (the `approve` update) of one promotion or several, each signed with --sign-key."""
    opts = (approver, comment, sign_key, print_payload, as_json)
    run_async(_decide_all(Settings.load(state_dir), promotions or [], waiting, "approve", env, *opts))


@app.command()
def reject(
    env: Annotated[str, typer.Option("--env", help="environment whose gate to reject")],
    approver: Annotated[str, typer.Option("--as", help="who rejects")],
    promotions: Ids = None,
    reason: Annotated[str, typer.Option(help="why (required)")] = "",
    waiting: Waiting = False,
    sign_key: SignKey = None,
    print_payload: PrintPayload = False,
    as_json: ChangeJson = False,
    state_dir: StateDir = None,
) -> None:
    """Reject a gate (the `reject` update) of one promotion or several; each ends `rejected`."""
    opts = (approver, reason, sign_key, print_payload, as_json)
    run_async(_decide_all(Settings.load(state_dir), promotions or [], waiting, "reject", env, *opts))


async def _decide_all(s: Settings, ids: list[str], waiting: bool, update: str, env: str, *args: Any) -> int:
    """Decide each promotion named (with `waiting`, each whose gate at `env` waits too), DECIDE_AT_ONCE at a
    time, a line each; one that fails is a line on stderr, the others go on, and the exit is 1 naming them."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from promoter.promotions import PROMOTION_QUERY
    from promoter.temporal_http import HttpPromotions

    approver, comment, sign_key, print_payload, _ = args
    check_name(env, "environment")
    if update == "reject" and not comment.strip():
        raise PromoterError("a rejection needs a reason: add --reason TEXT")
    if print_payload and not sign_key:
        raise PromoterError("--print-payload prints a signed payload: give --sign-key PATH (or PROMOTER_SIGNING_KEY)")
    wids = list(dict.fromkeys(promotion_id(i) for i in ids))  # each once, in the order given
    promotions = await promotions_of(s)
    if waiting:
        query = f"{PROMOTION_QUERY} AND ExecutionStatus = 'Running' AND PromotionEnv = '{env}'"
        async for row in promotions.listing(f"{query} AND PromotionState = 'awaiting_approval'"):
            wids += [] if row.id in wids else [row.id]
        if not wids:
            out.print(f"no promotion waits at {env}'s gate")
            return 0
    if len(wids) != 1 and (not wids or print_payload):
        raise PromoterError("name one promotion (its ID or app)" + ("" if print_payload else ", several, or --waiting"))
    if len(wids) == 1:
        return await _decide(s, promotions, wids[0], update, env, *args)
    gate = asyncio.Semaphore(DECIDE_AT_ONCE)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(DECIDE_AT_ONCE))  # for HttpPromotions

    async def one(wid: str) -> str | None:
        async with gate:
            try:  # the HTTP API's calls block: each decision then runs on a thread (and a loop) of its own
                run = _decide(s, promotions, wid, update, env, *args)
                await (asyncio.to_thread(asyncio.run, run) if isinstance(promotions, HttpPromotions) else run)
                return None
            except PromoterError as e:
                err.print(f"{wid}: {e}", markup=False, highlight=False)
                return wid

    if failed := [wid for wid in await asyncio.gather(*(one(w) for w in wids)) if wid]:
        err.print(f"{len(failed)} of {len(wids)} not {update}d: {' '.join(failed)}", markup=False, highlight=False)
    return 1 if failed else 0


async def _decide(
    s: Settings, promotions: Promotions, wid: str, update: str, env: str, approver: str, comment: str, *rest: Any
) -> int:
    """Decide one promotion (`rest`: the signing key, --print-payload, --json)."""
    from promoter.models import Decision
    from promoter.report import stage_needs

    sign_key, print_payload, as_json = rest
    await _require_running(promotions, wid)
    decision = Decision(env=env, approver=approver, comment=comment, via="cli")
    if sign_key:
        decision = await _signed(promotions, wid, decision, update, sign_key)
    if print_payload:  # for the Web UI's "Send an Update" dialog: `via` left out, the UI is the channel
        print(json.dumps(decision.model_dump(include={"env", "approver", "comment", "statement", "signature"})))
        return 0
    needs = stage_needs(stage := await promotions.decide(wid, update, decision))
    if as_json:
        run_id = execution.run_id if (execution := await promotions.describe(wid)) else None
        kept = {"approvals": len(stage.approvals), "approvals_required": stage.approvals_required, "needs": needs}
        changed(s, wid, run_id, env=env, decision=update, approver=approver, **kept, state=stage.state.value)
    elif update == "approve":
        out.print(f"{wid}: {env} approved by {approver}; {needs or 'the gate is open'}")
    else:
        out.print(f"{wid}: {env} rejected by {approver}")
    return 0


async def _signed(promotions: Promotions, wid: str, d: Decision, update: str, key: str) -> Decision:
    """The decision with its statement (what the gate will check: `proofs.statement_of`: this run, the
    environment, the commit, the PR head and the trees it would merge, now) and its SSH signature by `key`."""
    from datetime import UTC, datetime

    from promoter import proofs, signing

    execution = await promotions.describe(wid)
    if execution is None:  # it was running a moment ago: `_require_running` said so
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    lift = wid.startswith((LIFT_PREFIX, GLASS_PREFIX))  # its one stage names its commit; its PR, no trees
    status = None if lift else await promotions.status(execution)
    stages = status.stages if status else [await promotions.lift(execution)]
    stage = next((st for st in stages if st.env == d.env), None)
    if stage is None:
        raise PromoterError(f"{wid} has no environment '{d.env}'; it has: {', '.join(s.env for s in stages)}")
    run, commit = (status.run_id, status.commit) if status else (execution.run_id, stage.commit)
    if not run or not stage.head_sha or not (lift or stage.trees):
        raise PromoterError(f"{d.env} has no pull request to sign for yet ({stage.state.value}); sign once it waits")
    at = datetime.now(UTC).replace(microsecond=0)
    text = proofs.statement_of(wid, run, commit, stage, update, d.approver, at, d.comment).text()
    signature = signing.armor_to_line(signing.sign_file(text.encode(), key))
    return d.model_copy(update={"statement": text, "signature": signature})


async def _require_running(promotions: Promotions, wid: str) -> Execution:
    execution = await promotions.describe(wid)
    if execution is None:
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    if execution.status != "RUNNING":
        state = execution.memo.get("state") or execution.status.lower()
        raise PromoterError(f"promotion {wid} has already ended ({state}); start a new one with `promoter promote`")
    return execution


@app.command()
def cancel(
    promotion: Annotated[str, typer.Argument(metavar="ID")], as_json: ChangeJson = False, state_dir: StateDir = None
) -> None:
    """End a promotion, closing its open pull requests."""
    run_async(_cancel(Settings.load(state_dir), promotion, as_json))


async def _cancel(s: Settings, promotion: str, as_json: bool = False) -> int:
    from promoter.api import GrpcPromotions

    wid = promotion_id(promotion)
    promotions = GrpcPromotions(await client(s))
    final = await promotions.cancel(await _require_running(promotions, wid), timeout_s=60)
    if final is None:
        err.print(f"{wid}: cancel requested; the workflow has not finished closing its PRs yet")
        return 1
    if as_json:
        changed(s, wid, final.run_id, state=final.state.value, message=final.message)
        return 0 if final.state.value == "cancelled" else 1
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
    run_async(_list(Settings.load(state_dir), app_name, state, as_json, limit))


async def _listing(promotions: Promotions, queries: list[str]) -> AsyncIterator[Listed]:
    """The rows of the first query the server takes (a namespace without an attribute refuses a
    query naming it): an error after the first row is not a refusal and is raised."""
    for i, query in enumerate(queries):
        started = False
        try:
            async for wf in promotions.listing(query):
                started = True
                yield wf
            return
        except Exception:  # each transport refuses in its own type (RPCError, PromoterError): the next query
            if started or i == len(queries) - 1:
                raise


def _queries(app_name: str | None) -> list[str]:
    """The listing's queries, the preferred first: an app's own promotions, and the release sets holding
    it where `PromotionApps` is registered; else its own alone."""
    from promoter.promotions import APPS_ATTRIBUTE, PROMOTION_QUERY

    if app_name is not None:
        workflow_id(app_name)  # checks it: the query quotes it
    if not app_name:
        return [PROMOTION_QUERY]
    own = f"WorkflowId = '{workflow_id(app_name)}'"
    return [f"{PROMOTION_QUERY} AND ({own} OR {APPS_ATTRIBUTE} = '{app_name}')", f"{PROMOTION_QUERY} AND {own}"]


async def _list(
    s: Settings,
    app_name: str | None,
    state: str | None,
    as_json: bool,
    limit: int,
    promotions: Promotions | None = None,
) -> int:
    from promoter.models import PromotionState

    if state is not None and state not in {x.value for x in PromotionState}:
        raise PromoterError(f"unknown state '{state}'; choose one of: {', '.join(x.value for x in PromotionState)}")
    promotions = promotions or await promotions_of(s)
    rows: list[dict[str, Any]] = []
    async for wf in _listing(promotions, _queries(app_name)):
        if state is None or wf.state == state:
            rows.append(list_row(wf))
        if len(rows) >= limit:
            break
    rows += await _lift_rows(promotions, app_name, state, limit)
    rows = sorted(rows, key=lambda r: r["started_at"] or "", reverse=True)[:limit]
    if not rows and app_name is not None and s.repo_url:  # a mistyped app is bad input, not "none yet"
        repository = s.repository("cli")
        try:
            readable = bool(repository.environments())
        except PromoterError:  # main is not readable from here (no token): the listing alone answers
            readable = False
        if readable:
            check_known(repository, app_name, None)
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        out.print("no promotions")
    else:
        shown = listing(rows, out.is_terminal)
        for line in shown if isinstance(shown, list) else [shown]:
            out.print(line, markup=False, highlight=False)
    return 0


async def _lift_rows(
    promotions: Promotions, app_name: str | None, state: str | None, limit: int
) -> list[dict[str, Any]]:
    """The lifts of holds (of `app_name`), as rows of the listing: each one's stage asked of Temporal
    (a finished one's result; a running one's `status` query, its stage left blank when no worker answers)."""
    from promoter.models import StageStatus
    from promoter.promotions import LIFT_QUERY, Execution

    rows: list[dict[str, Any]] = []
    async for wf in _listing(promotions, [LIFT_QUERY]):
        if app_name is not None and not wf.id.startswith((f"{LIFT_PREFIX}{app_name}-", f"{GLASS_PREFIX}{app_name}-")):
            continue
        execution = Execution(wf.id, wf.run_id, wf.status, "", wf.memo)
        if wf.status == "RUNNING":
            execution = await promotions.describe(wf.id) or execution
        try:
            stage = await promotions.lift(execution)
        except PromoterError:  # no worker answers: it runs, at a stage not known here
            stage = StageStatus(env="", order=0)
        st = lift_status(wf.id, wf.run_id, wf.status, stage, wf.memo)
        if (app_name is not None and st.app and st.app != app_name) or (state is not None and st.state != state):
            continue
        rows.append(list_row(wf, st))
        if len(rows) >= limit:
            break
    return rows
