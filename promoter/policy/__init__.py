"""Policy evaluation: the `PolicyEngine` protocol, the policy bundle, the input document and the
fail-closed decision.

Python builds the input and reads `data.promoter.decision`; the rules live only in Rego. Severity and
remediation come from each rule's `# METADATA` block, handed to the policies as
`data.policy_metadata` so the decision document itself carries them, whatever the backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from promoter import errors, schemas, yamlsafe
from promoter.errors import BadInput, TemporaryError
from promoter.models import EnvironmentConfig, PolicyDecision, PolicyViolation

DECISION = "data.promoter.decision"
# Every request a backend sends to a policy server (the opa backend's), and the reading of its answer,
# runs under this: `promoter worker` sets it, as it sets promoter.forges.http.REQUEST_GUARD. The SDK
# raises a thread activity's cancel into the thread at any point, and one raised inside urllib3's pool
# lock would leave it taken for every later request. Here, not in the backend's module, so that the
# worker sets it without importing a backend it may not use.
REQUEST_GUARD: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext
_META_LINE = re.compile(r"^\s*#\s?(.*)$")
_RULE_HEAD = re.compile(r"^([a-z_][a-zA-Z0-9_]*)\b")


@dataclass(frozen=True)
class PolicyBundle:
    """Every `.rego` file of `policies/` (by path), its data, and the METADATA of its rules."""

    modules: dict[str, str]
    data: dict[str, Any]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    commit: str = ""  # the trusted rules revision it was read at (empty: a working tree, e.g. `policy check`)
    calendars: tuple[Any, ...] = ()  # data.yaml's freeze_calendars, read (promoter.calendars.Calendar)
    calendar_files: dict[str, str] = field(default_factory=dict)  # their texts, by path under policies/

    @property
    def revision(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.modules):
            h.update(path.encode() + b"\0" + self.modules[path].encode() + b"\0")
        h.update(json.dumps(self.data, sort_keys=True, default=str).encode())
        for path in sorted(self.calendar_files):
            h.update(path.encode() + b"\0" + self.calendar_files[path].encode() + b"\0")
        return h.hexdigest()[:16]

    def policies(self) -> dict[str, str]:
        """The modules that decide (unit tests are loaded only by `policy test`)."""
        return {p: s for p, s in self.modules.items() if not p.endswith("_test.rego")}

    def full_data(self) -> dict[str, Any]:
        return {**self.data, "policy_metadata": self.metadata}

    @classmethod
    def from_files(cls, files: dict[str, str], break_glass: dict[str, str] | None = None) -> PolicyBundle:
        """`files`: paths relative to policies/ → text, as read from disk or from a Git tree;
        `break_glass`: trust/break-glass/'s files (relative to it) at the same trusted revision."""
        from promoter import breakglass
        from promoter import calendars as ical

        modules = {p: t for p, t in files.items() if p.endswith(".rego")}
        data: dict[str, Any] = {}
        found: tuple[Any, ...] = ()
        for p in sorted(files):
            if Path(p).name in ("data.yaml", "data.yml", "data.json") and "/" not in p:
                loaded = _load_yaml(files[p], f"policies/{p}") or {}
                if not isinstance(loaded, dict):
                    raise BadInput(f"policies/{p}: expected a mapping")
                check_data(loaded, f"policies/{p}")
                found += ical.load(loaded.get("freeze_calendars"), files, f"policies/{p}")
                data.update(loaded)
        exceptions = load_exceptions({p: t for p, t in files.items() if p.startswith(EXCEPTIONS + "/")})
        if exceptions:
            data["exceptions"] = exceptions
        glass = breakglass.load(break_glass or {})
        if glass:
            data["break_glass"] = glass
        metadata: dict[str, dict[str, Any]] = {}
        for text in modules.values():
            metadata.update(parse_metadata(text))
        texts = {c.file.removeprefix("policies/"): files[c.file.removeprefix("policies/")] for c in found}
        return cls(modules=modules, data=data, metadata=metadata, calendars=found, calendar_files=texts)

    @classmethod
    def from_dir(cls, root: Path) -> PolicyBundle:
        root = Path(root)
        if not root.is_dir():
            raise BadInput(f"{root} does not exist; policies live in policies/ of the GitOps repository")
        files = {
            str(p.relative_to(root)): p.read_text()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".rego", ".yaml", ".yml", ".json", ".ics")
        }
        return cls.from_files(files)


EXCEPTIONS = "exceptions"
_RULE_ID = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")

# An exception may waive the hygiene of what is deployed, never a gate of the promotion itself
# (approvals, order, soak, freeze). policies/promoter/decision.rego holds the same list, so that an
# exception reaching the policies some other way (OPA's own data) does not waive a gate either.
EXCEPTABLE = ("kubernetes", "schemas")
# The concern every environment enforces, whatever its policy.enforce and policy.warn_only say.
ALWAYS_ENFORCED = "promotion"
# The longest an exception may run, in days: data.yaml's max_exception_days may lower it, never
# raise it. decision.rego holds the same ceiling.
MAX_EXCEPTION_DAYS = 90

# The grammar of policies/lib/dates.rego (ASCII digits; fullmatch, so no trailing newline slips by).
_DAY = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_NOT_A_DATE = "is not a date; write it as YYYY-MM-DD (or an RFC 3339 time, 2026-12-20T00:00:00Z)"
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW_FIELDS = ("name", "environments", "start", "end", "weekly")
_WEEKLY_FIELDS = ("days", "from", "to")


def _is_day(text: str) -> bool:
    if not _DAY.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)  # 2026-02-30 has the shape of a date, and is none
    except ValueError:
        return False
    return True


def strict_time(value: Any) -> str | None:
    """A date (`YYYY-MM-DD`) or an RFC 3339 time (`2026-12-20T00:00:00Z`), as the policies read it;
    None for anything else (`2026-12-20 junk`, `2026-13-01`, `tomorrow`, a time without an offset).
    YAML's own unquoted dates and times are written out in those forms."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        m = _RFC3339.fullmatch(value)
        if _is_day(value) or (m is not None and _is_day(m.group(1))):
            return value
    return None


def _instant(text: str, end: bool = False) -> datetime:
    """The moment a `strict_time` names: a date is its first instant (UTC), or as an end, its last."""
    if _is_day(text):
        return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1 if end else 0)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)  # as the policies' json.marshal shows it


def _load_yaml(text: str, where: str) -> Any:
    """A policy data file; an unquoted date that is no date (`2026-13-01`, which PyYAML reads as a date
    and fails on) is bad input naming where it sits, not an error of ours."""
    try:
        return yamlsafe.load(text, where)
    except ValueError as e:
        found = _impossible_date(text)
        if found is None:
            raise BadInput(f"{where}: {e}") from None
        keys, value = found
        if f"/{EXCEPTIONS}/" in where and len(keys) > 1:  # an exception file: its ID, then the field
            keys = [f"exception {keys[0]!r}: {keys[1]}", *keys[2:]]
        at = "".join(k if k.startswith("[") or i == 0 else f".{k}" for i, k in enumerate(keys))
        raise BadInput(f"{where}: {at} {value!r} {_NOT_A_DATE}") from None


def _impossible_date(text: str) -> tuple[list[str], str] | None:
    """The keys leading to the first unquoted date that is no date, and its text. (The text was already
    read within yamlsafe's budget; composing it again expands no alias.)"""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    checker = yaml.SafeLoader("")
    stack: list[tuple[yaml.Node | None, list[str]]] = [(root, [])]
    seen: set[int] = set()
    while stack:
        node, keys = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
            try:
                checker.construct_yaml_timestamp(node)
            except ValueError:
                return keys, str(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack += [(v, [*keys, str(getattr(k, "value", "?"))]) for k, v in reversed(node.value)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(v, [*keys, f"[{i}]"]) for i, v in reversed(list(enumerate(node.value)))]
    return None


# what promoter hands the policies from elsewhere, each checked there: a data file setting it would pass unchecked
RESERVED_DATA = {
    "break_glass": "a break-glass is asked with `promoter break-glass`; promoter writes it under trust/break-glass/",
    "exceptions": "an exception is a file under policies/exceptions/ (checked against max_exception_days)",
}


def check_data(data: dict[str, Any], where: str) -> None:
    """The settings of policies/data.yaml that loosen or judge the gates, checked as they load (the
    policies check them again): max_exception_days may lower the ceiling, never raise it, and every
    freeze window must be readable (a window promoter cannot read must not pass for no freeze)."""
    for key, where_from in RESERVED_DATA.items():
        if key in data:
            raise BadInput(f"{where}: {key} is not set in a data file; {where_from}")
    days = data.get("max_exception_days")
    if days is not None and (
        isinstance(days, bool)
        or not isinstance(days, int | float)
        or not 0 <= days <= MAX_EXCEPTION_DAYS  # before int(): .inf and .nan stop here
        or days != int(days)
    ):
        raise BadInput(
            f"{where}: max_exception_days {_shown(days)} is not a whole number of days from 0 to "
            f"{MAX_EXCEPTION_DAYS} (its ceiling: data may lower it, never raise it)"
        )
    if "freeze_windows" in data:
        data["freeze_windows"] = check_freeze_windows(data["freeze_windows"], where)


def check_freeze_windows(windows: Any, where: str) -> list[dict[str, Any]]:
    """`freeze_windows`, checked as policies/promotion/freeze.rego checks it (the same grammar), with
    YAML's own dates written out as the policies read them. The first problem is bad input naming the
    window and the field."""
    if not isinstance(windows, list):
        raise BadInput(f"{where}: freeze_windows is not a list of freeze windows")
    checked = []
    for i, window in enumerate(windows):
        named = isinstance(window, dict) and isinstance(window.get("name"), str) and window["name"] != ""
        label = window["name"] if named else f"#{i + 1}"

        def bad(field: str, why: str) -> BadInput:
            return BadInput(f"{where}: freeze window {label!r}: {field} {why}")  # noqa: B023 - raised at once

        if not isinstance(window, dict):
            raise bad("window", "is not a mapping (name, environments, and start and end or weekly)")
        w = dict(window)
        for key in w:
            if key not in _WINDOW_FIELDS:
                raise bad(str(key), "is not a field of a freeze window (name, environments, start, end, weekly)")
        if not named:
            raise bad("name", "is required (a name for the window)")
        if "environments" in w and not (
            isinstance(w["environments"], list) and all(isinstance(e, str) for e in w["environments"])
        ):
            raise bad("environments", "is not a list of environment names")
        if "weekly" in w:
            _check_weekly(w, bad)
        else:
            _check_dated(w, bad)
        checked.append(w)
    return checked


def _check_weekly(w: dict[str, Any], bad: Callable[[str, str], BadInput]) -> None:
    """A weekly window's `weekly`: days, from and to (HH:MM, UTC), ending the day it starts."""
    if "start" in w or "end" in w:
        raise bad("weekly", "and start/end are both set: a window is dated or weekly, not both")
    weekly = w["weekly"]
    if not isinstance(weekly, dict):
        raise bad("weekly", "is not a mapping of days, from and to")
    for key in weekly:
        if key not in _WEEKLY_FIELDS:
            raise bad(f"weekly.{key}", "is not a field of a weekly window (days, from, to)")
    days = weekly.get("days")
    if not isinstance(days, list) or not days:
        raise bad("weekly.days", "is missing: a list of weekdays (Monday to Sunday)")
    for day in days:
        if not isinstance(day, str) or day.lower() not in WEEKDAYS:
            raise bad("weekly.days", f"{_shown(day)} is not a weekday (Monday to Sunday, in any case)")
    for key in ("from", "to"):
        if key not in weekly:
            raise bad(f"weekly.{key}", "is missing (HH:MM, UTC)")
        if not isinstance(weekly[key], str) or not _HHMM.fullmatch(weekly[key]):
            shown = _shown(weekly[key])
            raise bad(f"weekly.{key}", f"{shown} is not a time HH:MM from 00:00 to 23:59 (quote it in YAML)")
    if weekly["to"] <= weekly["from"]:  # HH:MM compare as text as they do as times
        raise bad("weekly.to", "is not after weekly.from (a weekly window ends the day it starts)")


def _check_dated(w: dict[str, Any], bad: Callable[[str, str], BadInput]) -> None:
    """A dated window's `start` and `end`, written out in place as the policies read them (YAML's own
    dates become text), the end after the start."""
    for key in ("start", "end"):
        if key not in w:
            raise bad(key, "is missing: a window has start and end, or weekly")
    for key in ("start", "end"):
        value = strict_time(w[key])
        if value is None:
            raise bad(
                key,
                f"{_shown(w[key])} is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-12-24T00:00:00Z)",
            )
        w[key] = value
    if _instant(w["end"], end=True) <= _instant(w["start"]):
        raise bad("end", "is not after start")


def load_exceptions(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`policies/exceptions/*.yaml`: each a mapping of exception IDs to `{rule, app, env?, object?,
    reason, owner, expires}` (the layout OPA itself loads at `data.exceptions`). A malformed one is
    bad input naming its file and ID: the policies then deny everything (fail closed). Whether an
    exception matches, has expired or runs too long is the policies' decision; so is a refusal of an
    exception for a rule outside `EXCEPTABLE`, which they make again whatever loads the data."""
    from promoter.names import is_label

    found: dict[str, dict[str, Any]] = {}
    for path in sorted(files):
        if not path.endswith((".yaml", ".yml")):
            continue
        where = f"policies/{path}"
        doc = _load_yaml(files[path], where) or {}
        if not isinstance(doc, dict):
            raise BadInput(f"{where}: expected a mapping of exception IDs to exceptions")
        for key, entry in doc.items():
            at = f"{where}: exception {key!r}"
            if not isinstance(entry, dict):
                raise BadInput(f"{at}: expected a mapping with rule, app, reason, owner and expires")
            unknown = sorted(set(entry) - {"rule", "app", "env", "object", "path", "reason", "owner", "expires"})
            if unknown:
                raise BadInput(f"{at}: unknown key {unknown[0]!r}; remove it or fix its spelling")
            for needed in ("rule", "app", "reason", "owner", "expires"):
                if not str(entry.get(needed) or "").strip():
                    raise BadInput(f"{at}: {needed} is required (an exception names who owns it, why, and until when)")
            rule, expires = str(entry["rule"]), entry["expires"]
            if not _RULE_ID.match(rule):
                raise BadInput(f"{at}: rule {rule!r} is not a rule or package (e.g. kubernetes.images.deny_registry)")
            if rule.split(".")[0] not in EXCEPTABLE:
                raise BadInput(
                    f"{at}: rule {rule!r} cannot be excepted: only rules of the {' and '.join(EXCEPTABLE)} concerns "
                    "can be (the promotion rules, approvals, order, soak and freeze, always hold)"
                )
            for name in ("app", "env"):
                if entry.get(name) is not None and not is_label(entry[name]):
                    raise BadInput(f"{at}: {name} {entry[name]!r} is not an app or environment name")
            _check_scope(at, rule, entry.get("object"), entry.get("path"))
            until = strict_time(expires)
            if until is None:
                raise BadInput(f"{at}: expires {str(expires)[:40]!r} {_NOT_A_DATE}")
            if key in found:
                raise BadInput(f"{at}: the ID is used twice; give each exception its own")
            found[str(key)] = {
                "rule": rule,
                "app": entry["app"],
                "env": entry.get("env"),
                "object": entry.get("object"),
                "path": entry.get("path"),
                "reason": str(entry["reason"]).strip(),
                "owner": str(entry["owner"]).strip(),
                "expires": until,
                "file": where,
            }
    return found


def _check_scope(at: str, rule: str, obj: Any, path: Any) -> None:
    """An exception's `object` is Kind/namespace/name (as findings name objects), and its `path` the
    field of a schema finding: only `schemas` findings have one, so a path on another rule would
    match nothing."""
    if obj is not None and (not isinstance(obj, str) or len(obj.split("/")) != 3 or not all(obj.split("/"))):
        raise BadInput(
            f"{at}: object {str(obj)[:80]!r} is not Kind/namespace/name (e.g. Deployment/apps/demo; "
            "Deployment/-/demo for a manifest without a namespace)"
        )
    if path is not None and rule.split(".")[0] != SCHEMAS:
        raise BadInput(
            f"{at}: path narrows a schema finding ({SCHEMAS}.* rules) only; {rule} findings have no path, "
            "so remove it (object names what to except)"
        )


def parse_metadata(source: str) -> dict[str, dict[str, Any]]:
    """`{"<package>.<rule>": {title, description, severity, remediation}}` and `{"<package>": ...}`
    from the `# METADATA` comment blocks of one module."""
    lines = source.splitlines()
    package = ""
    for line in lines:
        if line.startswith("package "):
            package = line.split()[1]
            break
    found: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(lines):
        if lines[i].strip() == "# METADATA":
            block = []
            i += 1
            while i < len(lines) and lines[i].lstrip().startswith("#"):
                m = _META_LINE.match(lines[i])
                block.append(m.group(1) if m else "")
                i += 1
            try:
                meta = yamlsafe.load("\n".join(block), "METADATA") or {}
            except BadInput:
                meta = {}
            custom = meta.get("custom", {}) if isinstance(meta, dict) else {}
            entry = {
                "title": meta.get("title", ""),
                "description": meta.get("description", ""),
                "severity": custom.get("severity"),
                "remediation": custom.get("remediation"),
            }
            head = lines[i] if i < len(lines) else ""
            if head.startswith("package "):
                found[package] = entry
            elif (m := _RULE_HEAD.match(head)) is not None:
                found[f"{package}.{m.group(1)}"] = entry
            continue
        i += 1
    return found


class EngineFault(TemporaryError):
    """Our own engine broke (its process died, its pipe closed): nothing the policies said. It is
    retried as an error, and never reported as a policy verdict; only the policies deny."""


class PolicyEngine(Protocol):
    name: str

    def evaluate(self, bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
        """The raw `data.promoter.decision` document; raises on any failure."""
        ...

    def warm(self, bundle: PolicyBundle) -> None:
        """Compile `bundle` now, so that its first evaluation does not pay for it."""
        ...


def decide(engine: PolicyEngine, bundle: PolicyBundle, input_doc: dict[str, Any]) -> PolicyDecision:
    """Evaluate and read the decision, failing closed: any error of the policies (or of reaching
    OPA) is a denial that names its cause. A fault of our own engine is raised (`EngineFault`), so
    the policy step is retried instead of denying a good promotion."""
    try:
        doc = with_calendars(bundle, input_doc)
        raw = engine.evaluate(bundle, doc)
        if not isinstance(raw, dict) or not isinstance(raw.get("allow"), bool):
            raise ValueError(f"{DECISION} is not a decision document (got {str(raw)[:120]})")
        return PolicyDecision(
            allow=raw["allow"] and not raw.get("deny"),
            deny=[_violation(v) for v in raw.get("deny", [])],
            warn=[_violation(v) for v in raw.get("warn", [])],
            excepted=[_violation(v) for v in raw.get("excepted", [])],
            approvers=[str(a) for a in raw.get("approvers", [])],
            engine=engine.name,
            revision=bundle.commit or bundle.revision,  # the trusted commit; a content hash off Git
            valid_until=_valid_until(bundle, doc),
        )
    except EngineFault:
        raise
    except errors.PASS_THROUGH:
        raise
    except Exception as e:  # noqa: BLE001 - fail closed on anything
        return PolicyDecision(
            allow=False,
            deny=[
                PolicyViolation(
                    rule="promoter.engine_error",
                    message=f"policy evaluation failed: {clean_error(e)}",
                    severity="critical",
                    remediation="Fix the policy or the engine's configuration; nothing is allowed "
                    "until the policies evaluate.",
                )
            ],
            engine=engine.name,
            revision=bundle.commit or bundle.revision,  # the trusted commit; a content hash off Git
        )


def with_calendars(bundle: PolicyBundle, input_doc: dict[str, Any]) -> dict[str, Any]:
    """`input_doc` with `calendar_windows`: the bundle's change calendars expanded around the check's
    evaluation time (its start time when it has none), for policies/promotion/freeze.rego to judge. An
    input given as it is (no calendars in the bundle) keeps its own."""
    if not bundle.calendars:
        return input_doc
    from promoter import calendars as ical

    promotion = input_doc.get("promotion")
    at = (promotion.get("evaluated_at") or promotion.get("started_at")) if isinstance(promotion, dict) else None
    moment = strict_time(at) if isinstance(at, str) else None
    if moment is None or _is_day(moment):
        raise BadInput(
            f"the input's promotion.evaluated_at {at!r} is not an RFC 3339 time, and the change calendars "
            "are expanded around it"
        )
    return {**input_doc, "calendar_windows": ical.windows(bundle.calendars, _instant(moment))}


def _valid_until(bundle: PolicyBundle, doc: dict[str, Any]) -> datetime | None:
    """Until when the decision on `doc` stands (promoter.policy.validity); None without an evaluation time."""
    from promoter import calendars as ical
    from promoter.policy import validity

    promotion = doc.get("promotion")
    at = promotion.get("evaluated_at") if isinstance(promotion, dict) else None
    moment = strict_time(at) if isinstance(at, str) else None
    if moment is None or _is_day(moment):
        return None
    when = _instant(moment)
    horizon = when + ical.AFTER if bundle.calendars else None
    return validity.valid_until(bundle.data, doc.get("calendar_windows") or [], when, horizon, _decided_at())


def _decided_at() -> datetime | None:
    """When this decision is made, by the Temporal server's clock (the activity's start, which the
    check's evaluation time was taken by too: a worker whose own clock is off changes nothing); None
    outside an activity (the CLI's checks)."""
    from temporalio import activity

    if not activity.in_activity():
        return None
    started = activity.info().started_time
    return started if started.tzinfo is not None else started.replace(tzinfo=UTC)


def _violation(v: dict[str, Any]) -> PolicyViolation:
    return PolicyViolation(
        rule=str(v.get("rule", "?")),
        message=str(v.get("message", "")),
        severity=str(v.get("severity") or "high"),
        object=v.get("object"),
        path=v.get("path"),
        remediation=str(v.get("remediation") or ""),
        exception=str(v.get("exception") or ""),
    )


def clean_error(e: BaseException) -> str:
    """One readable line from an engine error (the Rust engine appends a backtrace)."""
    text = str(e).split("Stack backtrace:")[0]
    text = " ".join(part.strip() for part in text.splitlines() if part.strip() and set(part.strip()) != {"|"})
    return text or type(e).__name__


def environment_document(env: EnvironmentConfig) -> dict[str, Any]:
    """environment.yaml as JSON, durations in seconds (what Rego compares best)."""
    doc: dict[str, Any] = json.loads(env.model_dump_json())

    def seconds(d: timedelta | None) -> float | None:
        return None if d is None else d.total_seconds()

    # the promotion rules hold in every environment: environment.yaml cannot leave them out of enforce
    # or demote them to warn_only (decision.rego says the same, for any caller)
    policy = doc["policy"]
    policy["enforce"] = list(dict.fromkeys([*policy["enforce"], ALWAYS_ENFORCED]))
    policy["warn_only"] = [c for c in policy["warn_only"] if c != ALWAYS_ENFORCED]
    doc["approval"]["timeout"] = seconds(env.approval.timeout)
    doc["health"]["timeout"] = seconds(env.health.timeout)
    doc["soak"] = seconds(env.soak)
    return doc


ENGINES: dict[str, Callable[..., PolicyEngine]] = {}


def register(name: str) -> Callable[[Callable[..., PolicyEngine]], Callable[..., PolicyEngine]]:
    def deco(factory: Callable[..., PolicyEngine]) -> Callable[..., PolicyEngine]:
        ENGINES[name] = factory
        return factory

    return deco


BACKENDS = {"embedded": "promoter.policy.embedded", "opa": "promoter.policy.opa", "opa-go": "promoter.policy.goopa"}


def make_engine(name: str, **settings: Any) -> PolicyEngine:
    """The engine called `name`; only its own module is imported (each registers itself)."""
    import importlib

    if name not in BACKENDS:
        raise BadInput(f"unknown policy engine '{name}'; choose one of: {', '.join(sorted(BACKENDS))}")
    importlib.import_module(BACKENDS[name])
    return ENGINES[name](**settings)


def metadata_gaps(bundle: PolicyBundle) -> Iterable[str]:
    """Packages and deny_ rules without a METADATA block carrying severity and remediation."""
    for path, text in sorted(bundle.policies().items()):
        package = next((ln.split()[1] for ln in text.splitlines() if ln.startswith("package ")), "")
        meta = parse_metadata(text)
        if package not in meta:
            yield f"{path}: package {package} has no METADATA block"
        for rule in sorted({m.group(1) for ln in text.splitlines() if (m := _RULE_HEAD.match(ln))}):
            if rule.startswith("deny_"):
                entry = meta.get(f"{package}.{rule}")
                if not entry or not entry.get("severity") or not entry.get("remediation"):
                    yield f"{path}: rule {rule} has no METADATA with custom.severity and custom.remediation"


def _rfc3339(d: Any) -> str | None:
    return None if d is None else d.isoformat().replace("+00:00", "Z")


SCHEMAS = "schemas"  # the concern of the Kubernetes schema gate


def schema_input(
    env: EnvironmentConfig, objects: list[dict[str, Any]], more_crds: schemas.Lookup | None = None
) -> dict[str, Any] | None:
    """`input.schemas` (the schema gate's findings on `objects`, for the `schemas` concern's rules),
    or None when the environment checks no schemas. A `cluster.version` with no schemas here is bad
    input: the step denies (fail closed)."""
    if SCHEMAS not in env.policy.enforce and SCHEMAS not in env.policy.warn_only:
        return None
    version = schemas.check_version(env.cluster.version)
    return {"version": version, "findings": [f.as_input() for f in schemas.check(objects, version, more_crds)]}


def identities(person: str) -> list[str]:
    """The names a person may approve under, lower-cased as the policies compare them: of
    `Name <email>`, the name, the email and the email's local part; of anything else (an SSH
    principal, a forge login, a key's fingerprint), itself, and its local part when it is an email."""
    name, bracket, rest = person.partition("<")
    email = rest.strip().removesuffix(">").strip() if bracket else name.strip()
    found = [name.strip(), email] + ([email.split("@", 1)[0]] if "@" in email else [])
    return list(dict.fromkeys(x.lower() for x in found if x))


def authors_input(people: Iterable[tuple[str, str, str]], unknown: str = "") -> dict[str, Any]:
    """`promotion.authors` (every identity of the promoted range's people), `promotion.authorship`
    (identity -> the first role and commit that made it an author, e.g. `committed 1a2b3c4`) and
    `promotion.authors_unknown` (why the list is not the whole range; "" when it is), from
    (person, role, commit) triples in the range's order."""
    authorship: dict[str, str] = {}
    for person, role, commit in people:
        for identity in identities(person):
            authorship.setdefault(identity, f"{role} {commit[:7]}")
    return {"authors": list(authorship), "authorship": authorship, "authors_unknown": unknown}


def build_input(
    req: Any,
    objects: list[dict[str, Any]],
    schema_findings: dict[str, Any] | None = None,
    authors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The policy input document (docs/policies.md) from a `PolicyCheckInput`, the rendered objects,
    the schema gate's findings and the promoted range's authors (`authors_input`; none: nobody known)."""
    doc = {
        "promotion": {
            "id": req.promotion_id,
            "app": req.app,
            "commit": req.commit,
            "author": req.author,
            "source_env": req.source_env,
            "target_env": req.target_env,
            "started_at": _rfc3339(req.started_at),
            "evaluated_at": _rfc3339(req.evaluated_at or req.started_at),
            "phase": req.phase,
            "environments": req.environments,
            "history": [
                {
                    "env": h.env,
                    "state": h.state,
                    "healthy_since": _rfc3339(h.healthy_since),
                    "soak_seconds": h.soak_seconds,
                }
                for h in req.history
            ],
            **(authors or authors_input([])),
        },
        "environment": environment_document(req.environment),
        "objects": objects,
        "diff": req.diff.model_dump(),
        "approvals": [{"approver": a.approver, "at": _rfc3339(a.at), "via": a.via} for a in req.approvals],
    }
    if schema_findings is not None:
        doc["schemas"] = schema_findings
    return doc
