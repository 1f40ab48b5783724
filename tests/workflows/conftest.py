"""Real worker processes (`python -m promoter worker`) on the session's dev server, for the tests that
kill or stop one: tests/workflows/test_worker_crash.py and test_many_workers.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter.stack import wait_until
from tests.support.gitops import Origin


class WorkerProcesses:
    """`worker_process(origin, task_queue)`: a worker process on that task queue, each with a cache
    directory of its own (as in production), ready to take work; its PID. `many(origin, task_queue, n)`
    starts n side by side and waits for them together; `spawn` starts one without waiting. Every one is
    killed at the end."""

    def __init__(self, tmp_path: Path, address: str) -> None:
        self.tmp_path = tmp_path
        self.address = address
        self.started: list[subprocess.Popen[bytes]] = []

    def __call__(self, origin: Origin, task_queue: str) -> int:
        [pid] = self.many(origin, task_queue, 1)
        return pid

    def many(self, origin: Origin, task_queue: str, count: int) -> set[int]:
        spawned = [self._spawn(origin, task_queue) for _ in range(count)]
        for proc, ready, log in spawned:
            wait_until(lambda: ready.exists() or proc.poll() is not None, 60, "the worker")  # noqa: B023
            assert proc.poll() is None, log.read_text()[-2000:]
        return {proc.pid for proc, _, _ in spawned}

    def spawn(self, origin: Origin, task_queue: str) -> int:
        """A worker started, not waited for: it takes work once it is up."""
        proc, _, _ = self._spawn(origin, task_queue)
        return proc.pid

    def _spawn(self, origin: Origin, task_queue: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
        n = len(self.started)
        ready, log = self.tmp_path / f"ready-{n}", self.tmp_path / f"worker-{n}.log"
        env = {
            **os.environ,
            "PROMOTER_TEMPORAL_ADDRESS": self.address,
            "PROMOTER_TASK_QUEUE": task_queue,
            "PROMOTER_REPO_URL": origin.url,
            "PROMOTER_FORGE_DB": str(origin.path.parent / "forge.sqlite"),
            "PROMOTER_CACHE_DIR": str(self.tmp_path / f"worker-cache-{n}"),
            "PROMOTER_REVIEW_POLL": "0.2",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "promoter", "worker", "--ready-file", str(ready)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),
        )
        self.started.append(proc)
        return proc, ready, log


WorkerProcess = WorkerProcesses


@pytest.fixture
def worker_process(tmp_path: Path, dev_env: WorkflowEnvironment) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(tmp_path, dev_env.client.service_client.config.target_host)
    yield workers
    for proc in workers.started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
