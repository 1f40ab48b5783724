"""How the commands draw what they print: a promotion's table, a stage of a plan, a drift finding."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from promoter.models import PromotionStatus, StagePlan

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


def table(status: PromotionStatus) -> Table:
    from rich.table import Table

    shown = Table(
        title=f"{status.id}  {subject(status.app, status.members)} @ {status.commit[:7]}  [{status.state.value}]"
    )
    for col in ("env", "state", "PR", "approvals", "message"):
        shown.add_column(col)
    for st in status.stages:
        colour = STAGE_COLOURS.get(st.state.value, "cyan")
        approvals = f"{len(st.approvals)}/{st.approvals_required}" if st.approvals_required else ""
        shown.add_row(
            st.env,
            f"[{colour}]{st.state.value}[/{colour}]",
            f"#{st.pr_number}" if st.pr_number else "",
            approvals,
            st.message,
        )
    return shown


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
    may = [a for a in st.approvers if a not in st.screened]
    gate = f"  gate: {st.approvals_required} approval(s) from {', '.join(may) or 'nobody'}"
    gate += " + a PR review" if st.require_review else ""
    gate += "; an approving PR review counts" if st.pull_request_reviews else ""
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
