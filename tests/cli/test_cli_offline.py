"""CLI errors that need no running stack: unreachable Temporal, a --repo that is no GitOps
repository, usage errors. Each is exit 2 with one line saying what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from promoter.stack import free_port


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promoter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["status", "promote-demo"],
        ["promote", "demo"],
        ["approve", "promote-demo", "--env", "prod", "--as", "alice"],
    ],
)
def test_unreachable_temporal(args: list[str], tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    r = run(*args, env={"PROMOTER_TEMPORAL_ADDRESS": address, "PROMOTER_STATE_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: cannot reach Temporal at {address} (Connection refused); start the "
        "embedded stack with `promoter up` or set PROMOTER_TEMPORAL_ADDRESS"
    )


def test_up_refuses_a_repo_without_environments(tmp_path: Path) -> None:
    r = run("up", "--detach", "--repo", str(tmp_path / "nowhere"), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2
    assert (
        r.stderr.strip() == f"error: {tmp_path / 'nowhere'} has no environments/ folder; point --repo at a "
        "GitOps repository"
    )
    assert not (tmp_path / "state" / "stack.json").exists() and not (tmp_path / "state" / "origin.git").exists()


def test_reject_needs_a_reason(tmp_path: Path) -> None:
    r = run(
        "reject",
        "promote-demo",
        "--env",
        "prod",
        "--as",
        "alice",
        "--reason",
        " ",
        env={"PROMOTER_STATE_DIR": str(tmp_path)},
    )
    assert r.returncode == 2 and r.stderr.strip() == "error: a rejection needs a reason: add --reason TEXT"


@pytest.mark.parametrize("args", [[], ["promote"], ["approve", "x"], ["frobnicate"], ["list", "--limit", "0"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert run(*args).returncode == 2


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["promote", "api", "api"], "error: name each app of a release set once"),
        (["promote", "api", "--name", "release"], "error: --name names a release set: give two apps or more"),
        (["dry-run", "api", "worker", "--name", "Bad Name"], "error: 'Bad Name' is not a valid release set name"),
        (["promote", "a" * 30, "b" * 30], "error: the apps' names make too long a set name"),
    ],
)
def test_a_release_set_asked_for_wrongly_is_one_line_and_exit_2(args: list[str], said: str, tmp_path: Path) -> None:
    r = run(*args, env={"PROMOTER_STATE_DIR": str(tmp_path)})
    assert r.returncode == 2 and r.stderr.startswith(said), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_exits_0() -> None:
    r = run("--help")
    assert r.returncode == 0 and "promote" in r.stdout


def test_the_old_names_still_run_and_say_they_are_deprecated(tmp_path: Path) -> None:
    """`plan` became `dry-run` and `release-hold` became `lift-hold` (one name per idea): scripts that
    use the old names keep working, hidden from --help, with a deprecation line on stderr."""
    listed = run("--help").stdout
    lift = ["--env", "prod", "--commit", "abc1234", "--as", "dana", "--reason", "fixed"]
    for old, new, rest in (("plan", "dry-run", []), ("release-hold", "lift-hold", lift)):
        assert new in listed and f" {old} " not in listed
        r = run(old, "Bad Name", *rest, env={"PROMOTER_STATE_DIR": str(tmp_path)})
        assert r.returncode == 2, r.stderr
        first, said = r.stderr.strip().splitlines()
        assert first == f"DeprecationWarning: The command {old!r} is deprecated."
        assert said.startswith("error: 'Bad Name' is not a valid app name"), said


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    """A command's start-up is mostly imports (docs/benchmarks.md): loading the CLI, as every command
    does before it runs, imports neither pydantic (the models), nor the Temporal SDK, nor the
    Kubernetes client, git or the policy engine; each command imports what it needs when it runs."""
    heavy = ("pydantic", "temporalio", "promoter.models", "kubernetes", "git", "regorus", "rich")
    probe = f"import sys, promoter.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "[]", f"importing promoter.cli loads {loaded.stdout.strip()}"
