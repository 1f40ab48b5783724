"""Both policy backends: the embedded engine, and the `opa` backend over real HTTP (opa-python-client)
against a loopback server that speaks OPA's Policy and Data APIs (tests/support/opa_standin.py: no OPA
server installs here, so it wraps OPA's own Go engine, never the embedded one it is compared with).
Same inputs, same decisions; the `opa` backend judges with the revision it pushes (never the server's
own copy), two revisions coexist and neither is ever answered half loaded; and every way to fail (a
Rego syntax error, an unreachable OPA, an erroring OPA, a timeout, a builtin error, a forged revision)
is a denial naming its cause."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from promoter.policy import PolicyBundle, decide, metadata_gaps
from promoter.policy.embedded import EmbeddedEngine
from promoter.policy.opa import OpaEngine, foreign, namespaced, package_path
from promoter.policy.testing import discover
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
    with OpaStandIn() as opa:  # an OPA server with no policies of its own
        engine = OpaEngine(opa.url)
        for name, make in CASES.items():
            doc = make()
            assert decide(engine, bundle, doc) == decide(embedded, bundle, doc).model_copy(update={"engine": "opa"}), (
                name
            )
        # what went over the wire: one push of the revision (its data whole, then each module under its
        # key, the answer module last, then its entry in the list), then per decision one Data API query
        # and one listing of the modules (nothing foreign in the namespace)
        key = engine.layout(bundle).key
        puts = [(p, b) for m, p, b in opa.requests if m == "PUT"]
        assert puts[0][0] == f"/v1/data/promoter_rev/{key}"
        pushed = puts[0][1]
        assert pushed["policy_metadata"]["kubernetes.images.deny_registry"]["severity"] == "critical"
        assert pushed["allowed_registries"] == bundle.data["allowed_registries"]
        assert pushed["promoter_revision"] == bundle.revision
        modules = [p for p, _ in puts[1:-1]]
        assert modules[-1] == f"/v1/policies/promoter/{key}/answer"
        assert sorted(modules[:-1]) == sorted(f"/v1/policies/promoter/{key}/{p}" for p in bundle.policies())
        assert puts[-1][0] == f"/v1/data/promoter_revisions/{key}"
        posts = [(p, b) for m, p, b in opa.requests if m == "POST"]
        assert {p for p, _ in posts} == {f"/v1/data/promoter_answer/{key}?strict-builtin-errors=true"}
        assert len(posts) == len(CASES) + 1  # the first found nothing loaded, pushed, and asked again
        assert set(posts[0][1]) == {"input"} and posts[0][1]["input"]["promotion"]["app"] == "demo"
        assert [(m, p) for m, p, _ in opa.requests if m == "GET" and p.startswith("/v1/policies")] == [
            ("GET", "/v1/policies")
        ] * len(CASES)  # after every answer used, none after the one that found nothing
        # steady state: a query and a listing per decision, nothing pushed
        before = len(opa.requests)
        assert decide(engine, bundle, CASES["latest"]()).deny
        assert [(m, p.split("?")[0]) for m, p, _ in opa.requests[before:]] == [
            ("POST", f"/v1/data/promoter_answer/{key}"),
            ("GET", "/v1/policies"),
        ]
        # another worker pushes its own copy, under its own key (its secret is not this one's)
        other = OpaEngine(opa.url)
        assert decide(other, bundle, CASES["latest"]()).deny and other.layout(bundle).key != key
        assert sorted({i.split("/")[1] for i in opa.policies}) == sorted([key, other.layout(bundle).key])
    embedded.close()


def test_unreachable_opa_denies_naming_it(bundle: PolicyBundle) -> None:
    port = free_port()
    decision = decide(OpaEngine(f"http://127.0.0.1:{port}", timeout_s=1), bundle, CASES["clean"]())
    assert not decision.allow
    [v] = decision.deny
    assert v.rule == "promoter.engine_error" and f"OPA at http://127.0.0.1:{port}" in v.message


def test_erroring_opa_denies(bundle: PolicyBundle) -> None:
    with OpaStandIn() as opa:
        opa.fail_with = 500
        decision = decide(OpaEngine(opa.url), bundle, CASES["clean"]())
    assert not decision.allow and "500" in decision.deny[0].message


def test_slow_opa_times_out_into_a_denial(bundle: PolicyBundle) -> None:
    with OpaStandIn() as opa:
        opa.delay_s = 2.0
        decision = decide(OpaEngine(opa.url, timeout_s=0.3), bundle, CASES["clean"]())
    assert not decision.allow and "Timeout" in decision.deny[0].message


# ---------------------------------------------------------------------- OPA sees what the audit names

EXTRA = """package kubernetes.extra

import rego.v1

deny_everything contains {"msg": "revision B denies everything"} if true
"""


def revision_b(bundle: PolicyBundle) -> PolicyBundle:
    """Another revision: one more module (denying everything) and data that allows no registry, so
    that either leaking into revision A's evaluation would deny A's clean change."""
    return dataclasses.replace(
        bundle,
        modules={**bundle.modules, "kubernetes/extra.rego": EXTRA},
        data={**bundle.data, "allowed_registries": ["registry.example.com/"]},
    )


B_RULES = {"kubernetes.extra.deny_everything", "kubernetes.images.deny_registry"}


def test_opa_judges_with_the_pushed_revision_not_the_copy_it_loaded(bundle: PolicyBundle, tmp_path: Path) -> None:
    """A stale, permissive copy planted in the server (no image rules at all) is never what judges."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    (tmp_path / "policies" / "kubernetes" / "images.rego").unlink()
    with OpaStandIn(tmp_path / "policies") as opa:
        stale = opa.query(["promoter", "decision"], CASES["latest"]())
        assert stale["allow"]  # what the server would say with its own copy
        decision = decide(OpaEngine(opa.url), bundle, CASES["latest"]())
    assert not decision.allow and decision.revision == bundle.revision
    assert "kubernetes.images.deny_unpinned_image" in {v.rule for v in decision.deny}


def test_the_decision_names_the_commit_opa_answered_with(bundle: PolicyBundle) -> None:
    """A bundle read from Git is named by its trusted rules commit: that is what is pushed, what OPA
    answers with, and what the decision (so the audit) records."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    named = dataclasses.replace(bundle, commit=commit)
    with OpaStandIn() as opa:
        engine = OpaEngine(opa.url)
        decision = decide(engine, named, CASES["clean"]())
        answered = opa.query(["promoter_answer", engine.layout(named).key, "revision"])
    assert decision.allow and decision.revision == answered == commit


def test_two_revisions_judged_at_once_each_get_their_own_verdict(bundle: PolicyBundle) -> None:
    """Two revisions coexist on one server: threads of one worker and of a second worker evaluate both
    at the same time, and each evaluation gets its own revision's verdict."""
    b = revision_b(bundle)
    with OpaStandIn() as opa:
        # the stand-in's real OPA judges 12 bundles' first evaluations at once: on a loaded 2-core machine
        # that can take longer than the engine's 5 s default, which is not what this test is about
        workers = [OpaEngine(opa.url, 30.0), OpaEngine(opa.url, 30.0)]
        jobs = [(workers[i % 2], bundle if i % 3 else b) for i in range(12)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            verdicts = list(pool.map(lambda job: (job[1], decide(job[0], job[1], CASES["clean"]())), jobs))
        held = {v["revision"] for v in (opa.query(["promoter_revisions"]) or {}).values()}
    for judged, decision in verdicts:
        assert decision.revision == judged.revision
        if judged is bundle:
            assert decision.allow, decision.deny
        else:
            assert not decision.allow and {v.rule for v in decision.deny} == B_RULES, decision.deny
    assert held == {bundle.revision, b.revision}


def test_between_any_two_writes_of_a_push_or_removal_each_answer_is_right_or_absent(bundle: PolicyBundle) -> None:
    """Two workers that keep only their newest revision, and take each other's for stale at once, push
    and remove each other's. Before every write either makes, the server is asked for both revisions'
    answers: each is its own revision's verdict, or not there (and then the evaluation pushes it again);
    never half a revision, never the other's rules."""
    b = revision_b(bundle)
    doc = CASES["clean"]()
    checked: list[str] = []
    with OpaStandIn() as opa:
        one, two = OpaEngine(opa.url, keep=1, stale_s=0), OpaEngine(opa.url, keep=1, stale_s=0)
        keys = {one.layout(bundle).key: bundle, two.layout(b).key: b}

        def look(method: str, path: str) -> None:
            answers = opa.query(["promoter_answer"], doc) or {}  # both at once: one snapshot of the store
            for key, judged in keys.items():
                answer = answers.get(key) or {}
                if "decision" not in answer:
                    continue  # not loaded whole: an evaluation would push it again
                assert answer["revision"] == answer["pinned"] == judged.revision, (method, path)
                rules = {f["rule"] for f in answer["decision"]["deny"]}
                assert rules == (set() if judged is bundle else B_RULES), (method, path, rules)
                checked.append(f"{method} {path}")

        assert decide(one, bundle, doc).allow  # pushes A
        opa.before_write = look
        assert {v.rule for v in decide(two, b, doc).deny} == B_RULES  # pushes B, removes A
        assert decide(one, bundle, doc).allow  # A again, B removed
        deletes = [p for m, p, _ in opa.requests if m == "DELETE"]
    assert any(p.endswith("/answer") for p in deletes) and len(checked) > 30


def test_a_half_removed_revision_is_pushed_again_not_answered(bundle: PolicyBundle) -> None:
    """OPA itself keeps a revision whole: while its answer module stands, deleting any of its modules is
    refused (the answer calls a function each of them defines); a query that finds the answer without
    its data (removed in between) pushes the revision again and judges with it."""
    with OpaStandIn() as opa:
        engine = OpaEngine(opa.url)
        assert decide(engine, bundle, CASES["clean"]()).allow
        key = engine.layout(bundle).key
        with pytest.raises(Exception, match="undefined function"):
            opa.delete_policy(f"promoter/{key}/kubernetes/images.rego")
        opa.delete_data(["promoter_rev", key])  # as another worker's removal does, after the answer
        assert opa.query(["promoter_answer", key, "decision"], CASES["latest"]()) is None  # no data, no decision
        decision = decide(engine, bundle, CASES["latest"]())
    assert "kubernetes.images.deny_unpinned_image" in {v.rule for v in decision.deny}


def test_old_revisions_are_removed_whole(bundle: PolicyBundle) -> None:
    with OpaStandIn() as opa:
        engine = OpaEngine(opa.url, keep=1)
        revisions = [bundle, revision_b(bundle)]
        keys = [engine.layout(r).key for r in revisions]
        for r in revisions:
            decide(engine, r, CASES["clean"]())
        assert sorted(opa.query(["promoter_revisions"])) == keys[1:]
        assert not [i for i in opa.policies if keys[0] in i] and keys[0] not in opa.data["promoter_rev"]
        assert {i.split("/")[1] for i in opa.policies} == set(keys[1:])


def test_another_workers_revision_stays_until_it_is_stale(bundle: PolicyBundle) -> None:
    """Each worker pushes its own copy, and removes another's only once that one has gone unused for
    `stale_s` (its worker marks it used as it evaluates). (Its own beyond `keep`: above.)"""
    b = revision_b(bundle)
    with OpaStandIn() as opa:
        engine, other = OpaEngine(opa.url), OpaEngine(opa.url)
        assert decide(other, bundle, CASES["clean"]()).allow
        theirs = other.layout(bundle).key
        decide(engine, b, CASES["clean"]())
        assert sorted(opa.query(["promoter_revisions"])) == sorted([theirs, engine.layout(b).key])
        opa.put_data(["promoter_revisions", theirs, "used_at"], 0)  # unused since 1970
        assert decide(engine, bundle, CASES["clean"]()).allow
        mine = {engine.layout(bundle).key, engine.layout(b).key}
        assert set(opa.query(["promoter_revisions"])) == mine == {i.split("/")[1] for i in opa.policies}


# ---------------------------------------------------------------------- no one else's module in the namespace

PLANTED = """package {package}

import rego.v1

# a second definition, which does not conflict with the repository's (undefined for these findings):
# every finding of a promotion gate is excepted
{head}live_exception(f) := "zz" if f.concern == "promotion"
"""

GATES = ("missing-approvals-at-merge", "skipped-staging")


def first_layout_key(bundle: PolicyBundle) -> str:
    """The key the first layout gave a revision: a hash of its name, files and data, which anyone could
    compute from the trusted commit and its files (how the review planted a module ahead of the push)."""
    digest = hashlib.sha256(f"promoter-opa-push/1\0{bundle.commit or bundle.revision}\0".encode())
    for path, text in sorted(bundle.policies().items()):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    digest.update(json.dumps(bundle.full_data(), sort_keys=True, default=str).encode())
    return "r" + digest.hexdigest()[:20]


def test_a_module_planted_in_the_namespace_never_makes_a_gate_allow(bundle: PolicyBundle) -> None:
    """OPA merges every module of a package, so a module in a revision's namespace takes part in its
    decision: here a second `live_exception` that excepts every finding of the promotion gates. Planted
    before the first push, under the key the first layout computed from the commit and its files, it
    names no namespace of this worker (the key is a MAC under the worker's secret) and is named in a
    denial. Planted after the push, under the key read from the server's listing, it does inject (asked
    directly, the answer allows), and the listing the worker reads after its query finds it: a denial
    naming it. A module of this worker's changed on the server is a denial naming it too."""
    expected = {case: {v.rule for v in decide(EmbeddedEngine(), bundle, CASES[case]()).deny} for case in GATES}
    assert all(expected.values())

    def denied_naming(engine: OpaEngine, planted: str) -> None:
        for case in GATES:
            decision = decide(engine, bundle, CASES[case]())
            assert not decision.allow and decision.revision == bundle.revision
            [v] = decision.deny
            assert v.rule == "promoter.engine_error" and repr(planted) in v.message, v.message

    with OpaStandIn() as opa:
        engine = OpaEngine(opa.url)
        guessed = first_layout_key(bundle)
        # before the first push: laid out as a worker's own (its id names the key), it is another namespace
        # than this worker's, and never judges; under any other id, promoter's roots hold a foreign module
        opa.put_policy(
            f"promoter/{guessed}/x.rego", PLANTED.format(package=f"promoter_rev.{guessed}.promoter", head="")
        )
        for case in GATES:
            assert {v.rule for v in decide(engine, bundle, CASES[case]()).deny} == expected[case]
        [key] = {i.split("/")[1] for i in opa.policies if i.startswith("promoter/")} - {guessed}
        assert key != guessed
        opa.put_policy("planted/early.rego", PLANTED.format(package=f"promoter_rev.{guessed}.promoter", head=""))
        denied_naming(engine, "planted/early.rego")
        opa.delete_policy("planted/early.rego")

        # after the push, with the key as the server's listing shows it to anyone who may read it
        for planted, package, head in [
            ("planted/late.rego", f"promoter_rev.{key}.promoter", ""),
            ("planted/bracketed.rego", f'promoter_rev["{key}"]["promoter"]', ""),  # the same package
            ("planted/parent.rego", "promoter_rev", f"{key}.promoter."),  # a rule head reaching into it
            (f"promoter/{key}/promoter/extra.rego", f"promoter_rev.{key}.promoter", ""),  # among its ids
        ]:
            opa.put_policy(planted, PLANTED.format(package=package, head=head))
            for case in GATES:
                assert opa.query(["promoter_answer", key, "decision"], CASES[case]())["allow"], (planted, case)
            denied_naming(engine, planted)
            opa.delete_policy(planted)

        # one of the worker's own modules, rewritten on the server (its pin kept, so OPA takes it)
        mine = f"promoter/{key}/promoter/decision.rego"
        opa.put_policy(mine, opa.policies[mine] + '\nlive_exception(f) := "zz" if f.concern == "promotion"\n')
        assert opa.query(["promoter_answer", key, "decision"], CASES["skipped-staging"]())["allow"]
        decision = decide(engine, bundle, CASES["skipped-staging"]())
        assert not decision.allow and f"module {mine} (policies/promoter/decision.rego) changed" in (
            decision.deny[0].message
        )


def test_the_package_of_a_listed_module_is_read_as_opa_reads_it() -> None:
    assert package_path('# c\n\npackage a.b["c"][`d`]["\\u0065"]\n\nx := 1\n') == ["a", "b", "c", "d", "e"]
    assert package_path("package a.b\n.c := 1\n") == ["a", "b"]  # a ref has no blank space in it
    assert package_path("x := 1\n") is None and package_path("package a[x]\n") is None
    assert package_path('package a[ "b" ] # c\n') == ["a", "b"]
    ast = {"package": {"path": [{"type": "var", "value": "data"}, {"type": "string", "value": "promoter_rev"}]}}
    assert foreign({"id": "x", "raw": "package kubernetes.x\n", "ast": ast}, "rk") is not None  # the AST wins
    assert foreign({"id": "x", "raw": "package kubernetes.x\n"}, "rk") is None
    assert foreign({"id": "x", "raw": "not rego"}, "rk") == "its package cannot be read, so it may be anywhere"
    assert foreign({"id": "promoter/r2/a", "raw": "package promoter_rev.r2.a\n"}, "rk") is None  # another worker's
    assert foreign({"id": "promoter/r2/a", "raw": "package promoter_rev.rk.a\n"}, "rk") is not None
    assert foreign({"id": "promoter/r2/a", "raw": "package promoter_answer.r3\n"}, "rk") is not None
    assert foreign({"id": "promoter/r2/a", "raw": "package promoter_revisions\n"}, "rk") is not None


def test_a_builtin_error_is_a_denial_not_an_allow(bundle: PolicyBundle) -> None:
    """Under strict-builtin-errors a builtin's error is an error, and so a denial naming it; OPA's default
    would leave the rule undefined, and the change allowed."""
    ports = (
        "package kubernetes.ports\n\nimport rego.v1\n\n"
        'deny_port contains {"msg": "port out of range"} if {\n'
        "\tsome o in input.objects\n\tto_number(o.metadata.name) > 65535\n}\n"
    )
    broken = dataclasses.replace(bundle, modules={**bundle.modules, "kubernetes/ports.rego": ports})
    with OpaStandIn() as opa:
        decision = decide(OpaEngine(opa.url), broken, CASES["clean"]())
        queries = [p for m, p, _ in opa.requests if m == "POST"]
    assert not decision.allow
    [v] = decision.deny
    assert v.rule == "promoter.engine_error"
    assert "policies/kubernetes/ports.rego:7: eval_builtin_error: to_number" in v.message, v.message
    assert all(q.endswith("?strict-builtin-errors=true") for q in queries)


def test_a_revision_opa_did_not_push_is_a_denial_naming_both(bundle: PolicyBundle) -> None:
    with OpaStandIn() as opa:
        engine = OpaEngine(opa.url)
        assert decide(engine, bundle, CASES["clean"]()).allow
        key = engine.layout(bundle).key
        opa.put_data(["promoter_rev", key, "promoter_revision"], "f0rged")
        decision = decide(engine, bundle, CASES["clean"]())
    assert not decision.allow
    assert f"answered with revision f0rged (answer module {bundle.revision}), not the pushed {bundle.revision}" in (
        decision.deny[0].message
    )


def test_a_module_opa_refuses_is_a_denial_naming_the_file(bundle: PolicyBundle) -> None:
    broken = dataclasses.replace(
        bundle,
        modules={**bundle.modules, "kubernetes/broken.rego": "package kubernetes.broken\n\ndeny_x contains msg if {\n"},
    )
    with OpaStandIn() as opa:
        decision = decide(OpaEngine(opa.url), broken, CASES["clean"]())
    assert not decision.allow
    assert "refused policies/kubernetes/broken.rego" in decision.deny[0].message, decision.deny[0].message


def test_the_token_goes_on_every_request_and_into_no_message(bundle: PolicyBundle) -> None:
    with OpaStandIn(token="s3cret-token") as opa:
        assert decide(OpaEngine(opa.url, token="s3cret-token"), bundle, CASES["clean"]()).allow
        assert set(opa.authorization) == {"Bearer s3cret-token"} and len(opa.authorization) > 10
        refused = decide(OpaEngine(opa.url, token="wrong-token"), revision_b(bundle), CASES["clean"]())
    assert not refused.allow and "401" in refused.deny[0].message
    assert "token" not in refused.deny[0].message.replace("invalid token", "")


def test_namespaced_moves_packages_and_data_references_only() -> None:
    source = (
        "# data.x in a comment\npackage a.b\n\nimport data.lib.k8s\nimport rego.v1\n\n"
        'x := data.y if input.data == "data.z"\n'
        "w := [k | some k, _ in data[input.k]]\n"
        "r := `data.raw`\n"
        'v := {"data": data}\n'
    )
    assert namespaced(source, "promoter_rev.r1") == (
        "# data.x in a comment\npackage promoter_rev.r1.a.b\n\nimport data.promoter_rev.r1.lib.k8s\nimport rego.v1\n\n"
        'x := data.promoter_rev.r1.y if input.data == "data.z"\n'
        "w := [k | some k, _ in data.promoter_rev.r1[input.k]]\n"
        "r := `data.raw`\n"
        'v := {"data": data.promoter_rev.r1}\n'
    )


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


def test_the_namespaced_library_passes_every_rego_test_under_opa(bundle: PolicyBundle) -> None:
    """The rewrite keeps the library's meaning: moved into a revision's namespace, tests included, every
    Rego unit test (`with data.x as ...` overrides too) still passes under OPA's own engine."""
    from opa_bindings import OpaEngine as GoEngine
    from opa_bindings import OpaError

    prefix = "promoter_rev.rtest"
    names = discover(bundle)
    engine = GoEngine()
    for path, text in sorted(bundle.modules.items()):
        engine.add_policy(path, namespaced(text, prefix))
    # one query for them all (each query compiles the library): the tests that are true
    engine.add_policy(
        "all_tests.rego",
        "package all_tests\n\nimport rego.v1\n\n"
        + "".join(f'passed contains "{n}" if data.{prefix}.{n.removeprefix("data.")} == true\n' for n in names),
    )
    engine.add_data({"promoter_rev": {"rtest": bundle.full_data()}})
    try:
        failed = sorted(set(names) - set(engine.eval_document("all_tests.passed")))
    except OpaError as e:
        failed = [str(e)]
    engine.close()
    assert len(names) > 100 and failed == []
