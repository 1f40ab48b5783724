"""The real `kubectl` against the simulated API server (promoter/sim/kube.py), run as a person would:
short names and `get all` from discovery, `apply -f` validated through the server's OpenAPI (no
`--validate=false`), `diff -f`, `edit` with KUBE_EDITOR, `explain`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from promoter import schemas
from promoter.sim import openapi
from promoter.sim.kube import KubeSim, kubeconfig
from tests.support.gitops import ROOT

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl on PATH")

DEMO = ROOT / "environments" / "staging" / "demo"
DEPLOYMENT = ("apps", "deployments", "apps", "demo")
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(sim: KubeSim, tmp_path: Path) -> Kubectl:
    """`kubectl ARGS...` in namespace `apps` of the simulator, with its own discovery cache (a port
    used by an earlier run must not answer from that run's cache)."""
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig({"staging": sim.url}, namespace="apps")))

    def run(*args: str, editor: str = "") -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}
        if editor:
            env["KUBE_EDITOR"] = editor
        command = ["kubectl", "--cache-dir", str(tmp_path / "cache"), *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)

    return run


@pytest.fixture
def deployed(kubectl: Kubectl) -> None:
    assert kubectl("create", "namespace", "apps").returncode == 0
    applied = kubectl("apply", "-f", str(DEMO))  # validated: kubectl reads /openapi/v3 first
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/demo created" in applied.stdout


def demo_with(tmp_path: Path, old: str, new: str) -> Path:
    """The demo Deployment's manifest with one text replaced, as someone edits a file."""
    text = (DEMO / "deployment.yaml").read_text()
    assert old in text
    changed = tmp_path / "deployment.yaml"
    changed.write_text(text.replace(old, new))
    return changed


def test_short_names_singular_names_and_get_all(deployed: None, kubectl: Kubectl, sim: KubeSim) -> None:
    got = kubectl("get", "deploy")
    assert got.returncode == 0, got.stderr
    assert got.stdout.split("\n")[1].split()[0] == "demo"
    assert kubectl("get", "deployment", "demo").returncode == 0  # the singular name
    every = kubectl("get", "deploy,svc,cm,po,sts,ds,cj,pvc,sa,ing,hpa,pdb,job,secret")
    assert every.returncode == 0, every.stderr
    assert kubectl("get", "ns,crd").returncode == 0  # cluster-scoped short names
    everything = kubectl("get", "all", "-n", "apps")  # the `all` category: workloads and services, no ConfigMaps
    assert everything.returncode == 0, everything.stderr
    assert "deployment.apps/demo" in everything.stdout and "service/demo" in everything.stdout
    assert "configmap" not in everything.stdout


def test_apply_validates_through_the_openapi_and_refuses_an_unknown_field(
    deployed: None, kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    assert ("GET", "/openapi/v3/apis/apps/v1") in sim.requests  # the first apply read the group's document
    again = kubectl("apply", "-f", str(DEMO))
    assert again.returncode == 0 and "deployment.apps/demo unchanged" in again.stdout, again.stdout + again.stderr
    before = sim.objects[DEPLOYMENT]["metadata"]["resourceVersion"]
    bogus = demo_with(tmp_path, "  replicas: 2\n", "  replicas: 2\n  bogus: 1\n")
    refused = kubectl("apply", "-f", str(bogus))
    # the OpenAPI says the server validates fields, so kubectl asks for fieldValidation=Strict (by
    # default the server would only drop the field with a warning): the refusal proves it was read
    assert refused.returncode != 0
    assert 'strict decoding error: unknown field "spec.bogus"' in refused.stderr
    assert sim.objects[DEPLOYMENT]["metadata"]["resourceVersion"] == before


def test_diff_exits_0_when_equal_and_1_with_the_difference(
    deployed: None, kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    same = kubectl("diff", "-f", str(DEMO))
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    newer = demo_with(tmp_path, "demo:1.0.0", "demo:2.0.0")
    different = kubectl("diff", "-f", str(newer))
    assert different.returncode == 1, different.stderr
    changes = [line for line in different.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    # the image, and the generation a real server would bump: the containers list was merged by name
    assert sorted(changes) == [
        "+        image: ghcr.io/promoter-dev/demo:2.0.0",
        "+  generation: 2",
        "-        image: ghcr.io/promoter-dev/demo:1.0.0",
        "-  generation: 1",
    ]
    assert sim.objects[DEPLOYMENT]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")


def test_edit_with_kube_editor(deployed: None, kubectl: Kubectl, sim: KubeSim) -> None:
    before = sim.objects[DEPLOYMENT]["spec"]["template"]
    edited = kubectl("edit", "deploy", "demo", editor="sed -i 's/replicas: 2/replicas: 5/'")
    assert edited.returncode == 0, edited.stderr
    assert "deployment.apps/demo edited" in edited.stdout
    live = sim.objects[DEPLOYMENT]
    assert live["spec"]["replicas"] == 5
    assert live["spec"]["template"] == before  # a strategic merge patch: nothing else touched
    assert "kubectl-edit" in [m["manager"] for m in live["metadata"]["managedFields"]]


def test_explain(kubectl: Kubectl) -> None:
    explained = kubectl("explain", "deployment.spec.replicas")
    assert explained.returncode == 0, explained.stderr
    assert "Number of desired pods" in explained.stdout


def test_a_custom_resource_has_its_short_names_categories_and_schema(
    deployed: None, kubectl: Kubectl, sim: KubeSim, tmp_path: Path
) -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wd"],
                "categories": ["all"],
            },
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }
    widget: dict[str, Any] = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}}
    (tmp_path / "crd.yaml").write_text(yaml.safe_dump(crd))
    (tmp_path / "widget.yaml").write_text(yaml.safe_dump({**widget, "spec": {"size": 3}}))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**widget, "spec": {"size": 3, "colour": "red"}}))
    assert kubectl("apply", "-f", str(tmp_path / "crd.yaml")).returncode == 0
    applied = kubectl("apply", "-f", str(tmp_path / "widget.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert "w1" in kubectl("get", "wd").stdout
    assert "widget.example.com/w1" in kubectl("get", "all").stdout
    refused = kubectl("apply", "-f", str(tmp_path / "bad.yaml"))
    assert refused.returncode != 0 and 'unknown field "spec.colour"' in refused.stderr


def test_strategic_merge_patch_directives() -> None:
    """What kubectl's three-way patches use: merge by key, `$patch: delete`, `$setElementOrder`,
    `$retainKeys` (a Deployment's strategy), `$deleteFromPrimitiveList`, null deletes."""
    live = {
        "metadata": {"name": "demo", "finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "spec": {
                    "containers": [{"name": "web", "image": "v1", "ports": [{"containerPort": 80}]}, {"name": "side"}]
                }
            },
        },
    }
    patch = {
        "metadata": {"labels": {"y": None}, "$deleteFromPrimitiveList/finalizers": ["a"]},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "log"}, {"name": "web"}],
                    "containers": [
                        {"name": "web", "image": "v2"},
                        {"name": "side", "$patch": "delete"},
                        {"name": "log"},
                    ],
                }
            },
        },
    }
    walker = openapi.Schemas(schemas.newest())
    merged = openapi.strategic_merge(live, patch, {"$ref": openapi.DEFS + "io.k8s.api.apps.v1.Deployment"}, walker)
    assert merged["metadata"] == {"name": "demo", "finalizers": ["b"], "labels": {"x": "1"}}
    assert merged["spec"]["strategy"] == {"type": "Recreate"}
    assert merged["spec"]["template"]["spec"]["containers"] == [
        {"name": "log"},
        {"name": "web", "image": "v2", "ports": [{"containerPort": 80}]},
    ]
