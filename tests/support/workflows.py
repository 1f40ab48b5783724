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


def dry_run_matches(dry: dict[str, Any], result: dict[str, Any]) -> None:
    """A dry run (`promoter dry-run --json`, or `DryRun` dumped) foretold what the promotion then did, stage
    by stage: skipped or not, the pre-PR policy decision (its verdict, the policy revision, the
    counts of denials and warnings, as audited), and who could open each gate."""
    stages = {s["env"]: s for s in dry["stages"]}
    assert [s["env"] for s in result["stages"]] == list(stages), (list(stages), result["stages"])
    policy = [e for e in result["audit"] if e["kind"] == "policy" and e["detail"].startswith("pre_pr")]
    audited = {e["env"]: e["detail"] for e in policy}
    for stage in result["stages"]:
        planned = stages[stage["env"]]
        assert planned["skipped"] == (stage["state"] == "skipped"), (stage["env"], planned, stage["state"])
        if planned["skipped"]:
            continue
        d = planned["decision"]
        verdict = "allow" if d["allow"] else "deny"
        counts = f"{len(d['deny'])} denial(s), {len(d['warn'])} warning(s)"
        foretold = f"pre_pr {verdict}, revision {d['revision']}, {counts}"
        assert audited[stage["env"]] == foretold, stage["env"]
        if not planned["source"] and planned["approvals_required"]:
            assert (planned["approvers"], planned["screened"]) == (stage["approvers"], stage["screened"]), stage["env"]


def copy_app(origin: Origin, app: str, to: str) -> str:
    """A second app in every environment: `app`'s files under `to`, with its name replaced (main
    pulled first, so the commit lands on what other tests pushed)."""
    origin.repo.git.pull("-q", "--rebase", "origin", "main")
    files = {}
    for env in ("dev", "staging", "prod"):
        for source in sorted((origin.work / "environments" / env / app).iterdir()):
            files[f"environments/{env}/{to}/{source.name}"] = source.read_text().replace(app, to)
    return origin.commit(files, f"a second app, {to}")
