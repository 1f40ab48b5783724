"""What the simulated API server keeps about who wrote which field, and how it writes quantities.

`metadata.managedFields`, as a real API server keeps it: one entry per (field manager, operation,
subresource) with the set of fields it owns (`fieldsV1`) and `time`, when that manager last changed
them. A server-side apply owns exactly the fields of its applied configuration; an update (PUT, merge
or JSON patch, `/scale`) owns the fields it changed and takes them from every other manager.
Where it differs from a real API server: a list is one field (real servers key the items of most
lists, `k:{"name":"web"}`); entries for `status` are not kept; a request's own `managedFields` is
ignored (a real server lets a client reset them).

Quantities: a real API server stores `resources.limits` and `requests` in canonical form, so `cpu: 0.5`
in Git reads back as `500m`. This server canonicalises decimal numbers and millis the same way (the
binary and decimal suffixes such as `Mi` or `G` are kept as written, where a real one would also turn
`1024Mi` into `1Gi`).
"""

from __future__ import annotations

import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

Fields = dict[str, Any]  # FieldsV1: {"f:spec": {"f:replicas": {}}}

KEPT_METADATA = ("labels", "annotations")  # the metadata fields a manager can own
_MISSING = object()


def fieldset(obj: Any, top: bool = True) -> Fields:
    """The fields `obj` sets, as FieldsV1 (a list is one field)."""
    if not isinstance(obj, dict):
        return {}
    found: Fields = {}
    for key, value in obj.items():
        if top and key in ("apiVersion", "kind", "status"):
            continue
        if top and key == "metadata":
            meta = {k: v for k, v in (value or {}).items() if k in KEPT_METADATA and v}
            if meta:
                found["f:metadata"] = fieldset(meta, top=False)
            continue
        found[f"f:{key}"] = fieldset(value, top=False)
    return found


def _kept(meta: Any) -> dict[str, Any]:
    return {k: v for k, v in (meta or {}).items() if k in KEPT_METADATA}


def changed(before: dict[str, Any], after: dict[str, Any], top: bool = True) -> tuple[Fields, Fields]:
    """The fields a write set (added or changed) and the ones it removed, between two objects."""
    written: Fields = {}
    removed: Fields = {}
    for key in sorted(set(before) | set(after)):
        if top and key in ("apiVersion", "kind", "status"):
            continue
        was, now_ = before.get(key, _MISSING), after.get(key, _MISSING)
        if top and key == "metadata":
            was, now_ = (_kept(before.get(key)), _kept(after.get(key)))
        if now_ is _MISSING:
            removed[f"f:{key}"] = {}
        elif was is _MISSING:
            written[f"f:{key}"] = fieldset(now_, top=False)
        elif isinstance(was, dict) and isinstance(now_, dict):
            w, r = changed(was, now_, top=False)
            if w:
                written[f"f:{key}"] = w
            if r:
                removed[f"f:{key}"] = r
        elif was != now_:
            written[f"f:{key}"] = fieldset(now_, top=False)
    return written, removed


def _without(owned: Fields, taken: Fields) -> Fields:
    """`owned` less every field of `taken` (a taken field takes everything under it)."""
    left: Fields = {}
    for key, below in owned.items():
        if key not in taken:
            left[key] = below
        elif taken[key] and below:
            rest = _without(below, taken[key])
            if rest:
                left[key] = rest
    return left


def _union(a: Fields, b: Fields) -> Fields:
    merged = dict(a)
    for key, below in b.items():
        merged[key] = _union(merged.get(key, {}), below) if key in merged else below
    return merged


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record(
    entries: list[dict[str, Any]],
    manager: str,
    operation: str,
    api_version: str,
    owned: Fields,
    removed: Fields,
    moved: bool,
    subresource: str = "",
) -> list[dict[str, Any]]:
    """`entries` after a write by `manager`: an apply owns `owned` (its whole configuration) and only
    that; an update adds `owned` (what it changed). Either takes those fields from every other
    manager, and a removed field is nobody's. The writer's time moves when the write `moved` a field."""
    taken = _union(owned, removed)
    result: list[dict[str, Any]] = []
    mine: dict[str, Any] | None = None
    for entry in entries:
        same = (entry.get("manager"), entry.get("operation"), entry.get("subresource", "")) == (
            manager,
            operation,
            subresource,
        )
        if same:
            mine = entry
            continue
        left = _without(entry.get("fieldsV1") or {}, taken)
        if left:
            result.append({**entry, "fieldsV1": left} if left != entry.get("fieldsV1") else entry)
    before = (mine or {}).get("fieldsV1") or {}
    fields = owned if operation == "Apply" else _union(_without(before, removed), owned)
    if fields:
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now() if moved or mine is None or fields != before else mine["time"],
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
        if subresource:
            entry["subresource"] = subresource
        result.append(entry)
    return result


_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_MILLI = re.compile(r"^([0-9]+)m$")


def canonical_quantity(value: Any) -> Any:
    """`0.5` → `500m`, `2` → `"2"`, `1000m` → `"1"`; anything else as it is."""
    if isinstance(value, bool):
        return value
    text = str(value)
    try:
        if isinstance(value, int | float) or _DECIMAL.match(text):
            amount = Decimal(text)
        elif match := _MILLI.match(text):
            amount = Decimal(match.group(1)) / 1000
        else:
            return value
    except InvalidOperation:
        return value
    if amount == amount.to_integral_value():
        return str(int(amount))
    milli = amount * 1000
    return f"{int(milli)}m" if milli == milli.to_integral_value() else value


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if obj.get("kind") == "Pod":
        return [spec]
    template = spec.get("template")
    if obj.get("kind") == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    inner = (template or {}).get("spec") if isinstance(template, dict) else None
    return [inner] if isinstance(inner, dict) else []


def canonicalise(obj: dict[str, Any]) -> None:
    """Write the containers' resource quantities of `obj` in canonical form, in place."""
    for pod in _pod_specs(obj):
        for group in ("containers", "initContainers"):
            for container in pod.get(group) or []:
                resources = container.get("resources") if isinstance(container, dict) else None
                for kind in ("limits", "requests"):
                    amounts = (resources or {}).get(kind)
                    if isinstance(amounts, dict):
                        for name, amount in amounts.items():
                            amounts[name] = canonical_quantity(amount)
