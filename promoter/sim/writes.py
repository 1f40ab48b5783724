"""The simulator's writes: create, replace, server-side apply (one applied configuration per field
manager), the `/scale` subresource, JSON patches, merge patches and strategic merge patches."""

from __future__ import annotations

import copy
from typing import Any

from promoter.sim import openapi
from promoter.sim.store import (
    ApiError,
    Kind,
    Store,
    merge_into,
    prune_applied,
)


class Writes(Store):
    """Every write a client can send, each kept through `Store._store`."""

    def create(self, kind: Kind, namespace: str, body: dict[str, Any], manager: str = "sim") -> dict[str, Any]:
        body = copy.deepcopy(self._validate(kind, body, None))
        name = body["metadata"]["name"]
        self._check_namespace(kind, namespace)
        if (kind.group, kind.plural, namespace, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{kind.plural} "{name}" already exists')
        body.pop("status", None)
        return self._store(kind, namespace, body, None, manager)

    def replace(
        self, kind: Kind, namespace: str, name: str, body: dict[str, Any], manager: str = "sim"
    ) -> dict[str, Any]:
        body = copy.deepcopy(self._validate(kind, body, name))
        previous = self.get(kind, namespace, name)
        expected = body.get("metadata", {}).get("resourceVersion")
        if expected and expected != previous["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.plural} "{name}": '
                "the object has been modified; please apply your changes to the latest version",
            )
        body["metadata"]["name"] = name
        return self._store(kind, namespace, body, previous, manager)

    def apply(self, kind: Kind, namespace: str, name: str, body: dict[str, Any], manager: str) -> dict[str, Any]:
        config = copy.deepcopy(self._validate(kind, body, name))
        config.setdefault("metadata", {})["name"] = name
        config.pop("status", None)
        key = (kind.group, kind.plural, namespace, name)
        previous = self.objects.get(key)
        if previous is None:
            self._check_namespace(kind, namespace)
            obj: dict[str, Any] = {}
        else:
            obj = copy.deepcopy(previous)
            others = [c for (*k, m), c in self.applied.items() if tuple(k) == key and m != manager]
            prune_applied(obj, self.applied.get((*key, manager), {}), config, others)
        merge_into(obj, config)
        self.applied[(*key, manager)] = config
        return self._store(kind, namespace, obj, previous, manager, applied=config)

    def _scale(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, namespace, name)
        meta = obj["metadata"]
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
        }

    def json_patch(self, kind: Kind, namespace: str, name: str, ops: Any, manager: str = "sim") -> dict[str, Any]:
        """RFC 6902 `add`, `replace`, `remove` and `test` (`kubectl patch --type json`)."""
        previous = self.get(kind, namespace, name)
        obj = copy.deepcopy(previous)
        if not isinstance(ops, list):
            raise ApiError(400, "BadRequest", "a JSON patch is a list of operations")
        for op in ops:
            path = [p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]]
            if not path:
                raise ApiError(422, "Invalid", f"the JSON patch path {op.get('path')!r} is not supported")
            parent: Any = obj
            try:
                for part in path[:-1]:
                    parent = parent[int(part)] if isinstance(parent, list) else parent[part]
                last: Any = int(path[-1]) if isinstance(parent, list) and path[-1] != "-" else path[-1]
                if op.get("op") in ("add", "replace"):
                    if isinstance(parent, list) and (last == "-" or op["op"] == "add"):
                        parent.insert(len(parent) if last == "-" else last, op["value"])
                    else:
                        parent[last] = op["value"]
                elif op.get("op") == "remove":
                    del parent[last]
                elif op.get("op") == "test":
                    if parent[last] != op.get("value"):
                        raise ApiError(422, "Invalid", f"the JSON patch test of {op['path']} failed")
                else:
                    raise ApiError(422, "Invalid", f"the JSON patch op {op.get('op')!r} is not supported")
            except (KeyError, IndexError, ValueError, TypeError):
                raise ApiError(422, "Invalid", f"the JSON patch path {op.get('path')} does not exist") from None
        return self._store(kind, namespace, obj, previous, manager)

    def merge_patch(
        self, kind: Kind, namespace: str, name: str, patch: dict[str, Any], manager: str = "sim", subresource: str = ""
    ) -> dict[str, Any]:
        previous = self.get(kind, namespace, name)
        obj = copy.deepcopy(previous)
        merge_into(obj, patch)
        return self._store(kind, namespace, obj, previous, manager, subresource=subresource)

    def strategic_patch(
        self, kind: Kind, namespace: str, name: str, patch: Any, manager: str = "sim"
    ) -> dict[str, Any]:
        """A strategic merge patch (`kubectl apply`, `edit`, `diff` send them), merged by the patch
        strategies of the kind's schema. A custom resource has none: its patch is taken as a JSON
        merge patch (a real server refuses it with 415; kubectl never sends one)."""
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a strategic merge patch is an object")
        definition = openapi.definition_of(self.kubernetes_version, kind.group_version, kind.kind)
        if definition is None:
            return self.merge_patch(kind, namespace, name, patch, manager)
        previous = self.get(kind, namespace, name)
        walker = openapi.Schemas(self.kubernetes_version)
        obj = openapi.strategic_merge(previous, patch, {"$ref": openapi.DEFS + definition}, walker)
        return self._store(kind, namespace, obj, previous, manager)
