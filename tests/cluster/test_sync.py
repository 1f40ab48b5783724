"""Sync and health with the official client against the simulated API server (promoter/sim/kube.py):
create, update, prune; a second sync of the same revision changes no object's generation; custom
resources apply through discovery; rollout verdicts as `kubectl rollout status` gives them,
`ProgressDeadlineExceeded` at once; API faults sorted into retryable and permanent."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from promoter.cluster import APP_LABEL, KubeCluster
from promoter.errors import PermanentError, TemporaryError
from promoter.render import render_dir
from promoter.sim.kube import FAIL_IN, KubeSim
from tests.support.gitops import ROOT

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True}],
    },
}
WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(env="staging", rollout_delay_s=0.05) as server:
        yield server


@pytest.fixture
def cluster(sim: KubeSim) -> KubeCluster:
    configuration = client.Configuration()
    configuration.host = sim.url
    configuration.retries = 0
    return KubeCluster(client.ApiClient(configuration), "apps")


def demo() -> list[dict[str, Any]]:
    return render_dir(ROOT / "environments" / "staging" / "demo")


def generations(sim: KubeSim) -> dict[str, int]:
    return {f"{k[1]}/{k[3]}": o["metadata"]["generation"] for k, o in sim.objects.items()}


def test_create_update_prune_and_idempotent_resync(sim: KubeSim, cluster: KubeCluster) -> None:
    first = cluster.sync("demo", "promote-demo", demo())
    assert (first.applied, first.pruned) == (3, 0)
    assert ("", "namespaces", "", "apps") in sim.objects  # created when missing
    dep = sim.objects[("apps", "deployments", "apps", "demo")]
    assert dep["metadata"]["labels"][APP_LABEL] == "demo"
    assert dep["metadata"]["labels"]["promoter.dev/promotion"] == "promote-demo"
    assert dep["metadata"]["annotations"]["promoter.dev/promotion"] == "promote-demo"
    before = generations(sim)
    again = cluster.sync("demo", "promote-demo", demo())
    assert (again.applied, again.unchanged) == (0, 3)
    assert {k: v for k, v in generations(sim).items() if "deployments" in k} == {
        k: v for k, v in before.items() if "deployments" in k
    }
    changed = demo()
    for o in changed:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/promoter-dev/demo:2.0.0"
    changed = [o for o in changed if o["kind"] != "Service"]  # the new revision drops the Service
    third = cluster.sync("demo", "promote-demo", changed)
    assert third.pruned == 1 and ("", "services", "apps", "demo") not in sim.objects
    assert sim.objects[("apps", "deployments", "apps", "demo")]["metadata"]["generation"] == 2


def test_prune_leaves_other_apps_alone(sim: KubeSim, cluster: KubeCluster) -> None:
    other = copy.deepcopy(demo())
    for o in other:
        o["metadata"]["name"] = "shop"
    cluster.sync("shop", "promote-shop", other)
    cluster.sync("demo", "promote-demo", demo())
    cluster.sync("demo", "promote-demo", [o for o in demo() if o["kind"] == "ConfigMap"])
    assert ("apps", "deployments", "apps", "shop") in sim.objects
    assert ("apps", "deployments", "apps", "demo") not in sim.objects


def test_custom_resources_apply_through_discovery(sim: KubeSim, cluster: KubeCluster) -> None:
    outcome = cluster.sync("demo", "p", [WIDGET, CRD])  # the CRD goes first whatever the order given
    assert outcome.applied == 2
    assert sim.objects[("example.com", "widgets", "apps", "w1")]["spec"] == {"size": 3}
    cluster.sync("demo", "p", [CRD])
    assert ("example.com", "widgets", "apps", "w1") not in sim.objects  # pruned via the inventory


def test_health_waits_for_the_rollout(sim: KubeSim, cluster: KubeCluster) -> None:
    objects = demo()
    cluster.sync("demo", "p", objects)
    seen: list[str] = []
    healthy, why = cluster.wait_healthy(objects, timeout_s=10, progress=seen.append)
    assert healthy and why == "1 workload(s) healthy"


def test_progress_deadline_exceeded_fails_at_once(sim: KubeSim, cluster: KubeCluster) -> None:
    objects = demo()
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["metadata"]["annotations"] = {FAIL_IN: "qa, staging"}
    cluster.sync("demo", "p", objects)
    healthy, why = cluster.wait_healthy(objects, timeout_s=30)
    assert not healthy
    assert why.startswith("Deployment/demo: condition Progressing=False, ProgressDeadlineExceeded")


def test_fail_in_another_environment_is_healthy_here(sim: KubeSim, cluster: KubeCluster) -> None:
    objects = demo()
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["metadata"]["annotations"] = {FAIL_IN: "prod"}
    cluster.sync("demo", "p", objects)
    assert cluster.wait_healthy(objects, timeout_s=10)[0]


def test_api_faults_are_sorted(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "p", demo())
    sim.fail_next(500, count=1)
    with pytest.raises(TemporaryError, match="500"):
        cluster.sync("demo", "p", demo())
    assert cluster.sync("demo", "p", demo()).unchanged == 3  # the retry succeeds
    bad = copy.deepcopy(demo()[0])
    bad["metadata"]["name"] = ""
    with pytest.raises(PermanentError, match="without apiVersion or metadata.name"):
        cluster.sync("demo", "p", [bad])
    sim.fail_next(422)
    with pytest.raises(PermanentError, match="422"):
        cluster.sync("demo", "p", demo())


def workload(kind: str, fail_in: str | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": "w"}},
        "spec": {"containers": [{"name": "c", "image": "ghcr.io/promoter-dev/demo:1"}]},
    }
    if fail_in:
        template["metadata"]["annotations"] = {FAIL_IN: fail_in}
    api_version = "batch/v1" if kind == "Job" else "apps/v1"
    spec: dict[str, Any] = {"template": template}
    if kind in ("StatefulSet", "Deployment"):
        spec["replicas"] = 2
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": kind.lower()}, "spec": spec}


def test_statefulsets_daemonsets_and_jobs_roll_out(sim: KubeSim, cluster: KubeCluster) -> None:
    objects = [workload("StatefulSet"), workload("DaemonSet"), workload("Job")]
    cluster.sync("w", "p", objects)
    healthy, why = cluster.wait_healthy(objects, timeout_s=10)
    assert healthy and why == "3 workload(s) healthy"


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "Job"])
def test_failing_rollouts_of_other_kinds(sim: KubeSim, cluster: KubeCluster, kind: str) -> None:
    objects = [workload(kind, fail_in="*")]
    cluster.sync("w", "p", objects)
    healthy, why = cluster.wait_healthy(objects, timeout_s=1.0)
    assert not healthy
    expected = "failed: BackoffLimitExceeded" if kind == "Job" else "not healthy within 1s"
    assert expected in why
