"""An app's promotions, reverts and holds per environment, read from git alone (`promoter history`).

Every fact is in origin's main: a promotion's merge (`Merge pull request #N from
promote/<app>/<env>/<short>`) carries the promotion's ID and its decisions as trailers
(`Promoter-Promotion`, `Promoter-Policy`, `Promoter-Approval`, ...), and its second parent, the
branch's commit, names the promoted commit (`Promoted-Commit`). A revert's merge (and promoter's signed
revert commit it merges) carries the hold it puts in place, and a later commit signed by promoter's
key may lift it (promoter.holds). So the history outlives Temporal's retention and needs no Temporal
server at all.
"""

from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from promoter import holds

PROMOTION = "Promoter-Promotion"
APPROVAL = "Promoter-Approval"
TRUST = "Promoter-Trust"  # the revision of main whose trust/ verified the merge's signed approvals
SIGNED = "Promoter-Signed-Approval"  # one per signed approval: its statement (base64) and signature
_NOT_SHOWN = (PROMOTION, SIGNED)  # a decision's own line says it was signed; its proof is verified, not printed


def signed_trailer(statement: str, signature: str) -> str:
    """A signed approval as one trailer: `Promoter-Signed-Approval: <statement, base64> <signature line>`."""
    return f"{SIGNED}: {base64.b64encode(statement.encode()).decode()} {signature}"


def parse_signed(value: str) -> tuple[str, str] | None:
    """(statement, signature line) of a `Promoter-Signed-Approval` trailer's value; None when malformed."""
    encoded, _, signature = value.partition(" ")
    try:
        statement = base64.b64decode(encoded, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return (statement, signature.strip()) if signature.strip() else None


_MERGE = re.compile(r"Merge pull request #(\d+) from (promote|revert)/([a-z0-9-]+)/([a-z0-9-]+)/")


@dataclass
class Event:
    env: str
    kind: str  # promoted | reverted | hold-released (a lifted hold: the kind keeps its first name, scripts read it)
    at: str  # when it reached main (the commit's date, ISO 8601)
    commit: str  # the app's commit this is about
    main_commit: str  # the commit of main that records it
    pr_number: int | None = None
    promotion: str = ""
    decisions: list[str] = field(default_factory=list)  # the Promoter-* trailers, in order
    reason: str = ""
    # each approval, verified again from Git alone: {approver, via, verdict: verified | unsigned | INVALID: why}
    approvals: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def merge_of(message: str) -> tuple[int, str, str, str] | None:
    """(PR number, `promote` | `revert`, app, environment) of a promotion's or a revert's merge on main;
    None for any other commit. (`promoter metrics` reads main with it too.)"""
    match = _MERGE.match(message)
    return None if match is None else (int(match.group(1)), match.group(2), match.group(3), match.group(4))


def set_members(kind: str, merge: dict[str, str]) -> list[str]:
    """A release set's apps, as its promotion's branch commit (`Release-Set-App`) or its revert's
    merge (one `Promoter-Held-App` per member) names them."""
    if kind == "promote":
        return [v for k, v in holds.parse_trailers(merge.get("branch_message", "")) if k == "Release-Set-App"]
    return [v for k, v in held(merge) if k == f"{holds.HELD}-App"]


def held(merge: dict[str, str]) -> list[tuple[str, str]]:
    """A revert's hold: the trailer block of its merge (promoter's message, with the PR's URL), else of
    its branch's commit (promoter's own signed revert commit, when a forge's merge dropped the message)."""
    fields = holds.trailer_block(merge["message"])
    if any(k == holds.HELD for k, _ in fields):
        return fields
    return holds.trailer_block(merge.get("branch_message", ""))


def events(app: str, merges: list[dict[str, str]], lifts: list[dict[str, str]]) -> list[Event]:
    """`merges`: main's merges touching the app ({sha, at, message, branch_message, rank}); `lifts`:
    commits lifting a hold ({sha, at, message, rank}). `rank` is the position on main's first-parent
    line (0: the newest). Returns the events, newest first."""
    ranked: list[tuple[int, Event]] = []
    for m in merges:
        match = _MERGE.match(m["message"])
        fields = holds.parse_trailers(m["message"])
        if match is None or (match.group(3) != app and app not in set_members(match.group(2), m)):
            continue
        number, kind, env = int(match.group(1)), match.group(2), match.group(4)
        values = dict(fields)
        if kind == "promote":
            event = Event(
                env=env,
                kind="promoted",
                at=m["at"],
                commit=dict(holds.parse_trailers(m.get("branch_message", ""))).get("Promoted-Commit", ""),
                main_commit=m["sha"],
                pr_number=number,
                promotion=values.get(PROMOTION, ""),
                decisions=[f"{k}: {v}" for k, v in fields if k.startswith("Promoter-") and k not in _NOT_SHOWN],
            )
        else:
            fields = held(m)
            values = dict(fields)
            event = Event(
                env=env,
                kind="reverted",
                at=m["at"],
                commit=values.get(holds.HELD, ""),
                main_commit=m["sha"],
                pr_number=number,
                reason=values.get(f"{holds.HELD}-Reason", ""),
                decisions=[f"{k}: {v}" for k, v in fields if k.startswith(holds.HELD)],
            )
        ranked.append((int(m.get("rank", 0)), event))
    for r in lifts:  # the caller passes only lifts that count (signed by promoter's key)
        values = dict(holds.trailer_block(r["message"]))
        if values.get(f"{holds.HELD}-App") != app:
            continue
        event = Event(
            env=values.get(f"{holds.HELD}-Env", ""),
            kind="hold-released",
            at=r["at"],
            commit=values.get(holds.LIFT, ""),
            main_commit=r["sha"],
            reason=values.get("Promoter-Released-By", ""),
        )
        ranked.append((int(r.get("rank", 0)), event))
    ranked.sort(key=lambda pair: pair[0])
    return [event for _, event in ranked]
