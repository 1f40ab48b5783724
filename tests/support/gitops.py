"""A GitOps origin as a person uses it (a bare repository and a clone to push from), its seed, and
the `promoter` CLI run as a person runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git
import psutil
import yaml

from promoter.forges.local import LocalForge
from promoter.gitrepo import GitClone
from promoter.models import PrepareInput
from promoter.stack import DEFAULT_PORT, DEFAULT_UI_PORT

ROOT = Path(__file__).resolve().parents[2]  # the repository
DEFAULT_PORTS = {DEFAULT_PORT, DEFAULT_UI_PORT}  # a person's own `promoter up` takes these: no test stack may


class Origin:
    """A bare origin repository plus a person's clone of it, to push changes as a person would."""

    def __init__(self, path: Path, work: Path) -> None:
        self.path = path
        self.url = str(path)
        self.work = work
        self.repo = git.Repo.clone_from(self.url, work)
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "dana")
            cw.set_value("user", "email", "dana@example.com")

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or delete, for None) files, commit and push to main; returns the commit."""
        self.repo.git.pull("--quiet", "--rebase", "origin", "main")
        for rel, text in files.items():
            p = self.work / rel
            if text is None:
                self.repo.git.rm("-q", rel)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
                self.repo.git.add(rel)
        self.repo.git.commit("-q", "-m", message)
        self.repo.git.push("--quiet", "origin", "main")
        return self.repo.head.commit.hexsha

    def bump(self, app: str = "demo", env: str = "dev", tag: str = "1.1.0") -> str:
        path = f"environments/{env}/{app}/deployment.yaml"
        text = (self.work / path).read_text()

        return self.commit({path: re.sub(r"(image: \S+):[\w.\-]+", rf"\1:{tag}", text)}, f"{app} {tag}")

    def forge(self) -> LocalForge:
        """The local forge's records of this origin, read through a clone of its own."""
        return LocalForge(GitClone(self.url, self.path.parent / "forge-reader"), self.path.parent / "forge.sqlite")

    def main_log(self) -> list[str]:
        bare = git.Repo(self.path)
        return bare.git.log("--format=%H %s", "main").splitlines()

    def show(self, rev: str, path: str) -> str:
        return git.Repo(self.path).git.show(f"{rev}:{path}")

    def branches(self) -> list[str]:
        return [h.name for h in git.Repo(self.path).heads]


def branch_for(origin: Origin, clone: GitClone, tag: str = "1.1.0") -> str:
    """A promotion branch of demo (dev to staging) at `tag`, pushed to origin, as a forge's PR head."""
    sha = origin.bump(tag=tag)
    result = clone.push_branch(PrepareInput(app="demo", commit=sha, source_env="dev", target_env="staging"))
    assert result.branch is not None
    return result.branch


def own_objects(folder: Path, app: str) -> None:
    """A copy of demo's manifests for `app`: its objects named and labelled for it, so two apps never
    ship the same object (the cluster's inventory refuses a takeover)."""
    for path in folder.iterdir():
        if path.is_file():
            path.write_text(path.read_text().replace("demo", app))


def make_gitops(
    tmp: Path, envs: list[dict[str, object]] | None = None, apps: tuple[str, ...] = ("demo",), signed: bool = False
) -> Path:
    """A GitOps source tree: this repository's sample, or environments built from `envs`. The sample's
    prod requires signed approvals; unless `signed`, that is switched off, so that the tests of other
    behaviours approve prod by name (the embedded stack's tests and tests/workflows/test_signed_approvals.py
    keep it and sign)."""
    src = tmp / "gitops-src"
    if envs is None:
        shutil.copytree(ROOT / "environments", src / "environments")
        shutil.copytree(ROOT / "policies", src / "policies")
        if not signed:
            prod = src / "environments" / "prod" / "environment.yaml"
            prod.write_text(re.sub(r"\n  require_signed: true[^\n]*", "", prod.read_text()))
            assert "require_signed" not in prod.read_text()
        for app in apps:
            if app != "demo":
                for env in ("dev", "staging", "prod"):
                    shutil.copytree(src / "environments" / env / "demo", src / "environments" / env / app)
                    own_objects(src / "environments" / env / app, app)
        return src
    shutil.copytree(ROOT / "policies", src / "policies")
    data = yaml.safe_load((src / "policies" / "data.yaml").read_text())
    data["groups"]["sre"] = ["sam", "sue"]
    (src / "policies" / "data.yaml").write_text(yaml.safe_dump(data))
    for env in envs:
        env.setdefault("cluster", {"context": env["name"], "namespace": "apps"})
        folder = src / "environments" / str(env["name"])
        folder.mkdir(parents=True)
        (folder / "environment.yaml").write_text(yaml.safe_dump(env))
        for app in apps:
            for f in ("deployment.yaml", "service.yaml"):
                (folder / app).mkdir(exist_ok=True)
                (folder / app / f).write_text((ROOT / "environments" / "dev" / "demo" / f).read_text())
            if app != "demo":
                own_objects(folder / app, app)
    return src


PROMOTER = [sys.executable, "-m", "promoter"]


class Cli:
    def __init__(self, state_dir: Path) -> None:
        self.env = {**os.environ, "PROMOTER_STATE_DIR": str(state_dir), "COLUMNS": "200"}
        self.state_dir = state_dir

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`promoter ARGS`; a first `up` without `--port` gets free ports (`fresh_ports`), a later one
        keeps the ports its state directory recorded (as a person's does), and a stack it started is
        checked to listen on neither of Temporal's default ports."""
        state = Path(args[args.index("--state-dir") + 1]) if "--state-dir" in args else self.state_dir
        if args[:1] == ("up",) and "--port" not in args and not (state / "ports.json").exists():
            args = (*args, *fresh_ports())
        done = subprocess.run(
            [*PROMOTER, *args], env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if args[:1] == ("up",) and "--detach" in args and done.returncode == 0:
            taken = listening_ports(state) & DEFAULT_PORTS
            assert not taken, f"a test stack listens on {sorted(taken)}, which a person's `promoter up` takes"
        return done

    def over_grpc(self) -> Cli:
        """The same CLI with Temporal's HTTP API switched off: every command takes the SDK's gRPC client."""
        other = Cli(self.state_dir)
        other.env = {**self.env, "PROMOTER_TEMPORAL_HTTP_URL": ""}
        return other

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """The command, running, as from a terminal: Ctrl-C (SIGINT) reaches it even when the tests run in
        a shell's background job, whose commands inherit SIGINT ignored (and Python then keeps it so)."""
        return subprocess.Popen(
            [*PROMOTER, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=_sigint_default,
        )

    def status(self, wid: str) -> dict[str, object]:
        r = self("status", wid, "--json")
        assert r.returncode == 0, r.stderr
        data: dict[str, object] = json.loads(r.stdout)
        return data

    def wait_status(self, wid: str, check: object, timeout_s: float = 150) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            r = self("status", wid, "--json")
            if r.returncode == 0:
                data = json.loads(r.stdout)
                if callable(check) and check(data):
                    return data  # type: ignore[no-any-return]
                stages = [f"{s['env']}: {s['state']} ({s['message']})" for s in data.get("stages", [])]
                last = f"{data.get('state')}, {data.get('commit', '')[:7]}: {'; '.join(stages)}"
            else:
                last = r.stderr.strip()[-300:]
        raise TimeoutError(f"{wid} never reached the expected status; last seen: {last}")


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def listening_ports(state_dir: Path) -> set[int]:
    """The TCP ports the processes of the stack in `state_dir` (and their children) listen on."""
    info = json.loads((state_dir / "stack.json").read_text())
    ports: set[int] = set()
    for pid in info["pids"].values():
        try:
            process = psutil.Process(int(pid))
            for p in (process, *process.children(recursive=True)):
                ports |= {c.laddr.port for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            continue
    return ports


def fresh_ports() -> list[str]:
    """`--port` and `--ui-port` on free ports: a test stack (started again after `down` too) never
    takes 7233 or 8233, which a person's own `promoter up` may be using."""
    from promoter.stack import free_port

    return ["--port", str(free_port()), "--ui-port", str(free_port())]


@contextmanager
def running_stack(base: Path, env: dict[str, str] | None = None) -> Iterator[tuple[Cli, Origin]]:
    """`promoter up --detach` on free ports over the sample GitOps tree (with `env` added to the
    environment the stack's processes start with), and `promoter down` after, whatever happened."""
    from promoter.stack import Stack

    src = make_gitops(base, signed=True)
    state = base / "state"
    cli = Cli(state)
    cli.env.update(env or {})
    up = ["up", "--detach", "--repo", str(src), "--state-dir", str(state)]
    r = cli(*up, *fresh_ports())
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Temporal UI   http://127.0.0.1:" in r.stdout
        yield cli, Origin(state / "origin.git", base / "person")
    finally:
        down = cli("down", "--state-dir", str(state))
        Stack(state).down()  # in case `down` itself failed: end what we started, by PID
        assert down.returncode == 0, down.stderr
