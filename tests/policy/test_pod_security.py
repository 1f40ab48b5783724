"""`policy.pod_security` in environment.yaml, end to end through promoter's input on both engines:
the sample environments' levels, the default (restricted), a bad value refused, and the sample app's
pod with one restricted control broken: allowed in a baseline environment, denied in a restricted one,
nothing judged in a privileged one. (Every control's own fixtures are Rego tests,
policies/kubernetes/pod_security_test.rego, which `promoter policy test` runs on both engines.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from promoter.models import EnvironmentConfig
from promoter.policy import PolicyBundle, PolicyEngine, decide, environment_document
from tests.support.gitops import ROOT
from tests.support.policy import POLICIES, demo_objects, make_input


def decisions(engines: list[PolicyEngine], doc: dict[str, Any]) -> Any:
    bundle = PolicyBundle.from_dir(POLICIES)
    found = [decide(e, bundle, doc).model_copy(update={"engine": ""}) for e in engines]
    assert all(d == found[0] for d in found), [d.model_dump() for d in found]
    return found[0]


def sample_level(env: str) -> str:
    settings = yaml.safe_load((ROOT / "environments" / env / "environment.yaml").read_text())
    return str(EnvironmentConfig.model_validate(settings).policy.pod_security)


def test_the_sample_environments_levels() -> None:
    assert [sample_level(e) for e in ("dev", "staging", "prod")] == ["baseline", "restricted", "restricted"]


def test_unset_is_restricted_and_a_bad_level_is_refused() -> None:
    config = EnvironmentConfig.model_validate({"name": "qa", "order": 1})
    assert environment_document(config)["policy"]["pod_security"] == "restricted"
    with pytest.raises(ValidationError, match="pod_security"):
        EnvironmentConfig.model_validate({"name": "qa", "order": 1, "policy": {"pod_security": "Restricted"}})


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_sample_app_is_allowed_in_every_sample_environment(engines: list[PolicyEngine], env: str) -> None:
    decision = decisions(engines, make_input(env))
    assert decision.allow and decision.deny == [] and decision.warn == [], decision


def root_pod() -> list[dict[str, Any]]:
    """The sample app with its pod's runAsNonRoot removed: baseline, not restricted."""
    objects = copy.deepcopy(demo_objects("staging"))
    for o in objects:
        if o["kind"] == "Deployment":
            del o["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    return objects


def level(pod_security: str) -> dict[str, Any]:
    return {"enforce": ["kubernetes", "promotion", "schemas"], "warn_only": [], "pod_security": pod_security}


def test_a_baseline_pod_is_allowed_at_baseline_and_denied_at_restricted(engines: list[PolicyEngine]) -> None:
    assert decisions(engines, make_input("staging", objects=root_pod(), policy=level("baseline"))).allow
    denied = decisions(engines, make_input("staging", objects=root_pod(), policy=level("restricted")))
    assert not denied.allow
    assert [(v.rule, v.message) for v in denied.deny] == [
        (
            "kubernetes.security.deny_run_as_root",
            "restricted: containers must run as non-root: container web may run as root: set runAsNonRoot: true",
        )
    ]
    assert denied.deny[0].remediation and denied.deny[0].severity == "high"


def test_privileged_turns_the_controls_off(engines: list[PolicyEngine]) -> None:
    objects = root_pod()
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"]["hostPID"] = True
            o["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    assert decisions(engines, make_input("staging", objects=objects, policy=level("privileged"))).allow
    baseline = decisions(engines, make_input("staging", objects=objects, policy=level("baseline")))
    assert sorted(v.rule for v in baseline.deny) == [
        "kubernetes.security.deny_host_namespace",
        "kubernetes.security.deny_privileged",
    ]
