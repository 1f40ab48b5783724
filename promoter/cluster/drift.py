"""Drift: how the live objects of an app differ from Git's, field by field, confirmed by a server-side
apply dry run, with when another field manager wrote the field; a secret's value never shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from promoter.cluster.inventory import Inventories
from promoter.cluster.objects import (
    APP_LABEL,
    INVENTORY,
    INVENTORY_LABEL,
    MANAGER,
    Ident,
    contains,
    ident_of,
    ref_of,
    where_of,
)
from promoter.models import FieldDrift
from promoter.secrets import _SECRET_NAME as SECRET_NAME
from promoter.secrets import _USERINFO, redact

HIDDEN = "<hidden>"  # what a drift report shows in place of a secret's value


def differences(want: Any, live: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Where `live` does not hold `want`: (the field's path, Git's value, the live value), field by
    field (a list is one value, as server-side apply treats most lists)."""
    if isinstance(want, dict) and isinstance(live, dict):
        found: list[tuple[tuple[str, ...], Any, Any]] = []
        for key, value in want.items():
            here = (*path, key)
            found += differences(value, live[key], here) if key in live else [(here, value, None)]
        return found
    return [] if contains(live, want) else [(path, want, live)]


def masked(kind: str, path: tuple[str, ...], value: Any) -> Any:
    """`value`, the field at `path` of a `kind` object (Git's or the live one), as a drift report may
    show it. A report lands in workflow history, the memo, webhooks and terminals, so it names where
    a secret differs, never the secret: a Secret's `data`/`stringData` (its keys stay, their values
    go), a name/value pair whose name says it holds a secret (an env var `DB_PASSWORD`), and any field
    so named (promoter.secrets' names: TOKEN, SECRET, PASSWORD, API_KEY, WEBHOOK...) become `<hidden>`
    at any depth. Every other value stays (replicas, an image): that is what people need to see."""
    if value is None:  # absent on this side: saying so reveals nothing
        return None
    if kind == "Secret" and path[:1] in (("data",), ("stringData",)):
        return {key: HIDDEN for key in value} if isinstance(value, dict) and len(path) == 1 else HIDDEN
    if any(SECRET_NAME.search(part) for part in path):
        return HIDDEN
    return _masked(value)


def _masked(value: Any) -> Any:
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        name = value.get("name")
        pair = isinstance(name, str) and SECRET_NAME.search(name) is not None  # env: [{name, value}]
        return {
            key: HIDDEN
            if (pair and key == "value") or (SECRET_NAME.search(key) and not isinstance(v, dict))
            else _masked(v)
            for key, v in value.items()
        }
    if isinstance(value, str) and _USERINFO.search(value):  # a URL with a password in it (DATABASE_URL)
        return HIDDEN
    return redact(value) if isinstance(value, str) else value  # a token the worker knows, wherever it is


def at(obj: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in `obj`, or None."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def changed_since(live: dict[str, Any], path: tuple[str, ...]) -> datetime | None:
    """When a field manager other than promoter last wrote the field at `path` (its `managedFields`
    entry's time), or None when none owns it (a field removed by hand, or a cluster that keeps none)."""
    times: list[datetime] = []
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        manager = str(entry.get("manager"))
        if manager == MANAGER or manager.startswith(MANAGER + "/") or not entry.get("time"):
            continue
        owned = entry.get("fieldsV1") or {}
        for key in path:
            owned = owned.get(f"f:{key}") if isinstance(owned, dict) else None
        when = _timestamp(entry["time"]) if owned is not None else None
        if when is not None:
            times.append(when)
    return max(times, default=None)


def _timestamp(value: Any) -> datetime | None:
    """An API server's RFC 3339 time (`2026-11-27T22:12:47Z`); None when it is not one."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


ALONE = 20  # apps a check of many compares by their own reading before it lists everyone's objects


class Seen:
    """What a drift check of many apps reads of a cluster, read once for all of them: every inventory
    in the environment's namespace (one list) and, for each kind an app needs, the objects of every app
    (one list per kind, by the app label's presence, grouped by app). A check of 5,000 apps then costs
    a few lists, not three requests per app, each of which a cluster answers by scanning all it holds.
    Read when first needed, so what it answers may be older than the app's Git revision read later:
    `ClusterActivities` compares again, alone, an app that looks drifted by it.

    Two readings, each made only when first asked: the whole objects (`inventory`, `live`: to compare)
    and their metadata alone (`fingerprint(..., whole=False)`: to tell whether anything was written
    since an app was last found in sync, half the bytes to send and decode)."""

    def __init__(self, cluster: Drift) -> None:
        self.cluster = cluster
        self._inventories: dict[bool, dict[str, dict[str, Any]]] = {}  # whole? -> inventory name -> it
        self._kinds: dict[tuple[str, str, bool], dict[str, dict[Ident, dict[str, Any]]]] = {}
        self._compared = 0

    def reading(self) -> Seen:
        """What to compare the next app by: its own objects, read for it alone (`Alone`), for the first
        `ALONE` apps a check compares (those whose metadata moved since they were found in sync: a few,
        usually), then everyone's whole objects, listed once (the first check of a worker compares all)."""
        self._compared += 1
        return self if self._compared > ALONE else Alone(self.cluster)

    def inventory(self, app: str, whole: bool = True) -> dict[str, Any] | None:
        if whole not in self._inventories:
            namespace = self.cluster.default_namespace
            items = self.cluster._list("v1", "ConfigMap", INVENTORY_LABEL, namespace, not whole) or []
            self._inventories[whole] = {str((i.get("metadata") or {}).get("name")): i for i in items}
        return self._inventories[whole].get(INVENTORY.format(app=app))

    def live(self, app: str, kinds: set[tuple[str, str]], whole: bool = True) -> dict[Ident, dict[str, Any]]:
        """`app`'s objects of these kinds, as `Resources._live` finds them."""
        found: dict[Ident, dict[str, Any]] = {}
        for api_version, kind in sorted(kinds):
            if (api_version, kind, whole) not in self._kinds:
                by_app: dict[str, dict[Ident, dict[str, Any]]] = {}
                for item in self.cluster._list(api_version, kind, APP_LABEL, None, not whole) or []:
                    owner = ((item.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
                    by_app.setdefault(str(owner), {})[ident_of(item)] = item
                self._kinds[(api_version, kind, whole)] = by_app
            found.update(self._kinds[(api_version, kind, whole)].get(app, {}))
        return found

    def fingerprint(self, app: str, kinds: set[tuple[str, str]], whole: bool = True) -> tuple[tuple[str, ...], ...]:
        """What `app` has in the cluster, as the resourceVersions of its inventory and of its objects of
        `kinds` (any write changes one; an object added or deleted changes the set), from the whole
        objects (those an app was just compared by) or their metadata."""
        inventory = self.inventory(app, whole)
        version = str(((inventory or {}).get("metadata") or {}).get("resourceVersion", "-"))
        objects = sorted(
            (*ident, str((obj.get("metadata") or {}).get("resourceVersion", "")))
            for ident, obj in self.live(app, kinds, whole).items()
        )
        return (("inventory", version), *objects)


class Alone(Seen):
    """One app's whole objects read for it alone (its inventory, a list per kind by its label), in
    the shape `Seen` answers; its metadata readings are still everyone's."""

    def inventory(self, app: str, whole: bool = True) -> dict[str, Any] | None:
        if not whole:
            return super().inventory(app, whole)
        if True not in self._inventories:
            found = self.cluster._inventory(app)
            self._inventories[True] = {} if found is None else {INVENTORY.format(app=app): found}
        return self._inventories[True].get(INVENTORY.format(app=app))

    def live(self, app: str, kinds: set[tuple[str, str]], whole: bool = True) -> dict[Ident, dict[str, Any]]:
        if not whole:
            return super().live(app, kinds, whole)
        found: dict[Ident, dict[str, Any]] = {}
        for api_version, kind in sorted(kinds):
            if (api_version, kind, True) not in self._kinds:
                items = self.cluster._list(api_version, kind, f"{APP_LABEL}={app}") or []
                self._kinds[(api_version, kind, True)] = {app: {ident_of(item): item for item in items}}
            found.update(self._kinds[(api_version, kind, True)].get(app, {}))
        return found


class Drift(Inventories):
    """Comparing the cluster with Git."""

    def seen(self) -> Seen:
        """A reading of the cluster shared by the drift checks of many apps (`drift(..., seen)`)."""
        return Seen(self)

    def drift(self, app: str, objects: list[dict[str, Any]], seen: Seen | None = None) -> list[FieldDrift]:
        """How the live objects of `app` differ from `objects` (Git's), for every field promoter
        manages: a field that differs, an object that is gone, and an object the app's inventory lists
        (its label, before inventories) that Git no longer has: what a sync would prune. Metadata is
        left out: the cluster and promoter itself write there.

        A field that looks different is confirmed by a server-side apply dry run, so what the server
        only normalises (`cpu: 0.5` stored as `500m`) is not drift; `since` is when another field
        manager last wrote the field (from `managedFields`). Values are shown as `masked` leaves them:
        a secret's is `<hidden>`, on both sides. With `seen`, the cluster is read through it (once for
        many apps) rather than for this app alone."""
        wanted = [self._label(o, app, "drift") for o in objects]
        inventory = self._inventory(app) if seen is None else seen.inventory(app)
        kinds = {(o["apiVersion"], o["kind"]) for o in wanted} | self._kinds(inventory)
        live = self._live(app, kinds) if seen is None else seen.live(app, kinds)
        entries = self._entries(inventory)  # None: a label-only sync's cluster, whose labels a sync prunes by
        found: list[FieldDrift] = []
        for obj in wanted:
            there = live.pop(ident_of(obj), None)
            if there is None:
                found.append(FieldDrift(object=where_of(obj), path="", git="present", live=None))
                continue
            body = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
            suspects = differences(body, there)
            if suspects:
                applied = self._apply(obj, dry_run=True)
                found += [
                    FieldDrift(
                        object=where_of(obj),
                        path=".".join(path),
                        git=masked(obj["kind"], path, want),
                        live=masked(obj["kind"], path, have),
                        since=changed_since(there, path),
                    )
                    for path, want, have in suspects
                    if at(there, path) != at(applied, path)
                ]
        found += [  # a sync would prune these (never a namespace: it may hold more)
            FieldDrift(
                object=where_of(extra),
                path="",
                git=None,
                live="present",
                since=_timestamp(extra["metadata"].get("creationTimestamp")),
            )
            for extra in live.values()
            if extra["kind"] != "Namespace" and (entries is None or ref_of(extra) in entries)
        ]
        return found
