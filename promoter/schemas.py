"""The Kubernetes schema gate: every rendered object checked against the official schemas of the
target environment's Kubernetes version before a PR is opened.

The schemas are the strict JSON schemas (no unknown field anywhere) that PyPI's `kubernetes-validate`
ships, one set per minor version; they are read once per version, and one compiled `jsonschema`
validator per kind is kept and reused. A finding is one of:
- `invalid`: an unknown field, a wrong type, a missing required field, an unsupported value, or a
  kind its group does not have; with the JSON path and what the schema expects. A finding never
  quotes the object's value, only its type (`expected string, got integer`): the field may be a
  password, and findings reach denials, PR bodies and webhooks;
- `removed`: an apiVersion the target version does not serve, naming the one that replaces it when
  the schemas know it (the same kind served under another apiVersion);
- `deprecated`: an apiVersion the target serves but a newer shipped version no longer does (it goes
  away with an upgrade), naming the replacement;
- `unvalidated`: a custom resource whose CustomResourceDefinition is neither among the objects nor
  otherwise given; it is said, never passed in silence.
Custom resources whose CRD is known are checked against its `openAPIV3Schema`, strictly as well
(an unknown field is a finding unless the schema preserves unknown fields).

The findings become the `schemas` concern's input (`input.schemas`); its Rego rules turn them into
denials and warnings, so `policy.enforce`/`warn_only` and the exception files apply as for any rule.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

import jsonschema
from referencing import Registry, Resource

from promoter import errors
from promoter.errors import BadInput

Kind = Literal["invalid", "removed", "deprecated", "unvalidated"]
DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
_DIR = re.compile(r"^v(\d+)\.(\d+)\.\d+-local-strict$")


@dataclass(frozen=True)
class Finding:
    kind: Kind
    object: str  # Kind/namespace/name, as the policies name objects
    path: str  # the field's JSON path, e.g. spec.template.spec.containers[0].ports[0].containerPort
    message: str
    at: tuple[str | int, ...] = field(default=(), compare=False)  # the same path, as keys and indexes

    def as_input(self) -> dict[str, str]:
        return {"kind": self.kind, "object": self.object, "path": self.path, "message": self.message}


def _root() -> Any:
    return resources.files("kubernetes_validate") / "kubernetes-json-schema"


@lru_cache(maxsize=1)
def shipped() -> tuple[str, ...]:
    """The Kubernetes minor versions whose schemas are here, oldest first ("1.25", …)."""
    found = [m.groups() for d in _root().iterdir() if (m := _DIR.match(d.name))]
    return tuple(f"{a}.{b}" for a, b in sorted((int(a), int(b)) for a, b in found))


def newest() -> str:
    return shipped()[-1]


def check_version(version: str | None) -> str:
    """`cluster.version` as a shipped minor version ("1.31"); None: the newest shipped."""
    if version is None:
        return newest()
    m = re.fullmatch(r"v?(\d{1,3})\.(\d{1,3})(\.\d{1,4})?", str(version).strip())
    if m is None:
        raise BadInput(f'cluster.version {str(version)[:40]!r} is not a Kubernetes version; write it as "1.31"')
    wanted = f"{int(m.group(1))}.{int(m.group(2))}"
    if wanted not in shipped():
        raise BadInput(
            f"cluster.version {wanted}: the schemas here cover Kubernetes {shipped()[0]} to {newest()}; "
            "name one of those (or upgrade kubernetes-validate)"
        )
    return wanted


def _stem(api_version: str, kind: str) -> str:
    """The schema file's name for a kind, as kubernetes-validate names them (`deployment-apps-v1`)."""
    group, _, version = api_version.rpartition("/")
    return f"{kind.lower()}-{group.split('.')[0]}-{version}" if group else f"{kind.lower()}-{version}"


def _dir(version: str) -> Any:
    """The strict schemas of a minor version ("1.31")."""
    major, minor = version.split(".")
    return _root() / f"v{major}.{minor}.0-local-strict"


@cache
def _files(version: str) -> frozenset[str]:
    """The schema files of one version (a directory listing: cheap, for what other versions serve)."""
    return frozenset(f.name.removesuffix(".json") for f in _dir(version).iterdir())


class Catalog:
    """One Kubernetes version's schemas: what it serves, and a compiled validator per kind."""

    def __init__(self, version: str) -> None:
        self.version = version
        definitions = json.loads((_dir(version) / "_definitions.json").read_text())
        self.registry: Registry = Resource.from_contents(definitions) @ Registry()
        self.served: dict[tuple[str, str], str] = {}  # (apiVersion, kind) → the definition's name
        for name, schema in definitions["$defs"].items():
            for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"]
                self.served.setdefault((api_version, gvk["kind"]), name)
        self.groups = {api.rpartition("/")[0] for api, _ in self.served}
        self.kinds: dict[str, list[str]] = {}  # kind → the apiVersions serving it
        for api_version, kind in self.served:
            self.kinds.setdefault(kind, []).append(api_version)
        self._validators: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def validator(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        found = self._validators.get(key)
        if found is None:
            with self._lock:
                found = self._validators.get(key)
                if found is None:
                    schema = {"$ref": f"{DEFINITIONS}#/$defs/{self.served[key]}"}
                    found = jsonschema.Draft202012Validator(schema, registry=self.registry)
                    self._validators[key] = found
        return found

    def replacement(self, api_version: str, kind: str) -> str | None:
        """The apiVersion this version serves `kind` under instead: the same group's first, then a
        stable one."""
        others = [a for a in self.kinds.get(kind, []) if a != api_version]
        group = api_version.rpartition("/")[0]

        def rank(api: str) -> tuple[bool, bool, int, str]:
            version = api.rpartition("/")[2]
            major = re.match(r"v(\d+)", version)
            newest_first = -int(major.group(1)) if major else 0
            return (api.rpartition("/")[0] != group, "alpha" in version or "beta" in version, newest_first, api)

        return min(others, key=rank) if others else None


_catalogs: dict[str, Catalog] = {}
_catalogs_lock = threading.Lock()


def catalog(version: str) -> Catalog:
    """The schemas of `version`, read once per process."""
    with _catalogs_lock:
        if version not in _catalogs:
            _catalogs[version] = Catalog(version)
        return _catalogs[version]


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if isinstance(value, float) else "integer"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _findings(where: str, error: Any) -> list[Finding]:
    """One jsonschema error as findings, worded as an API server words them."""
    at = list(error.absolute_path)
    schema, value = error.schema, error.instance
    if error.validator == "additionalProperties" and isinstance(value, dict):
        known = set(schema.get("properties") or {})
        return [
            Finding("invalid", where, _path([*at, extra]), f'unknown field "{extra}"', (*at, extra))
            for extra in sorted(set(value) - known)
        ]
    if error.validator == "required" and isinstance(value, dict):
        return [
            Finding("invalid", where, _path([*at, name]), "Required value", (*at, name))
            for name in error.validator_value
            if name not in value
        ]
    if error.validator in ("type", "oneOf", "anyOf"):
        options = [schema] if error.validator == "type" else error.validator_value
        wanted = [t for s in options for t in _types(s) if t != "null"]
        message = f"expected {' or '.join(dict.fromkeys(wanted))}, got {_json_type(value)}"
        return [Finding("invalid", where, _path(at), message, tuple(at))]
    if error.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value if v is not None)
        message = f"Unsupported value (a {_json_type(value)}): supported values: {allowed}"
        return [Finding("invalid", where, _path(at), message, tuple(at))]
    # jsonschema's own messages quote the instance ("'hunter2' is too short"): rebuilt from the rule
    # the schema states and the instance's type alone
    rule = json.dumps(error.validator_value, default=str)
    rule = rule if len(rule) <= 80 else rule[:77] + "..."
    message = f"fails the schema's {error.validator} {rule} (got {_json_type(value)})"
    return [Finding("invalid", where, _path(at), message, tuple(at))]


def _types(schema: Any) -> list[str]:
    kinds = schema.get("type") if isinstance(schema, dict) else None
    return [kinds] if isinstance(kinds, str) else [str(k) for k in kinds or []]


def _name(obj: dict[str, Any]) -> str:
    """Kind/namespace/name, as the policies name an object (`-`: no namespace)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    meta = meta or {}
    return f"{obj.get('kind') or '?'}/{meta.get('namespace') or '-'}/{meta.get('name') or '?'}"


# ------------------------------------------------------------------ custom resources


def _strict(schema: Any, top: bool = False) -> Any:
    """A CRD's structural `openAPIV3Schema` as a JSON Schema (draft 4) that refuses unknown fields,
    as a real API server's strict field validation does."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    elif schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _strict(s) for name, s in out[key].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list) and key in schema:
            out[key] = [_strict(s) for s in out[key]]
    embedded = top or schema.get("x-kubernetes-embedded-resource")
    if embedded:
        props = dict(out.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
        out["properties"] = props
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


class BrokenSchema:
    """A CRD whose `openAPIV3Schema` is not a schema: every object of its kind is a finding saying so."""

    def __init__(self, message: str) -> None:
        self.message = message


def _crd_validator(schema: dict[str, Any]) -> Any:
    """The strict validator of a CRD version's schema, compiled once per distinct schema."""
    return _compiled_crd(json.dumps(schema, sort_keys=True, default=str))


@lru_cache(maxsize=1024)
def _compiled_crd(schema_json: str) -> Any:
    strict = _strict(json.loads(schema_json), top=True)
    try:
        jsonschema.Draft4Validator.check_schema(strict)
        return jsonschema.Draft4Validator(strict)
    except jsonschema.SchemaError as e:
        return BrokenSchema(f"its CustomResourceDefinition's openAPIV3Schema is not a valid schema: {e.message}")


@dataclass
class CustomKinds:
    """What CustomResourceDefinitions say: (apiVersion, kind) → a validator (None: served without a
    schema; compiled once per distinct schema)."""

    validators: dict[tuple[str, str], Any] = field(default_factory=dict)

    def add(self, crd: dict[str, Any]) -> None:
        spec: dict[str, Any] = crd["spec"] if isinstance(crd.get("spec"), dict) else {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        if not group or not kind:
            return
        for version in spec.get("versions") or []:
            if not isinstance(version, dict) or not version.get("served", True):
                continue
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or (spec.get("validation") or {}).get(
                "openAPIV3Schema"
            )
            validator = _crd_validator(schema) if isinstance(schema, dict) else None
            self.validators[(f"{group}/{version.get('name')}", kind)] = validator

    @classmethod
    def of(cls, crds: list[dict[str, Any]]) -> CustomKinds:
        found = cls()
        for crd in crds:
            if crd.get("kind") == "CustomResourceDefinition":
                found.add(crd)
        return found


# ------------------------------------------------------------------ the gate


@lru_cache(maxsize=4096)
def _removal(version: str, api_version: str, kind: str) -> str | None:
    """The first shipped version after `version` that no longer serves the kind, if any."""
    stem = _stem(api_version, kind)
    return next((v for v in shipped() if _newer(v, version) and stem not in _files(v)), None)


@lru_cache(maxsize=4096)
def _last_served(api_version: str, kind: str) -> str | None:
    stem = _stem(api_version, kind)
    return next((v for v in reversed(shipped()) if stem in _files(v)), None)


def _newer(a: str, b: str) -> bool:
    return tuple(map(int, a.split("."))) > tuple(map(int, b.split(".")))


Lookup = Callable[[], tuple[list[dict[str, Any]], str]]  # more CRDs, and why some could not be read


def check(objects: list[dict[str, Any]], version: str, more_crds: Lookup | None = None) -> list[Finding]:
    """Every object against the schemas of Kubernetes `version`, and custom resources against the
    CRDs among `objects`; `more_crds` (the rest of the repository's, the cluster's) is asked once,
    and only when a custom resource's CRD is not among them."""
    schemas = catalog(version)
    kinds = CustomKinds.of(objects)
    looked, problem = more_crds is None, ""
    found: list[Finding] = []
    for obj in objects:
        where = _name(obj)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            missing = "apiVersion" if not isinstance(api_version, str) else "kind"
            found.append(Finding("invalid", where, missing, "Required value"))
            continue
        group = api_version.rpartition("/")[0]
        custom = not _builtin(schemas, group)
        if custom and (api_version, kind) not in kinds.validators and not looked and more_crds is not None:
            looked = True
            extra, problem = more_crds()
            kinds.validators = {**CustomKinds.of(extra).validators, **kinds.validators}
        if (api_version, kind) in schemas.served:
            found += _served_errors(version, where, schemas, obj)
            removed_in = _removal(version, api_version, kind)
            if removed_in is not None:
                instead = schemas.replacement(api_version, kind)
                use = f"; use {instead}" if instead else ""
                message = f"{kind} {api_version} is no longer served from Kubernetes {removed_in}{use}"
                found.append(Finding("deprecated", where, "apiVersion", message))
        elif (api_version, kind) in kinds.validators:
            found += _errors(where, kinds.validators[(api_version, kind)], obj)
        elif custom:
            message = f"not validated: no CustomResourceDefinition for {kind} ({api_version}) in the repository"
            found.append(Finding("unvalidated", where, "", message + " or the cluster" + problem))
        elif kind in schemas.kinds or _last_served(api_version, kind) is not None:
            instead = schemas.replacement(api_version, kind)
            last = _last_served(api_version, kind)
            since = f" (last served in {last})" if last else ""
            use = f"; use {instead}" if instead else "; it has no replacement"
            message = f"{kind} {api_version} is not served by Kubernetes {version}{since}{use}"
            found.append(Finding("removed", where, "apiVersion", message))
        else:
            message = f"Kubernetes {version} has no kind {kind} in {api_version}"
            found.append(Finding("invalid", where, "kind", message))
    return found


_CHECKED: OrderedDict[tuple[str, str, str], tuple[Finding, ...]] = OrderedDict()  # see _served_errors
_CHECKED_LOCK = threading.Lock()
CHECKED_MAX = 4096


def _served_errors(version: str, where: str, schemas: Catalog, obj: dict[str, Any]) -> list[Finding]:
    """`_errors` of a built-in kind's object, remembered by (version, where, the object's JSON): every
    stage checks the same Deployment again (and staging's and prod's are often alike), and a validation
    takes milliseconds where the JSON takes microseconds. Findings are frozen: shared, never changed."""
    try:
        key = (version, where, json.dumps(obj, sort_keys=True, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):  # not JSON (a YAML date, say): checked every time
        return _errors(where, schemas.validator(obj["apiVersion"], obj["kind"]), obj)
    with _CHECKED_LOCK:
        known = _CHECKED.get(key)
        if known is not None:
            _CHECKED.move_to_end(key)
            return list(known)
    found = _errors(where, schemas.validator(obj["apiVersion"], obj["kind"]), obj)
    with _CHECKED_LOCK:
        _CHECKED[key] = tuple(found)
        while len(_CHECKED) > CHECKED_MAX:
            _CHECKED.popitem(last=False)
    return found


def _errors(where: str, validator: Any, obj: dict[str, Any]) -> list[Finding]:
    """Every error of `obj` under `validator` (None: a CRD version without a schema takes anything)."""
    if validator is None:
        return []
    if isinstance(validator, BrokenSchema):
        return [Finding("invalid", where, "", validator.message)]
    try:
        return [f for error in validator.iter_errors(obj) for f in _findings(where, error)]
    except errors.PASS_THROUGH:  # never a finding (nor one cached for the object's later checks)
        raise
    except Exception as e:  # noqa: BLE001 - a schema the validator cannot apply ($ref to nowhere): fail closed
        return [Finding("invalid", where, "", f"its schema could not be applied: {str(e).splitlines()[0][:200]}")]


def _builtin(schemas: Catalog, group: str) -> bool:
    """Whether `group` is Kubernetes' own (served now, or one of its retired groups), not a CRD's."""
    return group == "" or group in schemas.groups or group == "extensions" or group.endswith(".k8s.io")
