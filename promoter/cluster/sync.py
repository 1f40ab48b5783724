"""Sync: server-side apply of an app's objects (CRDs, then namespaces, then the rest, `APPLY_CONCURRENCY`
at a time), skipping what the cluster already holds, refusing what another app owns, then prune and
the new inventory; and `claims`, the same ownership check asked before the PR."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promoter.cluster.inventory import Inventories
from promoter.cluster.objects import (
    APP_LABEL,
    APPLIED_ANNOTATION,
    APPLY_CONCURRENCY,
    MANAGER,
    Ident,
    Ref,
    contains,
    first_error,
    ident_of,
    ref_of,
)
from promoter.cluster.ownership import Claim, claim_for, legacy_managed, reserved
from promoter.errors import PermanentError


@dataclass
class SyncOutcome:
    applied: int
    unchanged: int
    pruned: int
    note: str = ""  # said once: the inventory was built from the labels (a cluster synced before inventories)


class Syncing(Inventories):
    """Applying an app's objects, and whether it may."""

    def sync(
        self,
        app: str,
        promotion: str,
        objects: list[dict[str, Any]],
        progress: Callable[[str], None] = lambda _: None,
        revision: str = "",
        adopt: bool = False,
    ) -> SyncOutcome:
        """Apply `objects` as `app`'s (at `revision`, the promoted commit the inventory records), prune
        what its inventory lists and they no longer have, and record the new inventory. An object
        another app owns, or an existing one no app owns without `adopt`, is refused before anything
        is written (the policy gate denies it before the PR; this is the second line)."""
        inventories = self._inventories()
        inventory = self._own_inventory(app, inventories)
        listed = self._listed(app, inventories)
        recorded = self._kinds(inventory)
        entries = self._entries(inventory)  # None: no inventory lists objects yet (a label-only sync's cluster)
        mine = set(entries or {})
        # CRDs first (cluster-scoped), so discovery knows their kinds; then namespaces; then the rest
        crds = [self._label(o, app, promotion) for o in objects if o["kind"] == "CustomResourceDefinition"]
        crd_kinds = {(o["apiVersion"], o["kind"]) for o in crds}
        live = self._live(app, crd_kinds)
        self._refuse(app, crds, live, listed, mine, adopt)
        applied = self._apply_all(crds, live, progress)
        if crds:
            self._missing.clear()  # their kinds are served now
        rest = [self._label(o, app, promotion) for o in objects if o["kind"] != "CustomResourceDefinition"]
        live.update(self._live(app, (recorded | {(o["apiVersion"], o["kind"]) for o in rest}) - crd_kinds))
        self._refuse(app, rest, live, listed, mine, adopt)
        for ns in sorted(
            {o["metadata"]["namespace"] for o in rest if o["metadata"].get("namespace")} | {self.default_namespace}
        ):
            self._ensure_namespace(ns)  # created when missing; an existing one is left as it is
        namespaces = [o for o in rest if o["kind"] == "Namespace"]
        applied += self._apply_all(namespaces, live, progress)
        applied += self._apply_all([o for o in rest if o["kind"] != "Namespace"], live, progress)
        desired = crds + rest
        note = ""
        if entries is None:  # migrate once: what the app's label marks (as label-only sync pruned by) is its
            entries = {ref_of(o): o["apiVersion"] for o in live.values()}
            if entries:
                note = f"inventory of {app} built from its {APP_LABEL} labels ({len(entries)} objects), once"
                progress(note)
        pruned = self._prune(app, desired, live, entries, listed)
        self._write_inventory(app, desired, revision, inventory)
        return SyncOutcome(applied=applied, unchanged=len(desired) - applied, pruned=pruned, note=note)

    def claims(self, app: str, objects: list[dict[str, Any]], adopt: bool) -> list[Claim]:
        """Why `app` may not apply some of `objects` (rendered, as Git has them) to this cluster: each
        one another app owns, and each existing one no app owns unless `adopt`. One read per object
        and one list of the inventories; a kind the cluster does not serve yet has nothing to claim."""
        inventories = self._inventories()
        listed = self._listed(app, inventories)
        mine = set(self._entries(self._own_inventory(app, inventories)) or {})
        found: list[Claim] = []
        for raw in objects:
            meta = dict(raw.get("metadata") or {})
            if not raw.get("apiVersion") or not raw.get("kind") or not meta.get("name"):
                continue  # not an object the cluster could hold: the schema gate names it
            try:
                namespaced = self._resource(raw["apiVersion"], raw["kind"]).namespaced
            except PermanentError:
                continue
            if namespaced:
                meta["namespace"] = meta.get("namespace") or self.default_namespace  # "" and null mean the default
            else:
                meta.pop("namespace", None)
            obj = {**raw, "metadata": meta}
            claim = reserved(app, obj) or claim_for(app, ref_of(obj), self._get(obj), listed, mine, adopt)
            if claim is not None:
                found.append(claim)
        return found

    def _refuse(
        self,
        app: str,
        objects: list[dict[str, Any]],
        live: dict[Ident, dict[str, Any]],
        listed: dict[Ref, str],
        mine: set[Ref],
        adopt: bool,
    ) -> None:
        """Raise, naming them, when `app` may not apply some of `objects` (never force-applied over
        another app's). An object the app's label already marks is read from `live`; any other is read."""
        found = []
        for obj in objects:
            there = live.get(ident_of(obj))
            claim = reserved(app, obj) or claim_for(
                app, ref_of(obj), there if there is not None else self._get(obj), listed, mine, adopt
            )
            if claim is not None:
                found.append(claim)
        if found:
            raise PermanentError(f"sync of {app} refused, nothing applied: " + "; ".join(c.message for c in found))

    def _apply_all(
        self, objects: list[dict[str, Any]], live: dict[Ident, dict[str, Any]], progress: Callable[[str], None]
    ) -> int:
        """Apply each object that the cluster does not hold as it is, `APPLY_CONCURRENCY` at a time;
        returns how many changed. The first error (a permanent one before a temporary one) is raised
        once every apply in flight has ended."""
        todo = [o for o in objects if not self._in_place(live.get(ident_of(o)), o)]
        if not todo:
            return 0

        def one(obj: dict[str, Any]) -> bool:
            before = live.get(ident_of(obj))
            after = self._apply(obj)
            if before is not None and legacy_managed(before):
                after = self._release_legacy(obj)
            return before is None or before["metadata"].get("resourceVersion") != after["metadata"].get(
                "resourceVersion"
            )

        if len(todo) == 1:
            progress(f"applying {todo[0]['kind']}/{todo[0]['metadata']['name']}")
            return int(one(todo[0]))
        with concurrent.futures.ThreadPoolExecutor(min(APPLY_CONCURRENCY, len(todo))) as pool:
            futures = [pool.submit(one, o) for o in todo]
            for done, _ in enumerate(concurrent.futures.as_completed(futures), 1):
                progress(f"{done} of {len(todo)} applied")  # on this thread: an activity heartbeats only here
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise first_error(errors)
        return sum(f.result() for f in futures)

    def _release_legacy(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Release what the field manager `promoter` (one for every app, before per-app managers) still
        owns of `obj`, by applying nothing as it: its fields stay where `promoter/<app>` now owns them
        and go where Git no longer has them, as a real API server's server-side apply decides."""
        meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace")}
        return self._apply({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}, manager=MANAGER)

    @staticmethod
    def _in_place(live: dict[str, Any] | None, obj: dict[str, Any]) -> bool:
        """Whether the live object is exactly what applying `obj` would leave: it carries the hash of
        `obj` (so no field promoter applied before was dropped since) and every field of `obj`."""
        if live is None:
            return False
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        return bool(
            annotations.get(APPLIED_ANNOTATION) == obj["metadata"]["annotations"][APPLIED_ANNOTATION]
        ) and contains(live, obj)
