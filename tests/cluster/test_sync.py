"""Sync and health with the official client against the simulated API server (promoter/sim/kube.py):
create, update, prune; a second sync of the same revision changes no object's generation; custom
resources apply through discovery; rollout verdicts as `kubectl rollout status` gives them,
`ProgressDeadlineExceeded` at once; API faults sorted into retryable and permanent; a kubeconfig's static
token set once, an expiring one fetched again."""

from __future__ import annotations

import concurrent.futures
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from promoter.cluster import APP_LABEL, KubeCluster, first_error
from promoter.errors import PermanentError, TemporaryError
from promoter.render import render_dir
from promoter.sim.kube import FAIL_IN, KubeSim, kubeconfig
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
    if kind != "Job":  # a Job's selector is generated; the others must say which pods are theirs
        spec["selector"] = {"matchLabels": {"app": "w"}}
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


WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def writes(sim: KubeSim) -> list[tuple[str, str]]:
    return [r for r in sim.requests if r[0] in WRITES]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH")
def test_an_unchanged_resync_writes_nothing_and_an_edit_by_hand_is_applied_again(
    sim: KubeSim, cluster: KubeCluster, tmp_path: Path
) -> None:
    cluster.sync("demo", "promote-demo", demo())
    sim.requests.clear()
    again = cluster.sync("demo", "promote-demo", demo())
    assert (again.applied, again.unchanged, again.pruned) == (0, 3, 0)
    assert writes(sim) == []  # no apply, no inventory rewrite
    assert len(sim.requests) <= 6  # the inventory, a list per kind, the namespace: never a read per object

    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig({"staging": sim.url})))
    subprocess.run(  # someone scales by hand, as people do
        ["kubectl", "--kubeconfig", str(config), "--context", "staging", "-n", "apps", "patch", "deployment", "demo"]
        + ["--type", "merge", "-p", '{"spec": {"replicas": 5}}'],
        check=True,
        capture_output=True,
    )
    sim.requests.clear()
    healed = cluster.sync("demo", "promote-demo", demo())
    assert (healed.applied, healed.unchanged) == (1, 2)
    assert [m for m, path in writes(sim)] == ["PATCH"] and "/deployments/demo" in writes(sim)[0][1]
    assert sim.objects[("apps", "deployments", "apps", "demo")]["spec"]["replicas"] == 2


def test_a_changed_field_is_applied_and_a_dropped_one_removed(sim: KubeSim, cluster: KubeCluster) -> None:
    first = demo()
    for o in first:
        if o["kind"] == "ConfigMap":
            o["data"]["EXTRA"] = "1"
    cluster.sync("demo", "p", first)
    sim.requests.clear()
    outcome = cluster.sync("demo", "p", demo())  # EXTRA dropped: the live object still holds all of demo()
    assert (outcome.applied, outcome.unchanged) == (1, 2)  # ...but its hash says it was applied with more
    assert "EXTRA" not in sim.objects[("", "configmaps", "apps", "demo-settings")]["data"]
    assert [m for m, _ in writes(sim)] == ["PATCH"]


def test_many_objects_apply_concurrently_and_a_permanent_error_wins(sim: KubeSim, cluster: KubeCluster) -> None:
    many = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {"i": str(i)}}
        for i in range(40)
    ]
    assert cluster.sync("many", "p", many).applied == 40
    changed = [{**o, "data": {"i": "new"}} for o in many]
    sim.fail_next(503, path="/configmaps/c3")  # applies fail at once, one for good, one for now
    sim.fail_next(422, path="/configmaps/c37")
    with pytest.raises(PermanentError, match="422"):  # whichever ended first: the manifests' fault is told
        cluster.sync("many", "p", changed)
    assert not sim._faults
    assert first_error([TemporaryError("a"), PermanentError("b"), TemporaryError("c")]).args == ("b",)
    assert first_error([TemporaryError("a"), TemporaryError("c")]).args == ("a",)
    assert (
        cluster.sync("many", "p", changed).applied == 2
    )  # every other apply ended before the error: the retry mends the two
    assert all(sim.objects[("", "configmaps", "apps", f"c{i}")]["data"] == {"i": "new"} for i in range(40))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH")
def test_kubectl_scale_and_json_patches_work_as_on_a_real_server(
    sim: KubeSim, cluster: KubeCluster, tmp_path: Path
) -> None:
    cluster.sync("demo", "promote-demo", demo())
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig({"staging": sim.url})))
    base = ["kubectl", "--kubeconfig", str(config), "--context", "staging", "-n", "apps"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True)

    assert run("scale", "deployment", "demo", "--replicas", "4").returncode == 0
    assert sim.objects[("apps", "deployments", "apps", "demo")]["spec"]["replicas"] == 4
    patched = run(
        "patch",
        "deployment",
        "demo",
        "--type",
        "json",
        "-p",
        '[{"op": "replace", "path": "/spec/replicas", "value": 3}]',
    )
    assert patched.returncode == 0, patched.stderr
    assert sim.objects[("apps", "deployments", "apps", "demo")]["spec"]["replicas"] == 3
    wrong = run(
        "patch", "deployment", "demo", "--type", "json", "-p", '[{"op": "replace", "path": "/spec/nope/x", "value": 1}]'
    )
    assert wrong.returncode != 0 and "does not exist" in wrong.stderr
    assert run("scale", "service", "demo", "--replicas", "2").returncode != 0  # no scale subresource


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH")
def test_managed_fields_dry_runs_and_quantities_as_a_real_server_keeps_them(
    sim: KubeSim, cluster: KubeCluster, tmp_path: Path
) -> None:
    objects = demo()
    [deploy] = [o for o in objects if o["kind"] == "Deployment"]
    deploy["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = 0.2  # stored as 200m
    cluster.sync("demo", "promote-demo", objects)
    key = ("apps", "deployments", "apps", "demo")
    live = sim.objects[key]
    assert live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "200m"
    [applied] = live["metadata"]["managedFields"]
    assert (applied["manager"], applied["operation"]) == ("promoter/demo", "Apply")  # the app's own manager
    assert "f:replicas" in applied["fieldsV1"]["f:spec"]
    assert cluster.drift("demo", objects) == []  # 0.2 and 200m are one quantity: the dry run says so

    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig({"staging": sim.url})))
    base = ["kubectl", "--kubeconfig", str(config), "--context", "staging", "-n", "apps"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, input=stdin)

    assert run("scale", "deployment", "demo", "--replicas", "5").returncode == 0
    entries = {(e["manager"], e.get("subresource", "")): e for e in sim.objects[key]["metadata"]["managedFields"]}
    assert entries[("kubectl", "scale")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}  # kubectl took replicas
    assert "f:replicas" not in entries[("promoter/demo", "")]["fieldsV1"]["f:spec"]
    [found] = cluster.drift("demo", objects)
    assert (found.object, found.path, found.git, found.live) == ("Deployment/apps/demo", "spec.replicas", 2, 5)
    assert found.since is not None and found.since.isoformat().startswith(entries[("kubectl", "scale")]["time"][:19])

    # a person's server-side dry run and diff: the server answers what apply would leave, and keeps nothing
    generation = sim.objects[key]["metadata"]["generation"]
    manifest = yaml.safe_dump({**deploy, "metadata": {"name": "demo", "namespace": "apps"}})
    dry = run("apply", "--validate=false", "--server-side", "--dry-run=server", "-f", "-", "-o", "json", stdin=manifest)
    assert dry.returncode == 0, dry.stderr
    assert yaml.safe_load(dry.stdout)["spec"]["replicas"] == 2
    assert sim.objects[key]["metadata"]["generation"] == generation and sim.objects[key]["spec"]["replicas"] == 5
    diff = run("diff", "--server-side", "-f", "-", stdin=manifest)
    assert diff.returncode == 1 and "-  replicas: 5" in diff.stdout and "+  replicas: 2" in diff.stdout
    assert (
        run("apply", "--validate=false", "--server-side", "--dry-run=nope", "-f", "-", stdin=manifest).returncode != 0
    )

    # an object with the app's label that Git does not have: a sync prunes only what the app's inventory
    # lists, never by label alone, so it is no drift either (a heal could never mend it)
    assert run("create", "configmap", "stray", "--from-literal=a=b").returncode == 0
    assert run("label", "configmap", "stray", f"{APP_LABEL}=demo").returncode == 0
    assert [d for d in cluster.drift("demo", objects) if d.object == "ConfigMap/apps/stray"] == []
    assert cluster.sync("demo", "promote-demo", objects).pruned == 0
    assert ("", "configmaps", "apps", "stray") in sim.objects


def test_the_simulator_refuses_an_invalid_object_as_a_real_api_server_does(sim: KubeSim) -> None:
    """The Status the Kubernetes API conventions define (sig-architecture/api-conventions.md, "Response
    Status Kind" and "HTTP Status codes"): 422 `Invalid` with `details.causes` (reason, message,
    field) for an invalid object; 400 `BadRequest` for a body that does not decode (a wrong type,
    whatever the field validation: api-concepts.md, "Field validation") and for an unknown field
    under `fieldValidation=Strict`; under `Warn` (the default) the field is dropped and a `Warning`
    header (code 299) says so."""
    import json
    import urllib.error
    import urllib.request

    cluster_of(sim).sync("demo", "p", [])  # the namespace
    [deploy] = [o for o in demo() if o["kind"] == "Deployment"]
    deploy["metadata"]["namespace"] = "apps"

    def post(obj: dict[str, Any], query: str = "") -> tuple[int, dict[str, Any], list[str]]:
        request = urllib.request.Request(
            f"{sim.url}/apis/apps/v1/namespaces/apps/deployments{query}",
            data=json.dumps(obj).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read()), answer.headers.get_all("Warning") or []
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), e.headers.get_all("Warning") or []

    no_selector = copy.deepcopy(deploy)
    del no_selector["spec"]["selector"]
    code, status, _ = post(no_selector)
    assert (code, status["reason"], status["status"]) == (422, "Invalid", "Failure")
    assert status["message"] == 'Deployment.apps "demo" is invalid: spec.selector: Required value'
    assert status["details"] == {
        "name": "demo",
        "group": "apps",
        "kind": "Deployment",
        "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}],
    }
    quoted = copy.deepcopy(deploy)
    quoted["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    code, status, _ = post(quoted, "?fieldValidation=Ignore")  # a type is never a matter of validation level
    assert (code, status["reason"]) == (400, "BadRequest") and "cannot be handled as a Deployment" in status["message"]
    typo = copy.deepcopy(deploy)
    typo["spec"]["replicsa"] = 3
    code, status, _ = post(typo, "?fieldValidation=Strict")
    assert (code, status["message"]) == (400, 'strict decoding error: unknown field "spec.replicsa"')
    assert ("apps", "deployments", "apps", "demo") not in sim.objects  # nothing refused was kept
    code, created, warnings = post(typo)  # Warn: kept without the field, and told
    assert code == 201 and "replicsa" not in created["spec"]
    assert warnings == ['299 - "unknown field \\"spec.replicsa\\""']

    def lenient(i: int) -> tuple[int, list[str]]:  # each with its own unknown field
        obj = copy.deepcopy(deploy)
        obj["metadata"]["name"] = f"many-{i}"
        obj["spec"][f"extra{i}"] = i
        code, _, said = post(obj)
        return code, said

    with concurrent.futures.ThreadPoolExecutor(20) as pool:  # twenty at a time, ten times over
        answers = list(pool.map(lenient, range(200)))
    assert answers == [(201, [f'299 - "unknown field \\"spec.extra{i}\\""']) for i in range(200)]  # each its own


def cluster_of(sim: KubeSim) -> KubeCluster:
    configuration = client.Configuration()
    configuration.host = sim.url
    return KubeCluster(client.ApiClient(configuration), "apps")


@pytest.mark.parametrize("named", [{"context": "prod"}, {"kubeconfig": "/nonexistent/prod.yaml"}])
def test_a_named_cluster_whose_kubeconfig_is_missing_never_falls_back_to_the_pod(
    named: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a pod (KUBERNETES_SERVICE_HOST set), an environment that names its kubeconfig or context
    and whose file is missing fails in one line: the pod's own service account is some other cluster."""
    from promoter.errors import BadInput
    from promoter.models import ClusterConfig

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(BadInput, match="no kubeconfig file at"):
        KubeCluster.from_config(ClusterConfig(**named))


def test_a_static_token_is_sent_on_every_request_without_a_refresh_hook(sim: KubeSim, tmp_path: Path) -> None:
    """A kubeconfig's token that cannot expire is set once: no hook runs before each request (it only set
    the same host and token again, reading every environment variable for a proxy), and every request
    still carries the token."""
    from promoter.models import ClusterConfig

    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig({"staging": sim.url})))
    cluster = KubeCluster.from_config(ClusterConfig(kubeconfig=str(path), context="staging", namespace="apps"))
    assert cluster.api.configuration.refresh_api_key_hook is None
    assert cluster.sync("demo", "promote-demo", demo()).applied == 3
    assert set(sim.authorizations) == {"Bearer simulated"}


def test_an_expiring_token_is_fetched_again_once_it_expires(sim: KubeSim, tmp_path: Path) -> None:
    """An exec plugin's token with an expiry keeps the client's refresh: one that expires within the
    client's five minutes of margin is fetched again before each request, and each request carries the
    fresh one."""
    from promoter.models import ClusterConfig

    counter, plugin = tmp_path / "count", tmp_path / "plugin"
    plugin.write_text(
        "#!/bin/sh\n"
        f"echo run >> {counter}\n"  # one line per run (runs may overlap: no count read back and written)
        'echo "{\\"apiVersion\\": \\"client.authentication.k8s.io/v1beta1\\", \\"kind\\": \\"ExecCredential\\",'
        ' \\"status\\": {\\"token\\": \\"t$$\\", \\"expirationTimestamp\\": \\"$(date -u -d @$(($(date +%s) + 60))'
        ' +%Y-%m-%dT%H:%M:%SZ)\\"}}"\n'
    )
    plugin.chmod(0o755)
    config = kubeconfig({"staging": sim.url})
    config["users"] = [
        {
            "name": "promoter",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": str(plugin),
                    "interactiveMode": "Never",
                }
            },
        }
    ]
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    cluster = KubeCluster.from_config(ClusterConfig(kubeconfig=str(path), context="staging", namespace="apps"))
    assert cluster.api.configuration.refresh_api_key_hook is not None
    cluster.sync("demo", "promote-demo", demo())
    fetched = len(counter.read_text().splitlines())
    assert fetched > 2  # once at load, then before the requests
    assert len(sim.authorizations) > 2 and all(a.startswith("Bearer t") for a in sim.authorizations)


def test_a_missing_object_is_read_without_the_dynamic_clients_exception(
    sim: KubeSim, cluster: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app's first promotion reads each of its objects and finds none: each 404 is an answer
    (nothing there), not the dynamic client's exception, which formats its traceback's source lines.
    A 5xx on such a read still retries."""
    import kubernetes.dynamic.client as dynamic_client

    raised: list[int] = []
    real = dynamic_client.api_exception
    monkeypatch.setattr(dynamic_client, "api_exception", lambda e: raised.append(e.status) or real(e))
    assert cluster.claims("demo", demo(), adopt=False) == []  # nothing there: nothing another app owns
    assert len([r for r in sim.requests if r[0] == "GET"]) >= 3 and raised == []
    sim.fail_next(503, path="/deployments/demo")
    with pytest.raises(TemporaryError, match="503"):
        cluster.claims("demo", demo(), adopt=False)
