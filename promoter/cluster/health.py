"""Health as `kubectl rollout status` judges it (a workload rolled out, a Job complete, a PVC bound, a
Service with a ready endpoint; any other kind once it exists), polled from 0.25 s backing off to 2 s."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError

from promoter.cluster.objects import (
    api_error,
    plain,
)
from promoter.cluster.resources import Resources
from promoter.errors import PermanentError

# the first read again after this long: a rollout takes a moment even on the simulator (0.2 s), and each
# read is a request (from 50 ms, a health check of one app made 13; from 0.25 s, 7)
POLL_FIRST_S = 0.25


def poll(
    check: Callable[[], tuple[bool | None, str]],
    timeout_s: float,
    failing: str,
    progress: Callable[[str], None],
    interval_s: float = POLL_FIRST_S,
    max_interval_s: float = 2.0,
) -> tuple[bool, str]:
    """Ask `check` until it has a verdict or `timeout_s` has passed (then `failing`, and what it said
    last): first after `interval_s`, then half as long again each time, up to `max_interval_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        verdict, said = check()
        if verdict is not None:
            return verdict, said
        progress(said)
        if time.monotonic() >= deadline:
            return False, f"{failing} within {timeout_s:g}s: {said}"
        time.sleep(min(interval_s, max(deadline - time.monotonic(), 0.0)))
        interval_s = min(interval_s * 1.5, max_interval_s)


Verdict = tuple[bool | None, str]  # True healthy | False failed for good | None not yet, and why


def _job_verdict(name: str, live: dict[str, Any]) -> Verdict:
    spec, status = live.get("spec") or {}, live.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "Failed" and c.get("status") == "True":
            return False, f"{name} failed: {c.get('reason')}: {c.get('message', '')}"
    # complete once as many pods succeeded as it asks for (no `completions`: one is enough)
    want = spec.get("completions") or 1
    succeeded = status.get("succeeded") or 0
    if succeeded >= want:
        return True, f"{name} complete"
    return None, f"{name} is running: {succeeded} of {want} completions"


def _pvc_verdict(name: str, live: dict[str, Any]) -> Verdict:
    phase = (live.get("status") or {}).get("phase") or "Pending"
    if phase == "Bound":
        return True, f"{name} bound"
    if phase == "Lost":  # its volume is gone: it never binds again by itself
        return False, f"{name} lost its volume"
    return None, f"{name} is {phase}, not yet bound"


def _workload_verdict(kind: str, name: str, live: dict[str, Any]) -> Verdict:
    """A Deployment, StatefulSet or DaemonSet, once its controller has seen its latest generation."""
    spec, status = live.get("spec") or {}, live.get("status") or {}
    generation = live["metadata"].get("generation", 0)
    observed = status.get("observedGeneration") or 0
    if observed < generation:
        return None, f"{name}: waiting for the controller to observe generation {generation}"
    if kind == "Deployment":
        return _deployment_verdict(name, spec, status)
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas") or 0
        updated = status.get("updatedReplicas") or 0
        if ready < want or updated < want:
            return None, f"{name}: {ready} of {want} ready, {updated} updated"
        return True, f"{name} rolled out"
    # a DaemonSet
    want = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    if updated < want or available < want:
        return None, f"{name}: {updated} of {want} updated, {available} available"
    return True, f"{name} rolled out"


def _deployment_verdict(name: str, spec: dict[str, Any], status: dict[str, Any]) -> Verdict:
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return False, f"{name}: condition Progressing=False, ProgressDeadlineExceeded: {c.get('message', '')}"
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    available = status.get("availableReplicas") or 0
    total = status.get("replicas") or 0
    if updated < want:
        return None, f"{name}: {updated} of {want} replicas updated"
    if total > updated:
        return None, f"{name}: {total - updated} old replicas pending termination"
    if available < updated:
        return None, f"{name}: {available} of {updated} updated replicas available"
    return True, f"{name} successfully rolled out"


class Health(Resources):
    """Waiting for an app's applied objects to be ready."""

    def rollout_verdict(self, obj: dict[str, Any]) -> tuple[bool | None, str]:
        """(True healthy | False failed for good | None not yet, why) — `kubectl rollout status`'s rules."""
        live = self._get(obj)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if live is None:
            return None, f"{name} does not exist yet"
        kind = obj["kind"]
        if kind == "Service":
            return self._service_verdict(live, name)
        if kind == "Job":
            return _job_verdict(name, live)
        if kind == "PersistentVolumeClaim":
            return _pvc_verdict(name, live)
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            return _workload_verdict(kind, name, live)
        return True, f"{name} exists"  # a kind without readiness (its controller, if any, reports none)

    def _service_verdict(self, live: dict[str, Any], name: str) -> tuple[bool | None, str]:
        """A Service that selects pods is ready once it has a ready endpoint (its EndpointSlices, else
        its Endpoints); one without a selector (ExternalName, endpoints kept by hand) once it exists."""
        spec = live.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return True, f"{name} exists"
        namespace, service = live["metadata"].get("namespace"), live["metadata"]["name"]
        try:
            slices = self._resource("discovery.k8s.io/v1", "EndpointSlice")
            found = slices.get(
                namespace=namespace, label_selector=f"kubernetes.io/service-name={service}", serializer=plain
            )
            ready = [
                e
                for item in found.get("items") or []
                for e in item.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") is not False
            ]
        except PermanentError:  # a cluster without EndpointSlices (before 1.21): the Endpoints object
            try:
                endpoints = self._get({"apiVersion": "v1", "kind": "Endpoints", "metadata": live["metadata"]})
            except PermanentError:
                # Not a real API server (every one serves both): nothing to read the endpoints from, said
                return True, f"{name} exists (the cluster serves no Endpoints to check it has any)"
            subsets = (endpoints or {}).get("subsets") or []
            ready = [a for subset in subsets for a in subset.get("addresses") or []]
        except (DynamicApiError, ApiException) as e:
            raise api_error(e, f"read the endpoints of {name}") from None
        except Exception as e:  # noqa: BLE001 - transport
            raise self._unreachable(e, f"read the endpoints of {name}") from None
        if ready:
            return True, f"{name} has {len(ready)} ready endpoint(s)"
        return None, f"{name} has no ready endpoints yet"

    def wait_healthy(
        self,
        objects: list[dict[str, Any]],
        timeout_s: float,
        progress: Callable[[str], None] = lambda _: None,
        interval_s: float = POLL_FIRST_S,
        max_interval_s: float = 2.0,
    ) -> tuple[bool, str]:
        """Poll every applied object until each exists and holds its kind's readiness (a workload
        rolled out, a Job complete, a PVC bound, a Service with endpoints; any other kind: it exists),
        one fails for good, or the deadline passes: first after `interval_s`, then half as long again
        each time, up to `max_interval_s`. An app without workloads is not healthy at once: its
        objects must be there and ready too. A workload is asked again at every poll (a rollout can
        still fail); any other object, once ready, is not asked again."""
        workloads = ("Deployment", "StatefulSet", "DaemonSet", "Job")
        for o in objects:
            if self._resource(o["apiVersion"], o["kind"]).namespaced:
                o.setdefault("metadata", {}).setdefault("namespace", self.default_namespace)
        waiting = list(objects)
        count = sum(o["kind"] in workloads for o in objects)

        def all_of_them() -> tuple[bool | None, str]:
            nonlocal waiting
            pending, still = [], []
            for obj in waiting:
                verdict, why = self.rollout_verdict(obj)
                if verdict is False:
                    return False, why
                if verdict is None:
                    pending.append(why)
                if verdict is None or obj["kind"] in workloads:
                    still.append(obj)
            waiting = still
            if pending:
                return None, "; ".join(pending)
            if count:
                return True, f"{count} workload(s) healthy"
            return True, f"no workloads; {len(objects)} object(s) in place and ready"

        return poll(all_of_them, timeout_s, "not healthy", progress, interval_s, max_interval_s)
