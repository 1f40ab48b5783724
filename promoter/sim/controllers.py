"""The simulator's controllers: rollouts (Deployments, StatefulSets and DaemonSets become available after
`rollout_delay_s`, Jobs complete, unless the pod template's `sim.promoter.dev/fail-in` names this
server's environment) and EndpointSlices (one per Service with a selector, ready endpoints from the
workloads it selects). They write the workloads' status directly: no pods or ReplicaSets."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from promoter.sim.slices import Slicer
from promoter.sim.store import Store

FAIL_IN = "sim.promoter.dev/fail-in"


class Controllers(Store):
    """The rollout and EndpointSlice controllers (promoter.sim.slices), on their own thread."""

    rollout_delay_s: float
    rollouts: dict[tuple[str, str, str, str], tuple[int, float]]
    done: dict[tuple[str, str, str, str], int]
    slicer: Slicer
    _stop: threading.Event

    def _controller(self) -> None:
        """A pass every 20 ms while a rollout is under way, else at the next write (`written`) or
        within a second: an idle cluster costs its controllers next to nothing."""
        while not self._stop.is_set():
            self.written.wait(0.02 if self.active else 1.0)
            self.written.clear()
            now = time.monotonic()
            with self.lock:
                for key in list(self.active):  # a workload whose rollout ended waits for its next write
                    obj = self.objects.get(key)
                    if obj is None:
                        self.workloads.discard(key)  # deleted
                    if obj is None or self._reconcile(key, obj, now):
                        self.active.discard(key)
                self.slicer.run(self.objects, self._bump)

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
