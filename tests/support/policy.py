"""Policy inputs built as the worker builds them: the sample app's objects, and named promotion cases."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from promoter.models import EnvironmentConfig, PolicyCheckInput
from promoter.policy import build_input, schema_input
from promoter.render import render_dir
from tests.support.gitops import ROOT

POLICIES = ROOT / "policies"


def demo_objects(env: str = "staging") -> list[dict[str, Any]]:
    return render_dir(ROOT / "environments" / env / "demo")


def make_input(
    env: str = "staging",
    objects: list[dict[str, Any]] | None = None,
    phase: str = "pre_pr",
    approvals: list[str] = (),
    author: str = "dana <dana@example.com>",
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sample's `env` (its environment.yaml, with `policy` in place of its own when given), evaluated
    on Wednesday 2026-11-25 at 10:00 UTC."""
    from datetime import UTC, datetime

    path = ROOT / "environments" / env / "environment.yaml"
    settings = yaml.safe_load(path.read_text())
    if policy is not None:
        settings["policy"] = policy
    config = EnvironmentConfig.model_validate(settings)
    now = datetime(2026, 11, 25, 10, tzinfo=UTC)
    req = PolicyCheckInput(
        promotion_id="promote-demo",
        app="demo",
        commit="0123456789abcdef",
        author=author,
        source_env="dev",
        target_env=env,
        started_at=now,
        evaluated_at=now,
        environment=config,
        environments=["dev", "staging", "prod"],
        phase=phase,
        history=[
            {"env": e, "state": "healthy", "healthy_since": now, "soak_seconds": 0}
            for e in ["dev", "staging", "prod"][: ["dev", "staging", "prod"].index(env)]
        ],
        approvals=[{"approver": a, "at": now, "via": "cli"} for a in approvals],
    )
    objects = demo_objects(env) if objects is None else objects
    return build_input(req, objects, schema_input(config, objects))


def schema_faults() -> list[dict[str, Any]]:
    """The demo with what the schema gate catches: a typo, a quoted number, a removed apiVersion and
    a custom resource without its CRD."""
    objects = copy.deepcopy(demo_objects())
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["replicsa"] = 3
            o["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    old = {**copy.deepcopy(objects[-1]), "apiVersion": "extensions/v1beta1", "kind": "Ingress"}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    return [*objects, old, widget]


def latest_image() -> list[dict[str, Any]]:
    objects = copy.deepcopy(demo_objects())
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/promoter-dev/demo:latest"
    return objects


CASES = {
    "clean": lambda: make_input(),
    "latest": lambda: make_input(objects=latest_image()),
    "schema-faults": lambda: make_input(objects=schema_faults()),
    "schema-faults-in-dev": lambda: make_input("dev", objects=schema_faults()),
    "author-approves-prod": lambda: make_input(
        "prod", phase="approval", approvals=["alice"], author="alice <alice@example.com>"
    ),
    "missing-approvals-at-merge": lambda: make_input("prod", phase="merge"),
    "skipped-staging": lambda: {**make_input("prod"), "promotion": {**make_input("prod")["promotion"], "history": []}},
}
