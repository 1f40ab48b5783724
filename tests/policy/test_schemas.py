"""The Kubernetes schema gate (promoter/schemas.py) over the official schemas kubernetes-validate
ships: each kind of mistake is a finding at the right JSON path, removed and deprecated apiVersions
name their replacement, custom resources are checked against their CRD (or said to be unchecked),
and the findings decide through the `schemas` concern as any rule does, with enforce, warn_only and
an exception by path, on the embedded engine and on OPA's own Go engine alike."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from promoter import schemas
from promoter.errors import BadInput
from promoter.models import ClusterConfig, EnvironmentConfig
from promoter.policy import PolicyBundle, decide
from tests.support.policy import POLICIES, demo_objects, make_input, schema_faults

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def deployment() -> dict[str, Any]:
    [found] = [o for o in copy.deepcopy(demo_objects()) if o["kind"] == "Deployment"]
    return found


def found(objects: list[dict[str, Any]], version: str = "1.31", **kw: Any) -> list[tuple[str, str, str]]:
    return [(f.kind, f.path, f.message) for f in schemas.check(objects, version, **kw)]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_demo_app_passes_in_every_environment_at_its_version(env: str) -> None:
    version = EnvironmentConfig.model_validate(
        yaml.safe_load((POLICIES.parent / "environments" / env / "environment.yaml").read_text())
    ).cluster.version
    assert version == "1.31"
    assert schemas.check(demo_objects(env), version) == []
    assert schemas.check(demo_objects(env), schemas.newest()) == []


def test_each_mistake_is_a_finding_at_its_path() -> None:
    typo, number, missing, enum, kind = (deployment() for _ in range(5))
    typo["spec"]["replicsa"] = 3
    typo["metadata"]["lables"] = {"a": "b"}
    number["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    del missing["spec"]["selector"]
    enum["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    kind["kind"] = "Deploymnet"
    container = "spec.template.spec.containers[0]"
    assert found([typo]) == [
        ("invalid", "metadata.lables", 'unknown field "lables"'),
        ("invalid", "spec.replicsa", 'unknown field "replicsa"'),
    ]
    assert found([number]) == [("invalid", f"{container}.ports[0].containerPort", "expected integer, got string")]
    assert sorted(found([missing])) == [
        ("invalid", "spec.selector", "Required value"),
        ("invalid", f"{container}.name", "Required value"),
    ]
    assert found([enum]) == [("invalid", f"{container}.imagePullPolicy", "expected string, got integer")]
    assert found([kind]) == [("invalid", "kind", "Kubernetes 1.31 has no kind Deploymnet in apps/v1")]
    assert found([{"kind": "ConfigMap", "metadata": {"name": "x"}}]) == [("invalid", "apiVersion", "Required value")]
    [one] = schemas.check([typo], "1.31")[:1]
    assert one.object == "Deployment/-/demo"


def test_removed_and_deprecated_api_versions_name_their_replacement() -> None:
    old = deployment()
    old["apiVersion"] = "extensions/v1beta1"
    assert found([old]) == [
        ("removed", "apiVersion", "Deployment extensions/v1beta1 is not served by Kubernetes 1.31; use apps/v1")
    ]
    hpa = {
        "apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "demo"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "demo"}, "maxReplicas": 3},
    }
    assert found([hpa], "1.25") == [  # served in 1.25, gone in 1.26: a warning before the upgrade breaks it
        (
            "deprecated",
            "apiVersion",
            "HorizontalPodAutoscaler autoscaling/v2beta2 is no longer served from Kubernetes 1.26; use autoscaling/v2",
        )
    ]
    assert found([hpa], "1.31") == [
        (
            "removed",
            "apiVersion",
            "HorizontalPodAutoscaler autoscaling/v2beta2 is not served by Kubernetes 1.31 (last served in 1.25); "
            "use autoscaling/v2",
        )
    ]


def test_custom_resources_are_checked_against_their_crd_or_said_to_be_unchecked() -> None:
    bad = widget(size="3", colour="red", port="http", extra={"anything": 1})
    assert found([CRD, widget(size=2, port=8080), bad]) == [
        ("invalid", "spec.size", "expected integer, got string"),
        ("invalid", "spec.colour", 'unknown field "colour"'),
    ]
    assert found([CRD, widget()]) == [("invalid", "spec.size", "Required value")]
    asked: list[int] = []

    def lookup() -> tuple[list[dict[str, Any]], str]:
        asked.append(1)
        return [CRD], ""

    assert found([bad], more_crds=lookup)[0][:2] == ("invalid", "spec.size")  # the CRD elsewhere in the repo
    assert found([CRD, bad, deployment()], more_crds=lookup) and len(asked) == 1  # asked only when needed
    nowhere = found([widget(size=1)], more_crds=lambda: ([], " (the cluster's could not be read: refused)"))
    assert nowhere == [
        (
            "unvalidated",
            "",
            "not validated: no CustomResourceDefinition for Widget (example.com/v1) in the repository or the cluster"
            " (the cluster's could not be read: refused)",
        )
    ]
    batch = {"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "metadata": {"name": "j"}}
    assert [f[0] for f in found([batch])] == ["unvalidated"]  # a CRD's Job is not Kubernetes' Job


def test_versions_are_read_strictly() -> None:
    assert schemas.check_version(None) == schemas.newest() == schemas.shipped()[-1]
    assert schemas.check_version("v1.31.4") == "1.31"
    assert schemas.shipped()[0] == "1.25" and "1.37" in schemas.shipped()
    with pytest.raises(BadInput, match=r"cluster.version 1.99: the schemas here cover Kubernetes 1.25 to 1.37"):
        schemas.check_version("1.99")
    with pytest.raises(ValidationError, match="'latest' is not a Kubernetes version"):
        ClusterConfig(version="latest")
    with pytest.raises(ValidationError, match=r"'1\.9{38}' is not a Kubernetes version"):  # cut, not echoed whole
        ClusterConfig(version="1." + "9" * 10_000)
    with pytest.raises(BadInput, match=r"^cluster.version '1\.9{38}' is not a Kubernetes version"):
        schemas.check_version("1." + "9" * 10_000)
    with pytest.raises(
        ValidationError, match=r'write the version in quotes, e.g. "1.31" \(YAML reads 1.3 as a number\)'
    ):
        ClusterConfig.model_validate(yaml.safe_load("version: 1.30"))  # the YAML number 1.3, not 1.30


def test_findings_decide_as_a_concern_with_warn_only_and_an_exception_by_path(engines: Any) -> None:
    bundle = PolicyBundle.from_dir(POLICIES)
    expires = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    exception = f"""port-as-text:
  rule: schemas.kubernetes.deny_invalid
  app: demo
  object: Deployment/-/demo
  path: spec.template.spec.containers[0].ports[0].containerPort
  reason: the chart's quoting, fixed next release
  owner: alice
  expires: {expires}
"""
    files = {str(p.relative_to(POLICIES)): p.read_text() for p in POLICIES.rglob("*") if p.suffix in (".rego", ".yaml")}
    excepted_bundle = PolicyBundle.from_files({**files, "exceptions/schemas.yaml": exception})
    for engine in engines:
        staging = decide(engine, bundle, make_input("staging", objects=schema_faults()))
        denied = {(v.rule, v.object, v.path) for v in staging.deny}
        assert ("schemas.kubernetes.deny_invalid", "Deployment/-/demo", "spec.replicsa") in denied, engine.name
        assert ("schemas.kubernetes.deny_removed_api", "Ingress/-/demo", "apiVersion") in denied
        assert ("schemas.kubernetes.deny_not_validated", "Widget/-/w", "") in denied  # no CRD: fail closed

        warned = make_input("staging", objects=schema_faults())
        warned["environment"]["policy"] = {"enforce": ["promotion"], "warn_only": ["schemas"]}
        only_warned = decide(engine, bundle, warned)
        assert not [v for v in only_warned.deny if v.rule.startswith("schemas.")]
        assert {v.path for v in only_warned.warn} >= {"spec.replicsa", "apiVersion"}
        assert "schemas.kubernetes.deny_not_validated" in {v.rule for v in only_warned.warn}  # warn_only: a warning

        excepted = decide(engine, excepted_bundle, make_input("staging", objects=schema_faults()))
        [by_path] = excepted.excepted
        assert by_path.path == "spec.template.spec.containers[0].ports[0].containerPort"
        assert by_path.exception.startswith("exception port-as-text by alice until")
        assert "spec.replicsa" in {v.path for v in excepted.deny}  # the exception covers its path alone


def test_a_crd_whose_schema_is_broken_fails_closed() -> None:
    """A CRD's schema that is not a schema (or points nowhere) never passes its resources: each is a
    finding, and the CRD itself is checked against Kubernetes' own schema for CRDs."""
    broken = copy.deepcopy(CRD)
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] = 5
    findings = {(f.object, f.path): f.message for f in schemas.check([broken, widget(size=1)], "1.31")}
    assert findings[("Widget/-/w", "")].startswith("its CustomResourceDefinition's openAPIV3Schema is not a valid")
    key = (
        "CustomResourceDefinition/-/widgets.example.com",
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.type",
    )
    assert findings[key] == "expected string, got integer"
    nowhere = copy.deepcopy(CRD)
    nowhere["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = {"$ref": "#/nowhere"}
    [(kind, path, message)] = [f for f in found([nowhere, widget(size=1)]) if f[0] == "invalid"]
    assert path == "" and message.startswith("its schema could not be applied: PointerToNowhere")


def test_an_object_checked_again_is_not_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage checks the same objects: the findings of a built-in kind's object are remembered by
    its content, so the second check costs a lookup and finds the same, and a changed object is checked."""
    validated: list[str] = []
    real = schemas._errors

    def spy(where: str, validator: Any, obj: dict[str, Any]) -> list[schemas.Finding]:
        validated.append(where)
        return real(where, validator, obj)

    monkeypatch.setattr(schemas, "_errors", spy)
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "checked-once-4c1e"},  # no other test's object
        "spec": {"ports": [{"port": "eighty"}]},
    }
    first = schemas.check([bad], "1.31")
    again = schemas.check([copy.deepcopy(bad)], "1.31")
    assert first == again and [f.path for f in first] == ["spec.ports[0].port"]
    assert len(validated) == 1
    changed = copy.deepcopy(bad)
    changed["spec"]["ports"][0]["port"] = 80
    assert schemas.check([changed], "1.31") == [] and len(validated) == 2
