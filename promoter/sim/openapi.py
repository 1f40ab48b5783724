"""What the simulated API server (promoter.sim.kube) publishes about its kinds, and the strategic
merge patch it applies with that knowledge.

The documents are built from the strict JSON schemas the schema gate uses (promoter.schemas, from
PyPI's `kubernetes-validate`), rewritten as OpenAPI: `$ref`s point into `definitions` (v2) or
`components/schemas` (v3), `["string", "null"]` types become `string`, and the `additionalProperties:
false` that makes them strict is dropped (a real server's documents have none; unknown fields are the
server's to refuse). The shipped schemas keep the `x-kubernetes-*` extensions, so patch strategies
and merge keys are those of a real server.

Where the documents differ from a real API server's (kubectl needs none of this):
- they hold only the kinds the simulator serves (and what those refer to), not every kind of the
  Kubernetes version;
- paths carry only the operations the simulator answers, with no response schemas but the object's,
  and only the query parameters kubectl looks for (`dryRun`, `fieldManager`, `fieldValidation`, `force`);
- `/openapi/v2` is served as JSON only: a client asking for protobuf alone (kubectl) is answered 406,
  as a server without the protobuf encoding would. kubectl needs v2 only when v3 says a kind has no
  `fieldValidation` parameter, and here every kind has it, so kubectl leaves field validation to the
  server (`fieldValidation=Strict`), as it does against a real server since Kubernetes 1.27;
- `IntOrString` and `Quantity` are `string` with the real formats (`int-or-string`), not `oneOf`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from typing import Any

from promoter import schemas

DEFS = "#/$defs/"
PARAMETERS = [  # the query parameters of a write kubectl checks for (fieldValidation above all)
    {"name": name, "in": "query", "schema": {"type": "string"}, "description": what}
    for name, what in (
        ("dryRun", "All: answer what the write would leave, and keep nothing"),
        ("fieldManager", "the name of the actor making the change"),
        ("fieldValidation", "Strict, Warn (the default) or Ignore: what an unknown field does"),
        ("force", "server-side apply: take fields from other managers"),
    )
]
SPECIAL = {  # definitions the strict schemas spell as oneOf, as a real server's documents spell them
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}


@lru_cache(maxsize=8)
def definitions(version: str) -> dict[str, Any]:
    """The strict schemas of a Kubernetes version, by definition name (read once, shared, not to be changed)."""
    found: dict[str, Any] = schemas.catalog(version).registry.contents(schemas.DEFINITIONS)["$defs"]
    return found


def definition_of(version: str, api_version: str, kind: str) -> str | None:
    """The definition name of a built-in kind (`io.k8s.api.apps.v1.Deployment`), if the version has it."""
    return schemas.catalog(version).served.get((api_version, kind))


def _openapi(schema: Any, prefix: str) -> Any:
    """A strict schema (or part of one) as OpenAPI: refs under `prefix`, no null types, not strict."""
    if isinstance(schema, list):
        return [_openapi(s, prefix) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = prefix + value.removeprefix(DEFS)
        elif key == "type" and isinstance(value, list):
            out[key] = next((t for t in value if t != "null"), "object")
        elif key == "enum" and isinstance(value, list):
            out[key] = [v for v in value if v is not None]
        elif key == "additionalProperties" and value is False:
            continue
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _openapi(s, prefix) for name, s in value.items()}
        else:
            out[key] = _openapi(value, prefix)
    return out


def _refs(schema: Any, into: set[str], defs: dict[str, Any]) -> None:
    """Every definition `schema` refers to, directly or not."""
    if isinstance(schema, list):
        for s in schema:
            _refs(s, into, defs)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(DEFS):
                name = value.removeprefix(DEFS)
                if name not in into and name in defs:
                    into.add(name)
                    _refs(defs[name], into, defs)
            else:
                _refs(value, into, defs)


def _schemas(version: str, names: list[str], prefix: str) -> dict[str, Any]:
    """The named definitions and all they refer to, as OpenAPI."""
    defs = definitions(version)
    wanted: set[str] = set()
    _refs([{"$ref": DEFS + n} for n in names], wanted, defs)
    return {n: copy.deepcopy(SPECIAL[n]) if n in SPECIAL else _openapi(defs[n], prefix) for n in sorted(wanted)}


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    """A served version's `openAPIV3Schema` of a CRD, with the `apiVersion`, `kind` and `metadata`
    every object has (a real server adds them too); None when the CRD does not serve `version`."""
    spec = crd.get("spec") or {}
    for v in spec.get("versions") or []:
        if v.get("name") == version and v.get("served", True):
            schema = copy.deepcopy(((v.get("schema") or {}).get("openAPIV3Schema")) or {})
            if not schema:
                schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            props["metadata"] = {"$ref": DEFS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            schema["x-kubernetes-group-version-kind"] = [
                {"group": spec.get("group", ""), "version": version, "kind": (spec.get("names") or {}).get("kind")}
            ]
            return schema
    return None


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """How a real server names a custom resource's schema: the group reversed (`com.example.v1.Widget`)."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _paths(kind: Any, definition: str, prefix: str, v3: bool) -> dict[str, Any]:
    """The paths of one kind: its collection and its objects, with the operations the simulator answers."""
    base = f"/api/{kind.version}" if not kind.group else f"/apis/{kind.group}/{kind.version}"
    where = f"{base}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"{base}/{kind.plural}"
    gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    ref = {"$ref": prefix + definition}
    answer = (
        {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        if v3
        else {"200": {"description": "OK", "schema": ref}}
    )
    params = (
        PARAMETERS if v3 else [{k: v for k, v in p.items() if k != "schema"} | {"type": "string"} for p in PARAMETERS]
    )

    def operation(action: str, verb: str, parameters: bool) -> dict[str, Any]:
        op: dict[str, Any] = {
            "operationId": f"{verb}{kind.kind}",
            "responses": answer,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        if parameters:
            op["parameters"] = params
        return op

    return {
        where: {"get": operation("list", "list", False), "post": operation("post", "create", True)},
        where + "/{name}": {
            "get": operation("get", "read", False),
            "put": operation("put", "replace", True),
            "patch": operation("patch", "patch", True),
            "delete": operation("delete", "delete", False),
        },
    }


def _kind_schemas(
    version: str, kinds: list[Any], crds: list[dict[str, Any]], prefix: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(definitions, paths) of `kinds`: built-ins from the shipped schemas, custom ones from their CRDs."""
    builtin = {k: definition_of(version, k.group_version, k.kind) for k in kinds}
    found = _schemas(version, [d for d in builtin.values() if d], prefix)
    paths: dict[str, Any] = {}
    for k in kinds:
        name = builtin[k]
        if name is None:  # a custom resource: its CRD's schema, and the ObjectMeta it refers to
            crd = next(
                (
                    c
                    for c in crds
                    if (c.get("spec") or {}).get("names", {}).get("kind") == k.kind
                    and (c.get("spec") or {}).get("group") == k.group
                ),
                None,
            )
            schema = crd_schema(crd, k.version) if crd else None
            if schema is None:
                continue
            name = crd_definition_name(k.group, k.version, k.kind)
            found[name] = _openapi(schema, prefix)
            found.update(_schemas(version, ["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"], prefix))
        paths.update(_paths(k, name, prefix, prefix.startswith("#/components")))
    return found, paths


def v2(version: str, kinds: list[Any], crds: list[dict[str, Any]]) -> dict[str, Any]:
    """The `/openapi/v2` document (Swagger 2.0) of the kinds served."""
    found, paths = _kind_schemas(version, kinds, crds, "#/definitions/")
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": f"v{version}.0"},
        "paths": paths,
        "definitions": found,
    }


def v3(version: str, kinds: list[Any], crds: list[dict[str, Any]]) -> dict[str, Any]:
    """One group version's `/openapi/v3/...` document (OpenAPI 3.0) of the kinds served in it."""
    found, paths = _kind_schemas(version, kinds, crds, "#/components/schemas/")
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{version}.0"},
        "paths": paths,
        "components": {"schemas": found},
    }


def digest(document: dict[str, Any]) -> str:
    """The `hash` a v3 index names a group version's document with (it changes when the document does)."""
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


# ------------------------------------------------------------------ strategic merge patch


class Schemas:
    """Walks one kind's schema for the patch strategy of each field (`x-kubernetes-patch-strategy`
    and `x-kubernetes-patch-merge-key`), resolving `$ref`s in the shipped definitions."""

    def __init__(self, version: str) -> None:
        self.defs = definitions(version)

    def resolve(self, schema: Any) -> dict[str, Any]:
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            schema = self.defs.get(schema["$ref"].removeprefix(DEFS), {})
        return schema if isinstance(schema, dict) else {}

    def field(self, schema: Any, name: str) -> dict[str, Any]:
        """The schema of field `name` as written (its extensions sit beside the `$ref`)."""
        props = self.resolve(schema).get("properties") or {}
        found = props.get(name)
        if found is None:  # a map's value (labels, data): one schema for every key
            extra = self.resolve(schema).get("additionalProperties")
            found = extra if isinstance(extra, dict) else {}
        return found if isinstance(found, dict) else {}


def _strip(value: Any) -> Any:
    """A patch's new value without its directives (`$patch`, `$setElementOrder/...`, ...)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge(target: Any, patch: Any, schema: Any, walker: Schemas) -> Any:
    """`patch` applied to `target` as a real API server applies a strategic merge patch: mappings merge
    (null deletes), lists whose field says `merge` merge by their merge key (or as a set of values),
    other lists are replaced; the directives `$patch` (replace, delete), `$retainKeys`,
    `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` are honoured. Returns the new
    value (None: the mapping is deleted)."""
    if not isinstance(patch, dict):
        return _strip(patch)
    if not isinstance(target, dict):
        target = {}
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    result = copy.deepcopy(target)
    retain = patch.pop("$retainKeys", None)
    if isinstance(retain, list):  # a union field: whatever the patch does not keep goes
        result = {k: v for k, v in result.items() if k in retain}
    orders = {k.split("/", 1)[1]: patch.pop(k) for k in list(patch) if k.startswith("$setElementOrder/")}
    removals = {k.split("/", 1)[1]: patch.pop(k) for k in list(patch) if k.startswith("$deleteFromPrimitiveList/")}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # a directive this server does not know: ignored, never stored
        field = walker.field(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, field, walker)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and "merge" in str(field.get("x-kubernetes-patch-strategy", "")).split(","):
            merge_key = field.get("x-kubernetes-patch-merge-key")
            current = result.get(key) if isinstance(result.get(key), list) else []
            result[key] = _merge_list(current, value, merge_key, field.get("items"), walker)
        else:
            result[key] = _strip(value)
    for key, gone in removals.items():
        if isinstance(result.get(key), list) and isinstance(gone, list):
            result[key] = [v for v in result[key] if v not in gone]
    for key, order in orders.items():
        if isinstance(result.get(key), list) and isinstance(order, list):
            field = walker.field(schema, key)
            result[key] = _ordered(result[key], order, field.get("x-kubernetes-patch-merge-key"))
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: Any, items: Any, walker: Schemas) -> list[Any]:
    """A `merge` list: items whose merge key matches merge, `$patch: delete` items go, new ones are
    appended; without a merge key (a list of values) the patch's values are added once."""
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    result = copy.deepcopy(current)
    if not isinstance(merge_key, str):
        return result + [_strip(p) for p in patch if p not in result]
    for item in patch:
        if not isinstance(item, dict):
            continue
        at = next(
            (i for i, c in enumerate(result) if isinstance(c, dict) and c.get(merge_key) == item.get(merge_key)), None
        )
        if item.get("$patch") == "delete":
            result = [c for c in result if not (isinstance(c, dict) and c.get(merge_key) == item.get(merge_key))]
        elif at is None:
            result.append(_strip(item))
        else:
            result[at] = strategic_merge(result[at], item, items, walker)
    return result


def _ordered(items: list[Any], order: list[Any], merge_key: Any) -> list[Any]:
    """`$setElementOrder`: the listed items in that order, then the ones the patch did not list (in the
    order they had; a real server interleaves them where they were, which is rarely different)."""

    def ident(v: Any) -> Any:
        return json.dumps(v.get(merge_key) if isinstance(merge_key, str) and isinstance(v, dict) else v, sort_keys=True)

    rank = {ident(o): i for i, o in enumerate(order)}
    listed = sorted((v for v in items if ident(v) in rank), key=lambda v: rank[ident(v)])
    return listed + [v for v in items if ident(v) not in rank]
