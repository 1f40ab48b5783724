"""`promoter dry-run`'s workflow on a real Temporal dev server with real git, the local forge and the
embedded policy engine: a dry run writes nothing anywhere (origin, forge records; it starts no
promotion, and its own run is deleted as a resolve run is, see tests/cli/test_cli.py), names
the stage a `:latest` image would be denied at, reports a freeze window with its end, screens the
commit's author out of prod's approvers, and shows each change as a unified diff. That a dry run
and the promotion after it agree is checked in test_promotion.py (four environments) and
tests/cli/test_cli.py (the demo)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import git
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import api
from tests.support.gitops import Origin

pytestmark = pytest.mark.asyncio


def refs(origin: Origin) -> dict[str, str]:
    return {ref.path: ref.commit.hexsha for ref in git.Repo(origin.path).refs}


async def test_a_plan_writes_nothing_names_the_denied_stage_and_a_freeze_with_its_end(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    origin = origin_factory()
    now = datetime.now(UTC)
    data = yaml.safe_load((origin.work / "policies/data.yaml").read_text())
    end = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data["freeze_windows"] = [{"name": "launch week", "environments": ["prod"], "start": start, "end": end}]
    origin.commit({"policies/data.yaml": yaml.safe_dump(data)}, "freeze prod")
    with origin.repo.config_writer() as cw:  # alice writes it: she may not approve it for prod
        cw.set_value("user", "name", "alice")
        cw.set_value("user", "email", "alice@example.com")
    origin.bump(tag="latest")
    before = refs(origin)
    forge = origin.forge()
    async with run_worker(dev_env, origin) as tq:
        dry = await api.dry_run(dev_env.client, tq, "demo", with_patch=True)
        assert dry.denied == ["staging", "prod"]
        staging, prod = dry.stages[1], dry.stages[2]
        assert any("latest" in v.message for v in staging.decision.deny)  # type: ignore[union-attr]
        assert dry.stages[0].source and dry.stages[0].decision.allow  # type: ignore[union-attr]
        freeze = [v for v in prod.decision.deny if v.rule.startswith("promotion.freeze")]  # type: ignore[union-attr]
        assert [v.message.endswith(f"until {end}") for v in freeze] == [True], freeze
        assert staging.diff.modified == ["deployment.yaml"] and not staging.skipped
        assert prod.approvals_required == 1 and "alice" in prod.approvers  # the author, screened out of prod
        assert prod.screened["alice"].startswith(f"alice wrote commit {dry.plan.short_commit}")
        # --diff: what the PR would show, as git shows it
        assert staging.patch.startswith(
            "--- a/environments/staging/demo/deployment.yaml\n+++ b/environments/staging/demo/deployment.yaml\n@@ "
        )
        added = [line for line in staging.patch.splitlines() if line.startswith("+ ")]
        removed = [line for line in staging.patch.splitlines() if line.startswith("- ")]
        assert [line.split()[-1] for line in added] == ["ghcr.io/promoter-dev/demo:latest"], staging.patch
        assert len(removed) == 1 and "image: ghcr.io/promoter-dev/demo:" in removed[0]
        assert dry.stages[0].patch == ""  # the source has no change of its own
        started = await dev_env.client.count_workflows(f"TaskQueue = '{tq}' AND WorkflowType = 'PromotionWorkflow'")
        assert started.count == 0  # nothing started
    assert refs(origin) == before  # no branch pushed, main untouched
    assert forge.list_pull_requests() == []


async def test_a_new_apps_configmap_left_behind_as_a_local_file_is_an_advisory_at_each_later_stage(
    dev_env: WorkflowEnvironment, origin_factory: Callable[..., Origin], run_worker: Any
) -> None:
    """A new app exists in dev only; its ConfigMap is in `configmap.yaml`, a local file, so promotion
    never copies it: staging and prod are told, as a warning (never a denial), that they must hold
    their own copy. Its Secret, which no folder defines, is not named (it is made outside Git); demo,
    whose later folders hold their own ConfigMap, is told nothing. And a merge method the local forge
    cannot do (squash) is refused as the request is resolved."""
    origin = origin_factory()
    demo = origin.work / "environments/dev/demo"
    files = {f"environments/dev/fresh/{f.name}": f.read_text().replace("demo", "fresh") for f in demo.iterdir()}
    # and a Secret that no folder defines (made outside Git, by hand or an operator): not Git's to copy
    needs_token = "            - configMapRef:\n                name: fresh-settings\n"
    files["environments/dev/fresh/deployment.yaml"] = files["environments/dev/fresh/deployment.yaml"].replace(
        needs_token, needs_token + "            - secretRef:\n                name: fresh-token\n"
    )
    assert "fresh-token" in files["environments/dev/fresh/deployment.yaml"]
    origin.commit(files, "fresh: a new app in dev")
    async with run_worker(dev_env, origin) as tq:
        dry = await api.dry_run(dev_env.client, tq, "fresh")
        assert dry.denied == [], [s.decision for s in dry.stages]
        for stage in dry.stages[1:]:
            found = [v for v in stage.decision.warn if v.rule == "promoter.local_file_missing"]  # type: ignore[union-attr]
            assert [(v.object, v.severity) for v in found] == [("Deployment/-/fresh", "medium")], stage
            assert f"needs ConfigMap fresh-settings (envFrom), which environments/{stage.env}/fresh/ does not" in (
                found[0].message
            )
            assert f"so {stage.env} must hold its own copy" in found[0].message
        origin.bump(tag="7.0.0")
        plain = await api.dry_run(dev_env.client, tq, "demo")
        assert not [v for s in plain.stages if s.decision for v in s.decision.warn if "local_file" in v.rule]
        # a merge method the worker's forge cannot do is refused as the request is resolved, not at its merge
        squash = {f"environments/{e}/environment.yaml": "merge: {method: squash}\n" for e in ("dev", "staging")}
        for path in squash:
            squash[path] = (origin.work / path).read_text() + squash[path]
        origin.commit({"environments/dev/environment.yaml": squash["environments/dev/environment.yaml"]}, "dev")
        await api.dry_run(dev_env.client, tq, "demo")  # the source: nothing is ever merged into it
        origin.commit({"environments/staging/environment.yaml": squash["environments/staging/environment.yaml"]}, "st")
        with pytest.raises(Exception) as refused:
            await api.dry_run(dev_env.client, tq, "demo")
        assert (
            "environments/staging/environment.yaml: merge.method squash: the local forge merges only with a merge "
            "commit; set merge.method to merge (or remove it), or use a forge that can squash"
        ) in str(refused.value), refused.value
