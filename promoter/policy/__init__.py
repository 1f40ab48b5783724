"""Policy evaluation: the `PolicyEngine` protocol, the policy bundle, the input document and the
fail-closed decision.

Python builds the input and reads `data.promoter.decision`; the rules live only in Rego. Severity and
remediation come from each rule's `# METADATA` block, handed to the policies as
`data.policy_metadata` so the decision document itself carries them, whatever the backend.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from promoter import schemas, yamlsafe
from promoter.errors import BadInput, TemporaryError
from promoter.models import EnvironmentConfig, PolicyDecision, PolicyViolation

DECISION = "data.promoter.decision"
_META_LINE = re.compile(r"^\s*#\s?(.*)$")
_RULE_HEAD = re.compile(r"^([a-z_][a-zA-Z0-9_]*)\b")


@dataclass(frozen=True)
class PolicyBundle:
    """Every `.rego` file of `policies/` (by path), its data, and the METADATA of its rules."""

    modules: dict[str, str]
    data: dict[str, Any]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    commit: str = ""  # the trusted rules revision it was read at (empty: a working tree, e.g. `policy check`)

    @property
    def revision(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.modules):
            h.update(path.encode() + b"\0" + self.modules[path].encode() + b"\0")
        h.update(json.dumps(self.data, sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def policies(self) -> dict[str, str]:
        """The modules that decide (unit tests are loaded only by `policy test`)."""
        return {p: s for p, s in self.modules.items() if not p.endswith("_test.rego")}

    def full_data(self) -> dict[str, Any]:
        return {**self.data, "policy_metadata": self.metadata}

    @classmethod
    def from_files(cls, files: dict[str, str]) -> PolicyBundle:
        """`files`: paths relative to policies/ → text, as read from disk or from a Git tree."""
        modules = {p: t for p, t in files.items() if p.endswith(".rego")}
        data: dict[str, Any] = {}
        for p in sorted(files):
            if Path(p).name in ("data.yaml", "data.yml", "data.json") and "/" not in p:
                loaded = yamlsafe.load(files[p], f"policies/{p}") or {}
                if not isinstance(loaded, dict):
                    raise BadInput(f"policies/{p}: expected a mapping")
                data.update(loaded)
        exceptions = load_exceptions({p: t for p, t in files.items() if p.startswith(EXCEPTIONS + "/")})
        if exceptions:
            data["exceptions"] = exceptions
        metadata: dict[str, dict[str, Any]] = {}
        for text in modules.values():
            metadata.update(parse_metadata(text))
        return cls(modules=modules, data=data, metadata=metadata)

    @classmethod
    def from_dir(cls, root: Path) -> PolicyBundle:
        root = Path(root)
        if not root.is_dir():
            raise BadInput(f"{root} does not exist; policies live in policies/ of the GitOps repository")
        files = {
            str(p.relative_to(root)): p.read_text()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".rego", ".yaml", ".yml", ".json")
        }
        return cls.from_files(files)


EXCEPTIONS = "exceptions"
_RULE_ID = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def load_exceptions(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`policies/exceptions/*.yaml`: each a mapping of exception IDs to `{rule, app, env?, object?,
    reason, owner, expires}` (the layout OPA itself loads at `data.exceptions`). A malformed one is
    bad input naming its file and ID: the policies then deny everything (fail closed). Whether an
    exception matches, has expired or runs too long is the policies' decision."""
    from datetime import date

    from promoter.names import is_label

    found: dict[str, dict[str, Any]] = {}
    for path in sorted(files):
        if not path.endswith((".yaml", ".yml")):
            continue
        where = f"policies/{path}"
        doc = yamlsafe.load(files[path], where) or {}
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
            for name in ("app", "env"):
                if entry.get(name) is not None and not is_label(entry[name]):
                    raise BadInput(f"{at}: {name} {entry[name]!r} is not an app or environment name")
            day = expires.isoformat()[:10] if isinstance(expires, date) else str(expires)
            try:
                date.fromisoformat(day[:10])
            except ValueError:
                raise BadInput(f"{at}: expires {str(expires)[:40]!r} is not a date; write it as YYYY-MM-DD") from None
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
                "expires": day[:10],
                "file": where,
            }
    return found


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
    the policy step is retried instead of denying a good release."""
    try:
        raw = engine.evaluate(bundle, input_doc)
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
        )
    except EngineFault:
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
