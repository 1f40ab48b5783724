"""Each app's inventory: the ConfigMap `promoter-inventory-<app>` in the environment's namespace listing
what the app applied (group, version, kind, namespace, name), its kinds and the promoted commit; and
prune, which deletes only what the inventory lists and the new revision no longer has."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from promoter.cluster.objects import (
    APP_LABEL,
    INVENTORY,
    INVENTORY_LABEL,
    Ident,
    Ref,
    api_error,
    ref_of,
    shown_ref,
)
from promoter.cluster.ownership import genuine
from promoter.cluster.resources import Resources
from promoter.errors import PermanentError
from promoter.jsonfast import loads


class Inventories(Resources):
    """Reading and writing the inventories, and pruning by them."""

    def _inventory_ref(self, app: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": INVENTORY.format(app=app), "namespace": self.default_namespace},
        }

    def _inventory(self, app: str) -> dict[str, Any] | None:
        return self._get(self._inventory_ref(app))

    def _inventories(self) -> list[dict[str, Any]]:
        """Every app's inventory in the cluster, in any namespace: one list. Only a genuine one counts:
        named `promoter-inventory-<app>` for the app its label names, and written by no field manager
        but promoter's own (an app's folder can never ship one: `reserved` refuses it)."""
        try:
            raw = self._resource("v1", "ConfigMap").get(label_selector=INVENTORY_LABEL, serialize=False)
            answer = loads(raw.data)
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, "list the inventories") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, "list the inventories") from None
        return [item for item in answer.get("items") or [] if genuine(item)]

    def _own_inventory(self, app: str, inventories: list[dict[str, Any]]) -> dict[str, Any] | None:
        name = INVENTORY.format(app=app)
        for item in inventories:
            meta = item.get("metadata") or {}
            if meta.get("name") == name and meta.get("namespace") == self.default_namespace:
                return item
        return None

    @classmethod
    def _listed(cls, app: str, inventories: list[dict[str, Any]]) -> dict[Ref, str]:
        """The objects other apps' inventories list, and the app each belongs to."""
        found: dict[Ref, str] = {}
        for item in inventories:
            other = ((item.get("metadata") or {}).get("labels") or {}).get(INVENTORY_LABEL)
            if other and other != app:
                found.update(dict.fromkeys(cls._entries(item) or {}, other))
        return found

    @staticmethod
    def _kinds(inventory: dict[str, Any] | None) -> set[tuple[str, str]]:
        recorded = ((inventory or {}).get("data") or {}).get("kinds", "").split()
        return {(k.split("|", 1)[0], k.split("|", 1)[1]) for k in recorded if "|" in k}

    @staticmethod
    def _entries(inventory: dict[str, Any] | None) -> dict[Ref, str] | None:
        """The objects the inventory lists (each with the apiVersion it was applied as); None when it
        lists none, as before inventories listed objects."""
        text = ((inventory or {}).get("data") or {}).get("objects")
        if text is None:
            return None
        found: dict[Ref, str] = {}
        for e in json.loads(text):
            version = f"{e['group']}/{e['version']}" if e["group"] else e["version"]
            found[(e["group"], e["kind"], e["namespace"], e["name"])] = version
        return found

    def _write_inventory(
        self, app: str, desired: list[dict[str, Any]], revision: str, before: dict[str, Any] | None
    ) -> None:
        """Record what `app` now owns and the commit promoted (written only when that changed)."""
        rows = sorted({(*ref_of(o)[:2], o["apiVersion"].rpartition("/")[2], *ref_of(o)[2:]) for o in desired})
        objects = [dict(zip(("group", "kind", "version", "namespace", "name"), row, strict=True)) for row in rows]
        data = {
            "app": app,
            "commit": revision or ((before or {}).get("data") or {}).get("commit", ""),
            "kinds": " ".join(sorted({f"{o['apiVersion']}|{o['kind']}" for o in desired})),
            "objects": "[\n" + ",\n".join(json.dumps(o, sort_keys=True) for o in objects) + "\n]" if objects else "[]",
        }
        if before is not None and (before.get("data") or {}) == data:
            return
        inventory = self._inventory_ref(app)
        inventory["data"] = data
        inventory["metadata"]["labels"] = {INVENTORY_LABEL: app}
        self._apply(inventory)

    def _prune(
        self,
        app: str,
        desired: list[dict[str, Any]],
        live: dict[Ident, dict[str, Any]],
        entries: dict[Ref, str],
        listed: dict[Ref, str],
    ) -> int:
        """Delete what the app's inventory lists and `desired` no longer has: never an object by its
        label alone, never one another app now owns, never a namespace (it may hold more)."""
        wanted = {ref_of(o) for o in desired}
        by_ref = {ref_of(o): o for o in live.values()}
        pruned = 0
        for ref, api_version in sorted(entries.items()):
            if ref in wanted or ref[1] == "Namespace" or ref in listed:
                continue
            item = by_ref.get(ref)
            if item is None:
                try:
                    item = self._get(
                        {"apiVersion": api_version, "kind": ref[1], "metadata": {"namespace": ref[2], "name": ref[3]}}
                    )
                except PermanentError:
                    continue  # its kind is gone (its CRD pruned): so is it
                if item is None:
                    continue
            label = ((item.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
            if label and label != app:
                continue  # another app's now
            resource = self._resource(api_version, ref[1])
            try:
                resource.delete(name=ref[3], namespace=ref[2] or None)
                pruned += 1
            except NotFoundError:
                pass
            except (DynamicApiError, ApiException) as e:
                raise api_error(e, f"delete {shown_ref(ref)}") from None
        return pruned
