"""The embedded stack as an adversarial user drives it, on a stack whose worker was given planted
secrets: app names that are paths (`../staging/demo`, `demo/`, `''`, 10,000 characters) are exit 2 and
one line with nothing touched, a property test over names through the CLI; files with odd names are
applied to dev and promoted byte-identical; planted tokens (a forge token, an OPA token, a secret
webhook URL, each also given as a `${NAME}` webhook) appear in no log, no status, no Temporal
database and no forge record; `status` says within seconds that no worker polls a queue; `--wait`
that loses Temporal exits 3 saying the promotion still runs; the simulated clusters keep their
objects across `down` and `up`."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import git
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from promoter.converter import DATA_CONVERTER
from tests.support.gitops import PROMOTER, Cli, Origin, fresh_ports, running_stack
from tests.support.keys import commit_signed
from tests.support.trees import ODD_NAMES, configmap

FORGE_TOKEN = "ghp_PlantedForgeToken7Q2x9"
OPA_TOKEN = "opa-PlantedOpaToken4K8z"
HOOK_KEY = "PlantedHookKey5M1w3"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Origin, str]]:
    with socket.socket() as s:  # a webhook whose port nobody listens on: every post fails, fast
        s.bind(("127.0.0.1", 0))
        hook = f"http://127.0.0.1:{s.getsockname()[1]}/services/T0/B0/{HOOK_KEY}"
    planted = {"PROMOTER_FORGE_TOKEN": FORGE_TOKEN, "PROMOTER_OPA_TOKEN": OPA_TOKEN, "TEAM_WEBHOOK": hook}
    with running_stack(tmp_path_factory.mktemp("hostile"), planted) as (cli, origin):
        yield cli, origin, hook


def refs(origin: Origin) -> dict[str, str]:
    return {h.name: h.commit.hexsha for h in git.Repo(origin.path).heads}


def promotions(cli: Cli) -> list[str]:
    r = cli("list", "--json")
    assert r.returncode == 0, r.stderr
    return sorted(row["id"] for row in json.loads(r.stdout))


def kubectl(cli: Cli, context: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(cli.state_dir / "kubeconfig"), "--context", context, "-n", "apps", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["../staging/demo", "demo/", "./demo", "", ".", "d" * 10_000, "Demo", "-x"])
def test_an_app_name_that_is_a_path_is_exit_2_one_line_and_touches_nothing(
    hostile: tuple[Cli, Origin, str], name: str
) -> None:
    cli, origin, _ = hostile
    before, started = refs(origin), promotions(cli)
    r = cli("promote", name, "--wait")
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    assert len(r.stderr) < 300
    assert refs(origin) == before and promotions(cli) == started


@pytest.mark.parametrize(
    "args",
    [
        ["status", "../x"],
        ["approve", "promote-../x", "--env", "prod", "--as", "a"],
        ["approve", "demo", "--env", "../prod", "--as", "a"],
        ["cancel", "demo/"],
        ["list", "--app", "x' OR WorkflowId != '"],
        ["promote", "demo", "--to", "../prod"],
        ["promote", "demo", "--commit", "--output=/tmp/x"],
    ],
)
def test_every_command_refuses_a_bad_name(hostile: tuple[Cli, Origin, str], args: list[str]) -> None:
    cli, _, _ = hostile
    r = cli(*args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@settings(max_examples=8, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30))
def test_any_name_but_an_app_is_refused_with_exit_2_and_one_line(hostile: tuple[Cli, Origin, str], name: str) -> None:
    cli, origin, _ = hostile
    if name == "demo" or name.startswith("-"):  # the app itself; an option-looking word is click's usage error
        return
    before = refs(origin)
    r = cli("promote", name)
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert refs(origin) == before


def test_odd_file_names_are_applied_and_promoted_and_secrets_are_never_quoted(hostile: tuple[Cli, Origin, str]) -> None:
    cli, origin, hook = hostile
    notify = [{"url": "${PROMOTER_FORGE_TOKEN}"}, {"url": "${PROMOTER_OPA_TOKEN}"}, {"url": "${TEAM_WEBHOOK}"}]
    files: dict[str, str | None] = {
        f"environments/dev/demo/{n}": configmap(f"odd-{i}") for i, n in enumerate(ODD_NAMES)
    }
    for env in ("dev", "staging"):
        path = f"environments/{env}/environment.yaml"
        config = yaml.safe_load((origin.work / path).read_text())
        files[path] = yaml.safe_dump({**config, "notify": notify})
    # environment.yaml is a rule file: signed by the platform key, or the stack's trust root ignores it
    signed = {path: text for path, text in files.items() if text is not None}
    commit = commit_signed(origin, cli.state_dir / "keys" / "platform", signed, "odd names, and webhooks")
    r = cli("promote", "demo", "--to", "staging", "--wait", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    status = json.loads(r.stdout.strip().splitlines()[-1])
    assert status["state"] == "succeeded" and status["commit"] == commit, status

    for env in ("dev", "staging"):  # every odd file reached both clusters
        got = kubectl(cli, env, "get", "configmaps", "-o", "json")
        names = {item["metadata"]["name"] for item in json.loads(got.stdout)["items"]}
        assert {f"odd-{i}" for i in range(len(ODD_NAMES))} <= names, (env, got.stderr)
    bare = git.Repo(origin.path)
    for name in ODD_NAMES:
        assert bare.git.rev_parse(f"main:environments/staging/demo/{name}") == bare.git.rev_parse(
            f"{commit}:environments/dev/demo/{name}"
        )

    # the webhooks failed and said so, naming the variable, never its value
    notices = " ".join(status["notices"])
    assert "${PROMOTER_FORGE_TOKEN} is not an http(s) URL" in notices, notices
    assert "webhook at 127.0.0.1:" in notices, notices
    planted = [FORGE_TOKEN, OPA_TOKEN, HOOK_KEY, hook]
    shown = cli("status", "promote-demo", "--json").stdout + cli("status", "promote-demo").stdout
    assert not [p for p in planted if p in shown]
    leaks = [
        (str(f.relative_to(cli.state_dir)), p)
        for f in sorted(cli.state_dir.rglob("*"))
        if f.is_file() and "origin.git" not in f.parts
        for p in planted
        if p.encode() in f.read_bytes()
    ]
    assert leaks == [], leaks  # logs, the Temporal database (its WAL too), the forge's records, the clusters


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_status_says_no_worker_polls_the_queue_within_seconds(hostile: tuple[Cli, Origin, str], transport: str) -> None:
    cli = hostile[0] if transport == "http" else hostile[0].over_grpc()
    from temporalio.client import Client

    info = json.loads((cli.state_dir / "stack.json").read_text())

    async def start() -> None:
        client = await Client.connect(info["temporal_address"], data_converter=DATA_CONVERTER)
        await client.start_workflow(
            "PromotionWorkflow", {"plan": {}}, id="promote-ghost", task_queue="nobody-polls-this"
        )

    async def end() -> None:
        client = await Client.connect(info["temporal_address"], data_converter=DATA_CONVERTER)
        await client.get_workflow_handle("promote-ghost").terminate("test over")

    asyncio.run(start())
    try:
        began = time.monotonic()
        r = cli("status", "promote-ghost")
        took = time.monotonic() - began
    finally:
        asyncio.run(end())
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no worker is polling task queue 'nobody-polls-this'" in r.stderr, r.stderr
    assert took < 10, took  # was ~30 s: a fault bound, not a speed target


def test_a_wrong_temporal_http_url_is_one_line_that_says_what_to_set(hostile: tuple[Cli, Origin, str]) -> None:
    cli, _, _ = hostile
    kubeconfig = yaml.safe_load((cli.state_dir / "kubeconfig").read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]["server"]  # an HTTP API, but Kubernetes' (its 404s are JSON)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    cases = {
        closed: "cannot reach Temporal's HTTP API at " + closed,
        cluster: f"{cluster} is not Temporal's HTTP API",
        "localhost:7243": "PROMOTER_TEMPORAL_HTTP_URL must be an http:// or https:// URL",
    }
    commands = (["status", "promote-demo"], ["list"], ["approve", "promote-demo", "--env", "prod", "--as", "x"])
    for url, said in cases.items():
        cli.env["PROMOTER_TEMPORAL_HTTP_URL"] = url
        try:
            for args in commands:
                r = cli(*args)
                assert r.returncode == 2 and r.stderr.count("\n") == 1 and said in r.stderr, (url, args, r.stderr)
        finally:
            del cli.env["PROMOTER_TEMPORAL_HTTP_URL"]


class Proxy:
    """A TCP proxy on loopback between the CLI and Temporal, which the test can cut."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.cut_off = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_off:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.cut_off = True
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
        except OSError:
            pass
        self.server.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_wait_that_loses_temporal_exits_3_and_says_the_promotion_still_runs(hostile: tuple[Cli, Origin, str]) -> None:
    cli, origin, _ = hostile
    commit = origin.bump(tag="9.9.9")
    info = json.loads((cli.state_dir / "stack.json").read_text())
    proxy = Proxy(info["temporal_address"])
    follower = subprocess.Popen(
        [*PROMOTER, "promote", "demo", "--wait", "--json"],
        env={**cli.env, "PROMOTER_TEMPORAL_ADDRESS": proxy.address},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        cli.wait_status(
            "promote-demo",
            lambda s: s["commit"] == commit and s["stages"][2]["state"] == "awaiting_approval",
            timeout_s=120,
        )
        proxy.cut()
        out, errs = follower.communicate(timeout=120)
    finally:
        follower.kill()
    assert follower.returncode == 3, (out, errs)
    line = json.loads(out.strip().splitlines()[-1])
    assert line["id"] == "promote-demo" and line["state"] == "unknown", line
    assert "the promotion is still running: follow it with `promoter status promote-demo`" in errs, errs
    assert cli.status("promote-demo")["state"] == "running"  # it was: nothing was invented
    assert cli("cancel", "promote-demo").returncode == 0


def test_the_simulated_clusters_keep_their_objects_across_down_and_up(hostile: tuple[Cli, Origin, str]) -> None:
    cli, _, _ = hostile
    synced = cli("promote", "demo", "--to", "dev", "--wait")  # dev holds the app, whatever ran before
    assert synced.returncode == 0, synced.stdout + synced.stderr
    before = kubectl(cli, "dev", "get", "deployment", "demo", "-o", "json")
    assert before.returncode == 0, before.stderr
    assert cli("down", "--state-dir", str(cli.state_dir)).returncode == 0
    assert cli("up", "--detach", "--state-dir", str(cli.state_dir), *fresh_ports()).returncode == 0
    after = kubectl(cli, "dev", "get", "deployment", "demo", "-o", "json")
    assert after.returncode == 0, after.stderr  # the namespace `apps` and what it holds came back
    kept, now = json.loads(before.stdout), json.loads(after.stdout)
    assert now["metadata"]["uid"] == kept["metadata"]["uid"]
    assert now["spec"] == kept["spec"] and now["status"]["availableReplicas"] == kept["status"]["availableReplicas"]
