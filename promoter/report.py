"""Text a person reads: pull request titles and bodies. Pure functions, safe inside a workflow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from promoter import history
from promoter.models import (
    Approval,
    AuditEntry,
    DiffSummary,
    PolicyDecision,
    PolicyViolation,
    PromotionPlan,
    StageStatus,
    VerifyConfig,
    proof_note,
)
from promoter.verify import substitute


def human_duration(d: timedelta | None) -> str:
    """`1d2h`, `24h` reads better than `1 day, 0:00:00`: days only past 48 hours."""
    if d is None:
        return "no deadline"
    total = int(d.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if unit == "d" and total < 2 * 86400:
            continue
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"


# ---------------------------------------------------------------------- the gate, in one phrase


def needs(required: int, approved: int, approvers: Sequence[str], review: bool, reviewed: bool) -> str:
    """What a gate still needs, the one phrase every message says it with (status, the Web UI, the
    PR body, webhooks, the approve reply): "needs N more approval(s) from <approvers>", and when the gate
    also requires a review on its PR "; also needs an approving PR review" (alone once the count is
    met). "" when it needs nothing more."""
    more = max(0, required - approved)
    parts = [f"needs {more} more approval(s) from {', '.join(approvers) or 'nobody'}"] if more else []
    if review and not reviewed:
        parts.append("also needs an approving PR review" if parts else "needs an approving PR review")
    return "; ".join(parts)


def may_approve(stage: StageStatus) -> list[str]:
    """Who may decide a stage's gate: its approvers as the policies expand them (groups to their
    members), less those the policies screened out. The one list every message names."""
    return [a for a in stage.approvers if a not in stage.screened]


def yet_to_approve(stage: StageStatus) -> list[str]:
    """Who may still approve: `may_approve`, less those whose approval already counts (nobody approves
    twice), so "needs 1 more approval(s) from …" never names someone who just approved."""
    approved = {a.approver for a in stage.approvals}
    return [a for a in may_approve(stage) if a not in approved]


def stage_needs(stage: StageStatus) -> str:
    """What a stage's gate still needs (`needs`), from the stage alone: what a client shows after an
    approval it sent (the update returns the stage). "" when the gate needs nothing more."""
    reviewed = any(a.via == "pull_request" for a in stage.approvals)
    return needs(stage.approvals_required, len(stage.approvals), yet_to_approve(stage), stage.review_required, reviewed)


def pr_title(plan: PromotionPlan, source: str, target: str) -> str:
    return f"Promote {plan.app} to {target}: {source} @ {plan.short_commit}"


def diff_lines(diff: DiffSummary) -> list[str]:
    lines = [f"- added `{p}`" for p in diff.added]
    lines += [f"- modified `{p}`" for p in diff.modified]
    lines += [f"- removed `{p}`" for p in diff.removed]
    return lines or ["- (no file changes)"]


def policy_lines(decision: PolicyDecision) -> list[str]:
    lines = [
        f"**{'allowed' if decision.allow else 'denied'}** by the `{decision.engine}` engine, "
        f"policy revision `{decision.revision}`: {len(decision.deny)} denial(s), {len(decision.warn)} warning(s)."
    ]
    for title, items in (("Denied", decision.deny), ("Warnings", decision.warn)):
        if items:
            lines += ["", f"| {title} | rule | severity | object | remediation |", "|---|---|---|---|---|"]
            lines += [
                f"| {v.message}{_exception_note(v)} | `{v.rule}` | {v.severity} | {v.object or ''} | {v.remediation} |"
                for v in items
            ]
    if decision.excepted:
        lines += ["", "| Excepted | rule | object | exception |", "|---|---|---|---|"]
        lines += [f"| {v.message} | `{v.rule}` | {v.object or ''} | {v.exception} |" for v in decision.excepted]
    return lines


def _exception_note(v: PolicyViolation) -> str:
    return f" ({v.exception})" if v.exception else ""


def decision_table(decision: PolicyDecision, title: str) -> Any:
    """A rich table of a decision, for the terminal."""
    from rich.table import Table

    verdict = "[green]allowed[/green]" if decision.allow else "[red]denied[/red]"
    table = Table(title=f"{title}: {verdict} ({decision.engine}, revision {decision.revision})")
    for col in ("", "severity", "rule", "object", "message", "remediation"):
        table.add_column(col)
    for kind, items in (
        ("[red]deny[/red]", decision.deny),
        ("[yellow]warn[/yellow]", decision.warn),
        ("[cyan]excepted[/cyan]", decision.excepted),
    ):
        for v in items:
            message = f"{v.message} ({v.exception})" if v.exception else v.message
            table.add_row(kind, v.severity, v.rule, v.object or "", message, v.remediation)
    return table


def opened_by(body: str, promotion_id: str) -> bool:
    """Whether a PR's body is the one `pr_body` wrote for this promotion (its first words name it)."""
    return body.startswith(f"Promotion `{promotion_id}` ")


def pr_body(
    plan: PromotionPlan,
    promotion_id: str,
    source: str,
    target: str,
    diff: DiffSummary,
    decision: PolicyDecision,
    approvers: list[str],
    required: int,
) -> str:
    """The PR's body. Its gate names the approvers as the policies expanded them for this check
    (`decision.approvers`, groups to their members; `approvers`, the environment's own list, only when
    the rules give none), in the gate's one phrase (`needs`)."""
    planned = next((e for e in plan.environments if e.config.name == target), None)
    review = planned is not None and planned.config.approval.require_review
    wanted = needs(required, 0, decision.approvers or approvers, review, False)
    gate = (
        f"{wanted[:1].upper()}{wanted[1:]}."
        if wanted
        else "No approval required: this PR merges as soon as its checks pass."
    )
    if required:
        gate += (
            f"\nApprove with `promoter approve {promotion_id} --env {target} --as <you>` "
            "or the `approve` update in the Temporal Web UI."
        )
    return "\n".join(
        [
            f"Promotion `{promotion_id}` carries `{plan.app}` from **{source}** to **{target}**.",
            "",
            f"- commit: `{plan.commit}` by {plan.author}",
            f"- message: {plan.message}",
            "",
            f"### Changes in `environments/{target}/{plan.app}`",
            *diff_lines(diff),
            "",
            "### Policy",
            *policy_lines(decision),
            *rules_lines(plan),
            "",
            "### Gate",
            gate,
            *verify_lines(planned.config.verify if planned else [], plan.app, target),
        ]
    )


def verify_lines(checks: Sequence[VerifyConfig], app: str, env: str) -> list[str]:
    """The checks that must pass after the merge (environment.yaml's `verify`), for the PR body; their
    measurements are added to its audit once they ran."""
    if not checks:
        return []
    lines = ["", "### Verification", "After the merge and a healthy rollout each check must pass, else it is reverted:"]
    for c in checks:
        if c.prometheus is not None:
            what = f"`{substitute(c.prometheus.query, app, env)}` meets `{c.prometheus.success}`"
        else:
            assert c.http is not None
            what = f"`{substitute(c.http.url, app, env)}` answers {c.http.expect_status}"
        every = f"at least {c.count} measurement(s), {human_duration(c.interval)} apart"
        lines.append(f"- {c.name}: {what}; {every}, failure_limit {c.failure_limit}")
    return lines


def rules_lines(plan: PromotionPlan) -> list[str]:
    """Which revision of the rule files judged, and what on main was not used."""
    if plan.rules.root is None:
        return ["", f"Rules: main's as they stand at `{plan.rules.commit[:12]}` (no trust root is set)."]
    lines = ["", f"Rules: the trusted revision `{plan.rules.commit}`."]
    if plan.rules.untrusted:
        lines.append(f"**{plan.rules.notice()}.**")
    return lines


def audit_section(entries: list[AuditEntry]) -> str:
    """The stage's decisions, appended to its PR body: the record outlives Temporal's retention."""
    lines = ["", "### Audit", "", "| when (UTC) | what | who | via | detail |", "|---|---|---|---|---|"]
    lines += [
        f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.kind} | {_cell(e.actor, 80)} | {e.via}{proof_note(e.proof, e.via)} "
        f"| {_cell(e.detail, 2000)} |"
        for e in entries
    ]
    return "\n".join(lines)


def _cell(text: str, limit: int) -> str:
    """A table cell of text a person typed (an approver's name, a comment): one line, with `\\` and `|`
    escaped, so it can neither end its row nor forge another."""
    flat = " ".join(text.split())[:limit]
    return flat.replace("\\", "\\\\").replace("|", "\\|")


def merge_message(
    number: int,
    branch: str,
    title: str,
    promotion: str,
    entries: list[AuditEntry],
    signed: list[Approval] | None = None,
    trust_revision: str = "",
) -> str:
    """The merge commit's message: git trailers carry every decision of the stage, and each signed
    approval's statement and signature with the revision of main whose trust/ verified them, so that
    `promoter history` verifies them again from Git alone. `promotion` is empty for a merge that is no
    promotion's (a hold's lift: its approvals are its only trailers)."""
    named = [f"{history.PROMOTION}: {promotion}"] if promotion else []
    trailers = [*named, *(e.trailer() for e in entries)]
    proofs = [history.signed_trailer(a.statement, a.signature) for a in signed or [] if a.proof == "signed"]
    if proofs:
        trailers += [f"{history.TRUST}: {trust_revision}", *proofs]
    return f"Merge pull request #{number} from {branch}\n\n{title}\n\n" + "\n".join(trailers) + "\n"
