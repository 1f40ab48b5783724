"""No value leaks (issue 25): a distinctive secret is planted in each place a value could escape, and
everything promoter produces from it is searched for that secret, which must appear 0 times:
- a live Secret's data and an env var `DB_PASSWORD` changed by hand in the simulated cluster: the
  drift report (the workflow's result), its memo summary and what `promoter drift`/`status` print;
- a forge error quoting the token: the PR watcher's heartbeat details and its error;
- a manifest with `stringData.password: 1234567890123`: the schema findings, the policy denials and
  the PR body's policy section;
- a `Link` header naming another host: what that host receives (nothing at all).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge import ForgeActivities
from promoter import schemas, secrets
from promoter.cli import _difference
from promoter.cluster import HIDDEN, KubeCluster
from promoter.errors import BadInput
from promoter.forges.github import GitHubForge
from promoter.forges.http import ApiClient
from promoter.models import AppDrift, DriftReport, WatchInput
from promoter.policy import PolicyBundle, decide
from promoter.policy.embedded import EmbeddedEngine
from promoter.report import policy_lines
from promoter.sim.kube import KubeSim
from tests.support.loopback import send_json, serving
from tests.support.policy import POLICIES, demo_objects, make_input
from workflows.drift import summary

PLANTED = "s3cr3t-planted-7f4e2a9c"  # what must never show
TOKEN = "ghp_planted_token_5c1d8e0b7a"  # the forge token, quoted back by a hostile forge


def leaks(text: str, *secrets_: str) -> list[str]:
    """Each secret (raw, or base64 as a Secret's data holds it) that `text` contains."""
    forms = {s for secret in secrets_ for s in (secret, base64.b64encode(secret.encode()).decode())}
    return sorted(f for f in forms if f in text)


# ------------------------------------------------------------------ drift


def with_secrets() -> list[dict[str, Any]]:
    """The demo app with an env var `DB_PASSWORD` on its container and a Secret (as Git has them)."""
    objects = copy.deepcopy(demo_objects())
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "value": "from-git-placeholder"},
        {"name": "LOG_FORMAT", "value": "json"},
    ]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "demo-db", "namespace": "apps"},
        "data": {"password": base64.b64encode(b"from-git-placeholder").decode()},
    }
    return [*objects, secret]


def test_drift_names_where_a_secret_differs_never_its_value(sim: KubeSim, api: client.ApiClient) -> None:
    cluster = KubeCluster(api, "apps")
    objects = with_secrets()
    cluster.sync("demo", "promote-demo", objects)

    # someone edits the live objects by hand: the secret's data, the env var, and the replicas
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    planted = base64.b64encode(PLANTED.encode()).decode()
    core.patch_namespaced_secret("demo-db", "apps", {"data": {"password": planted}}, field_manager="kubectl-edit")
    apps.patch_namespaced_deployment(
        "demo",
        "apps",
        [
            {"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": PLANTED},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
        ],
        field_manager="kubectl-edit",
    )

    found = cluster.drift("demo", objects)
    by_path = {(d.object, d.path): d for d in found}
    # where it differs is named ...
    assert ("Secret/apps/demo-db", "data.password") in by_path
    assert ("Deployment/apps/demo", "spec.template.spec.containers") in by_path
    # ... and what people need stays shown
    replicas = by_path[("Deployment/apps/demo", "spec.replicas")]
    assert (replicas.git, replicas.live) == (2, 5)
    secret = by_path[("Secret/apps/demo-db", "data.password")]
    assert (secret.git, secret.live) == (HIDDEN, HIDDEN)
    [container] = by_path[("Deployment/apps/demo", "spec.template.spec.containers")].live
    assert container["image"].startswith("ghcr.io/") and container["env"][1] == {"name": "LOG_FORMAT", "value": "json"}
    assert container["env"][0] == {"name": "DB_PASSWORD", "value": HIDDEN}

    report = DriftReport(
        env="staging", revision="0" * 40, checked_at=datetime.now(UTC), apps=[AppDrift(app="demo", drifts=found)]
    )
    printed = [_difference(d.model_dump(mode="json")) for d in found]
    assert any(
        p.startswith("Secret/apps/demo-db data.password: differs from Git (secret values hidden)") for p in printed
    )
    produced = "\n".join([report.model_dump_json(), json.dumps(summary(report)), *printed])
    assert leaks(produced, PLANTED, "from-git-placeholder") == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASS", PLANTED),
        ("SMTP_PWD", PLANTED),
        ("AWS_CREDENTIALS", PLANTED),
        ("TLS_PRIVATE_KEY", PLANTED),
        ("SENTRY_DSN", PLANTED),
        ("DATABASE_URL", f"postgres://app:{PLANTED}@db:5432/app"),
    ],
)
def test_drift_masks_the_other_spellings_of_a_secret(name: str, value: str) -> None:
    """Names a secret goes by beyond PASSWORD/TOKEN/SECRET, and a URL that carries a password."""
    from promoter.cluster import masked

    env = [{"name": name, "value": value}, {"name": "LOG_FORMAT", "value": "json"}]
    shown = masked("Deployment", ("spec", "template", "spec", "containers"), [{"name": "web", "env": env}])
    assert leaks(json.dumps(shown), PLANTED) == [] and shown[0]["env"][1]["value"] == "json"


def test_a_kustomize_error_that_quotes_a_secret_literal_is_masked(tmp_path: Path) -> None:
    """kustomize quotes a bad secretGenerator literal whole in its error; the denial must not."""
    from promoter.render import kustomize

    (tmp_path / "kustomization.yaml").write_text(
        f'secretGenerator:\n- name: db\n  literals:\n  - "DB_PASSWORD: {PLANTED}"\n'
    )
    with pytest.raises(BadInput) as failed:
        kustomize(tmp_path, "environments/dev/demo")
    assert "kustomize failed" in str(failed.value) and "DB_PASSWORD" in str(failed.value)
    assert leaks(str(failed.value), PLANTED) == []


def test_a_memo_from_before_is_masked_when_printed() -> None:
    """`promoter status` prints the memos of earlier checks, which may predate the masking."""
    old = {"object": "Secret/apps/demo-db", "path": "data", "git": {"password": "Zm9v"}, "live": {"password": PLANTED}}
    assert leaks(_difference(old), PLANTED) == []
    env = {
        "object": "Deployment/apps/demo",
        "path": "spec.template.spec.containers",
        "git": [{"name": "web", "env": [{"name": "API_KEY", "value": "a"}]}],
        "live": [{"name": "web", "env": [{"name": "API_KEY", "value": PLANTED}]}],
    }
    assert leaks(_difference(env), PLANTED) == [] and "differs from Git" in _difference(env)


# ------------------------------------------------------------------ the PR watcher


@dataclass
class HostileForge:
    """A stand-in forge whose every answer is an error quoting the request's Authorization header (as
    a careless proxy or forge does): `status` 502 (retried, then polled again) or 401 (permanent)."""

    status: int = 502
    seen: list[str] = field(default_factory=list)

    def __enter__(self) -> HostileForge:
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                forge.seen.append(self.path)
                body = json.dumps({"message": f"bad gateway for {self.headers.get('Authorization')}"}).encode()
                send_json(self, forge.status, body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.served = ExitStack()
        self.served.enter_context(serving(self.server))
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


class Enough(Exception):
    """Ends the (endless) watch once it has heartbeated its error."""


def test_the_watchers_heartbeats_and_errors_never_quote_the_token() -> None:
    secrets.register(TOKEN)  # as the worker does with PROMOTER_FORGE_TOKEN at start
    with HostileForge() as hostile:
        api = ApiClient("GitHub", hostile.url, f"Bearer {TOKEN}", attempts=2, sleep=lambda _: None)
        watcher = ForgeActivities(GitHubForge("acme/gitops", TOKEN, client=api), repo=None, poll_seconds=0)  # type: ignore[arg-type]
        details: list[str] = []

        def heartbeat(*args: Any) -> None:
            details.extend(str(a) for a in args)
            if any("forge error" in d for d in details):
                raise Enough("seen")

        env = ActivityEnvironment()
        env.on_heartbeat = heartbeat
        with pytest.raises(ApplicationError) as ended:
            asyncio.run(env.run(watcher.watch_pull_request, WatchInput(number=1, head_sha="abc")))
        assert hostile.seen and any("forge error, polling again" in d for d in details)
        assert "GitHub GET /repos/acme/gitops/pulls/1 answered 502" in details[-1]

        hostile.status = 401  # a permanent error ends the watch: its message is masked as well
        with pytest.raises(ApplicationError) as refused:
            asyncio.run(ActivityEnvironment().run(watcher.watch_pull_request, WatchInput(number=1, head_sha="abc")))
        assert "answered 401" in str(refused.value)
    assert leaks("\n".join([*details, str(ended.value), str(refused.value)]), TOKEN) == []


# ------------------------------------------------------------------ schema findings


def test_schema_findings_state_types_never_values() -> None:
    number = 1234567890123
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "demo-db"},
        "stringData": {"password": number},
        "type": "kubernetes.io/basic-auth",
    }
    probes = copy.deepcopy(demo_objects())  # a value that fails a pattern and an enum, quoted by jsonschema
    deployment = next(o for o in probes if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = f"x{number}"
    objects = [*probes, secret]

    findings = schemas.check(objects, "1.31")
    messages = {(f.object, f.path): f.message for f in findings}
    assert messages[("Secret/-/demo-db", "stringData.password")] == "expected string, got integer"

    decision = decide(EmbeddedEngine(), PolicyBundle.from_dir(POLICIES), make_input("staging", objects=objects))
    assert "stringData.password" in {v.path for v in decision.deny}
    produced = "\n".join(
        [json.dumps([f.as_input() for f in findings]), decision.model_dump_json(), *policy_lines(decision)]
    )
    assert leaks(produced, str(number)) == []


# ------------------------------------------------------------------ pagination


@dataclass
class Recorder:
    """A plain HTTP server that records every request it receives (path and headers)."""

    pages: dict[str, tuple[list[Any], dict[str, str]]] = field(default_factory=dict)  # path -> (items, headers)
    received: list[str] = field(default_factory=list)

    def __enter__(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.received.append(f"GET {self.path}\n{self.headers}")
                items, headers = recorder.pages.get(self.path.split("?")[0], ([], {}))
                body = json.dumps(items).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.served = ExitStack()
        self.served.enter_context(serving(self.server))
        return self

    def __exit__(self, *exc: object) -> None:
        self.served.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"


def test_pagination_follows_only_the_forges_own_origin() -> None:
    with Recorder() as forge, Recorder() as other:
        pull = {"number": 1, "head": {"ref": "promote/demo/prod/abc"}}
        forge.pages["/repos/acme/gitops/pulls"] = ([pull], {"Link": f'<{forge.url}/next-page?page=2>; rel="next"'})
        forge.pages["/next-page"] = ([pull], {"Link": f'<{other.url}/steal?page=3>; rel="next"'})
        api = ApiClient("GitHub", forge.url, f"Bearer {TOKEN}", sleep=lambda _: None)
        pages = api.paginate("/repos/acme/gitops/pulls", what="open PRs")
        assert [next(pages), next(pages)] == [pull, pull]  # the same origin: followed
        with pytest.raises(BadInput) as refused:
            next(pages)
    message = str(refused.value)
    assert "\n" not in message and "refused" in message and other.url.split("//")[1] in message
    assert other.received == []  # nothing sent there, the token least of all
    assert leaks("\n".join(other.received), TOKEN) == []
    assert len(forge.received) == 2


@pytest.mark.parametrize("trick", ["{other}\\@{host}/steal", "{other}@{host}/steal", "http://u:p@{host}/steal"])
def test_a_next_page_that_parsers_read_differently_is_refused(trick: str) -> None:
    """A `Link` whose host urlsplit and urllib3 read differently (`http://evil\\@forge/`: the check
    would see the forge, the request would go to evil) never gets a request, nor the token."""
    with Recorder() as forge, Recorder() as other:
        pull = {"number": 1, "head": {"ref": "promote/demo/prod/abc"}}
        host = forge.url.split("//")[1]
        forge.pages["/repos/acme/gitops/pulls"] = (
            [pull],
            {"Link": f'<{trick.format(other=other.url, host=host)}>; rel="next"'},
        )
        api = ApiClient("GitHub", forge.url, f"Bearer {TOKEN}", sleep=lambda _: None)
        pages = api.paginate("/repos/acme/gitops/pulls", what="open PRs")
        assert next(pages) == pull
        with pytest.raises(BadInput, match="refused"):
            next(pages)
    assert other.received == [] and len(forge.received) == 1
