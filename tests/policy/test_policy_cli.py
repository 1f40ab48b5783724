"""`promoter policy test | check | eval` as CI and pre-commit run them (policy test on both engines,
with their counts, printing only failures unless -v; a test passing on one engine only fails; a
test erring names its error; the hooks of .pre-commit-hooks.yaml run on changed files, each app
folder checked with its environment's rules), check's output (a table on a terminal, one linter
line per finding with the manifest's path and line otherwise or with --format=line, nothing when
clean; --json and eval carry the decision's fields; a deny is exit 1 for both), an exception that
matches nothing warned of at its file and line, and rendering: plain YAML folders (with each object's
file and line) and kustomizations (through kubectl kustomize, which the CI machine has).

The whole library's Rego tests run once here, on both engines (test_policy_test_passes_every_rego_test:
OPA itself is the judge of our Rego; about 4 s). The tests of how `policy test` behaves (a broken test
fails the run, a test that errors is named, a disagreement between engines fails the test, the
pre-commit hook runs the tests of its folder) run it on SLICE, a policy with its tests and what they
import: the same command and engines on a smaller library."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from promoter.errors import BadInput
from promoter.policy import PolicyBundle
from promoter.policy.testing import discover
from promoter.render import render_dir, render_located
from tests.support.gitops import ROOT

# a part of policies/ that compiles on its own: one policy, its tests, and what they import
SLICE = ("data.yaml", "lib/k8s.rego", "lib/fixtures_test.rego", "kubernetes/images.rego", "kubernetes/images_test.rego")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for folder in ("environments", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """A repository whose policies/ is SLICE of ours (for `policy test` on a library of a few tests)."""
    for name in SLICE:
        (tmp_path / "slice" / "policies" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "policies" / name, tmp_path / "slice" / "policies" / name)
    return tmp_path / "slice"


def slice_tests(repo: Path) -> list[str]:
    names = discover(PolicyBundle.from_dir(repo / "policies"))
    assert len(names) >= 10 and "data.kubernetes.images_test.test_deny_latest_tag" in names
    return names


def test_policy_test_passes_every_rego_test() -> None:
    """The one run of the whole library's Rego tests, on each engine (both are installed here)."""
    r = run("policy", "test", "--json")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    report = json.loads(r.stdout)
    assert report["failed"] == 0 and report["passed"] >= 90
    assert report["passed"] == len(discover(PolicyBundle.from_dir(ROOT / "policies")))  # every test, none missed
    assert report["engines"] == {
        "embedded": {"passed": report["passed"], "failed": 0},
        "opa-go": {"passed": report["passed"], "failed": 0},
    }  # OPA itself ran them
    names = {t["name"] for t in report["tests"]}
    assert "data.kubernetes.images_test.test_deny_latest_tag" in names
    assert "data.promotion.approvals_test.test_deny_author_approving_prod" in names


def test_a_broken_rego_test_fails_the_run(small_repo: Path) -> None:
    n = len(slice_tests(small_repo))
    test = small_repo / "policies" / "kubernetes" / "images_test.rego"
    broken = test.read_text().replace('contains(v.msg, ":latest")', 'contains(v.msg, ":stable")')
    assert broken != test.read_text()
    test.write_text(broken)
    r = run("policy", "test", "--repo", str(small_repo))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL data.kubernetes.images_test.test_deny_latest_tag" in r.stdout
    assert f"embedded: {n - 1} of {n} passed" in r.stdout and f"opa-go: {n - 1} of {n} passed" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == f"{n - 1} passed, 1 failed"
    assert "PASS" not in r.stdout  # only the failure, and the counts
    assert r.stdout.count("\n") == 4, r.stdout
    verbose = run("policy", "test", "-v", "--repo", str(small_repo))
    assert verbose.returncode == 1 and verbose.stdout.count("PASS data.") == n - 1


def test_a_test_that_errors_is_named_with_its_error(small_repo: Path) -> None:
    """One query runs many tests at once on OPA's Go engine; a test that errors (here a conflict,
    which ends that whole query) still fails alone, named with the engine's error, on both engines."""
    n = len(slice_tests(small_repo))
    test = small_repo / "policies" / "kubernetes" / "images_test.rego"
    test.write_text(test.read_text() + "\nclash := 1\n\nclash := 2 if true\n\ntest_clash if clash == 1\n")
    r = run("policy", "test", "--repo", str(small_repo), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] == n and report["failed"] == 1
    [failed] = [t for t in report["tests"] if not t["passed"]]
    assert failed["name"] == "data.kubernetes.images_test.test_clash"
    assert failed["engines"] == {"embedded": False, "opa-go": False}
    assert "embedded: " in failed["error"] and "opa-go: " in failed["error"]


def test_policy_test_runs_each_folder_with_its_own_tests_only() -> None:
    """A folder's tests run with the whole library and the test modules they refer to, never another
    folder's tests (which a test of the decision would evaluate whole): the same verdicts, faster."""
    from promoter.policy.testing import groups

    bundle = PolicyBundle.from_dir(ROOT / "policies")
    parts = {names[0].split(".")[1]: (part, names) for part, names in groups(bundle)}
    assert sorted(n for _, names in parts.values() for n in names) == sorted(discover(bundle))
    decision_part, _ = parts["promoter_test"]
    tests = {p for p in decision_part.modules if p.endswith("_test.rego")}
    assert "promoter/decision_test.rego" in tests and "lib/fixtures_test.rego" in tests  # imported by it
    assert not any(p.startswith("kubernetes/") for p in tests)
    assert set(bundle.policies()) <= set(decision_part.modules)


def test_policy_check_allows_the_sample(repo: Path) -> None:
    r = run("policy", "check", "--env", "prod", "--app", "demo", "--repo", str(repo), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["allow"] is True


def test_policy_check_denies_with_exit_1_and_a_table(repo: Path) -> None:
    deployment = repo / "environments" / "prod" / "demo" / "deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace("demo:1.0.0", "demo:latest").replace("replicas: 2", "replicas: 1")
    )
    r = run("policy", "check", "--format=table", "--env", "prod", "--repo", str(repo), str(deployment))
    assert r.returncode == 1
    assert "denied" in r.stdout and "kubernetes.images.deny_unpinned_image" in r.stdout
    assert "kubernetes.replicas.deny_too_few_replicas" in r.stdout
    data = json.loads(run("policy", "check", "--env", "prod", "--repo", str(repo), "--json", str(deployment)).stdout)
    assert {v["rule"] for v in data["deny"]} == {
        "kubernetes.images.deny_unpinned_image",
        "kubernetes.replicas.deny_too_few_replicas",
    }
    # the fields docs/policies.md lists for promoter's decision, and no others
    assert set(data) == {"allow", "deny", "warn", "excepted", "engine", "revision", "approvers", "valid_until"}
    assert set(data["deny"][0]) == {"rule", "message", "severity", "object", "path", "remediation", "exception"}
    revision = PolicyBundle.from_dir(repo / "policies").revision
    allowed = run("policy", "check", "--format=table", "--env", "staging", "--app", "demo", "--repo", str(repo))
    assert allowed.returncode == 0 and allowed.stdout.strip().splitlines() == [
        f"3 object(s) of demo in staging: allowed (embedded, revision {revision})"
    ]  # on allow, one line, no empty table


def test_policy_check_prints_a_line_per_finding_as_linters_do(repo: Path) -> None:
    """Without a terminal (pre-commit, CI) or with --format=line: PATH:LINE: LEVEL[SEVERITY] RULE OBJECT:
    MESSAGE (fix: REMEDIATION), the path and line of the manifest the finding is about, never cut at
    80 columns; nothing at all when everything is clean."""
    folder = repo / "environments" / "prod" / "demo"
    (folder / "deployment.yaml").write_text(
        "# the web tier\n---\n" + (folder / "deployment.yaml").read_text().replace("demo:1.0.0", "demo:latest")
    )
    (folder / "cache.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cache}\ndata: {a: b}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cache-password\n  namespace: apps\nstringData: {pw: x}\n"
    )
    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run(
        [sys.executable, "-m", "promoter", "policy", "check", "environments/prod/demo/deployment.yaml"],
        cwd=repo, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert (
        "environments/prod/demo/deployment.yaml:3: error[high] kubernetes.images.deny_unpinned_image "
        "Deployment/-/demo: container web uses the tag :latest (ghcr.io/promoter-dev/demo:latest) "
        "(fix: Pin the image to a version tag (e.g. :1.4.2) or a digest (@sha256:...).)"
    ) in lines, r.stdout
    [secret] = [ln for ln in lines if "kubernetes.secrets.deny_literal_secret" in ln]
    assert secret.startswith("environments/prod/demo/cache.yaml:6: error[critical] ")
    assert " Secret/apps/cache-password: " in secret and "(fix: " in secret
    assert all(
        re.match(r"^environments/prod/demo/\S+\.yaml:\d+: (error|warning|note)\[\w+\] \S+ \S+: ", ln) for ln in lines
    )
    same = run("policy", "check", "--format=line", "--env", "prod", "--app", "demo", cwd=repo)
    assert same.returncode == 1 and same.stdout == r.stdout
    clean = run("policy", "check", "--env", "staging", "--app", "demo", cwd=repo)
    assert clean.returncode == 0 and clean.stdout == "", clean.stdout


def test_an_exception_that_matches_nothing_is_a_warning_at_its_line(repo: Path) -> None:
    """The exception stays valid, the check passes, and the warning names the file and the ID's line."""
    expires = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    (repo / "policies" / "exceptions").mkdir()
    (repo / "policies" / "exceptions" / "demo.yaml").write_text(
        f"# why we have these\nstale:\n  rule: kubernetes.images.deny_unpinned_image\n  app: demo\n"
        f"  env: staging\n  reason: the debug build\n  owner: alice\n  expires: {expires}\n"
    )
    r = run("policy", "check", "--format=line", "--env", "staging", "--app", "demo", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "policies/exceptions/demo.yaml:2: warning[low] promoter.exception_unmatched -: exception stale "
        "(policies/exceptions/demo.yaml) matches no finding of demo in staging (rule "
        "kubernetes.images.deny_unpinned_image) (fix: Make its rule, object (Kind/namespace/name) and path name a "
        "finding that promoter policy check reports, or remove it: nothing needs it.)"
    ]
    data = json.loads(run("policy", "check", "--json", "--env", "staging", "--app", "demo", cwd=repo).stdout)
    assert data["allow"] and [v["rule"] for v in data["warn"]] == ["promoter.exception_unmatched"]
    # in prod (another environment) it is no concern of anyone's
    assert run("policy", "check", "--env", "prod", "--app", "demo", cwd=repo).stdout == ""


def test_policy_check_runs_the_schema_gate(repo: Path) -> None:
    """What pre-commit catches before anyone reviews: a typo at its path, a custom resource checked
    against the CRD another folder of the environment holds, and one no CRD describes, said."""
    from tests.policy.test_schemas import CRD

    folder = repo / "environments" / "prod"
    deployment = folder / "demo" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("replicas: 2", "replicsa: 2"))
    (folder / "widgets").mkdir()
    (folder / "widgets" / "crd.yaml").write_text(yaml.safe_dump(CRD))
    (folder / "demo" / "widget.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: many}\n"
        "---\napiVersion: example.org/v2\nkind: Gadget\nmetadata: {name: g}\n"
    )
    r = run("policy", "check", "--env", "prod", "--app", "demo", "--repo", str(repo), "--json")
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    denied = {(v["rule"], v["object"], v["path"]) for v in data["deny"] if v["rule"].startswith("schemas.")}
    assert denied == {
        ("schemas.kubernetes.deny_invalid", "Deployment/-/demo", "spec.replicsa"),
        ("schemas.kubernetes.deny_invalid", "Widget/-/w", "spec.size"),
        ("schemas.kubernetes.deny_not_validated", "Gadget/-/g", ""),  # no CRD anywhere it looked: fail closed
    }
    [unchecked] = [v for v in data["deny"] if v["rule"] == "schemas.kubernetes.deny_not_validated"]
    assert "(the CLI does not read the cluster)" in unchecked["message"]
    table = run("policy", "check", "--env", "prod", "--repo", str(repo), str(deployment))
    assert table.returncode == 1 and "spec.replicsa" in table.stdout and "schemas.kubernetes" in table.stdout
    environment = folder / "environment.yaml"
    environment.write_text(environment.read_text().replace('version: "1.31"', 'version: "1.99"'))
    r = run("policy", "check", "--env", "prod", "--app", "demo", "--repo", str(repo))
    assert r.returncode == 2 and "cluster.version 1.99: the schemas here cover Kubernetes 1.25 to" in r.stderr


def test_policy_check_bad_input_is_exit_2(repo: Path) -> None:
    r = run("policy", "check", "--env", "nowhere", "--app", "demo", "--repo", str(repo))
    assert r.returncode == 2 and "unknown environment 'nowhere'; environments: dev, prod, staging" in r.stderr
    r = run("policy", "check", "--format=lines", "--env", "prod", "--app", "demo", "--repo", str(repo))
    assert r.returncode == 2 and "--format 'lines': choose table or line (or --json)" in r.stderr
    broken = repo / "environments" / "prod" / "demo" / "broken.yaml"
    broken.write_text("kind: [\n")
    r = run("policy", "check", "--env", "prod", "--app", "demo", "--repo", str(repo))
    assert r.returncode == 2 and "broken.yaml: line 2: invalid manifest" in r.stderr


def test_policy_eval(tmp_path: Path) -> None:
    doc = {
        "environment": {
            "name": "qa",
            "policy": {"enforce": ["kubernetes"], "warn_only": []},
            "approval": {"required": 0, "approvers": []},
        },
        "promotion": {"phase": "check", "environments": [], "history": []},
        "objects": [
            {
                "kind": "Secret",
                "metadata": {"name": "db", "labels": {"app.kubernetes.io/name": "x", "app.kubernetes.io/part-of": "x"}},
                "data": {"pw": "aHVudGVyMg=="},
            }
        ],
        "approvals": [],
    }
    (tmp_path / "input.json").write_text(json.dumps(doc))
    r = run("policy", "eval", "--input", str(tmp_path / "input.json"))
    assert r.returncode == 1  # a deny is exit 1, as for policy check
    decision = json.loads(r.stdout)
    assert [v["rule"] for v in decision["deny"]] == ["kubernetes.secrets.deny_literal_secret"]
    assert set(decision) == {"allow", "deny", "warn", "excepted", "engine", "revision", "approvers", "valid_until"}
    doc["objects"] = []
    (tmp_path / "input.json").write_text(json.dumps(doc))
    quiet = run("policy", "eval", "--input", str(tmp_path / "input.json"))
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    assert run("policy", "eval", "--input", str(tmp_path / "missing.json")).returncode == 2
    del doc["environment"]["policy"]  # only the promotion rules judge it: allowed, and said so
    (tmp_path / "input.json").write_text(json.dumps(doc))
    unjudged = run("policy", "eval", "--input", str(tmp_path / "input.json"))
    assert unjudged.returncode == 0
    assert "names no enforce or warn_only concern" in unjudged.stderr


def test_render_plain_folder() -> None:
    kinds = sorted(o["kind"] for o in render_dir(ROOT / "environments" / "prod" / "demo"))
    assert kinds == ["ConfigMap", "Deployment", "Service"]


def test_render_says_where_each_object_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "# comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: one, namespace: apps}\n"
        "---\n\napiVersion: v1\nkind: List\nmetadata: {}\n"
        "items:\n  - {apiVersion: v1, kind: Service, metadata: {name: two}}\n"
        "  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: three}\n"
    )
    (tmp_path / "b.json").write_text('{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "four"}}')
    objects, where = render_located(tmp_path)
    assert len(objects) == 4
    assert where == {
        "ConfigMap/apps/one": (str(tmp_path / "a.yaml"), 3),
        "Service/-/two": (str(tmp_path / "a.yaml"), 12),
        "ConfigMap/-/three": (str(tmp_path / "a.yaml"), 13),
        "Secret/-/four": (str(tmp_path / "b.json"), 1),
    }
    assert render_located(tmp_path / "a.yaml")[1]["ConfigMap/-/three"] == (str(tmp_path / "a.yaml"), 13)


@pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None, reason="needs kubectl or kustomize on PATH"
)
def test_render_kustomize_overlay_reaching_a_base(tmp_path: Path) -> None:
    base, overlay = tmp_path / "base", tmp_path / "overlay"
    base.mkdir()
    overlay.mkdir()
    shutil.copy(ROOT / "environments" / "prod" / "demo" / "deployment.yaml", base / "deployment.yaml")
    (base / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    (overlay / "kustomization.yaml").write_text(
        "resources: [../base]\nnamespace: shop\nimages:\n  - name: ghcr.io/promoter-dev/demo\n    newTag: 9.9.9\n"
    )
    [deployment] = render_dir(overlay)
    assert deployment["metadata"]["namespace"] == "shop"
    # where each is written: the folder's own file, or (renamed by the overlay) its kustomization
    assert render_located(base)[1] == {"Deployment/-/demo": (str(base / "deployment.yaml"), 1)}
    assert render_located(overlay)[1] == {"Deployment/shop/demo": (str(overlay / "kustomization.yaml"), 1)}
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/promoter-dev/demo:9.9.9"
    (overlay / "kustomization.yaml").write_text("resources: [../missing]\n")
    with pytest.raises(BadInput, match="kustomize failed"):
        render_dir(overlay)


@pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None, reason="needs kubectl or kustomize on PATH"
)
def test_policy_activity_renders_a_kustomized_change(origin_factory: Any, tmp_path: Path) -> None:
    """The worker's path: the change is exported with main's tree, so an overlay reaches its base."""
    from temporalio.testing import ActivityEnvironment

    from activities.policy import PolicyActivities
    from promoter.gitrepo import GitClone
    from promoter.models import EnvironmentConfig, PolicyCheckInput
    from promoter.policy.embedded import EmbeddedEngine

    origin = origin_factory()
    base = (ROOT / "environments" / "dev" / "demo" / "deployment.yaml").read_text()
    sha = origin.commit(
        {
            "bases/demo/deployment.yaml": base,
            "bases/demo/kustomization.yaml": "resources: [deployment.yaml]\n",
            "environments/dev/demo/kustomization.yaml": "resources: [../../../bases/demo]\nnamespace: shop\n",
            "environments/dev/demo/deployment.yaml": None,
        },
        "kustomize dev",
    )
    clone = GitClone(origin.url, tmp_path / "cache")
    activities = PolicyActivities(clone, EmbeddedEngine())
    env = EnvironmentConfig(name="staging", order=2, local_files=["configmap.yaml"])
    from datetime import UTC, datetime

    req = PolicyCheckInput(
        promotion_id="p",
        app="demo",
        commit=sha,
        author="dana",
        source_env="dev",
        target_env="staging",
        started_at=datetime.now(UTC),
        environment=env,
        environments=["dev", "staging"],
        phase="check",
    )
    objects = activities.objects(req)
    # staging keeps its own configmap.yaml (a local file, not listed by the kustomization)
    assert [(o["kind"], o["metadata"].get("namespace")) for o in objects] == [("Deployment", "shop")]
    decision = ActivityEnvironment().run(activities.check_policy, req)
    assert decision.allow, decision.deny


def test_a_test_that_passes_on_one_engine_only_fails(small_repo: Path) -> None:
    """The combination, with a second engine that disagrees on one test (the real engines agree)."""
    from promoter.policy.embedded import EmbeddedEngine
    from promoter.policy.testing import run_tests

    class Disagreeing:
        name = "other"

        def query(self, bundle: Any, rule: str, input_doc: Any, with_tests: bool = False) -> Any:
            return rule != "data.kubernetes.images_test.test_deny_latest_tag"

    names = slice_tests(small_repo)
    embedded = EmbeddedEngine()
    try:
        results = {
            r.name: r for r in run_tests(PolicyBundle.from_dir(small_repo / "policies"), [embedded, Disagreeing()])
        }
    finally:
        embedded.close()
    assert sorted(results) == sorted(names)
    odd = results["data.kubernetes.images_test.test_deny_latest_tag"]
    assert not odd.passed and odd.engines == {"embedded": True, "other": False}
    assert odd.error == "other: got False"
    assert sum(not r.passed for r in results.values()) == 1


def test_the_pre_commit_hooks_check_what_a_commit_touches(repo: Path, small_repo: Path) -> None:
    import re

    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    check, test = hooks["promoter-policy-check"], hooks["promoter-policy-test"]
    changed = [
        "environments/prod/demo/deployment.yaml",
        "environments/staging/environment.yaml",
        "policies/data.yaml",
        "README.md",
    ]
    staged = [f for f in changed if re.search(check["files"], f)]
    assert staged == changed[:2]
    entry = check["entry"].split()
    assert entry[0] == "promoter"
    r = run(*entry[1:], *staged, cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""  # no terminal: nothing to say when all is clean
    deployment = repo / "environments" / "prod" / "demo" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("demo:1.0.0", "demo:latest"))
    r = run(*entry[1:], *staged, cwd=repo)
    assert r.returncode == 1 and r.stdout.startswith(
        "environments/prod/demo/deployment.yaml:1: error[high] kubernetes.images.deny_unpinned_image Deployment/-/demo:"
    ), r.stdout
    assert test["pass_filenames"] is False and re.search(test["files"], "policies/kubernetes/images.rego")
    # the test hook runs the Rego tests of the repository it is run in (SLICE's here, all of them)
    r = run(*test["entry"].split()[1:], cwd=small_repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"{len(slice_tests(small_repo))} passed, 0 failed"
    assert "PASS" not in r.stdout


def test_the_exception_docs_policies_md_shows_excepts_the_sample(repo: Path) -> None:
    """docs/policies.md's exception, as written (its expiry moved 30 days ahead, within
    max_exception_days), excepts the sample staging Deployment's :latest image: its object names the
    manifest without a namespace by staging's cluster.namespace, and its quoted reason keeps `#123`."""
    doc = (ROOT / "docs" / "policies.md").read_text()
    block = doc.split("**Exceptions with an expiry.**", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    (repo / "policies" / "exceptions").mkdir()
    (repo / "policies" / "exceptions" / "demo-debug.yaml").write_text(
        re.sub(r"expires: \S+", f"expires: {expires}", block)
    )
    deployment = repo / "environments" / "staging" / "demo" / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("demo:1.0.0", "demo:latest"))
    r = run("policy", "check", "--json", "--env", "staging", "--app", "demo", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["warn"] == [] and [v["rule"] for v in data["excepted"]] == ["kubernetes.images.deny_unpinned_image"]
    assert data["excepted"][0]["exception"].endswith("the debug build, until the fix of #123 lands")
