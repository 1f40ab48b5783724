"""A drift check of many apps reads each cluster once for all of them (`Seen`: one list of the
inventories, one list per kind), not three requests per app, and finds what the per-app reading
finds: a field changed by hand, a deleted object, an object the inventory lists that Git no longer
has. An app that looks drifted by that shared reading, which may be older than its revision, is
compared again from the cluster as it is now before it is reported (`detect_drift` over real git)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from temporalio.testing import ActivityEnvironment

from activities.cluster import ClusterActivities
from promoter.cluster import KubeCluster
from promoter.gitrepo import GitClone
from promoter.models import ClusterConfig, DriftInput
from promoter.render import render_dir
from promoter.sim.kube import KubeSim
from tests.support.gitops import ROOT, Origin

APPS = [f"app-{i:02d}" for i in range(12)]


def objects_of(app: str) -> list[dict[str, Any]]:
    """The sample's demo in staging, renamed `app`."""
    found = render_dir(ROOT / "environments" / "staging" / "demo")
    for obj in found:
        obj["metadata"]["name"] = obj["metadata"]["name"].replace("demo", app)
    return found


def lists(sim: KubeSim) -> int:
    """The lists the simulator answered (a GET of a collection: an object's path has a name after its
    kind's plural; discovery and the OpenAPI documents are left out)."""
    kinds = {k.plural for k in sim.kinds.values()}
    return sum(1 for method, path in sim.requests if method == "GET" and path.rstrip("/").rsplit("/", 1)[-1] in kinds)


def reads(sim: KubeSim) -> int:
    return sum(1 for method, _ in sim.requests if method == "GET")


def test_one_reading_for_many_apps_finds_what_a_reading_per_app_finds(sim: KubeSim, cluster: KubeCluster) -> None:
    for app in APPS:
        cluster.sync(app, "seed", objects_of(app))
    apps = client.AppsV1Api(cluster.api)
    apps.patch_namespaced_deployment_scale("app-03", "apps", {"spec": {"replicas": 5}})
    cluster._resource("v1", "Service").delete(name="app-05", namespace="apps")
    wanted = {app: objects_of(app) for app in APPS}
    wanted["app-07"] = [o for o in wanted["app-07"] if o["kind"] != "ConfigMap"]  # a sync would prune it

    before = reads(sim)
    alone = {app: cluster.drift(app, wanted[app]) for app in APPS}
    per_app = reads(sim) - before
    seen, before = cluster.seen(), reads(sim)
    shared = {app: cluster.drift(app, wanted[app], seen) for app in APPS}
    once = reads(sim) - before

    assert shared == alone
    assert {app for app, found in shared.items() if found} == {"app-03", "app-05", "app-07"}
    assert [(d.path, d.git, d.live) for d in shared["app-03"]] == [("spec.replicas", 2, 5)]
    assert [(d.object, d.git) for d in shared["app-05"]] == [("Service/apps/app-05", "present")]
    assert [(d.object, d.live) for d in shared["app-07"]] == [("ConfigMap/apps/app-07-settings", "present")]
    assert per_app >= 3 * len(APPS)  # an inventory read and a list per kind, for every app
    assert once <= 4  # the inventories, and each kind (Deployment, Service, ConfigMap) once


@pytest.fixture
def staging_sim(clusters: Callable[[list[str]], dict[str, KubeSim]]) -> KubeSim:
    return clusters(["staging"])["staging"]


@pytest.fixture
def staging(staging_sim: KubeSim) -> KubeCluster:
    return KubeCluster.from_config(
        ClusterConfig(kubeconfig=os.environ["KUBECONFIG"], context="staging", namespace="apps")
    )


def test_an_app_that_the_shared_reading_shows_drifted_is_read_again_before_it_is_reported(
    origin_factory: Callable[..., Origin], tmp_path: Path, staging: KubeCluster
) -> None:
    origin = origin_factory(apps=("demo", "api", "web"))
    acts = ClusterActivities(GitClone(origin.url, tmp_path / "cache"))
    seed = origin.repo.head.commit.hexsha
    for app in ("api", "demo", "web"):
        objects = render_dir(origin.work / "environments" / "staging" / app)
        staging.sync(app, "seed", objects, revision=seed)
    scale = client.AppsV1Api(staging.api).patch_namespaced_deployment_scale
    scale("web", "apps", {"spec": {"replicas": 5}})  # by hand: the first app's lists see it
    env = ActivityEnvironment()
    put_back: list[str] = []

    def heartbeat(*details: Any) -> None:
        if details == ("comparing web",):  # after the shared reading, before web is compared: put back
            scale("web", "apps", {"spec": {"replicas": 2}})
            put_back.append("web")

    env.on_heartbeat = heartbeat
    report = env.run(acts.detect_drift, DriftInput(env="staging"))
    assert put_back == ["web"] and [a.app for a in report.apps] == ["api", "demo", "web"]
    assert [(a.app, a.drifts) for a in report.apps] == [("api", []), ("demo", []), ("web", [])]

    scale("web", "apps", {"spec": {"replicas": 4}})
    env.on_heartbeat = lambda *_: None
    drifted = env.run(acts.detect_drift, DriftInput(env="staging"))
    assert [(a.app, [(d.path, d.git, d.live) for d in a.drifts]) for a in drifted.drifted] == [
        ("web", [("spec.replicas", 2, 4)])
    ]


def test_an_app_found_in_sync_is_compared_again_only_once_something_wrote_to_it(
    origin_factory: Callable[..., Origin], tmp_path: Path, staging: KubeCluster, staging_sim: KubeSim
) -> None:
    origin = origin_factory(apps=("demo", "api", "web"))
    acts = ClusterActivities(GitClone(origin.url, tmp_path / "cache"))
    seed = origin.repo.head.commit.hexsha
    for app in ("api", "demo", "web"):
        staging.sync(app, "seed", render_dir(origin.work / "environments" / "staging" / app), revision=seed)
    rendered: list[str] = []
    objects = acts.objects

    def counted(app: str, env: str, revision: str) -> list[dict[str, Any]]:  # the real one, counted
        rendered.append(app)
        return objects(app, env, revision)

    acts.objects = counted  # type: ignore[method-assign]
    env = ActivityEnvironment()
    first = env.run(acts.detect_drift, DriftInput(env="staging"))
    whole, partial = lists(staging_sim), staging_sim.metadata_reads
    again = env.run(acts.detect_drift, DriftInput(env="staging"))
    assert first.drifted == again.drifted == [] and rendered == ["api", "demo", "web"]  # not rendered again
    assert partial == 0 and staging_sim.metadata_reads - partial == lists(staging_sim) - whole > 0  # metadata alone

    client.AppsV1Api(staging.api).patch_namespaced_deployment_scale("web", "apps", {"spec": {"replicas": 3}})
    staging._resource("v1", "Service").delete(name="api", namespace="apps")
    rendered.clear()
    changed = env.run(acts.detect_drift, DriftInput(env="staging"))
    assert {a.app: [(d.object, d.path) for d in a.drifts] for a in changed.drifted} == {
        "api": [("Service/apps/api", "")],
        "web": [("Deployment/apps/web", "spec.replicas")],
    }
    assert sorted(set(rendered)) == ["api", "web"]  # what was written to; demo still matches as it did


def test_a_write_after_the_reading_an_app_was_compared_by_is_never_taken_for_in_sync(
    origin_factory: Callable[..., Origin], tmp_path: Path, staging: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app found in sync is remembered by the resourceVersions of the very reading it was compared
    by, not of a later one (the metadata-only lists the next check reads): a person's write made in
    between is compared, and reported, at the next check. (Every app compared by everyone's whole
    objects, as once more than `ALONE` are: the first few are read alone, after any such write.)"""
    monkeypatch.setattr("promoter.cluster.drift.ALONE", 0)
    origin = origin_factory(apps=("demo", "api", "web"))
    acts = ClusterActivities(GitClone(origin.url, tmp_path / "cache"))
    seed = origin.repo.head.commit.hexsha
    for app in ("api", "demo", "web"):
        staging.sync(app, "seed", render_dir(origin.work / "environments" / "staging" / app), revision=seed)
    scale = client.AppsV1Api(staging.api).patch_namespaced_deployment_scale
    scale("api", "apps", {"spec": {"replicas": 5}})  # api drifted: demo is the first app found in sync
    env = ActivityEnvironment()
    edited: list[str] = []

    def heartbeat(*details: Any) -> None:
        if details == ("comparing demo",) and not edited:  # after the lists api was compared by
            scale("web", "apps", {"spec": {"replicas": 3}})
            edited.append("web")

    env.on_heartbeat = heartbeat
    first = env.run(acts.detect_drift, DriftInput(env="staging"))
    assert edited == ["web"] and [a.app for a in first.drifted] == ["api"]  # web: by the lists read before
    env.on_heartbeat = lambda *_: None
    second = env.run(acts.detect_drift, DriftInput(env="staging"))
    assert {a.app: [(d.path, d.git, d.live) for d in a.drifts] for a in second.drifted} == {
        "api": [("spec.replicas", 2, 5)],
        "web": [("spec.replicas", 2, 3)],
    }


def test_a_number_beyond_64_bits_is_read_exactly() -> None:
    """orjson reads an integer beyond 64 bits as a float; such an answer is read by json instead, so a
    manifest's big number compares equal to the cluster's (no drift reported on every check)."""
    from promoter.jsonfast import dumps, loads

    big = 123456789012345678901234567890
    assert loads(b'{"items": [{"spec": {"n": %d}}]}' % big)["items"][0]["spec"]["n"] == big
    assert loads(dumps({"n": big, "s": "\udcff"})) == {"n": big, "s": "\udcff"}
