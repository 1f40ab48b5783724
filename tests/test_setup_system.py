"""scripts/setup-system, which the README's test command runs: with Chromium, HAProxy, ssh-keygen and
Prometheus present it does nothing; on a machine lacking some where it may not install (not root, no apt-get) it
fails with one line that names every missing package, exit 2, never a traceback. (Installing through
apt-get is what CI does on its fresh machine; it is not repeated here.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.gitops import ROOT

SCRIPT = ROOT / "scripts" / "setup-system"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash") or "/bin/bash"  # found before PATH is narrowed for the script
    return subprocess.run([bash, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def tool(folder: Path, name: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_nothing_to_do_when_everything_is_there(tmp_path: Path) -> None:
    present = {
        "PROMOTER_CHROMIUM": tool(tmp_path, "chromium"),
        "PROMOTER_HAPROXY": tool(tmp_path, "haproxy"),
        "PROMOTER_SSH_KEYGEN": tool(tmp_path, "ssh-keygen"),
        "PROMOTER_PROMETHEUS": tool(tmp_path, "prometheus"),
    }
    r = run({**os.environ, **present})
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


@pytest.mark.parametrize(
    ("lacking", "packages"),
    [
        (["PROMOTER_CHROMIUM"], "chromium chromium-driver"),
        (["PROMOTER_HAPROXY", "PROMOTER_SSH_KEYGEN"], "haproxy openssh-client"),
        (
            ["PROMOTER_CHROMIUM", "PROMOTER_HAPROXY", "PROMOTER_SSH_KEYGEN"],
            "chromium chromium-driver haproxy openssh-client",
        ),
        (["PROMOTER_PROMETHEUS"], "prometheus"),
    ],
)
def test_a_machine_that_lacks_some_and_may_not_install_gets_one_line(
    tmp_path: Path, lacking: list[str], packages: str
) -> None:
    tools = tmp_path / "bin"  # a PATH with no apt-get, and an `id` of an ordinary user
    tools.mkdir()
    (tools / "id").write_text("#!/bin/sh\necho 1000\n")
    (tools / "id").chmod(0o755)
    env = {
        "PATH": str(tools),
        "PROMOTER_CHROMIUM": tool(tmp_path, "chromium"),
        "PROMOTER_HAPROXY": tool(tmp_path, "haproxy"),
        "PROMOTER_SSH_KEYGEN": tool(tmp_path, "ssh-keygen"),
        "PROMOTER_PROMETHEUS": tool(tmp_path, "prometheus"),
    }
    for name in lacking:
        env[name] = str(tmp_path / "absent" / name.lower())
    r = run(env)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and f"sudo apt-get install {packages})" in r.stderr
    assert "Traceback" not in r.stderr
