"""Layering, checked by import-linter (contracts in pyproject.toml): workflows never import adapters,
git, kubernetes or I/O libraries; adapters never import orchestration or Temporal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "0 broken" in r.stdout
