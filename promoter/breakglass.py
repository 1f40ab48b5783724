"""Break-glass: a time-boxed override that lets one app's promotions into one environment through a
freeze, and only through a freeze (`promoter break-glass`).

It is a file `trust/break-glass/<id>.yaml` that only promoter writes, and only after the break-glass
PR's own gate approved (the environment's `break_glass.approvers`, its `required` quorum):

    app: demo
    env: prod
    reason: the fix for incident 4711
    requested_by: alice
    until: "2026-12-03T18:00:00Z"        # at most MAX_HOURS after approved_at
    approved_at: "2026-12-03T09:12:00Z"
    approved_by: [bob, carol]

The PR opens on an empty commit that asks (`Promoter-Break-Glass-Request` trailers: it adds nothing).
Once its gate approved, promoter writes the file in a commit it signs with its commit signing key,
carrying as its last paragraph:

    Promoter-Break-Glass: <id> <reason> until <until>
    Promoter-Break-Glass-App: <app>
    Promoter-Break-Glass-Env: <env>
    Promoter-Approval: ...                            (the gate's approvals)

and merges it. The rules walk (promoter.git.rules) takes such a commit into the trusted rules revision
only when it is signed by a key the trusted trust/allowed_signers lists for `promoter` and adds
exactly its own file under trust/break-glass/, nothing else of the rule files; a file pushed by hand
counts for nothing while a trust root is set. The policies (policies/promoter/decision.rego) honour it
at each check's own evaluation time: only for its app and environment, only for
`promotion.freeze.deny_freeze_window`, from `approved_at` until `until`, and never when `until` is more
than MAX_HOURS after `approved_at`. It stops counting at its end without anyone removing it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from promoter import holds, yamlsafe
from promoter.errors import BadInput

FOLDER = "trust/break-glass"
MAX_HOURS = 24
MAX = timedelta(hours=MAX_HOURS)
BRANCH = "break-glass"
RULE = "promotion.freeze.deny_freeze_window"  # the one rule a break-glass lets through
GLASS = "Promoter-Break-Glass"
REQUEST = f"{GLASS}-Request"
APP = f"{GLASS}-App"
ENV = f"{GLASS}-Env"
UNTIL = f"{GLASS}-Until"
REQUESTED_BY = "Promoter-Requested-By"
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,120}")
_FIELDS = ("app", "env", "reason", "requested_by", "until", "approved_at", "approved_by")


def glass_id(app: str, env: str, at: datetime) -> str:
    """`<app>-<env>-<YYYYMMDDHHMMSS>` (UTC) of the moment it was asked for."""
    return f"{app}-{env}-{at.astimezone(UTC):%Y%m%d%H%M%S}"


def branch(app: str, env: str, gid: str) -> str:
    return f"{BRANCH}/{app}/{env}/{gid.rsplit('-', 1)[-1]}"


def path(gid: str) -> str:
    return f"{FOLDER}/{gid}.yaml"


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, where: str) -> datetime:
    """An RFC 3339 time with an offset; bad input naming `where` otherwise."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        t = None
    if t is None or t.utcoffset() is None:
        raise BadInput(f"{where} {text!r} is not an RFC 3339 time with an offset (e.g. 2026-12-03T18:00:00Z)")
    return t.astimezone(UTC)


def check_until(until: datetime, now: datetime) -> None:
    """A break-glass ends after `now` and at most MAX_HOURS after it; bad input saying what to fix."""
    if until <= now:
        raise BadInput(f"--until {rfc3339(until)} has passed already; give a time in the next {MAX_HOURS} hours")
    if until - now > MAX:
        raise BadInput(
            f"--until {rfc3339(until)} is more than {MAX_HOURS} hours ahead; a break-glass runs at most "
            f"{MAX_HOURS} hours after its approval: ask for less, and again later if you must"
        )


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


REQUEST_HEADER = "promoter break-glass request v1"
SKEW = timedelta(minutes=10)  # a signed request's time may be this far off the worker's clock


def request_statement(app: str, env: str, until: datetime, who: str, why: str, at: datetime) -> str:
    """What who asks for a break-glass signs (`promoter break-glass --sign-key`), where the environment's
    approvals must be signed: the asker is then who the signature proves, not a name typed by hand. The
    reason is a JSON string (ASCII), so nothing in it starts a line of its own."""
    import json

    lines = [REQUEST_HEADER, f"app {app}", f"env {env}", f"until {rfc3339(until)}", f"by {one_line(who, 120)}"]
    return "\n".join([*lines, f"reason {json.dumps(why)}", f"at {rfc3339(at)}", ""])


def check_request(statement: str, app: str, env: str, until: datetime, who: str, why: str, now: datetime) -> datetime:
    """The time a signed request names, once it is this request's statement, made within SKEW of `now`;
    bad input saying what differs otherwise."""
    said = dict(line.split(" ", 1) for line in statement.splitlines()[1:] if " " in line)
    at = parse_time(said.get("at", ""), "the signed request's time") if said.get("at") else None
    if at is None or statement != request_statement(app, env, until, who, why, at):
        raise BadInput(
            "the signed request is not for this break-glass (its app, env, until, asker or reason); sign again"
        )
    if abs(now - at) > SKEW:
        raise BadInput(f"the signed request was made at {rfc3339(at)}, more than 10 minutes off now; sign again")
    return at


def request_trailers(gid: str, app: str, env: str, until: str, who: str, why: str) -> str:
    """The break-glass PR's first commit: it names what is asked, and adds nothing."""
    return (
        f"{REQUEST}: {gid}\n{APP}: {app}\n{ENV}: {env}\n{UNTIL}: {until}\n"
        f"{REQUESTED_BY}: {one_line(who, 120)}: {one_line(why)}\n"
    )


def request(message: str) -> dict[str, str] | None:
    """{id, app, env, until, who, why} of a break-glass request commit's message; None when it is not one."""
    fields = holds.trailer_block(message)
    found = {
        k: next((v for key, v in fields if key == t), "")
        for k, t in (("id", REQUEST), ("app", APP), ("env", ENV), ("until", UNTIL), ("by", REQUESTED_BY))
    }
    if not all(found[k] for k in ("id", "app", "env", "until")):
        return None
    who, _, why = found.pop("by").partition(": ")
    return {**found, "who": who, "why": why}


def seal_trailers(gid: str, app: str, env: str, until: str, why: str, approvals: list[str]) -> str:
    """The commit that puts the break-glass in place: counts only signed by promoter's key (see the module)."""
    approved = "".join(f"{one_line(line, 2000)}\n" for line in approvals)
    return f"{GLASS}: {gid} {one_line(why)} until {until}\n{APP}: {app}\n{ENV}: {env}\n{approved}"


def sealed(message: str) -> str | None:
    """The id a commit's trailer block puts in place (`Promoter-Break-Glass: <id> ...`), else None."""
    fields = holds.trailer_block(message)
    value = next((v for k, v in fields if k == GLASS), "")
    gid = value.split(" ", 1)[0]
    return gid if _ID.fullmatch(gid) else None


def render(gid: str, asked: dict[str, str], approved_at: datetime, approved_by: list[str]) -> str:
    """The file promoter writes once the gate approved."""
    doc = {
        "app": asked["app"],
        "env": asked["env"],
        "reason": one_line(asked["why"]),
        "requested_by": one_line(asked["who"], 120),
        "until": asked["until"],
        "approved_at": rfc3339(approved_at),
        "approved_by": approved_by,
    }
    import yaml

    head = (
        f"# Break-glass {gid}: written and signed by promoter after its PR's approvals. It lets {asked['app']}'s\n"
        f"# promotions into {asked['env']} through a freeze, and only a freeze, until `until`; then it stops\n"
        "# counting by itself. Edited or pushed by hand it counts for nothing (docs/policies.md, Break-glass).\n"
    )
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def load(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`trust/break-glass/*.yaml` (paths relative to it → text) as `data.break_glass`: {id: {app, env,
    reason, requested_by, until, approved_at, approved_by, file}}. A malformed one is bad input naming its
    file (the policies then deny everything: fail closed). Whether one applies, and whether it runs too
    long, is the policies' decision."""
    found: dict[str, dict[str, Any]] = {}
    for name in sorted(files):
        if not name.endswith(".yaml") or "/" in name:
            continue
        where = f"{FOLDER}/{name}"
        gid = name.removesuffix(".yaml")
        if not _ID.fullmatch(gid):
            raise BadInput(f"{where}: {gid!r} is not a break-glass id (lower-case letters, digits and -)")
        doc = yamlsafe.load(files[name], where) or {}
        if not isinstance(doc, dict):
            raise BadInput(f"{where}: expected a mapping of {', '.join(_FIELDS)}")
        unknown = sorted(set(map(str, doc)) - set(_FIELDS))
        if unknown:
            raise BadInput(f"{where}: unknown key {unknown[0]!r}; a break-glass file is promoter's, never edited")
        for key in _FIELDS[:6]:
            if not isinstance(doc.get(key), str) or not doc[key].strip():
                raise BadInput(f"{where}: {key} is required (a break-glass file is promoter's, never edited)")
        for key in ("until", "approved_at"):
            parse_time(doc[key], f"{where}: {key}")
        approvers = doc.get("approved_by")
        if not isinstance(approvers, list) or not approvers or not all(isinstance(a, str) for a in approvers):
            raise BadInput(f"{where}: approved_by is not a list of the approvers")
        found[gid] = {**{k: doc[k] for k in _FIELDS}, "file": where}
    return found
