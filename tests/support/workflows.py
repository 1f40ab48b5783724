"""Conditions and changes the workflow tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from promoter.models import PromotionStatus, StageState
from promoter.sim.kube import FAIL_IN, KubeSim
from tests.support.gitops import Origin


def awaiting(env: str) -> Callable[[PromotionStatus], bool]:
    return lambda s: any(st.env == env and st.state == StageState.AWAITING_APPROVAL for st in s.stages)


def failing_in(origin: Origin, where: str, tag: str = "3.1.0") -> str:
    path = "environments/dev/demo/deployment.yaml"
    doc = yaml.safe_load((origin.work / path).read_text())
    template = doc["spec"]["template"]
    template["metadata"]["annotations"] = {FAIL_IN: where}
    template["spec"]["containers"][0]["image"] = f"ghcr.io/promoter-dev/demo:{tag}"
    return origin.commit({path: yaml.safe_dump(doc, sort_keys=False)}, f"demo {tag}, failing in {where}")


def deployment(sim: KubeSim) -> dict[str, Any]:
    return sim.objects[("apps", "deployments", "apps", "demo")]
