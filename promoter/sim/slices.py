"""The simulator's EndpointSlice controller: each Service with a selector (not ExternalName) has the
slice `<service>-sim` (labelled `kubernetes.io/service-name`), with one ready endpoint per ready replica
of the workloads (no Jobs) in its namespace whose pod template labels the selector matches; a slice
whose Service is gone is deleted.

A pass looks only at what was written since the last one (`Objects.take_touched`): a Service written
is sliced again; a workload written or deleted re-slices the Services that counted it and those its
pod template's labels could match now. Both sides are indexed by (namespace, label, value), so a
write costs the Services it concerns, not every Service and workload held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promoter.sim.fields import now
from promoter.sim.store import SLICES, WORKLOADS, Key, Objects, content_of

SLICER = "endpointslice-controller.k8s.io"  # the EndpointSlice controller's name, as a real cluster's
Label = tuple[str, Any, Any]  # (namespace, label, value)


def _pairs(namespace: str, labels: Any) -> set[Label]:
    pairs: set[Label] = set()
    for k, v in (labels if isinstance(labels, dict) else {}).items():
        try:
            hash(v)
        except TypeError:  # an unhashable value: no selector's value can be looked up equal to it
            continue
        pairs.add((namespace, k, v))
    return pairs


def _ready(obj: dict[str, Any]) -> int:
    status = obj.get("status") or {}
    return int(status.get("readyReplicas") or status.get("numberReady") or 0)


class Slicer:
    """The controller's indexes; `run` is one pass, under the simulator's lock."""

    def __init__(self, env: str) -> None:
        self.env = env
        self.workloads: dict[Label, set[Key]] = {}  # a pod template label -> the workloads with it
        self.selecting: dict[Label, set[Key]] = {}  # a selector's label -> the Services selecting by it
        self.labels: dict[Key, set[Label]] = {}  # each indexed workload's or Service's pairs, to unindex
        self.counted: dict[Key, set[Key]] = {}  # a workload -> the Services whose slice counted it
        self.members: dict[Key, set[Key]] = {}  # a Service -> the workloads its slice counted

    def run(self, objects: Objects, bump: Callable[[], str]) -> None:
        """Slice again what the writes since the last pass concern; `bump()` gives a new resourceVersion."""
        services: set[Key] = set()
        for key in objects.take_touched():
            group, plural, namespace, name = key
            obj = objects.get(key)
            if (group, plural) == ("", "services"):
                self._index(self.selecting, key, _pairs(namespace, self._selector(obj)))
                services.add(key)
            elif key in self.counted or (obj is not None and obj.get("kind") in WORKLOADS):
                labels = ((((obj or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
                pairs = _pairs(namespace, labels) if obj is not None else set()
                self._index(self.workloads, key, pairs)
                services |= self.counted.get(key, set())
                for pair in pairs:
                    services |= self.selecting.get(pair, set())
            elif (group, plural) == (SLICES.group, SLICES.plural) and name.endswith("-sim"):
                services.add(("", "services", namespace, name.removesuffix("-sim")))  # edited or deleted by hand
        for service in sorted(services):
            self._slice(objects, service, bump)
        objects.take_touched()  # the slices just written concern no Service again

    def _index(self, index: dict[Label, set[Key]], key: Key, pairs: set[Label]) -> None:
        for pair in self.labels.pop(key, set()):
            index.get(pair, set()).discard(key)
        if pairs:
            self.labels[key] = pairs
        for pair in pairs:
            index.setdefault(pair, set()).add(key)

    @staticmethod
    def _selector(service: dict[str, Any] | None) -> dict[str, Any]:
        spec = (service or {}).get("spec") or {}
        selector = spec.get("selector")
        if not isinstance(selector, dict) or spec.get("type") == "ExternalName":
            return {}
        return selector

    def _matched(self, objects: Objects, namespace: str, selector: dict[str, Any]) -> set[Key]:
        pairs = _pairs(namespace, selector)
        if not selector or len(pairs) < len(selector):
            return set()  # no selector, or an unhashable value no label can equal
        found = set.intersection(*(self.workloads.get(pair, set()) for pair in pairs))
        return {key for key in found if objects.get(key, {}).get("kind") in WORKLOADS}

    def _slice(self, objects: Objects, service: Key, bump: Callable[[], str]) -> None:
        _, _, namespace, name = service
        key = (SLICES.group, SLICES.plural, namespace, f"{name}-sim")
        selector = self._selector(objects.get(service))
        matched = self._matched(objects, namespace, selector) if selector else set()
        for workload in self.members.pop(service, set()):
            self.counted.get(workload, set()).discard(service)
        for workload in matched:
            self.counted.setdefault(workload, set()).add(service)
        if matched:
            self.members[service] = matched
        old = objects.get(key)
        if not selector:
            labels = ((old or {}).get("metadata") or {}).get("labels") or {}
            if old is not None and labels.get("endpointslice.kubernetes.io/managed-by") == SLICER:
                del objects[key]
                bump()
            return
        body = self._body(objects, objects[service], namespace, name, matched)
        if old is not None and content_of(old) == content_of(body):
            return
        meta = body["metadata"]
        meta["resourceVersion"] = bump()
        meta["uid"] = old["metadata"]["uid"] if old else f"sim-{self.env}-{meta['resourceVersion']}"
        meta["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else now()
        meta["generation"] = 1
        objects[key] = body

    @staticmethod
    def _body(
        objects: Objects, service: dict[str, Any], namespace: str, name: str, matched: set[Key]
    ) -> dict[str, Any]:
        ready = sum(_ready(objects[key]) for key in matched)
        return {
            "apiVersion": SLICES.group_version,
            "kind": SLICES.kind,
            "metadata": {
                "name": f"{name}-sim",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": SLICER},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"10.0.{i // 250}.{i % 250 + 1}"], "conditions": {"ready": True}} for i in range(ready)
            ],
            "ports": [
                {"port": p.get("targetPort") if isinstance(p.get("targetPort"), int) else p.get("port")}
                for p in (service.get("spec") or {}).get("ports") or []
            ],
        }
