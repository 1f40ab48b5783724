"""Each approval of a promotion's merge, verified again from Git alone (`promoter history`).

A merge records every approval as a `Promoter-Approval` trailer, and each signed one also as a
`Promoter-Signed-Approval` trailer (its statement and its SSH signature), beside `Promoter-Trust`: the
revision of main whose `trust/allowed_signers` verified it when the gate accepted it. Anyone with the
repository can check them again: the signature against that allowed_signers file (and the keys revoked
then or since), and the statement against the merge itself: the same promotion, environment and
commit, and exactly the folder trees that the merge put on main.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from promoter import history, signing
from promoter.models import PromotionStatus, StageStatus, Trust
from promoter.names import app_folder

# `alice via cli (signed) at 2026-…: comment`, as models.AuditEntry.trailer writes it
_APPROVAL = re.compile(r"(?P<who>\S+) via (?P<via>[a-z_]+)(?: \((?P<note>[a-z]+)\))? at ")

VERIFIED = "verified"
UNSIGNED = "unsigned"


def statement_of(
    gate: str,
    run: str,
    commit: str,
    stage: StageStatus,
    decision: str,
    approver: str,
    at: datetime,
    comment: str = "",
) -> signing.Statement:
    """The statement an approver of `stage` signs: the run's workflow ID and run, the stage's
    environment, the commit it promotes (or a lift's, `StageStatus.commit`), its PR head and the folder
    trees that would merge (none for a lift: its PR changes no folder), the decision, who, when and the
    comment. The gate builds the same one to check a signature (workflows/signatures.py), the CLI to make one."""
    return signing.Statement(
        promotion=gate,
        run=run,
        env=stage.env,
        commit=commit,
        head=stage.head_sha or "",
        trees=tuple(sorted(stage.trees.items())),
        decision=decision,
        approver=approver,
        at=at,
        comment=comment,
    )


def statement_for(
    status: PromotionStatus, stage: StageStatus, decision: str, approver: str, at: datetime, comment: str = ""
) -> signing.Statement:
    """The statement an approver of a promotion's `stage` signs, from what the promotion says of itself."""
    return statement_of(status.id, status.run_id, status.commit, stage, decision, approver, at, comment)


def lift_statement(
    gate: str, run: str, stage: StageStatus, decision: str, approver: str, at: datetime, comment: str = ""
) -> signing.Statement:
    """The statement an approver of a lift of a hold or a break-glass signs (workflows/lift_hold.py):
    its run's ID and run, and the commit its one stage names."""
    return statement_of(gate, run, stage.commit, stage, decision, approver, at, comment)


@dataclass(frozen=True)
class TrustAt:
    """The trust files a merge names (None, with `problem`, when it names none that can be used) and
    the keys revoked on main now: a key revoked since makes its earlier signatures invalid too."""

    trust: Trust | None
    problem: str = ""
    revoked_now: str = ""


def check(
    event: history.Event,
    fields: list[tuple[str, str]],
    app: str,
    trust: TrustAt,
    trees: Callable[[list[str]], dict[str, str]],
    head: str = "",
) -> list[dict[str, str]]:
    """Each approval of a promotion's merge (`fields`: its trailers, in order), with its verdict:
    `verified (SHA256:…)`, `unsigned`, or `INVALID: why`. `trees` gives folders' trees at the merge,
    `head` the PR head it merged (its second parent; "" for a squash merge, which has none)."""
    signed: dict[str, tuple[str, str]] = {}
    results: list[dict[str, str]] = []
    for key, value in fields:
        if key != history.SIGNED:
            continue
        parsed = history.parse_signed(value)
        approver = _approver(parsed[0]) if parsed else None
        if parsed is None or approver is None:
            results.append({"approver": "?", "via": "", "verdict": f"INVALID: a malformed {history.SIGNED} trailer"})
        else:
            signed[approver] = parsed
    for key, value in fields:
        match = _APPROVAL.match(value) if key == history.APPROVAL else None
        if match is None:
            continue
        who, via, note = match.group("who"), match.group("via"), match.group("note")
        if note == "signed" and who in signed:  # each signed line (a voided one too) against the signature
            verdict = _verify(event, app, *signed[who], trust, trees, head)
        elif note == "signed":
            verdict = "INVALID: recorded as signed, but the merge carries no signature for it"
        else:
            verdict = UNSIGNED + (" (the local forge's unauthenticated review)" if note == "unauthenticated" else "")
        results.append({"approver": who, "via": via, "verdict": verdict})
    recorded = {r["approver"] for r in results}
    for who in signed.keys() - recorded:  # a signature with no approval beside it: added to the message by hand
        results.append({"approver": who, "via": "", "verdict": "INVALID: a signature for an approval not recorded"})
    return results


def _approver(statement: str) -> str | None:
    try:
        return signing.Statement.parse(statement).approver
    except signing.SignatureError:
        return None


def _verify(
    event: history.Event,
    app: str,
    statement: str,
    signature: str,
    trust: TrustAt,
    trees: Callable[[list[str]], dict[str, str]],
    head: str,
) -> str:
    if trust.trust is None:
        return f"INVALID: {trust.problem}"
    try:
        said = signing.Statement.parse(statement)
        verified = signing.verify(
            statement.encode(),
            signing.line_to_armor(signature),
            principal=said.approver,
            allowed_signers=trust.trust.allowed_signers,
            revoked_keys=trust.trust.revoked_keys + "\n" + trust.revoked_now,
            at=said.at,
        )
    except signing.SignatureError as e:
        return f"INVALID: {e}"
    folders = dict(said.trees)
    checks = [
        (said.decision == "approve", f"it signs a decision to {said.decision}"),
        (said.promotion == event.promotion, f"it is for promotion {said.promotion}, not {event.promotion}"),
        (said.env == event.env, f"it is for environment {said.env}, not {event.env}"),
        (said.commit == event.commit, f"it is for commit {said.commit[:12]}, not {event.commit[:12]}"),
        (not head or said.head == head, f"it is for PR head {said.head[:12]}, not the {head[:12]} merged"),
        (app_folder(event.env, app) in folders, f"it does not name {app_folder(event.env, app)}"),
        (trees(list(folders)) == folders, "the trees it names are not what this merge put on main"),
    ]
    wrong = next((why for ok, why in checks if not ok), None)
    return f"INVALID: {wrong}" if wrong else f"{VERIFIED} ({verified.fingerprint})"
