"""The embedded stack across restarts, on one shared stack: `up` on a running stack says so in one line
and changes nothing; `up` after the worker was killed restarts the worker alone, on the same ports;
`down` then `up` comes back on every recorded port that is free (the forge's pages answer at the
stored URL), and a recorded port another program took in between is replaced, with one warning line
saying which and that links to it are dead; `up` runs Prometheus over the clusters, and a version
answering 20 % errors is reverted in staging by its metrics; a Prometheus that died is restarted alone.
Without a stack (or without `prometheus` installed: one line, and the stack runs without it): the port
choice, a PID reused after a reboot is never taken for (or stopped as) the stack's, and `up --help`
shows the state directory's default."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from promoter.stack import (
    Stack,
    alive,
    choose_ports,
    cluster_ports,
    free_port,
    parts,
    port_free,
    start_prometheus,
    wait_until,
)
from tests.support.gitops import DEFAULT_PORTS, PROMOTER, Cli, Origin, listening_ports, running_stack
from tests.support.keys import commit_signed
from tests.support.prometheus import STACK_ERROR_RATE_CHECK, targets_up, with_error_rate

ADDRESSES = ("temporal_address", "temporal_http_url", "ui_url", "forge_url")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Origin]]:
    with running_stack(tmp_path_factory.mktemp("restart")) as started:
        yield started


def up(cli: Cli) -> subprocess.CompletedProcess[str]:
    """`promoter up --detach` as a person runs it again: no `--port` (the test `Cli` would add fresh ones)."""
    done = subprocess.run(
        [*PROMOTER, "up", "--detach", "--state-dir", str(cli.state_dir)],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode == 0:
        assert not listening_ports(cli.state_dir) & DEFAULT_PORTS  # never a person's 7233/8233
    return done


def stack_json(cli: Cli) -> dict[str, object]:
    info: dict[str, object] = json.loads((cli.state_dir / "stack.json").read_text())
    return info


def addresses(cli: Cli) -> dict[str, object]:
    info = stack_json(cli)
    return {k: info[k] for k in ADDRESSES}


def test_up_on_a_running_stack_says_so_in_one_line(shared: tuple[Cli, Origin]) -> None:
    cli, _ = shared
    before = stack_json(cli)
    again = up(cli)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("\n") == 1 and again.stderr == "", (again.stdout, again.stderr)
    line = again.stdout.strip()
    assert line.startswith(f"the stack in {cli.state_dir.resolve()} is already running"), line
    assert all(str(before[k]) in line for k in ADDRESSES), line
    assert stack_json(cli) == before  # nothing restarted
    other = str(free_port())  # a running server cannot move: asked to, `up` says how, and changes nothing
    moved = subprocess.run(
        [*PROMOTER, "up", "--detach", "--state-dir", str(cli.state_dir), "--port", other],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    grpc = str(before["temporal_address"]).rsplit(":", 1)[1]
    assert moved.returncode == 2 and moved.stderr.strip().endswith(
        f"is already running (Temporal {before['temporal_address']}, UI {before['ui_url']}, HTTP "
        f"{before['temporal_http_url']}, forge {before['forge_url']}/pulls); it listens on {grpc} (--port): "
        f"`promoter down`, then `promoter up --port {other}` to move it"
    ), moved.stderr
    assert stack_json(cli) == before


def test_up_runs_prometheus_over_the_clusters_and_a_version_erroring_by_its_metrics_is_reverted(
    shared: tuple[Cli, Origin],
) -> None:
    """`up` started Debian's Prometheus scraping each simulated cluster (the worker asks it:
    PROMOTER_PROMETHEUS_URL); once staging verifies its error rate (a rule change, signed by the
    platform key), a version answering 20 % errors is reverted in staging by its metrics."""
    cli, origin = shared
    info = stack_json(cli)
    url = str(info["prometheus_url"])
    assert url.startswith("http://127.0.0.1:") and "prometheus" in info["pids"]  # type: ignore[operator]
    assert json.loads((cli.state_dir / "ports.json").read_text())["prometheus"] == int(url.rsplit(":", 1)[1])
    wait_until(lambda: targets_up(url), 60, "Prometheus to scrape the clusters")
    with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=10) as answer:
        active = json.loads(answer.read())["data"]["activeTargets"]
    assert sorted(t["labels"]["cluster"] for t in active) == ["dev", "prod", "staging"]
    path = "environments/staging/environment.yaml"
    origin.repo.git.pull("--quiet", "--rebase", "origin", "main")
    config = yaml.safe_load((origin.work / path).read_text())
    config["verify"] = [STACK_ERROR_RATE_CHECK]
    key = cli.state_dir / "keys" / "platform"
    commit_signed(origin, key, {path: yaml.safe_dump(config, sort_keys=False)}, "staging verifies its error rate")
    with_error_rate(origin, "0.2", "7.0.0")
    reverted = cli("promote", "demo", "--to", "staging", "--wait", "--json", timeout=180)
    assert reverted.returncode == 1, reverted.stdout + reverted.stderr
    assert json.loads(reverted.stdout.strip().splitlines()[-1])["state"] == "reverted"
    shown = cli.status("promote-demo")
    staging = shown["stages"][1]  # type: ignore[index]
    assert staging["state"] == "reverted" and "verification failed: error-rate (demo)" in staging["message"]
    (check,) = staging["verification"]
    assert check["verdict"] == "failed" and check["measurements"][0]["value"] > 0.01


def test_up_after_prometheus_died_restarts_it_and_the_worker_when_its_port_was_taken(
    shared: tuple[Cli, Origin],
) -> None:
    """Prometheus killed, and its port taken meanwhile: `up` starts it on another port, says so, and
    restarts the worker with it (its PROMOTER_PROMETHEUS_URL named the old port)."""
    cli, _ = shared
    before = stack_json(cli)
    pids: dict[str, int] = before["pids"]  # type: ignore[assignment]
    os.kill(pids["prometheus"], signal.SIGKILL)
    wait_until(lambda: not alive(pids["prometheus"]), 10, "the killed Prometheus to be gone")
    old = int(str(before["prometheus_url"]).rsplit(":", 1)[1])
    wait_until(lambda: port_free(old), 10, "its port to be let go")  # by its last thread (a Go program's leader
    # thread is a zombie before the others have exited)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        again = up(cli)
    assert again.returncode == 0, again.stderr
    logs = cli.state_dir / "logs"
    assert (
        again.stdout.splitlines()[0]
        == f"restarted prometheus, which had stopped, and worker with them (logs in {logs})"
    )
    assert again.stderr.startswith(f"warning: Prometheus: port {old} is taken by another program, so it listens on ")
    after = stack_json(cli)
    now: dict[str, int] = after["pids"]  # type: ignore[assignment]
    assert now["prometheus"] != pids["prometheus"] and now["worker"] != pids["worker"]
    assert {k: now[k] for k in ("temporal", "clusters", "forge")} == {
        k: pids[k] for k in ("temporal", "clusters", "forge")
    }
    moved = str(after["prometheus_url"])
    assert f"Prometheus    {moved}" in again.stdout  # the table names where it listens now
    assert moved != before["prometheus_url"] and json.loads((cli.state_dir / "ports.json").read_text())[
        "prometheus"
    ] == int(moved.rsplit(":", 1)[1])
    worker_env = Path(f"/proc/{now['worker']}/environ").read_bytes().split(b"\0")
    assert f"PROMOTER_PROMETHEUS_URL={moved}".encode() in worker_env
    wait_until(lambda: targets_up(moved), 60, "Prometheus to scrape the clusters again")


def test_without_prometheus_installed_up_says_so_and_runs_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `prometheus` on it
    info: dict[str, object] = {"kubeconfig": str(tmp_path / "kubeconfig"), "prometheus_url": "http://stale"}
    lines = start_prometheus(Stack(tmp_path), info, 5)
    assert lines == [
        "prometheus is not installed (scripts/setup-system, or apt-get install prometheus): "
        "the stack runs without it, and `verify` checks that query Prometheus fail"
    ]
    assert "prometheus_url" not in info and "pids" not in info
    assert parts(info) == ("temporal", "clusters", "forge", "worker")


def test_a_stack_json_that_a_start_cut_short_is_not_a_running_stack(tmp_path: Path) -> None:
    """`up` killed (SIGKILL) after Temporal started leaves a stack.json with its PID alone: the parts it
    never recorded count as not running, so the next `up` starts them rather than saying it runs."""
    from promoter.stack import proc_start

    stack = Stack(tmp_path)
    (tmp_path / "stack.json").write_text(
        json.dumps({"pids": {"temporal": os.getpid()}, "started": {"temporal": proc_start(os.getpid())}})
    )
    info = stack.info()
    assert info is not None and stack.dead(info) == ["clusters", "forge", "worker"]
    assert not stack.running()


def test_up_after_the_worker_died_restarts_only_the_worker(shared: tuple[Cli, Origin]) -> None:
    cli, _ = shared
    before = stack_json(cli)
    pids: dict[str, int] = before["pids"]  # type: ignore[assignment]
    os.kill(pids["worker"], signal.SIGKILL)
    wait_until(lambda: not alive(pids["worker"]), 10, "the killed worker to be gone")
    again = up(cli)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == f"restarted worker, which had stopped (logs in {cli.state_dir / 'logs'})"
    after = stack_json(cli)
    now: dict[str, int] = after["pids"]  # type: ignore[assignment]
    assert now["worker"] != pids["worker"] and alive(now["worker"])
    assert {k: now[k] for k in ("temporal", "clusters", "forge")} == {
        k: pids[k] for k in ("temporal", "clusters", "forge")
    }
    assert addresses(cli) == {k: before[k] for k in ADDRESSES}
    assert (cli.state_dir / "worker.ready").is_file()  # the new worker polls
    assert cli("list").returncode == 0


def test_down_then_up_keeps_every_free_port_and_names_a_taken_one(shared: tuple[Cli, Origin]) -> None:
    """One `down`/`up` (each costs seconds): the Web UI's port is taken in between, the others stay."""
    cli, _ = shared
    before = addresses(cli)
    kubeconfig = cli.state_dir / "kubeconfig"
    clusters = cluster_ports(kubeconfig)
    ui_port = int(str(before["ui_url"]).rsplit(":", 1)[1])
    assert cli("down", "--state-dir", str(cli.state_dir)).returncode == 0
    with socket.socket() as squatter, socket.socket() as other:  # two ports are taken while the stack is down
        for sock, port in ((squatter, ui_port), (other, clusters["staging"])):  # the UI's, staging's cluster's
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: past TIME_WAIT
            sock.bind(("127.0.0.1", port))
            sock.listen()
        again = up(cli)
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()
    assert len(lines) == 2, again.stderr
    assert lines[0].startswith(f"warning: the Temporal Web UI: port {ui_port} is taken by another program, so"), lines
    assert f"links to port {ui_port} (Web UI links in PR bodies" in lines[0] and "are dead" in lines[0], lines
    assert lines[1].startswith(
        f"warning: the simulated cluster staging: port {clusters['staging']} is taken by another program, so"
    ), lines
    now = cluster_ports(kubeconfig)  # the other clusters keep theirs: a kubeconfig copied before still works
    assert now["staging"] != clusters["staging"] and {e: p for e, p in now.items() if e != "staging"} == {
        e: p for e, p in clusters.items() if e != "staging"
    }
    assert json.loads((cli.state_dir / "ports.json").read_text())["clusters"] == now
    after = addresses(cli)
    assert after["ui_url"] != before["ui_url"] and f"Temporal UI   {after['ui_url']}" in again.stdout
    assert {k: after[k] for k in ADDRESSES if k != "ui_url"} == {k: before[k] for k in ADDRESSES if k != "ui_url"}
    with urllib.request.urlopen(f"{before['forge_url']}/pulls", timeout=10) as page:  # stored PR links' site
        assert page.status == 200
    assert json.loads((cli.state_dir / "ports.json").read_text())["ui"] == int(str(after["ui_url"]).rsplit(":", 1)[1])


def test_choose_ports_keeps_free_recorded_ports_and_names_a_taken_one() -> None:
    recorded = {"grpc": free_port(), "ui": free_port(), "http": free_port(), "forge": free_port()}
    ports, lines = choose_ports(recorded, {})
    assert ports._asdict() == recorded and lines == []
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", recorded["ui"]))
        squatter.listen()
        ports, lines = choose_ports(recorded, {})
    assert ports.ui != recorded["ui"] and {**ports._asdict(), "ui": recorded["ui"]} == recorded
    assert len(lines) == 1 and lines[0].startswith(f"the Temporal Web UI: port {recorded['ui']} is taken"), lines
    asked = free_port()
    ports, lines = choose_ports(recorded, {"grpc": asked})  # --port: the user moves it, and is told
    assert ports.grpc == asked and lines == [
        f"Temporal's gRPC port moves from port {recorded['grpc']} to {asked}, as asked; "
        f"links to port {recorded['grpc']} (workers and clients given the old address) are dead"
    ]


def test_a_pid_reused_after_a_reboot_is_not_the_stacks(tmp_path: Path) -> None:
    """stack.json names this test's own PID with another start time: dead to `up`, untouched by `down`."""
    (tmp_path / "stack.json").write_text(
        json.dumps({"pids": {"temporal": os.getpid()}, "started": {"temporal": "1"}, "repo_url": "x"})
    )
    stack = Stack(tmp_path)
    assert stack.dead(stack.info() or {}) == ["temporal", "clusters", "forge", "worker"] and not stack.running()
    assert stack.down() and alive(os.getpid()) and not (tmp_path / "stack.json").exists()


def test_up_help_shows_the_state_dirs_default() -> None:
    shown = subprocess.run(
        [*PROMOTER, "up", "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert shown.returncode == 0 and "[default: ($PROMOTER_STATE_DIR, else .promoter)]" in shown.stdout, shown.stdout


def test_a_stopped_stacks_origin_serves_history_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`origin.json` (kept by `down`) stands in for a running stack in `promoter history` only: no other
    command (the worker least of all) takes a stopped stack's origin, and its trust root is never paired
    with a repository PROMOTER_REPO_URL names."""
    from promoter.settings import Settings

    (tmp_path / "origin.json").write_text(json.dumps({"repo_url": "/stopped/origin.git", "trust_root": "a" * 40}))
    for name in ("PROMOTER_REPO_URL", "PROMOTER_TRUST_ROOT", "PROMOTER_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert Settings.load(str(tmp_path)).repo_url is None
    stopped = Settings.load(str(tmp_path), stopped_stack=True)
    assert (stopped.repo_url, stopped.trust_root) == ("/stopped/origin.git", "a" * 40)
    monkeypatch.setenv("PROMOTER_REPO_URL", "https://git.example/prod.git")
    other = Settings.load(str(tmp_path), stopped_stack=True)
    assert (other.repo_url, other.trust_root) == ("https://git.example/prod.git", None)


def test_up_names_what_had_stopped_apart_from_what_restarted_with_it() -> None:
    """The clusters died; the worker, which keeps their old addresses, restarts with them: it had not
    stopped, and the line does not say it had."""
    from promoter.cli.stack import _restarted_line

    logs = Path("/state/logs")
    assert _restarted_line(("clusters", "worker"), ("clusters",), logs) == (
        "restarted clusters, which had stopped, and worker with them (logs in /state/logs)"
    )
    assert (
        _restarted_line(("worker",), ("worker",), logs) == "restarted worker, which had stopped (logs in /state/logs)"
    )
