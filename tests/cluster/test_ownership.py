"""Each app owns what its inventory lists (issue 25, part 1), against the simulated API server: another
app's object is never taken over (sync refuses it, `claims` names it for the policy gate), prune deletes
only inventory entries, an unowned object is adopted only with `adopt`, and a cluster synced by the
label-only sync gets its inventory from the labels, once. The policy step's namespace rule and its
ownership denials are at the end."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from activities.policy import PolicyActivities
from promoter.cluster import APP_LABEL, INVENTORY_LABEL, KubeCluster
from promoter.errors import PermanentError
from promoter.models import EnvironmentConfig, PolicyCheckInput
from promoter.policy.embedded import EmbeddedEngine
from promoter.render import render_dir
from promoter.sim.kube import KubeSim
from tests.support.gitops import ROOT

DEPLOYMENT = ("apps", "deployments", "apps", "demo")


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(env="staging", rollout_delay_s=0.01) as server:
        yield server


def demo() -> list[dict[str, Any]]:
    return render_dir(ROOT / "environments" / "staging" / "demo")


def tools_shipping_demo() -> list[dict[str, Any]]:
    """App `tools`, whose folder carries a Deployment named `demo` (another image), and its own ConfigMap."""
    [deployment] = [copy.deepcopy(o) for o in demo() if o["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/acme/tools:9.9.9"
    own = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tools"}, "data": {"a": "b"}}
    return [deployment, own]


def inventory(sim: KubeSim, app: str) -> dict[str, Any]:
    data: dict[str, Any] = sim.objects[("", "configmaps", "apps", f"promoter-inventory-{app}")]["data"]
    return data


def names(sim: KubeSim, app: str) -> set[str]:
    return {f"{o['kind']}/{o['name']}" for o in json.loads(inventory(sim, app)["objects"])}


def by_hand(cluster: KubeCluster, name: str, labels: dict[str, str] | None = None) -> None:
    """A ConfigMap made as a person makes it (kubectl create: not server-side apply, not promoter)."""
    cluster._ensure_namespace("apps")
    body = client.V1ConfigMap(
        api_version="v1", kind="ConfigMap", metadata=client.V1ObjectMeta(name=name, labels=labels), data={"old": "1"}
    )
    client.CoreV1Api(cluster.api).create_namespaced_config_map("apps", body, field_manager="kubectl-create")


def test_another_apps_deployment_is_never_taken_over(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "promote-demo", demo(), revision="a" * 40)
    assert cluster.wait_healthy(demo(), timeout_s=10)[0]
    before = copy.deepcopy(sim.objects[DEPLOYMENT])

    [claim] = cluster.claims("tools", tools_shipping_demo(), adopt=True)  # adopting never means taking over
    assert claim.rule == "promoter.owned_by_another_app" and claim.object == "Deployment/apps/demo"
    assert "app demo" in claim.message and "app tools" in claim.message
    with pytest.raises(PermanentError, match="Deployment/apps/demo belongs to app demo.*app tools may not"):
        cluster.sync("tools", "promote-tools", tools_shipping_demo(), adopt=True)

    after = sim.objects[DEPLOYMENT]  # untouched: not relabelled, not re-imaged, not written at all
    assert after["metadata"]["labels"][APP_LABEL] == "demo"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert ("", "configmaps", "apps", "tools") not in sim.objects  # refused before anything was written
    assert cluster.wait_healthy(demo(), timeout_s=10)[0]
    assert cluster.sync("demo", "promote-demo", demo()).pruned == 0


def test_a_label_or_a_field_manager_of_another_app_claims_an_object_too(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "promote-demo", demo())
    del sim.objects[("", "configmaps", "apps", "promoter-inventory-demo")]  # only the label says whose it is
    [claim] = cluster.claims("tools", tools_shipping_demo(), adopt=False)
    assert f"labelled {APP_LABEL}=demo" in claim.message

    sim.objects[DEPLOYMENT]["metadata"]["labels"].pop(APP_LABEL)
    sim.objects[DEPLOYMENT]["metadata"]["managedFields"] = [  # as if only app shop had applied it
        {"manager": "promoter/shop", "operation": "Apply", "fieldsV1": {"f:spec": {}}}
    ]
    [claim] = cluster.claims("tools", tools_shipping_demo(), adopt=True)
    assert "belongs to app shop (field manager promoter/shop wrote it)" in claim.message


def test_each_app_applies_as_its_own_field_manager_and_takes_over_the_shared_one_s_fields(
    sim: KubeSim, cluster: KubeCluster
) -> None:
    """`promoter/<app>` applies an app's objects. A cluster synced when every app applied as `promoter`
    is released from that manager at the next change: a field Git dropped goes, as a real server
    decides (a field the old manager alone still owned would otherwise stay for ever)."""
    objects = demo()
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    cluster._ensure_namespace("apps")
    cluster._apply(cluster._label(deployment, "demo", "promote-demo"), manager="promoter")  # as before
    assert [m["manager"] for m in sim.objects[DEPLOYMENT]["metadata"]["managedFields"]] == ["promoter"]
    assert "revisionHistoryLimit" not in deployment["spec"]
    deployment["spec"]["revisionHistoryLimit"] = 3
    cluster._apply(cluster._label(deployment, "demo", "promote-demo"), manager="promoter")
    del deployment["spec"]["revisionHistoryLimit"]  # Git drops the field
    cluster.sync("demo", "promote-demo", objects)
    live = sim.objects[DEPLOYMENT]
    assert "revisionHistoryLimit" not in live["spec"]
    owners = {m["manager"]: m["fieldsV1"] for m in live["metadata"]["managedFields"]}
    assert "f:replicas" in owners["promoter/demo"]["f:spec"] and "f:spec" not in owners.get("promoter", {})
    [claim] = cluster.claims("tools", tools_shipping_demo(), adopt=False)
    assert claim.message.startswith("Deployment/apps/demo belongs to app demo (")


def test_prune_deletes_only_what_the_inventory_lists(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "promote-demo", demo(), revision="a" * 40)
    assert inventory(sim, "demo")["commit"] == "a" * 40
    assert names(sim, "demo") == {"ConfigMap/demo-settings", "Deployment/demo", "Service/demo"}
    # someone labels an object of their own with demo's label: not demo's to prune
    by_hand(cluster, "by-hand", {APP_LABEL: "demo"})
    assert cluster.drift("demo", demo()) == []  # nor drift: a sync would leave it
    sim.objects.pop(("", "services", "apps", "demo"))
    assert [
        (d.object, d.git, d.live) for d in cluster.drift("demo", [o for o in demo() if o["kind"] != "ConfigMap"])
    ] == [
        ("Service/apps/demo", "present", None),
        ("ConfigMap/apps/demo-settings", None, "present"),  # listed, and Git no longer has it: a sync prunes it
    ]
    cluster.sync("demo", "promote-demo", demo(), revision="a" * 40)
    outcome = cluster.sync("demo", "promote-demo", [o for o in demo() if o["kind"] != "Service"], revision="b" * 40)
    assert outcome.pruned == 1 and ("", "services", "apps", "demo") not in sim.objects
    assert ("", "configmaps", "apps", "by-hand") in sim.objects
    assert names(sim, "demo") == {"ConfigMap/demo-settings", "Deployment/demo"}
    assert inventory(sim, "demo")["commit"] == "b" * 40
    labels = sim.objects[("", "configmaps", "apps", "promoter-inventory-demo")]["metadata"]["labels"]
    assert labels == {INVENTORY_LABEL: "demo"}


def test_an_unowned_object_is_adopted_only_with_adopt(sim: KubeSim, cluster: KubeCluster) -> None:
    [settings] = [o for o in demo() if o["kind"] == "ConfigMap"]
    by_hand(cluster, "demo-settings")  # made before promoter came
    [claim] = cluster.claims("demo", demo(), adopt=False)
    assert claim.rule == "promoter.unowned_object" and "cluster.adopt: true" in claim.remediation
    with pytest.raises(PermanentError, match="ConfigMap/apps/demo-settings exists and no app owns it"):
        cluster.sync("demo", "promote-demo", demo())
    assert ("apps", "deployments", "apps", "demo") not in sim.objects

    assert cluster.claims("demo", demo(), adopt=True) == []
    cluster.sync("demo", "promote-demo", demo(), adopt=True)
    adopted = sim.objects[("", "configmaps", "apps", "demo-settings")]
    assert adopted["metadata"]["labels"][APP_LABEL] == "demo" and settings["data"].items() <= adopted["data"].items()
    assert "ConfigMap/demo-settings" in names(sim, "demo")
    assert cluster.claims("demo", demo(), adopt=False) == []  # its own from now on


def test_a_label_only_cluster_gets_its_inventory_from_the_labels_once(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "promote-demo", demo())
    kept = sim.objects[("", "configmaps", "apps", "promoter-inventory-demo")]
    kept["data"] = {"kinds": kept["data"]["kinds"]}  # as the label-only sync left it: kinds, no objects
    assert cluster.claims("demo", demo(), adopt=False) == []  # its label makes them its own

    first = cluster.sync("demo", "promote-demo", [o for o in demo() if o["kind"] != "Service"], revision="c" * 40)
    assert first.note == f"inventory of demo built from its {APP_LABEL} labels (3 objects), once"
    assert first.pruned == 1 and ("", "services", "apps", "demo") not in sim.objects  # listed by the labels
    assert names(sim, "demo") == {"ConfigMap/demo-settings", "Deployment/demo"}
    assert cluster.sync("demo", "promote-demo", demo()).note == ""  # once


def check(env: EnvironmentConfig, app: str = "tools") -> PolicyCheckInput:
    return PolicyCheckInput(
        promotion_id=f"promote-{app}",
        app=app,
        commit="a" * 40,
        author="dana",
        source_env="staging",
        target_env="prod",
        started_at=datetime.now(UTC),
        environment=env,
    )


def test_the_policy_step_denies_namespaces_and_takeovers(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "promote-demo", demo())
    env = EnvironmentConfig.model_validate(
        {"name": "prod", "order": 3, "cluster": {"namespace": "apps"}, "apps": {"tools": {"namespaces": ["tools"]}}}
    )
    policy = PolicyActivities(
        None,  # type: ignore[arg-type]  # _ownership reads no repository
        EmbeddedEngine(),
        claims=lambda cfg, app, objects: cluster.claims(app, objects, cfg.adopt),
    )
    elsewhere = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}
    allowed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": "tools"}}
    denied, warned = policy._ownership(check(env), [*tools_shipping_demo(), elsewhere, allowed])
    assert warned == []
    assert [(d.rule, d.object) for d in denied] == [
        ("promoter.namespace_not_allowed", "ConfigMap/kube-system/x"),
        ("promoter.owned_by_another_app", "Deployment/apps/demo"),
    ]
    assert "app tools may not write in prod (it may: apps, tools)" in denied[0].message
    assert "apps.tools.namespaces" in denied[0].remediation
    with pytest.raises(ValueError, match="Extra inputs"):
        EnvironmentConfig.model_validate({"name": "prod", "order": 3, "apps": {"tools": {"namespace": ["x"]}}})


def test_an_app_can_never_ship_an_inventory_nor_plant_one(sim: KubeSim, cluster: KubeCluster) -> None:
    """An inventory is promoter's record of who owns what: one an app shipped (by its name or its label)
    is refused before the PR and at sync, and one planted by hand is not believed (only promoter's own
    field manager writes a genuine one): it neither makes another app prune nor give up objects."""
    coredns = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}}
    planted = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "promoter-inventory-newapp", "labels": {INVENTORY_LABEL: "newapp"}},
        "data": {
            "objects": json.dumps([{"group": "", "kind": "ConfigMap", "namespace": "kube-system", "name": "coredns"}])
        },
    }
    listing = {**planted, "metadata": {"name": "harmless", "labels": {INVENTORY_LABEL: "evil"}}}
    for shipped in (planted, listing):
        [claim] = cluster.claims("evil", [shipped], adopt=True)
        assert claim.rule == "promoter.reserved_object" and "may not ship one" in claim.message
        with pytest.raises(PermanentError, match="reserved|may not ship one"):
            cluster.sync("evil", "promote-evil", [shipped])
    cluster.sync("demo", "promote-demo", demo())
    cluster._ensure_namespace("kube-system")
    client.CoreV1Api(cluster.api).create_namespaced_config_map("kube-system", coredns, field_manager="kubectl-create")
    for hand in (planted, listing):  # as a person (or another tool) writes them, past every gate
        client.CoreV1Api(cluster.api).create_namespaced_config_map("apps", hand, field_manager="kubectl-create")
    assert cluster.claims("demo", demo(), adopt=False) == []  # "harmless" listing demo's objects is not believed
    newapp = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "newapp"}, "data": {"a": "b"}}]
    assert cluster.sync("newapp", "promote-newapp", newapp).pruned == 0
    assert ("", "configmaps", "kube-system", "coredns") in sim.objects


def test_an_existing_namespace_no_app_owns_is_adopted_only_with_adopt(sim: KubeSim, cluster: KubeCluster) -> None:
    """The shared namespace (promoter made it) is not any app's to relabel, nor to set its Pod Security
    Admission labels on, unless the environment says `cluster.adopt: true`."""
    cluster.sync("demo", "promote-demo", demo())
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "apps", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}},
    }
    [claim] = cluster.claims("evil", [namespace], adopt=False)
    assert claim.rule == "promoter.unowned_object" and claim.object == "Namespace/apps"
    assert cluster.claims("evil", [namespace], adopt=True) == []


def test_a_blank_namespace_is_the_default_one_for_the_checks_too(sim: KubeSim, cluster: KubeCluster) -> None:
    cluster.sync("demo", "promote-demo", demo())
    for blank in ("", None):
        theirs = tools_shipping_demo()
        theirs[0]["metadata"]["namespace"] = blank
        [claim] = cluster.claims("tools", theirs, adopt=True)
        assert claim.object == "Deployment/apps/demo" and "belongs to app demo" in claim.message
        with pytest.raises(PermanentError, match="belongs to app demo"):
            cluster.sync("tools", "promote-tools", theirs)
