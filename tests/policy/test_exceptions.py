"""Policy exceptions with an expiry (`policies/exceptions/*.yaml`): a malformed one (no owner, no
reason, no or a bad expiry, an unknown key, a bad rule or app, a path on a rule that is not a schema
rule, an object that is not Kind/namespace/name, an ID used twice, not a mapping) is
bad input naming its file and ID, so the policies deny until it is fixed; a valid one loads at
`data.exceptions`; and through a whole promotion a live exception lets a `:latest` image into staging
as a recorded `excepted` finding, in the stage's status and the PR body, where an exception that
matches nothing is a warning. Matching, expiry and the
`max_exception_days` limit are the policies' (policies/promoter/decision_test.rego)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter import api
from promoter.errors import BadInput
from promoter.models import PromotionState
from promoter.policy import PolicyBundle
from tests.support.gitops import Origin

GOOD = (
    "demo-debug:\n  rule: kubernetes.images.deny_unpinned_image\n  app: demo\n  env: staging\n"
    "  reason: the debug build, until the fix lands\n  owner: alice\n  expires: {expires}\n"
)


ONLY = "only rules of the kubernetes and schemas concerns can be"


def load(text: str) -> PolicyBundle:
    return PolicyBundle.from_files({"promoter/decision.rego": "package promoter\n", "exceptions/demo.yaml": text})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("  owner: alice\n", ""), "exception 'demo-debug': owner is required"),
        (GOOD.replace("  reason: the debug build, until the fix lands\n", ""), "reason is required"),
        (GOOD.replace("  expires: {expires}\n", ""), "expires is required"),
        (GOOD.replace("{expires}", "soon"), "expires 'soon' is not a date; write it as YYYY-MM-DD"),
        # dates are strict: YYYY-MM-DD or RFC 3339, quoted or not
        (GOOD.replace("{expires}", "2026-12-20 junk"), "expires '2026-12-20 junk' is not a date"),
        (GOOD.replace("{expires}", "2026-13-01"), "expires '2026-13-01' is not a date"),
        (GOOD.replace("{expires}", "'2026-13-01'"), "expires '2026-13-01' is not a date"),
        (GOOD.replace("{expires}", "2026-02-30"), "expires '2026-02-30' is not a date"),
        (GOOD.replace("{expires}", "tomorrow"), "expires 'tomorrow' is not a date"),
        (GOOD.replace("{expires}", "2026-12-20 10:00:00"), "expires '2026-12-20 10:00:00' is not a date"),  # no offset
        (GOOD.replace("{expires}", "'2026-12-20T10:00:00'"), "expires '2026-12-20T10:00:00' is not a date"),
        (GOOD.replace("{expires}", "20261220"), "expires '20261220' is not a date"),
        # the gates cannot be excepted: only the kubernetes and schemas concerns' rules can
        *[
            (GOOD.replace("kubernetes.images.deny_unpinned_image", rule), f"rule '{rule}' cannot be excepted: {ONLY}")
            for rule in (
                "promotion.approvals",
                "promotion.approvals.deny_author_approval",
                "promotion.order",
                "promotion.order.deny_skipped_environment",
                "promotion.freeze.deny_freeze_window",
                "promotion.soak",
                "promoter.exception_too_long",
                "lib.k8s.ident",
            )
        ],
        (GOOD + "  ticket: OPS-1\n", "unknown key 'ticket'"),
        # a path narrows a schema finding: on any other rule it would match nothing
        (GOOD + "  path: spec.replicas\n", "path narrows a schema finding (schemas.* rules) only"),
        # an object is Kind/namespace/name, as findings name it
        (GOOD + "  object: Deployment/demo\n", "object 'Deployment/demo' is not Kind/namespace/name"),
        (GOOD + "  object: Deployment//demo\n", "object 'Deployment//demo' is not Kind/namespace/name"),
        (GOOD.replace("deny_unpinned_image", "deny unpinned"), "is not a rule or package"),
        (GOOD.replace("app: demo", "app: ../prod"), "app '../prod' is not an app or environment name"),
        ("- rule: x\n", "expected a mapping of exception IDs to exceptions"),
        ("demo-debug: yes\n", "expected a mapping with rule, app, reason, owner and expires"),
    ],
)
def test_a_malformed_exception_is_bad_input_naming_its_file_and_id(text: str, expected: str) -> None:
    with pytest.raises(BadInput) as e:
        load(text.replace("{expires}", "2026-12-01"))
    assert str(e.value).startswith("policies/exceptions/demo.yaml") and expected in str(e.value), e.value


@pytest.mark.parametrize(
    ("expires", "read"),
    [
        ("2026-12-01", "2026-12-01"),
        ("'2026-12-01'", "2026-12-01"),
        ("2026-12-01T18:00:00Z", "2026-12-01T18:00:00Z"),
        ("2026-12-01T18:00:00+02:00", "2026-12-01T16:00:00Z"),  # YAML's own time, written out in UTC
        ("'2026-12-01T18:00:00+02:00'", "2026-12-01T18:00:00+02:00"),
    ],
)
def test_an_expiry_is_a_date_or_an_rfc3339_time(expires: str, read: str) -> None:
    assert load(GOOD.replace("{expires}", expires)).data["exceptions"]["demo-debug"]["expires"] == read


@pytest.mark.parametrize("rule", ["kubernetes", "schemas"])
def test_a_kubernetes_or_schemas_package_may_be_excepted(rule: str) -> None:
    text = GOOD.replace("kubernetes.images.deny_unpinned_image", f"{rule}.anything").replace("{expires}", "2026-12-01")
    assert load(text).data["exceptions"]["demo-debug"]["rule"] == f"{rule}.anything"


def test_a_valid_exception_loads_at_data_exceptions() -> None:
    bundle = load(GOOD.replace("{expires}", "2026-12-01"))  # an unquoted YAML date, normalised
    assert bundle.data["exceptions"] == {
        "demo-debug": {
            "rule": "kubernetes.images.deny_unpinned_image",
            "app": "demo",
            "env": "staging",
            "object": None,
            "path": None,
            "reason": "the debug build, until the fix lands",
            "owner": "alice",
            "expires": "2026-12-01",
            "file": "policies/exceptions/demo.yaml",
        }
    }


@pytest.mark.asyncio
async def test_a_live_exception_lets_a_latest_image_into_staging_as_a_recorded_exception(
    dev_env: WorkflowEnvironment, origin: Origin, run_worker: Any
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    text = (origin.work / "environments/dev/demo/deployment.yaml").read_text()
    stale = GOOD.replace("demo-debug:", "stale:").replace("deny_unpinned_image", "deny_registry")  # names nothing
    origin.commit({"policies/exceptions/demo.yaml": (GOOD + stale).replace("{expires}", expires)}, "an exception")
    commit = origin.commit(
        {"environments/dev/demo/deployment.yaml": re.sub(r"(image: \S+):\S+", r"\1:latest", text)}, "demo :latest"
    )
    async with run_worker(dev_env, origin) as tq:
        plan = await api.resolve(dev_env.client, tq, "demo", to_env="staging")
        assert plan.commit == commit
        result = await (await api.start(dev_env.client, tq, plan, "dana")).result()
    assert result.state == PromotionState.SUCCEEDED, result.message
    staging = result.stages[1]
    assert staging.policy is not None and staging.policy.allow and staging.policy.deny == []
    [excepted] = [v for v in staging.policy.excepted if v.rule == "kubernetes.images.deny_unpinned_image"]
    assert excepted.exception == (
        f"exception demo-debug by alice until {expires}: the debug build, until the fix lands"
    )
    assert staging.pr_number is not None
    body = origin.forge().get_pull_request(staging.pr_number).body
    assert "| Excepted | rule | object | exception |" in body and "exception demo-debug by alice" in body
    # the exception that matches nothing is a warning of the stage, in its findings and the PR body
    [unmatched] = [v for v in staging.policy.warn if v.rule == "promoter.exception_unmatched"]
    assert unmatched.message == (
        "exception stale (policies/exceptions/demo.yaml) matches no finding of demo in staging "
        "(rule kubernetes.images.deny_registry)"
    )
    assert (
        "| Warnings | rule |" in body and "exception stale (policies/exceptions/demo.yaml) matches no finding" in body
    )
