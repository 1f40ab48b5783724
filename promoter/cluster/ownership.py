"""Who owns an object: another app (its inventory lists it, its label names that app, or its field manager
`promoter/<app>` wrote it), no app (adopted only with `cluster.adopt`), or promoter itself (an
inventory, which no app may ship). A `Claim` says why an app may not apply an object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promoter.cluster.objects import (
    APP_LABEL,
    INVENTORY,
    INVENTORY_LABEL,
    MANAGER,
    Ref,
    shown_ref,
)


@dataclass(frozen=True)
class Claim:
    """Why an app may not apply one of its objects: another app owns it, or no app does (and the
    environment does not adopt)."""

    rule: str  # promoter.owned_by_another_app | promoter.unowned_object
    object: str  # Kind/namespace/name
    message: str
    remediation: str


def _managers(live: dict[str, Any]) -> set[str]:
    """The apps whose promoter field manager (`promoter/<app>`) wrote part of `live`."""
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return {
        str(e.get("manager"))[len(MANAGER) + 1 :] for e in entries if str(e.get("manager")).startswith(MANAGER + "/")
    }


def genuine(inventory: dict[str, Any]) -> bool:
    """Whether a ConfigMap with the inventory label is an inventory promoter wrote (not one planted)."""
    meta = inventory.get("metadata") or {}
    app = (meta.get("labels") or {}).get(INVENTORY_LABEL)
    managers = {e.get("manager") for e in meta.get("managedFields") or []}
    return bool(app) and meta.get("name") == INVENTORY.format(app=app) and managers <= {MANAGER}


def reserved(app: str, obj: dict[str, Any]) -> Claim | None:
    """An object no app's folder may ship: an inventory (by its name or its label) is promoter's record
    of who owns what, and one an app wrote could make another app prune or give up objects."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name") or "")
    if INVENTORY_LABEL in labels or (obj.get("kind") == "ConfigMap" and name.startswith(INVENTORY.format(app=""))):
        shown = "/".join(p for p in (str(obj.get("kind", "?")), str(meta.get("namespace") or ""), name) if p)
        return Claim(
            rule="promoter.reserved_object",
            object=shown,
            message=f"{shown} is promoter's own record of what an app owns ({INVENTORY_LABEL}, "
            f"{INVENTORY.format(app='<app>')}); app {app} may not ship one",
            remediation=f"Remove it from {app}'s folder; promoter writes inventories itself.",
        )
    return None


def legacy_managed(live: dict[str, Any]) -> bool:
    """Whether the field manager `promoter` (before per-app managers) applied part of `live`."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == MANAGER and entry.get("operation") == "Apply":
            owned = dict(entry.get("fieldsV1") or {})
            meta = {k for k in owned.pop("f:metadata", None) or {} if k not in ("f:name", "f:namespace")}
            if owned or meta:  # more than the name its release left it
                return True
    return False


def _owner(app: str, ref: Ref, live: dict[str, Any] | None, listed: dict[Ref, str]) -> tuple[str, str] | None:
    """(another app that owns the object, how it does), or None when none does."""
    other = listed.get(ref)
    if other is not None and other != app:
        return other, f"{other}'s inventory lists it"
    if live is None:
        return None
    label = ((live.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
    if label and label != app:
        return label, f"it is labelled {APP_LABEL}={label}"
    for manager in sorted(_managers(live) - {app}):
        return manager, f"field manager {MANAGER}/{manager} wrote it"
    return None


def claim_for(
    app: str, ref: Ref, live: dict[str, Any] | None, listed: dict[Ref, str], mine: set[Ref], adopt: bool
) -> Claim | None:
    """Whether `app` may apply the object at `ref` (live as `live`): None when it may."""
    owner = _owner(app, ref, live, listed)
    if owner is not None:
        return Claim(
            rule="promoter.owned_by_another_app",
            object=shown_ref(ref),
            message=f"{shown_ref(ref)} belongs to app {owner[0]} ({owner[1]}); app {app} may not take it over",
            remediation=f"Rename {app}'s object, or hand it over: remove it from {owner[0]} first, then promote {app}.",
        )
    if live is None or adopt or ref in mine:
        return None
    labels = (live.get("metadata") or {}).get("labels") or {}
    if labels.get(APP_LABEL) == app:  # this app's by label: a cluster synced before inventories listed objects
        return None
    return Claim(
        rule="promoter.unowned_object",
        object=shown_ref(ref),
        message=f"{shown_ref(ref)} exists and no app owns it; app {app} would take it over",
        remediation="Set cluster.adopt: true in the environment's environment.yaml to adopt it, or delete the object.",
    )
