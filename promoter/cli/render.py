"""How the commands draw what they print: a promotion's table, a stage of a plan, a drift finding."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from promoter.models import DryRun, PromotionStatus, StagePlan, StageStatus
    from promoter.promotions import Listed

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


def subject(app_name: str, members: list[str]) -> str:
    """What a promotion moves, as the CLI prints it: `demo`, or a release set `release = api + worker`."""
    return app_name + (f" = {' + '.join(members)}" if members else "")


def title(status: PromotionStatus) -> str:
    """A promotion's heading: its ID, what it moves and its state; a lift of a hold says so."""
    from promoter.names import GLASS_PREFIX, LIFT_PREFIX

    if status.id.startswith(GLASS_PREFIX):
        what = f"break-glass of {status.app or '?'}" + (f" in {status.stages[0].env}" if status.stages else "")
    elif status.id.startswith(LIFT_PREFIX):
        held = f" @ {status.commit[:7]}" if status.commit else ""
        what = f"lift of the hold of {status.app or '?'}{held}" + (
            f" in {status.stages[0].env}" if status.stages else ""
        )
    else:
        what = f"{subject(status.app, status.members)} @ {status.commit[:7]}"
    return f"{status.id}  {what}  [{status.state.value}]"


def approvals(st: StageStatus) -> str:
    """A stage's count of approvals: only where it has a gate that was not skipped."""
    if not st.approvals_required or st.state.value == "skipped":
        return ""
    return f"{len(st.approvals)}/{st.approvals_required}"


def table(status: PromotionStatus, titled: bool = True) -> Table:
    """Its stages (and below a stage with `clusters`, a row for each cluster: its wave and state); headed
    by its `title` unless `titled` is False (a title in a table wraps at its width)."""
    from rich.table import Table

    shown = Table(title=title(status) if titled else None)
    graph = any(st.after for st in status.stages)  # environments in a graph: each stage says what it comes after
    for col in ("env", *(("after",) if graph else ()), "state", "PR", "approvals", "message"):
        shown.add_column(col)
    for st in status.stages:
        colour = STAGE_COLOURS.get(st.state.value, "cyan")
        shown.add_row(
            st.env,
            *((", ".join(st.after) or "(source)",) if graph else ()),
            f"[{colour}]{st.state.value}[/{colour}]",
            f"#{st.pr_number}" if st.pr_number else "",
            approvals(st),
            st.message,
        )
        for c in st.clusters:  # an environment with `clusters`: each one's wave and state, below its stage
            colour = CLUSTER_COLOURS.get(c.state, "cyan")
            shown.add_row(
                f"  {c.context}",
                *(("",) if graph else ()),
                f"[{colour}]{c.state}[/{colour}]",
                "",
                "",
                f"wave {c.wave}" + (f": {c.message}" if c.message else ""),
            )
    return shown


CLUSTER_COLOURS = {"healthy": "green", "pending": "dim", "failed": "red", "reverted": "red"}


# a lift's one stage, as the outcome of a promotion: lifted is its success
LIFT_OUTCOMES = {"healthy": "succeeded", "rejected": "rejected", "failed": "failed", "cancelled": "cancelled"}


def lift_app(wid: str, env: str) -> str:
    """The app of a lift (its ID is release-hold-<app>-<env>); "" when its env is not known either."""
    from promoter.names import LIFT_PREFIX

    rest = wid.removeprefix(LIFT_PREFIX)
    return rest.removesuffix(f"-{env}") if env and rest.endswith(f"-{env}") else ""


def lift_status(
    wid: str, run_id: str, closed: str, stage: StageStatus, memo: dict[str, Any] | None = None
) -> PromotionStatus:
    """A lift of a hold as a promotion of one stage (its environment, gate and PR), so that `status`
    and `list` show it as they show a promotion. `closed`: how Temporal says the run closed (RUNNING if
    not); `memo`: the run's (its app, env and held commit, where `lift-hold` named them when it started)."""
    from promoter.models import PromotionState, PromotionStatus

    memo = memo or {}
    env = stage.env or str(memo.get("env") or "")
    state = LIFT_OUTCOMES.get(stage.state.value, "running") if closed != "CANCELED" else "cancelled"
    return PromotionStatus(
        id=wid,
        run_id=run_id,
        app=str(memo.get("app") or lift_app(wid, env)),
        commit=str(memo.get("commit") or ""),
        state=PromotionState(state),
        started_at=stage.started_at,
        finished_at=stage.finished_at,
        message=stage.message if state != "running" else "",
        stages=[stage] if stage.env else [],
    )


KIND, LIFT_KIND = "promotion", "lift-hold"  # what `status --json` and `list` call each kind of run
GLASS_KIND = "break-glass"  # a break-glass (`promoter break-glass`), through the lift gate's workflow


def lift_kind(wid: str) -> str:
    """What `status --json` and `list` call a run of the lift gate's workflow: a lift, or a break-glass."""
    from promoter.names import GLASS_PREFIX

    return GLASS_KIND if wid.startswith(GLASS_PREFIX) else LIFT_KIND


def list_row(wf: Listed, lift: PromotionStatus | None = None) -> dict[str, Any]:
    """A run as `promoter list` shows it: a promotion, or a lift of a hold (`lift`: as `lift_status` reads it).
    Once it ended, its `stage` is the last it reached and its `stage_state` none (its memo's is stale then)."""
    stage, stage_state = wf.stage
    if lift is not None:
        at = lift.stages[0] if lift.stages else None
        stage, stage_state = (at.env, at.state.value) if at else (wf.memo.get("env"), None)
    return {
        "id": wf.id,
        "run_id": wf.run_id,
        "kind": KIND if lift is None else lift_kind(wf.id),
        "app": lift.app if lift is not None else wf.memo.get("app", wf.id.removeprefix("promote-")),
        "commit": wf.memo.get("commit", ""),
        "state": wf.state if lift is None else lift.state.value,
        "stage": stage,
        "stage_state": stage_state if wf.status == "RUNNING" else None,
        "started_at": wf.started_at.isoformat() if wf.started_at else None,
        "closed_at": wf.closed_at.isoformat() if wf.closed_at else None,
    }


def listing(rows: list[dict[str, Any]], terminal: bool) -> list[str] | Table:
    """`promoter list`'s rows: a table on a terminal (IDs never cut), aligned lines otherwise (nothing cut).
    A finished promotion shows its outcome and the stage it ended at (none when it succeeded)."""
    header = ("id", "kind", "app", "commit", "state", "stage", "started")
    cells = [
        (r["id"], r["kind"], r["app"], r["commit"][:7], r["state"], _stage(r), (r["started_at"] or "")[:19])
        for r in rows
    ]
    if terminal:
        from rich.table import Table

        shown = Table()
        for i, col in enumerate(header):
            widest = max([len(c[i]) for c in cells] + [len(col)])
            shown.add_column(col, no_wrap=i < 2, min_width=widest if i < 2 else None)
        for c in cells:
            shown.add_row(*c)
        return shown
    widths = [max([len(c[i]) for c in cells] + [len(col)]) for i, col in enumerate(header)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *cells]]


def _stage(row: dict[str, Any]) -> str:
    if row["state"] == "running":
        return f"{row['stage']}: {row['stage_state']}" if row["stage"] and row["stage_state"] else row["stage"] or ""
    return "" if row["state"] == "succeeded" else f"at {row['stage']}" if row["stage"] else ""


def status_parts(st: PromotionStatus, drift: dict[str, dict[str, Any]], url: str | None) -> list[str | Table]:
    """What `promoter status` prints of one run, in order: lines (printed as they are) and its stages' table."""
    from promoter.models import proof_note

    parts: list[str | Table] = [title(st)]  # a line of its own: never wrapped, nor cut
    if st.stages:
        parts.append(table(st, titled=False))
    elif st.message:  # a claim (a member of a running release set, or an app a drift heal holds)
        parts.append(f"  {st.message}")
    parts += [f"  {stage.env} PR #{stage.pr_number}: {stage.pr_url}" for stage in st.stages if stage.pr_url]
    parts += ["audit:"] if st.audit else []
    for e in st.audit:  # every decision, in order: policy, approvals, refusals, voided, merge, revert
        who = f"{e.actor} via {e.via}{proof_note(e.proof, e.via)}" if e.via else e.actor
        parts.append(f"  {e.at:%Y-%m-%d %H:%M:%S}Z {e.env} {e.kind} by {who}" + (f": {e.detail}" if e.detail else ""))
    parts += [f"  note: {notice}" for notice in st.notices]
    parts += ["drift (the latest check of each environment):"] if drift else []
    for env, seen in drift.items():
        parts.append(f"  {env}: {drift_line(seen)}")
        parts += [f"    {difference(d)}" for d in seen["drifts"]]
    return parts + ([f"UI: {url}"] if url else [])


def stage_lines(status: PromotionStatus, seen: dict[str, str]) -> list[str]:
    """The stages whose state or message changed since `seen` (updated), as `--wait` prints them
    when its output is not a terminal."""
    lines = []
    for st in status.stages:
        line = f"{st.state.value}" + (f" — {st.message}" if st.message else "")
        if seen.get(st.env) != line:
            seen[st.env] = line
            lines.append(f"  {st.env}: {line}")
    return lines


def stage_plan(st: StagePlan) -> list[str]:
    """A stage of `promoter dry-run`, as lines: the change, the policies' decision, the gate."""
    head = f"{st.env} (source)" if st.source else st.env
    head += f" (after {', '.join(st.after)})" if st.after else ""  # a graph: what it waits for
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
        lines.append(gate_line(st))
        lines += [f"    {who} may not approve: {why}" for who, why in st.screened.items()] if _gated(st) else []
    if st.soak_s:
        lines.append(f"  soak: {timedelta(seconds=int(st.soak_s))} healthy before the next environment takes it")
    return lines


def _gated(st: StagePlan) -> bool:
    return bool(st.approvals_required or st.require_review)


def gate_line(st: StagePlan) -> str:
    if not _gated(st):
        return "  gate: none"
    from promoter.report import needs

    may = [a for a in st.approvers if a not in st.screened]
    gate = f"  gate: {needs(st.approvals_required, 0, may, st.require_review, False)}"
    gate += "; an approving PR review counts as an approval" if st.pull_request_reviews else ""
    return gate


def drift_line(seen: dict[str, Any]) -> str:
    when = f"checked {str(seen['checked_at'])[:19].replace('T', ' ')}Z against main @ {seen['revision'][:7]}"
    if seen["paused"]:
        return f"not compared, a promotion was in flight ({when})"
    if not seen["count"]:
        return f"matches Git ({when})"
    healed = ", healed from Git (live differed from Git; who changed it is not known)" if seen["healed"] else ""
    shown = f", the first {len(seen['drifts'])}" if len(seen["drifts"]) < seen["count"] else ""
    return f"{seen['count']} difference(s){healed} ({when}{shown})"


def difference(d: dict[str, Any]) -> str:
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


def nothing_to_promote(dry: DryRun) -> str:
    """When every environment after the source already holds the source's folders at the commit (a
    fresh stack, or a commit already promoted): one line saying so and how to make a change; else ""."""
    later = [st for st in dry.stages if not st.source]
    if not later or not all(st.skipped for st in later):
        return ""
    p, source = dry.plan, dry.stages[0].env
    folders = " and ".join(f"environments/{source}/{app}/" for app in p.members or [p.app])
    return (
        f"nothing to promote: {', '.join(st.env for st in later)} already match {source} at {p.short_commit}; "
        f"commit a change to {folders} (e.g. a new image) and push it to main first"
    )
