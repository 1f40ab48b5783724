"""scripts/setup-system, which the README's test command runs: with Chromium present it does nothing;
on a machine without Chromium where it may not install (not root, no apt-get) it fails with one line
that says what to install, exit 2, never a traceback. (Installing through apt-get is what CI does on
its fresh machine; it is not repeated here.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.gitops import ROOT

SCRIPT = ROOT / "scripts" / "setup-system"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"  # found before PATH is narrowed for the script
    return subprocess.run([bash, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_nothing_to_do_when_chromium_is_there(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    r = run({**os.environ, "PROMOTER_CHROMIUM": str(browser)})
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_a_machine_without_chromium_that_may_not_install_gets_one_line(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # a PATH with no apt-get, and an `id` of an ordinary user
    tools.mkdir()
    (tools / "id").write_text("#!/bin/sh\necho 1000\n")
    (tools / "id").chmod(0o755)
    r = run({"PATH": str(tools), "PROMOTER_CHROMIUM": str(tmp_path / "no-chromium")})
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "sudo apt-get install chromium" in r.stderr
    assert "Traceback" not in r.stderr
