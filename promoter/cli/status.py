"""`promoter status`, `list`, `approve`, `reject` and `cancel`: reading and deciding promotions, over
whichever transport `promotions_of` picks (`Promotions`); `cancel` needs the SDK's client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promoter.cli.common import AsJson, StateDir, app, client, err, out, promotions_of, run_async
from promoter.cli.render import difference, drift_line, table
from promoter.errors import PromoterError
from promoter.names import check as check_name
from promoter.names import promotion_id, workflow_id
from promoter.settings import Settings

if TYPE_CHECKING:
    from promoter.models import Decision, PromotionStatus
    from promoter.promotions import Listed, Promotions

DRIFT_ROWS = 50  # the newest drift checks `status` reads (one page), for the latest of each environment


@app.command()
def status(
    promotion: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """The stages of one promotion, or the running ones."""
    run_async(_status(Settings.load(state_dir), promotion, as_json))


async def _status(s: Settings, promotion: str | None, as_json: bool) -> int:
    wid = promotion_id(promotion) if promotion is not None else None
    promotions = await promotions_of(s)
    if wid is None:
        return await _list(s, None, "running", as_json, 50, promotions)
    execution = await promotions.describe(wid)
    if execution is None:
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    st = await promotions.status(execution)
    # no stages: the latest run of the ID held it for a release set or a drift heal (its message says which)
    drift = await _app_drift(promotions, st.app, [stage.env for stage in st.stages] or None)
    url = s.workflow_url(wid, execution.run_id)
    if as_json:
        print(json.dumps({**st.model_dump(mode="json"), "run_id": execution.run_id, "url": url, "drift": drift}))
    else:
        _print_status(st, drift, url)
    return 0


def _print_status(st: PromotionStatus, drift: dict[str, dict[str, Any]], url: str | None) -> None:
    from promoter.models import proof_note

    out.print(table(st))
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
        out.print(f"  {env}: {drift_line(seen)}", markup=False, highlight=False)
        for d in seen["drifts"]:
            out.print(f"    {difference(d)}", markup=False, highlight=False)
    if url:
        out.print(f"UI: {url}")


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
    run_async(_decide(Settings.load(state_dir), promotion, "approve", env, approver, comment, sign_key, print_payload))


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
    run_async(_decide(Settings.load(state_dir), promotion, "reject", env, approver, reason, sign_key, print_payload))


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
    check_name(env, "environment")
    promotions = await promotions_of(s)
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


async def _signed(promotions: Promotions, wid: str, decision: Decision, update: str, key: str) -> Decision:
    """The decision with its statement (what the gate will check: this run, the environment, the
    commit, the trees its PR would merge, now) and the statement's SSH signature by `key`."""
    from datetime import UTC, datetime

    from promoter import proofs, signing

    execution = await promotions.describe(wid)
    if execution is None:  # it was running a moment ago: `_require_running` said so
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    status = await promotions.status(execution)
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


async def _require_running(promotions: Promotions, wid: str) -> None:
    execution = await promotions.describe(wid)
    if execution is None:
        raise PromoterError(f"no promotion {wid}; `promoter list` shows the promotions")
    if execution.status != "RUNNING":
        state = execution.memo.get("state") or execution.status.lower()
        raise PromoterError(f"promotion {wid} has already ended ({state}); start a new one with `promoter promote`")


@app.command()
def cancel(promotion: Annotated[str, typer.Argument(metavar="ID")], state_dir: StateDir = None) -> None:
    """End a promotion, closing its open pull requests."""
    run_async(_cancel(Settings.load(state_dir), promotion))


async def _cancel(s: Settings, promotion: str) -> int:
    from promoter.api import GrpcPromotions

    wid = promotion_id(promotion)
    promotions = GrpcPromotions(await client(s))
    await _require_running(promotions, wid)
    final = await promotions.cancel(wid, timeout_s=60)
    if final is None:
        err.print(f"{wid}: cancel requested; the workflow has not finished closing its PRs yet")
        return 1
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
    from promoter import promotions

    if app_name is not None:
        workflow_id(app_name)  # checks it: the query quotes it
    if not app_name:
        return [promotions.PROMOTION_QUERY]
    own = f"WorkflowId = '{workflow_id(app_name)}'"
    return [
        f"{promotions.PROMOTION_QUERY} AND ({own} OR {promotions.APPS_ATTRIBUTE} = '{app_name}')",
        f"{promotions.PROMOTION_QUERY} AND {own}",
    ]


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
    queries = _queries(app_name)
    rows: list[dict[str, Any]] = []
    async for wf in _listing(promotions or await promotions_of(s), queries):
        if state is not None and wf.state != state:
            continue
        rows.append(_row(wf))
        if len(rows) >= limit:
            break
    rows.sort(key=lambda r: r["started_at"] or "", reverse=True)
    if as_json:
        print(json.dumps(rows))
        return 0
    from rich.table import Table

    shown = Table()
    for col in ("id", "app", "commit", "state", "stage", "started"):
        shown.add_column(col)
    for r in rows:
        stage = f"{r['stage']}: {r['stage_state']}" if r["stage"] else ""
        shown.add_row(r["id"], r["app"], r["commit"][:7], r["state"], stage, (r["started_at"] or "")[:19])
    out.print(shown if rows else "no promotions")
    return 0


def _row(wf: Listed) -> dict[str, Any]:
    stage, stage_state = wf.stage
    return {
        "id": wf.id,
        "run_id": wf.run_id,
        "app": wf.memo.get("app", wf.id.removeprefix("promote-")),
        "commit": wf.memo.get("commit", ""),
        "state": wf.state,
        "stage": stage,
        "stage_state": stage_state,
        "started_at": wf.started_at.isoformat() if wf.started_at else None,
        "closed_at": wf.closed_at.isoformat() if wf.closed_at else None,
    }
