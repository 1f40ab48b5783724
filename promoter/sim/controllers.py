"""The simulator's controllers: rollouts (Deployments, StatefulSets and DaemonSets become available after
`rollout_delay_s`, Jobs complete, unless the pod template's `sim.promoter.dev/fail-in` names this
server's environment) and EndpointSlices (one per Service with a selector, ready endpoints from the
workloads it selects). They write the workloads' status directly: no pods or ReplicaSets."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from promoter.sim.fields import now
from promoter.sim.store import (
    SLICES,
    Store,
    content_of,
)

FAIL_IN = "sim.promoter.dev/fail-in"
SLICER = "endpointslice-controller.k8s.io"  # the EndpointSlice controller's name, as a real cluster's


class Controllers(Store):
    """The rollout and EndpointSlice controllers, on their own thread."""

    rollout_delay_s: float
    rollouts: dict[tuple[str, str, str, str], tuple[int, float]]
    done: dict[tuple[str, str, str, str], int]
    _sliced: int
    _stop: threading.Event

    def _controller(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            with self.lock:
                for key in list(self.active):  # a workload whose rollout ended waits for its next write
                    obj = self.objects.get(key)
                    if obj is None:
                        self.workloads.discard(key)  # deleted
                    if obj is None or self._reconcile(key, obj, now):
                        self.active.discard(key)
                if self._sliced != self.version:
                    self._slice()
                    self._sliced = self.version

    def _slice(self) -> None:
        """The EndpointSlice controller: each Service with a selector has the slice `<service>-sim`
        (labelled `kubernetes.io/service-name`), with one ready endpoint per ready replica of the
        workloads in its namespace whose pod template labels the selector matches; a slice whose
        Service is gone is deleted."""
        wanted: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        labelled = self._labelled()
        for (group, plural, namespace, name), service in list(self.objects.items()):
            spec = service.get("spec") or {}
            selector = spec.get("selector") or {}
            if group or plural != "services" or not selector or spec.get("type") == "ExternalName":
                continue
            matched = set.intersection(*(self._selected(labelled, namespace, k, v) for k, v in selector.items()))
            ready = sum(self._ready(self.objects[key]) for key in matched)
            wanted[(SLICES.group, SLICES.plural, namespace, f"{name}-sim")] = {
                "apiVersion": SLICES.group_version,
                "kind": SLICES.kind,
                "metadata": {
                    "name": f"{name}-sim",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": SLICER},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [f"10.0.{i // 250}.{i % 250 + 1}"], "conditions": {"ready": True}}
                    for i in range(ready)
                ],
                "ports": [
                    {"port": p.get("targetPort") if isinstance(p.get("targetPort"), int) else p.get("port")}
                    for p in spec.get("ports") or []
                ],
            }
        for key, obj in list(self.objects.items()):
            managed = ((obj.get("metadata") or {}).get("labels") or {}).get("endpointslice.kubernetes.io/managed-by")
            if key[:2] == (SLICES.group, SLICES.plural) and managed == SLICER and key not in wanted:
                del self.objects[key]
                self._bump()
        for key, body in wanted.items():
            old = self.objects.get(key)
            if old is not None and content_of(old) == content_of(body):
                continue
            meta = body["metadata"]
            meta["uid"] = old["metadata"]["uid"] if old else f"sim-{self.env}-{self.version + 1}"
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else now()
            meta["generation"] = 1
            meta["resourceVersion"] = self._bump()
            self.objects[key] = body

    @staticmethod
    def _selected(
        labelled: dict[tuple[str, Any, Any], set[tuple[str, str, str, str]]], namespace: str, k: Any, v: Any
    ) -> set[tuple[str, str, str, str]]:
        try:
            return labelled.get((namespace, k, v), set())
        except TypeError:  # an unhashable value: no label can equal it
            return set()

    def _labelled(self) -> dict[tuple[str, Any, Any], set[tuple[str, str, str, str]]]:
        """The workloads (no Jobs) by (namespace, label, value) of their pod template's labels: a
        Service selects the workloads in every one of its selector's sets. Built once per pass, so a
        pass costs the workloads plus the Services, not their product."""
        index: dict[tuple[str, Any, Any], set[tuple[str, str, str, str]]] = {}
        for key in self.workloads:
            obj = self.objects.get(key)
            if obj is None or obj["kind"] == "Job":
                continue
            labels = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            for k, v in labels.items():
                try:
                    index.setdefault((key[2], k, v), set()).add(key)
                except TypeError:  # an unhashable value: no selector's value can be looked up equal to it
                    continue
        return index

    @staticmethod
    def _ready(obj: dict[str, Any]) -> int:
        status = obj.get("status") or {}
        return int(status.get("readyReplicas") or status.get("numberReady") or 0)

    def _reconcile(self, key: tuple[str, str, str, str], obj: dict[str, Any], now: float) -> bool:
        """Move the workload's rollout on; whether the rollout of its latest generation has ended."""
        generation = obj["metadata"].get("generation", 1)
        started = self.rollouts.get(key)
        if started is None or started[0] != generation:
            self.rollouts[key] = (generation, now)
            self._set_status(key, obj, self._progressing(obj, generation))
            return False
        if self.done.get(key) == generation:
            return True
        if now - started[1] < self.rollout_delay_s:
            return False
        annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        targets = {t.strip() for t in str(annotations.get(FAIL_IN, "")).split(",") if t.strip()}
        failing = "*" in targets or self.env in targets
        self.done[key] = generation
        self._set_status(key, obj, self._failed(obj, generation) if failing else self._available(obj, generation))
        return True

    def _set_status(self, key: tuple[str, str, str, str], obj: dict[str, Any], status: dict[str, Any]) -> None:
        updated = copy.deepcopy(obj)
        updated["status"] = status
        updated["metadata"]["resourceVersion"] = self._bump()
        self.objects[key] = updated

    @staticmethod
    def _replicas(obj: dict[str, Any]) -> int:
        return int(obj.get("spec", {}).get("replicas", 1)) if obj["kind"] != "DaemonSet" else 1

    def _progressing(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        old = obj.get("status", {})
        n = self._replicas(obj)
        if obj["kind"] == "Job":
            return {"active": 1}
        if obj["kind"] == "DaemonSet":
            return {
                "observedGeneration": generation,
                "desiredNumberScheduled": 1,
                "updatedNumberScheduled": 0,
                "numberAvailable": old.get("numberAvailable", 0),
                "numberReady": old.get("numberReady", 0),
            }
        return {
            "observedGeneration": generation,
            "replicas": n,
            "updatedReplicas": 0,
            "readyReplicas": old.get("readyReplicas", 0),
            "availableReplicas": old.get("availableReplicas", 0),
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": "rollout in progress",
                }
            ],
        }

    def _available(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        n = self._replicas(obj)
        if obj["kind"] == "Job":
            return {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        if obj["kind"] == "DaemonSet":
            return {
                "observedGeneration": generation,
                "desiredNumberScheduled": 1,
                "currentNumberScheduled": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
                "numberReady": 1,
            }
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
        }
        if obj["kind"] == "StatefulSet":
            status.update(
                {"currentReplicas": n, "currentRevision": f"r{generation}", "updateRevision": f"r{generation}"}
            )
        else:
            status["conditions"] = [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f"ReplicaSet has successfully progressed (generation {generation})",
                },
            ]
        return status

    def _failed(self, obj: dict[str, Any], generation: int) -> dict[str, Any]:
        status = self._progressing(obj, generation)
        message = f"simulated failure in {self.env} ({FAIL_IN})"
        if obj["kind"] == "Job":
            return {
                "failed": 1,
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message}
                ],
            }
        status["conditions"] = [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message}
        ]
        return status
