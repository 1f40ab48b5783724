"""Modules that share one embedded stack (tests/conftest.py's `stack`: the CLI and Web UI tests): a test that fails
while its promotion still runs (a deadline passed on a loaded machine) would leave `promote-demo` running,
and every later test of the module would then fail on "a promotion of demo is already running". So after
a failed test, whatever still runs on the stack is cancelled (its PRs closed): one failure stays one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: Any = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report  # type: ignore[no-any-return]


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def cancel_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" not in request.fixturenames or not request.node.stash.get(_FAILED, False):
        return
    cli, _ = request.getfixturevalue("stack")
    listed = cli("list", "--json")
    rows = json.loads(listed.stdout) if listed.returncode == 0 and listed.stdout.strip() else []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("state") == "running":
            cli("cancel", str(row["id"]))
