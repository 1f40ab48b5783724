"""Helpers for the tests that run real worker processes (the `worker_process` fixture of
tests/workflows/conftest.py): kill one, and find the one that runs a given activity."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle

from promoter.stack import alive, wait_until


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 30, f"worker {pid} to die")


def identity_pid(identity: str) -> int | None:
    """The PID in a worker's identity (the SDK's default, `<pid>@<host>`)."""
    head = identity.split("@", 1)[0]
    return int(head) if head.isdigit() else None


async def running_on(
    handles: list[WorkflowHandle[Any, Any]],
    pids: set[int],
    kinds: set[str],
    where: Callable[[WorkflowHandle[Any, Any]], Awaitable[bool]] | None = None,
) -> tuple[int, str]:
    """The PID of one of `pids` running an activity of one of `kinds` for one of the promotions (one
    for which `where` holds, asked when such an activity runs), and the promotion's workflow ID
    (waited for, up to 60 s)."""
    found: list[tuple[int, str]] = []

    async def look() -> bool:
        for handle in handles:
            desc = await handle.describe()
            for pending in desc.raw_description.pending_activities:
                pid = identity_pid(pending.last_worker_identity)
                if (
                    pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    and pending.activity_type.name in kinds
                    and pid in pids
                    and (where is None or await where(handle))
                ):
                    found.append((pid, handle.id))
                    return True
        return False

    deadline = time.monotonic() + 60
    while not await look():
        assert time.monotonic() < deadline, f"no activity of {sorted(kinds)} started on a worker within 60 s"
        await asyncio.sleep(0.05)
    return found[0]
