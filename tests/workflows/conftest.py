"""Real worker processes (`python -m promoter worker`) on the session's dev server, for the tests that
kill or stop one: tests/workflows/test_worker_crash.py and test_many_workers.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from promoter.stack import wait_until
from tests.support.gitops import Origin

WorkerProcess = Callable[[Origin, str], int]


@pytest.fixture
def worker_process(tmp_path: Path, dev_env: WorkflowEnvironment) -> Iterator[WorkerProcess]:
    """`worker_process(origin, task_queue)`: a worker process on that task queue, each with a cache
    directory of its own (as in production), ready to take work; its PID. Every one is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(origin: Origin, task_queue: str) -> int:
        n = len(started)
        ready = tmp_path / f"ready-{n}"
        env = {
            **os.environ,
            "PROMOTER_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "PROMOTER_TASK_QUEUE": task_queue,
            "PROMOTER_REPO_URL": origin.url,
            "PROMOTER_FORGE_DB": str(origin.path.parent / "forge.sqlite"),
            "PROMOTER_CACHE_DIR": str(tmp_path / f"worker-cache-{n}"),
            "PROMOTER_REVIEW_POLL": "0.2",
        }
        log = tmp_path / f"worker-{n}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "promoter", "worker", "--ready-file", str(ready)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),
        )
        started.append(proc)
        wait_until(lambda: ready.exists() or proc.poll() is not None, 60, "the worker")
        assert proc.poll() is None, log.read_text()[-2000:]
        return proc.pid

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
