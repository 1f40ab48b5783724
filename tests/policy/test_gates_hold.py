"""Rules that a change to the data cannot loosen (issue 24, parts 2 and 4), on both engines (the embedded
regorus and OPA's own Go engine), through promoter's own input:

- an exception never waives a `promotion` rule: refused as promoter loads it, and when it reaches the
  policies some other way (injected as data, as OPA's own data would be), it waives nothing and denies;
- `max_exception_days` above its ceiling (90) is refused; an exception until 2099 runs too long;
- the `promotion` concern is enforced whatever `policy.enforce` / `policy.warn_only` say: a self-approval,
  a skipped stage and a freeze are denied with `enforce: []`, while `kubernetes` stays configurable;
- a freeze window promoter cannot read is refused as it loads, and denied by the policies naming the
  window and field; Python and the Rego read windows by the same grammar.

The Rego unit tests (policies/promoter/decision_test.rego, policies/promotion/freeze_test.rego) hold
the rules themselves; these hold them through the bundle loading and the input promoter builds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from promoter.errors import BadInput
from promoter.models import EnvironmentConfig
from promoter.policy import PolicyBundle, PolicyEngine, decide, environment_document
from tests.support.gitops import ROOT
from tests.support.policy import CASES, POLICIES, latest_image, make_input


def files() -> dict[str, str]:
    """policies/ as the worker reads it from Git: paths relative to policies/ → text."""
    return {
        str(p.relative_to(POLICIES)): p.read_text()
        for p in sorted(POLICIES.rglob("*"))
        if p.is_file() and p.suffix in (".rego", ".yaml", ".yml", ".json")
    }


def with_data(**data: Any) -> PolicyBundle:
    """The sample policies with `data` put straight into the data document, past promoter's loading
    (as an OPA server that loads its own data would have it)."""
    bundle = PolicyBundle.from_dir(POLICIES)
    return PolicyBundle(modules=bundle.modules, data={**bundle.data, **data}, metadata=bundle.metadata)


def decisions(engines: list[PolicyEngine], bundle: PolicyBundle, doc: dict[str, Any]) -> Any:
    """The decision, the same on every engine."""
    found = [decide(e, bundle, doc).model_copy(update={"engine": ""}) for e in engines]
    assert all(d == found[0] for d in found), [d.model_dump() for d in found]
    return found[0]


def exception(rule: str, expires: str = "2026-12-01", env: str | None = None) -> dict[str, Any]:
    return {
        "rule": rule,
        "app": "demo",
        "env": env,
        "object": None,
        "path": None,
        "reason": "we are in a hurry",
        "owner": "mallory",
        "expires": expires,
    }  # no `file`: OPA's own data does not carry one


SELF_APPROVAL = CASES["author-approves-prod"]
SKIPPED_STAGE = CASES["skipped-staging"]


# ------------------------------------------------------------------ exceptions cannot waive the gates


@pytest.mark.parametrize(
    ("case", "rule", "denied"),
    [
        (SELF_APPROVAL, "promotion.approvals", "promotion.approvals.deny_author_approval"),
        (SELF_APPROVAL, "promotion.approvals.deny_author_approval", "promotion.approvals.deny_author_approval"),
        (SKIPPED_STAGE, "promotion.order", "promotion.order.deny_skipped_environment"),
        (SKIPPED_STAGE, "promotion.order.deny_skipped_environment", "promotion.order.deny_skipped_environment"),
        (SKIPPED_STAGE, "promotion", "promotion.order.deny_skipped_environment"),
    ],
)
def test_an_exception_injected_as_data_waives_no_gate(
    engines: list[PolicyEngine], case: Any, rule: str, denied: str
) -> None:
    bundle = with_data(exceptions={"hurry": exception(rule)})
    decision = decisions(engines, bundle, case())
    assert not decision.allow and decision.excepted == []
    assert denied in [v.rule for v in decision.deny]
    [refused] = [v for v in decision.deny if v.rule == "promoter.exception_refused"]
    assert refused.message == (
        f'exception hurry (data.exceptions): rule "{rule}" cannot be excepted: only rules of the kubernetes '
        "and schemas concerns can be (the promotion rules always hold)"
    )


def test_a_kubernetes_exception_still_waives_its_rule(engines: list[PolicyEngine]) -> None:
    bundle = with_data(exceptions={"debug": exception("kubernetes.images.deny_unpinned_image")})
    decision = decisions(engines, bundle, CASES["latest"]())
    assert decision.allow and [v.rule for v in decision.excepted] == ["kubernetes.images.deny_unpinned_image"]


def test_max_exception_days_above_the_ceiling_denies_when_it_reaches_the_policies(engines: list[PolicyEngine]) -> None:
    bundle = with_data(max_exception_days=100000, exceptions={"forever": exception("kubernetes.images", "2099-12-31")})
    decision = decisions(engines, bundle, CASES["latest"]())
    assert not decision.allow and decision.excepted == []
    assert {v.rule for v in decision.deny} == {
        "promoter.max_exception_days",
        "promoter.exception_too_long",
        "kubernetes.images.deny_unpinned_image",
    }


def test_max_exception_days_above_the_ceiling_is_refused_as_it_loads() -> None:
    tree = files()
    tree["data.yaml"] += "\nmax_exception_days: 100000\n"
    with pytest.raises(BadInput) as e:
        PolicyBundle.from_files(tree)
    assert str(e.value) == (
        "policies/data.yaml: max_exception_days 100000 is not a whole number of days from 0 to 90 "
        "(its ceiling: data may lower it, never raise it)"
    )


EXCEPTION_2099 = """forever:
  rule: kubernetes.images.deny_unpinned_image
  app: demo
  reason: we will fix it one day
  owner: mallory
  expires: 2099-12-31
"""


def test_an_expiry_in_2099_is_refused_end_to_end(engines: list[PolicyEngine]) -> None:
    bundle = PolicyBundle.from_files({**files(), "exceptions/forever.yaml": EXCEPTION_2099})
    assert bundle.data["exceptions"]["forever"]["expires"] == "2099-12-31"
    decision = decisions(engines, bundle, CASES["latest"]())
    assert not decision.allow and decision.excepted == []
    [too_long] = [v for v in decision.deny if v.rule == "promoter.exception_too_long"]
    assert too_long.message == (
        "exception forever (policies/exceptions/forever.yaml) expires 2099-12-31, more than 90 days ahead"
    )
    assert "kubernetes.images.deny_unpinned_image" in [v.rule for v in decision.deny]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
    )


def test_promoter_policy_check_refuses_a_2099_exception_and_a_raised_ceiling(tmp_path: Path) -> None:
    for folder in ("environments", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    deployment = tmp_path / "environments/staging/demo/deployment.yaml"
    deployment.write_text(deployment.read_text().replace("demo:1.0.0", "demo:latest"))
    (tmp_path / "policies/exceptions").mkdir()
    (tmp_path / "policies/exceptions/forever.yaml").write_text(EXCEPTION_2099)
    r = run("policy", "check", "--env", "staging", "--app", "demo", "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "promoter.exception_too_long" in r.stdout and "kubernetes.images.deny_unpinned_image" in r.stdout
    data = tmp_path / "policies/data.yaml"
    data.write_text(data.read_text() + "\nmax_exception_days: 100000\n")
    r = run("policy", "check", "--env", "staging", "--app", "demo", cwd=tmp_path)
    assert r.returncode != 0 and "max_exception_days 100000" in r.stdout + r.stderr, r.stdout + r.stderr


# ------------------------------------------------------------------ promotion is always enforced

WEDNESDAY_MORNINGS = [
    {
        "name": "wednesday mornings",
        "environments": ["prod"],
        "weekly": {"days": ["WEDNESDAY"], "from": "09:00", "to": "11:00"},
    }
]  # make_input evaluates on Wednesday 2026-11-25 at 10:00 UTC


@pytest.mark.parametrize(
    "policy",
    [
        {"enforce": [], "warn_only": []},
        {"enforce": ["kubernetes", "schemas"], "warn_only": ["promotion"]},
        {"enforce": [], "warn_only": ["promotion", "kubernetes"]},
    ],
)
def test_the_promotion_rules_hold_whatever_policy_enforce_says(
    engines: list[PolicyEngine], policy: dict[str, Any]
) -> None:
    bundle = with_data(freeze_windows=WEDNESDAY_MORNINGS)
    self_approval = make_input(
        "prod", phase="approval", approvals=["alice"], author="alice <alice@example.com>", policy=policy
    )
    skipped = make_input("prod", policy=policy)
    skipped["promotion"]["history"] = []
    for doc, rule in [
        (self_approval, "promotion.approvals.deny_author_approval"),
        (skipped, "promotion.order.deny_skipped_environment"),
        (make_input("prod", policy=policy), "promotion.freeze.deny_freeze_window"),
    ]:
        decision = decisions(engines, bundle, doc)
        assert not decision.allow and rule in [v.rule for v in decision.deny], (rule, decision.deny)
        assert not any(v.rule.startswith("promotion.") for v in decision.warn)


def test_the_input_says_promotion_is_enforced_and_the_rego_does_too(engines: list[PolicyEngine]) -> None:
    config = EnvironmentConfig.model_validate(
        {
            "name": "prod",
            "order": 3,
            "cluster": {"context": "prod"},
            "policy": {"enforce": [], "warn_only": ["promotion"]},
        }
    )
    assert environment_document(config)["policy"] == {
        "enforce": ["promotion"],
        "warn_only": [],
        "pod_security": "restricted",  # unset: the strictest level
    }
    # an input built some other way (an OPA client of its own) is judged alike
    doc = SKIPPED_STAGE()
    doc["environment"]["policy"] = {"enforce": [], "warn_only": ["promotion"]}
    decision = decisions(engines, PolicyBundle.from_dir(POLICIES), doc)
    assert [v.rule for v in decision.deny] == ["promotion.order.deny_skipped_environment"]


def test_kubernetes_and_schemas_stay_configurable(engines: list[PolicyEngine]) -> None:
    bundle = PolicyBundle.from_dir(POLICIES)
    off = decisions(engines, bundle, make_input(objects=latest_image(), policy={"enforce": [], "warn_only": []}))
    assert off.allow and off.deny == [] and off.warn == []
    warned = decisions(engines, bundle, make_input(objects=latest_image(), policy={"warn_only": ["kubernetes"]}))
    assert warned.allow and "kubernetes.images.deny_unpinned_image" in [v.rule for v in warned.warn]


# ------------------------------------------------------------------ freeze windows are read strictly

# (window, the field named): promoter refuses each as it loads data.yaml, and the policies deny it
MALFORMED = [
    ({"name": "w", "weekly": {"days": ["Wensday"], "from": "09:00", "to": "17:00"}}, "weekly.days"),
    ({"name": "w", "weekly": {"days": ["Fri"], "from": "09:00", "to": "17:00"}}, "weekly.days"),
    ({"name": "w", "weekly": {"days": [], "from": "09:00", "to": "17:00"}}, "weekly.days"),
    ({"name": "w", "weekly": {"from": "09:00", "to": "17:00"}}, "weekly.days"),
    ({"name": "w", "weekly": {"days": ["Friday"], "from": "25:00", "to": "23:00"}}, "weekly.from"),
    ({"name": "w", "weekly": {"days": ["Friday"], "from": 960, "to": "17:00"}}, "weekly.from"),
    ({"name": "w", "weekly": {"days": ["Friday"], "from": "09:00"}}, "weekly.to"),
    ({"name": "w", "weekly": {"days": ["Friday"], "from": "17:00", "to": "09:00"}}, "weekly.to"),
    ({"name": "w", "weekly": {"day": ["Friday"], "from": "09:00", "to": "17:00"}}, "weekly.day"),
    ({"name": "w", "weekly": ["Friday"]}, "weekly"),
    ({"name": "w", "start": "soon", "end": "2027-01-02T00:00:00Z"}, "start"),
    ({"name": "w", "start": "2026-12-24T00:00:00Z", "end": "2026-13-01"}, "end"),
    ({"name": "w", "start": "2026-12-24T00:00:00Z", "end": "2027-02-30"}, "end"),
    ({"name": "w", "start": "2026-12-24 junk", "end": "2027-01-02"}, "start"),
    ({"name": "w", "start": "2026-12-24T00:00:00", "end": "2027-01-02"}, "start"),
    ({"name": "w", "start": "2027-01-02T00:00:00Z", "end": "2026-12-24T00:00:00Z"}, "end"),
    ({"name": "w", "start": "2026-12-24T00:00:00Z"}, "end"),
    ({"name": "w"}, "start"),
    ({"name": "w", "environments": "prod", "start": "2026-12-24", "end": "2026-12-25"}, "environments"),
    ({"name": "w", "enviroments": ["prod"], "start": "2026-12-24", "end": "2026-12-25"}, "enviroments"),
    ({"name": "w", "start": "2026-12-24", "end": "2026-12-25", "weekly": {"days": ["Friday"]}}, "weekly"),
    ({"start": "2026-12-24", "end": "2026-12-25"}, "name"),
    ("friday", "window"),
]


@pytest.mark.parametrize(("window", "field"), MALFORMED, ids=[f"{f}-{i}" for i, (_, f) in enumerate(MALFORMED)])
def test_an_unreadable_freeze_window_is_refused_and_denied_naming_its_field(
    engines: list[PolicyEngine], window: Any, field: str
) -> None:
    import yaml

    tree = files()
    tree["data.yaml"] += "\n" + yaml.safe_dump({"freeze_windows": [window]})
    with pytest.raises(BadInput) as e:
        PolicyBundle.from_files(tree)
    label = window["name"] if isinstance(window, dict) and window.get("name") else "#1"
    assert str(e.value).startswith(f"policies/data.yaml: freeze window '{label}': {field} "), e.value
    # past promoter's loading, the policies deny it (in staging too: the window cannot be read to say where it applies)
    decision = decisions(engines, with_data(freeze_windows=[window]), make_input("staging"))
    assert not decision.allow
    messages = [v.message for v in decision.deny if v.rule == "promotion.freeze.deny_malformed_window"]
    assert any(m.startswith(f"freeze window '{label}' in data.freeze_windows: {field} ") for m in messages), messages
    assert "promotion.freeze.deny_freeze_window" not in [v.rule for v in decision.deny]  # nor judged as a window


def test_readable_windows_load_with_yaml_dates_written_as_the_policies_read_them(engines: list[PolicyEngine]) -> None:
    tree = files()
    tree["data.yaml"] += (
        "\nfreeze_windows:\n"
        "  - {name: christmas, environments: [prod], start: 2026-12-24, end: 2026-12-26}\n"
        "  - {name: release day, start: 2026-11-25T09:00:00Z, end: '2026-11-25T12:00:00+01:00'}\n"
        "  - {name: midweek, weekly: {days: [wednesday, Thursday, FRIDAY], from: '09:00', to: '23:59'}}\n"
    )
    bundle = PolicyBundle.from_files(tree)
    assert bundle.data["freeze_windows"][:2] == [
        {"name": "christmas", "environments": ["prod"], "start": "2026-12-24", "end": "2026-12-26"},
        {"name": "release day", "start": "2026-11-25T09:00:00Z", "end": "2026-11-25T12:00:00+01:00"},
    ]
    decision = decisions(engines, bundle, make_input("staging"))  # Wednesday 10:00 UTC
    assert [(v.rule, v.message) for v in decision.deny] == [
        (
            "promotion.freeze.deny_freeze_window",
            "staging is frozen by 'midweek' at 2026-11-25T10:00:00Z, until 23:59 UTC that day",
        ),
        (
            "promotion.freeze.deny_freeze_window",
            "staging is frozen by 'release day' at 2026-11-25T10:00:00Z, until 2026-11-25T12:00:00+01:00",
        ),
    ]


def test_an_unquoted_impossible_date_is_refused_naming_where_it_is() -> None:
    tree = files()
    tree["data.yaml"] += "\nfreeze_windows:\n  - {name: year-end, start: 2026-12-24, end: 2026-13-01}\n"
    with pytest.raises(BadInput) as e:
        PolicyBundle.from_files(tree)
    assert str(e.value) == (
        "policies/data.yaml: freeze_windows[0].end '2026-13-01' is not a date; "
        "write it as YYYY-MM-DD (or an RFC 3339 time, 2026-12-20T00:00:00Z)"
    )
