"""Policy inputs built as the worker builds them: the sample app's objects, and named promotion cases."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from promoter.models import EnvironmentConfig, PolicyCheckInput
from promoter.policy import build_input
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
) -> dict[str, Any]:
    from datetime import UTC, datetime

    path = ROOT / "environments" / env / "environment.yaml"
    config = EnvironmentConfig.model_validate(yaml.safe_load(path.read_text()))
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
    return build_input(req, demo_objects(env) if objects is None else objects)


def latest_image() -> list[dict[str, Any]]:
    objects = copy.deepcopy(demo_objects())
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/promoter-dev/demo:latest"
    return objects


CASES = {
    "clean": lambda: make_input(),
    "latest": lambda: make_input(objects=latest_image()),
    "author-approves-prod": lambda: make_input(
        "prod", phase="approval", approvals=["alice"], author="alice <alice@example.com>"
    ),
    "missing-approvals-at-merge": lambda: make_input("prod", phase="merge"),
    "skipped-staging": lambda: {**make_input("prod"), "promotion": {**make_input("prod")["promotion"], "history": []}},
}
