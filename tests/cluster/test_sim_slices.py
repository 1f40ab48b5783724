"""The simulator's EndpointSlice controller (promoter.sim.slices), through the API as a cluster's users
write: a slice follows its Service's selector and the workloads it matches as either changes, is made
again when deleted by hand and goes with its Service; a pass re-slices only the Services a write
concerns, not all of them."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from promoter.sim.kube import KubeSim
from promoter.stack import wait_until

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    ports = [{"port": 80, "targetPort": 8080}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": ports},
    }


def deployment(name: str, labels: dict[str, str], replicas: int = 2) -> dict[str, Any]:
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": f"{name}:1"}]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": pod},
    }


def endpoints(api: client.ApiClient, service_name: str) -> int | None:
    """How many ready endpoints the Service's slice lists; None when it has no slice."""
    found = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "apps", label_selector=f"kubernetes.io/service-name={service_name}"
    )
    if not found.items:
        return None
    (one,) = found.items
    return len([e for e in one.endpoints or [] if e.conditions.ready])


def settles(api: client.ApiClient, wanted: dict[str, int | None]) -> None:
    wait_until(lambda: {s: endpoints(api, s) for s in wanted} == wanted, 10, f"the slices to read {wanted}")


def test_a_slice_follows_its_selector_and_the_workloads_it_matches(api: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(NAMESPACE)
    core.create_namespaced_service("apps", service("web", {"app": "web"}))
    core.create_namespaced_service("apps", service("front", {"app": "web", "tier": "front"}))
    core.create_namespaced_service("apps", {**service("none", {}), "spec": {"ports": [{"port": 80}]}})
    apps.create_namespaced_deployment("apps", deployment("web", {"app": "web", "tier": "front"}))
    settles(api, {"web": 2, "front": 2, "none": None})  # no selector, no slice
    (slice_,) = (
        client.DiscoveryV1Api(api)
        .list_namespaced_endpoint_slice("apps", label_selector="kubernetes.io/service-name=front")
        .items
    )
    assert slice_.ports[0].port == 8080 and slice_.metadata.name == "front-sim"

    apps.patch_namespaced_deployment(  # its pods leave both Services (as a relabel does)
        "web", "apps", {"spec": {"template": {"metadata": {"labels": {"app": "other", "tier": "front"}}}}}
    )
    settles(api, {"web": 0, "front": 0})
    core.patch_namespaced_service("web", "apps", {"spec": {"selector": {"app": "other"}}})
    settles(api, {"web": 2, "front": 0})
    apps.patch_namespaced_deployment_scale("web", "apps", {"spec": {"replicas": 3}})
    settles(api, {"web": 3, "front": 0})

    client.DiscoveryV1Api(api).delete_namespaced_endpoint_slice(
        "web-sim", "apps", _preload_content=False
    )  # by hand: made again
    settles(api, {"web": 3})
    core.delete_namespaced_service("front", "apps", _preload_content=False)
    settles(api, {"front": None})
    apps.delete_namespaced_deployment("web", "apps", _preload_content=False)
    settles(api, {"web": 0})


def test_a_write_re_slices_only_the_services_it_concerns(sim: KubeSim, api: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(NAMESPACE)
    for i in range(60):
        core.create_namespaced_service("apps", service(f"s{i}", {"app": f"a{i}"}))
        apps.create_namespaced_deployment("apps", deployment(f"a{i}", {"app": f"a{i}"}, replicas=1))
    settles(api, {f"s{i}": 1 for i in range(60)})
    sliced: list[tuple[str, ...]] = []
    original = sim.slicer._slice

    def counting(objects: Any, key: tuple[str, str, str, str], bump: Any) -> None:
        sliced.append(key)
        original(objects, key, bump)

    sim.slicer._slice = counting  # type: ignore[method-assign]
    apps.patch_namespaced_deployment_scale("a7", "apps", {"spec": {"replicas": 2}})
    settles(api, {"s7": 2, "s8": 1})
    assert set(sliced) == {("", "services", "apps", "s7")}  # its rollout's writes, none of the other 59
