"""Both policy backends: the embedded engine, and the `opa` backend over real HTTP (opa-python-client)
against a loopback server that speaks OPA's Data API (tests/support/opa_standin.py: no OPA server
installs here, so it wraps OPA's own Go engine, never the embedded one it is compared with). Same
inputs, same decisions; and every way to fail
(a Rego syntax error, an unreachable OPA, an erroring OPA, a timeout) is a denial naming its cause."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from promoter.policy import PolicyBundle, decide, metadata_gaps
from promoter.policy.embedded import EmbeddedEngine
from promoter.policy.opa import OpaEngine
from promoter.stack import free_port
from tests.support.opa_standin import OpaStandIn
from tests.support.policy import CASES, POLICIES


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.from_dir(POLICIES)


def test_every_package_and_rule_has_metadata(bundle: PolicyBundle) -> None:
    assert list(metadata_gaps(bundle)) == []
    assert bundle.metadata["kubernetes.images.deny_unpinned_image"]["severity"] == "high"


def test_embedded_decisions(bundle: PolicyBundle) -> None:
    engine = EmbeddedEngine()
    assert decide(engine, bundle, CASES["clean"]()).allow
    denied = decide(engine, bundle, CASES["latest"]())
    assert not denied.allow
    [v] = [v for v in denied.deny if v.rule == "kubernetes.images.deny_unpinned_image"]
    assert v.object == "Deployment/-/demo" and "uses the tag :latest" in v.message
    assert v.severity == "high" and v.remediation.startswith("Pin the image")
    author = decide(engine, bundle, CASES["author-approves-prod"]())
    assert [v.rule for v in author.deny] == ["promotion.approvals.deny_author_approval"]
    assert "alice wrote commit 0123456 and may not approve it for prod" in author.deny[0].message
    assert [v.rule for v in decide(engine, bundle, CASES["skipped-staging"]()).deny] == [
        "promotion.order.deny_skipped_environment"
    ]


def test_opa_backend_gives_the_same_decisions_over_http(bundle: PolicyBundle) -> None:
    embedded = EmbeddedEngine()
    with OpaStandIn(POLICIES) as opa:
        engine = OpaEngine(opa.url)
        for name, make in CASES.items():
            doc = make()
            assert decide(engine, bundle, doc) == decide(embedded, bundle, doc).model_copy(update={"engine": "opa"}), (
                name
            )
        # what went over the wire: the metadata once, then one Data API query per decision
        puts = [r for r in opa.requests if r[0] == "PUT"]
        assert [(m, p) for m, p, _ in puts] == [("PUT", "/v1/data/policy_metadata")]
        assert puts[0][2]["kubernetes.images.deny_registry"]["severity"] == "critical"
        posts = [r for r in opa.requests if r[0] == "POST"]
        assert len(posts) == len(CASES) and {p for _, p, _ in posts} == {"/v1/data/promoter/decision"}
        assert set(posts[0][2]) == {"input"} and posts[0][2]["input"]["promotion"]["app"] == "demo"


def test_unreachable_opa_denies_naming_it(bundle: PolicyBundle) -> None:
    port = free_port()
    decision = decide(OpaEngine(f"http://127.0.0.1:{port}", timeout_s=1), bundle, CASES["clean"]())
    assert not decision.allow
    [v] = decision.deny
    assert v.rule == "promoter.engine_error" and f"OPA at http://127.0.0.1:{port}" in v.message


def test_erroring_opa_denies(bundle: PolicyBundle) -> None:
    with OpaStandIn(POLICIES) as opa:
        opa.fail_with = 500
        decision = decide(OpaEngine(opa.url), bundle, CASES["clean"]())
    assert not decision.allow and "500" in decision.deny[0].message


def test_slow_opa_times_out_into_a_denial(bundle: PolicyBundle) -> None:
    with OpaStandIn(POLICIES) as opa:
        opa.delay_s = 2.0
        decision = decide(OpaEngine(opa.url, timeout_s=0.3), bundle, CASES["clean"]())
    assert not decision.allow and "Timeout" in decision.deny[0].message


def test_rego_syntax_error_denies_naming_the_file(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    (tmp_path / "policies" / "kubernetes" / "broken.rego").write_text(
        "package kubernetes.broken\n\nimport rego.v1\n\ndeny_x contains msg if {\n"
    )
    decision = decide(EmbeddedEngine(), PolicyBundle.from_dir(tmp_path / "policies"), CASES["clean"]())
    assert not decision.allow
    assert decision.deny[0].message.startswith("policy evaluation failed: policies/kubernetes/broken.rego")


def test_slow_evaluation_times_out_into_a_denial(tmp_path: Path) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    (tmp_path / "policies" / "kubernetes" / "slow.rego").write_text(
        "package kubernetes.slow\n\nimport rego.v1\n\n"
        'deny_slow contains {"msg": "never"} if {\n'
        "\tcount([x | some x in numbers.range(1, 30000000); x % 7 == 0]) < 0\n}\n"
    )
    engine = EmbeddedEngine(timeout_s=0.3)
    decision = decide(engine, PolicyBundle.from_dir(tmp_path / "policies"), CASES["clean"]())
    assert not decision.allow and "did not finish within 0.3s" in decision.deny[0].message


def test_no_decision_package_denies(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "x.rego").write_text("package x\n\nimport rego.v1\n\nallow := true\n")
    decision = decide(EmbeddedEngine(), PolicyBundle.from_dir(tmp_path / "policies"), CASES["clean"]())
    assert not decision.allow and "no package promoter" in decision.deny[0].message
