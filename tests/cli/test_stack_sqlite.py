"""The embedded stack's Temporal dev server keeps its SQLite database in write-ahead-log mode (a
transaction no longer makes, syncs and removes a journal file: see promoter.stack.database_args)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from promoter import stack


def test_the_dev_server_runs_its_database_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "temporal.db"
    port, ui = stack.free_port(), stack.free_port()
    server = subprocess.Popen(
        [stack.binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
        + ["--ui-port", str(ui), "--headless", *stack.database_args(db), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        stack.wait_until(lambda: stack.port_open(f"127.0.0.1:{port}") or server.poll() is not None, 60, "Temporal")
        assert server.poll() is None, "the dev server refused the pragmas"
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        stack.stop_pid(server.pid)
        server.wait(timeout=30)
