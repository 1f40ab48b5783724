"""Health of an app without workloads (issue 25, no fail-open defaults): every applied object must
exist and hold its kind's readiness. The simulator completes a Job with one success and never binds a
PVC; where a test needs more, it writes the status through the API as a controller would. And how
often the objects are read while they are not yet healthy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from promoter.cluster import KubeCluster
from promoter.sim.kube import KubeSim


def job(completions: int) -> dict[str, Any]:
    pod = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "ghcr.io/promoter-dev/demo:1"}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {"completions": completions, "template": {"spec": pod}},
    }


PVC = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "data"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}


def test_an_app_without_workloads_is_not_healthy_before_its_objects_exist(cluster: KubeCluster) -> None:
    healthy, why = cluster.wait_healthy([dict(CONFIG)], timeout_s=0.3)  # never applied
    assert not healthy and why == "not healthy within 0.3s: ConfigMap/settings does not exist yet"
    cluster.sync("settings", "p", [CONFIG])
    assert cluster.wait_healthy([dict(CONFIG)], timeout_s=5) == (
        True,
        "no workloads; 1 object(s) in place and ready",
    )


def test_a_job_only_app_is_healthy_once_every_completion_succeeded(cluster: KubeCluster, api: client.ApiClient) -> None:
    cluster.sync("migrate", "p", [job(3)])
    deadline = time.monotonic() + 5  # the simulator's controller reports one success and stops there
    while cluster.rollout_verdict(job(3) | {"metadata": {"name": "migrate", "namespace": "apps"}})[1] != (
        "Job/migrate is running: 1 of 3 completions"
    ):
        assert time.monotonic() < deadline, "the simulator never ran the Job"
        time.sleep(0.02)
    healthy, why = cluster.wait_healthy([job(3)], timeout_s=0.3)
    assert not healthy and why.endswith("Job/migrate is running: 1 of 3 completions")
    # the Job controller's word: all three pods succeeded
    client.BatchV1Api(api).patch_namespaced_job_status("migrate", "apps", {"status": {"succeeded": 3}})
    assert cluster.wait_healthy([job(3)], timeout_s=5) == (True, "1 workload(s) healthy")


def test_a_pvc_is_healthy_once_bound_and_a_lost_one_fails(cluster: KubeCluster, api: client.ApiClient) -> None:
    cluster.sync("data", "p", [PVC, CONFIG])
    healthy, why = cluster.wait_healthy([dict(PVC), dict(CONFIG)], timeout_s=0.3)
    assert not healthy and why == "not healthy within 0.3s: PersistentVolumeClaim/data is Pending, not yet bound"
    core = client.CoreV1Api(api)
    core.patch_namespaced_persistent_volume_claim_status("data", "apps", {"status": {"phase": "Bound"}})
    assert cluster.wait_healthy([dict(PVC), dict(CONFIG)], timeout_s=5) == (
        True,
        "no workloads; 2 object(s) in place and ready",
    )
    core.patch_namespaced_persistent_volume_claim_status("data", "apps", {"status": {"phase": "Lost"}})
    assert cluster.wait_healthy([dict(PVC)], timeout_s=5) == (False, "PersistentVolumeClaim/data lost its volume")


def test_a_service_is_healthy_once_it_has_a_ready_endpoint(cluster: KubeCluster, sim: KubeSim) -> None:
    """A Service with a selector needs a ready endpoint (its EndpointSlices, which the simulator keeps
    from the workloads its selector matches); one the cluster has no slices for is not healthy. The
    EndpointSlice kind missing after a fresh discovery is not rediscovered at every poll."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    pod = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "web:1"}]}}
    web = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": pod},
    }
    cluster.sync("web", "p", [service])
    healthy, why = cluster.wait_healthy([dict(service)], timeout_s=0.3)
    assert not healthy and why == "not healthy within 0.3s: Service/web has no ready endpoints yet"
    cluster.sync("web", "p", [service, web])
    assert cluster.wait_healthy([dict(service), dict(web)], timeout_s=5) == (True, "1 workload(s) healthy")
    live = {**service, "metadata": {"name": "web", "namespace": "apps"}}
    assert cluster.rollout_verdict(live) == (True, "Service/web has 2 ready endpoint(s)")


def test_a_kind_the_cluster_does_not_serve_is_rediscovered_once_not_at_every_lookup(
    cluster: KubeCluster, sim: KubeSim
) -> None:
    from promoter.errors import PermanentError

    cluster.rollout_verdict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "apps"}})
    before = len([r for r in sim.requests if r[1] in ("/api", "/apis")])
    for _ in range(20):
        with pytest.raises(PermanentError, match="does not serve Widget"):
            cluster._resource("example.com/v1", "Widget")
    after = len([r for r in sim.requests if r[1] in ("/api", "/apis")])
    assert after - before <= 3  # the first lookup and one refresh, not 20 of each


def test_the_objects_are_read_at_once_then_after_a_quarter_second_backing_off() -> None:
    """Each read of the objects is a request per object: the first right away, the next 0.25 s later
    (not 50 ms: a rollout takes a moment), then half as long again each time, up to every 2 s."""
    from promoter.cluster.health import poll

    asked: list[float] = []

    def check() -> tuple[bool | None, str]:
        asked.append(time.monotonic())
        return (True, "ready") if len(asked) == 5 else (None, "rolling out")

    assert poll(check, timeout_s=30, failing="not healthy", progress=lambda _: None) == (True, "ready")
    gaps = [b - a for a, b in zip(asked, asked[1:], strict=False)]
    expected = [0.25, 0.375, 0.5625, 0.84375]  # a sleep never ends early; on a loaded machine it may end late
    assert all(gap >= want - 0.005 for gap, want in zip(gaps, expected, strict=True)), gaps


def test_a_client_s_discovery_is_its_own_never_the_shared_file_of_past_clients(
    cluster: KubeCluster, sim: KubeSim
) -> None:
    """The Kubernetes client's dynamic discovery is cached by default in /tmp/osrcp-<md5 of the URL>.json,
    shared by every process and kept for good: a new client loaded a past API server's on the same
    address (another test's simulator, a cluster before an upgrade) and took kinds for served that this
    one does not serve (this file's Widget test failed so in CI). Each client keeps its own."""
    import hashlib
    import tempfile

    shared = Path(tempfile.gettempdir()) / f"osrcp-{hashlib.md5(sim.url.encode()).hexdigest()}.json"
    shared.unlink(missing_ok=True)
    cluster.rollout_verdict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "apps"}})
    assert not shared.exists()
