"""A change-advisory morning: N promotions (default 1,000) parked at prod's gate on ONE worker, then
approved in a burst.

Starts the real embedded stack (`promoter up --detach`: Temporal dev server, one worker process, local
origin and forge, simulated clusters) in a temporary state directory, with N copies of the sample app
in dev and prod (staging is left out: it adds nothing to a waiting gate) and prod's gate needing one
approval (unsigned: the HTTP half below sends what a script would). One commit changes every app's
image in dev; every app is promoted; once all N wait at prod's gate (one that ends before it is named
with its message and left out), the bench lets them sit (`--settle` seconds, then until the server
completes at most one workflow task a second), then samples for `--window` seconds while nothing
happens, as it did once before any promotion:

- the worker's RSS (and its children's: the policy engine processes, git's object readers), and what
  it grew by per waiting gate,
- each process's CPU in % of one core, once as it is and once with the drift schedules paused,
- the activity heartbeats the server received a second (counted by the dev server's own metrics),
  beside what the watchers are designed to send, and the workflow tasks it completed a second (none
  should run while the gates wait).

Then it approves all N at once: half through ONE `promoter approve --env prod --as alice ID ...`
process, half through Temporal's HTTP API directly (a POST of the `approve` update per promotion,
as a script or the Web UI sends it, 32 at a time). The gates still waiting then (a failed approval)
are approved again by one more `promoter approve`, up to three rounds, as an operator would. It prints
the seconds from the first approval to the last merge on main and to the last promotion's end, the
CPU seconds of that burst, the promotions' workflow tasks that timed out or failed (from their
histories) and the worker's own workflow-task figures over the burst (its SDK's metrics: the stack's
worker is started with PROMOTER_METRICS_PORT), and checks that nothing was lost (every prod folder carries its new
image) or duplicated (one merge per app on main, one PR per app and environment on the forge). The last line is
`gates: <N> waiting, worker <MiB> MiB, server <%> % idle CPU, approved to last merge in <s> s, <l> lost,
<d> duplicated`.

    .venv/bin/python bench/gates_bench.py [--apps 1000] [--settle 60] [--window 30]

`--wait-only` stops after the sampling (to measure an older tree's waiting cost: run this script with
PYTHONPATH set to that tree's checkout, whose worker the stack then starts).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import git
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from activities.forge import HEARTBEAT_EVERY_S, HEARTBEATS_PER_S  # noqa: E402
from bench.cost_bench import server_calls  # noqa: E402
from bench.scale_bench import app_name, cpu_seconds, gitops_with_apps, image_of  # noqa: E402
from promoter import api  # noqa: E402
from promoter.settings import Settings, connect  # noqa: E402
from promoter.stack import Stack, free_port  # noqa: E402

STARTS_AT_ONCE = 16  # resolves (and then starts) in flight at once
HTTP_AT_ONCE = 32  # the HTTP half's updates in flight at once
WAITING = "PromotionEnv = 'prod' AND PromotionState = 'awaiting_approval' AND ExecutionStatus = 'Running'"


def gitops(tmp: Path, apps: int) -> Path:
    """scale_bench's repository (N copies of demo), without staging, prod's gate needing one unsigned
    approval."""
    src = gitops_with_apps(tmp, apps)
    shutil.rmtree(src / "environments" / "staging")
    prod = src / "environments" / "prod" / "environment.yaml"
    text = re.sub(r"required: 0", "required: 1", prod.read_text())
    prod.write_text(re.sub(r"require_signed: true", "require_signed: false", text))
    return src


def usage(processes: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: cpu_seconds(p)["self"] for name, p in processes.items()}


async def idle_cpu(processes: dict[str, psutil.Process], window: float) -> dict[str, float]:
    """Each process's CPU over `window` seconds, in % of one core."""
    before = usage(processes)
    t = time.perf_counter()
    await asyncio.sleep(window)
    spent = {k: v - before[k] for k, v in usage(processes).items()}
    return {k: round(100 * v / (time.perf_counter() - t), 1) for k, v in spent.items()}


def designed_heartbeats_per_s(gates: int) -> float:
    """The heartbeats a second that `gates` waiting watchers of one worker are meant to send
    (activities.forge), beside the count the server measured."""
    low, high = HEARTBEAT_EVERY_S
    return gates / min(high, max(low, gates / HEARTBEATS_PER_S))


HEARTBEAT = "frontend:RecordActivityTaskHeartbeat"  # keys of `server_calls`
WORKFLOW_TASK = "frontend:RespondWorkflowTaskCompleted"


async def quiet(stack_dir: Path, limit_s: float, over_s: float = 10.0) -> float:
    """Seconds until the server completes no more than one workflow task a second over `over_s` (the
    gates reached, their watchers started: nothing left to settle), at most `limit_s`."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        before = server_calls(stack_dir)[WORKFLOW_TASK]
        await asyncio.sleep(over_s)
        if server_calls(stack_dir)[WORKFLOW_TASK] - before <= over_s:
            break
    return time.perf_counter() - t0


def family_rss_mb(pid: int) -> tuple[float, float, float]:
    """(the process's RSS now, its children's RSS summed, and their PSS summed) in MiB. A child's RSS
    counts in full the pages it shares (git's readers map the same pack files), its PSS its share."""
    p = psutil.Process(pid)
    rss = pss = 0.0
    for c in p.children(recursive=True):
        try:
            full = c.memory_full_info()
        except psutil.Error:
            continue
        rss, pss = rss + full.rss / 2**20, pss + full.pss / 2**20
    return p.memory_info().rss / 2**20, rss, pss


async def start_all(client: object, queue: str, names: list[str]) -> list[object]:
    """Resolve every app (STARTS_AT_ONCE at a time), then start every promotion: resolving reads main on
    the worker, which would otherwise queue behind the promotions already started."""
    gate = asyncio.Semaphore(STARTS_AT_ONCE)

    async def resolve(name: str) -> object:
        async with gate:
            return await api.resolve(client, queue, name)  # type: ignore[arg-type]

    async def start(plan: object) -> object:
        async with gate:
            return await api.start(client, queue, plan, "bench")  # type: ignore[arg-type]

    t = time.perf_counter()
    plans = await asyncio.gather(*(resolve(n) for n in names))
    print(f"{len(plans)} resolved in {time.perf_counter() - t:.1f} s", flush=True)
    return await asyncio.gather(*(start(p) for p in plans))


async def count(client: object, query: str) -> int:
    return int((await client.count_workflows(query)).count)  # type: ignore[attr-defined]


def http_approve(url: str, wid: str) -> str:
    """The `approve` update over Temporal's HTTP API, as a script sends it; '' or what went wrong."""
    decision = {"env": "prod", "approver": "alice", "comment": "CAB 2026-12", "via": "ui"}
    payload = {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": _b64(json.dumps(decision))}
    body = {
        "workflowExecution": {"workflowId": wid},
        "request": {
            "meta": {"updateId": str(uuid.uuid4()), "identity": "gates-bench"},
            "input": {"name": "approve", "args": {"payloads": [payload]}},
        },
        "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
    }
    request = urllib.request.Request(
        f"{url}/api/v1/namespaces/default/workflows/{wid}/update/approve",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    for _ in range(5):
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                outcome = json.loads(answer.read()).get("outcome") or {}
        except urllib.error.HTTPError as e:  # what the server said, not just its status
            return f"{wid}: HTTP {e.code}: {e.read()[:300].decode(errors='replace')}"
        except OSError as e:
            return f"{wid}: {e}"
        if "failure" in outcome:
            return f"{wid}: {outcome['failure'].get('message')}"
        if "success" in outcome:
            return ""
    return f"{wid}: no outcome"


async def still_waiting(client: object) -> list[str]:
    """The promotions whose prod gate still waits, as their search attributes say."""
    return [w.id async for w in client.list_workflows(WAITING)]  # type: ignore[attr-defined]


async def task_troubles(client: object, ids: list[str]) -> dict[str, int]:
    """The workflow tasks in the promotions' histories that timed out (by kind: a sticky task no worker
    took in time, or one taken and not finished) or failed (by cause), and how many promotions had any:
    an update sent while a task is retried fails with "Workflow Task in failed state"."""
    from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause

    troubles: collections.Counter[str] = collections.Counter()
    at_once = asyncio.Semaphore(STARTS_AT_ONCE)

    def trouble(event: object) -> str | None:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:  # type: ignore[attr-defined]
            kind = event.workflow_task_timed_out_event_attributes.timeout_type  # type: ignore[attr-defined]
            return "timed_out_" + TimeoutType.Name(kind).removeprefix("TIMEOUT_TYPE_").lower()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:  # type: ignore[attr-defined]
            cause = event.workflow_task_failed_event_attributes.cause  # type: ignore[attr-defined]
            return "failed_" + WorkflowTaskFailedCause.Name(cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_").lower()
        return None

    async def read(wid: str) -> None:
        async with at_once:
            history = await client.get_workflow_handle(wid).fetch_history()  # type: ignore[attr-defined]
        seen = collections.Counter(k for k in map(trouble, history.events) if k)
        troubles.update(seen)
        troubles["promotions_with_any"] += bool(seen)

    await asyncio.gather(*(read(wid) for wid in ids))
    return dict(sorted(troubles.items()))


# the worker's own SDK metrics (PROMOTER_METRICS_PORT), summed over their labels (not its replay latency:
# the SDK records it for nearly every workflow task, so its count says nothing of replays)
SDK_FIGURES = {
    "temporal_sticky_cache_total_forced_eviction_total": "forced_evictions",
    "temporal_workflow_task_execution_latency_seconds_count": "tasks",
    "temporal_workflow_task_execution_latency_seconds_sum": "task_execution_s",
    "temporal_workflow_task_schedule_to_start_latency_seconds_sum": "task_schedule_to_start_s",
    "temporal_workflow_task_execution_failed_total": "tasks_failed",
}


def sdk_figures(port: int) -> dict[str, float]:
    """The worker's workflow-task figures so far, from its SDK's Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    sums: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name in SDK_FIGURES:
            sums[SDK_FIGURES[name]] += float(line.rsplit(" ", 1)[1])
    return {k: round(sums[k], 1) for k in SDK_FIGURES.values()}


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def merges_by_app(origin: str, base: str) -> collections.Counter[str]:
    log = subprocess.run(
        ["git", "-C", origin, "log", "--merges", "--format=%s", f"{base}..main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return collections.Counter(m.group(1) for m in re.finditer(r"from promote/([^/]+)/prod/", log))


class MergePace(threading.Thread):
    """Seconds from `t_a` (the first approval) to a tenth, half, 90 % and all of the `apps` merges on
    main, read every half second on a thread of its own: the approvals are sent meanwhile, and sending
    them blocks this script's event loop."""

    def __init__(self, origin: str, base: str, apps: int, t_a: float) -> None:
        super().__init__(daemon=True)
        self.origin, self.base, self.apps, self.t_a = origin, base, apps, t_a
        self.pace: dict[str, float] = {}
        self.last: float | None = None

    def run(self) -> None:
        while time.perf_counter() - self.t_a < 1800:
            try:
                merged = len(merges_by_app(self.origin, self.base))  # apps merged (a second merge is counted apart)
            except subprocess.CalledProcessError as e:  # say so; the figures then stay unset
                print(f"merges could not be read: {e.stderr.strip()}", flush=True)
                return
            for share in (0.1, 0.5, 0.9):
                if merged >= share * self.apps:
                    self.pace.setdefault(f"{share:.0%}", round(time.perf_counter() - self.t_a, 1))
            if merged >= self.apps:
                self.last = time.perf_counter()
                return
            time.sleep(0.5)


def prs_by_family(db: str) -> collections.Counter[str]:
    with sqlite3.connect(db) as conn:
        heads = [row[0] for row in conn.execute("SELECT head FROM pulls")]
    return collections.Counter(h.rsplit("/", 1)[0] for h in heads)


async def main(apps: int, settle: float, window: float, wait_only: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="promoter-gates-") as tmp_s:
        tmp = Path(tmp_s)
        stack = Stack(tmp / "state")
        metrics_port = free_port()
        os.environ["PROMOTER_METRICS_PORT"] = str(metrics_port)  # the stack's worker serves its SDK's metrics
        t_up = time.perf_counter()
        # free ports, never Temporal's defaults: another stack on this machine may take those meanwhile
        info = stack.up(gitops(tmp, apps), port=free_port(), ui_port=free_port(), ready_timeout_s=600)
        print(f"stack up with {apps} apps in {time.perf_counter() - t_up:.1f} s", flush=True)
        try:
            settings = Settings.load(str(stack.dir))
            client = await connect(settings)
            person = git.Repo.clone_from(str(info["repo_url"]), tmp / "person")
            names = [app_name(i) for i in range(apps)]
            tag = f"gates-{time.time_ns()}"
            for name in names:
                deployment = tmp / "person" / "environments" / "dev" / name / "deployment.yaml"
                deployment.write_text(re.sub(r"(image: \S+):\S+", rf"\1:{tag}", deployment.read_text()))
            person.git.execute(
                ["git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"{apps} apps to {tag}"]
            )
            person.git.push("-q", "origin", "main")
            base = person.head.commit.hexsha
            processes = {name: psutil.Process(int(pid)) for name, pid in info["pids"].items()}  # type: ignore[union-attr]
            worker_pid = int(info["pids"]["worker"])  # type: ignore[index]
            # the same stack with no promotion at all: what the waiting gates add is measured against it
            empty_cpu = await idle_cpu(processes, window)
            empty_rss, _, _ = family_rss_mb(worker_pid)
            print(f"no gates: worker {empty_rss:.0f} MiB, idle CPU {json.dumps(empty_cpu)}", flush=True)

            t0 = time.perf_counter()
            cpu0 = usage(processes)
            handles = await start_all(client, settings.task_queue, names)
            print(f"{apps} started in {time.perf_counter() - t0:.1f} s", flush=True)
            ended: list[str] = []  # promotions that ended before prod's gate: named, and left out of the burst
            while (waiting := await count(client, WAITING)) + len(ended) < apps:
                query = "WorkflowType = 'PromotionWorkflow' AND ExecutionStatus != 'Running'"
                if await count(client, query) > len(ended):
                    ended = [w.id async for w in client.list_workflows(query)]
                    for wid in ended[-5:]:
                        status = await client.get_workflow_handle(wid).query("status")
                        print(f"ended before prod's gate: {wid}: {status.get('message')}", flush=True)
                await asyncio.sleep(2.0)
            t_gated = time.perf_counter()
            cpu_gated = usage(processes)
            print(f"{waiting} waiting at prod's gate {t_gated - t0:.1f} s after the first start", flush=True)
            print(f"worker's workflow tasks to the gates: {json.dumps(sdk_figures(metrics_port))}", flush=True)

            await asyncio.sleep(settle)
            settled = settle + await quiet(stack.dir, limit_s=600)
            print(f"settled {settled:.0f} s after the last gate was reached", flush=True)
            calls, t_calls = server_calls(stack.dir), time.perf_counter()
            idle = await idle_cpu(processes, window)
            calls, took = server_calls(stack.dir) - calls, time.perf_counter() - t_calls
            beats_per_s, tasks_per_s = calls[HEARTBEAT] / took, calls[WORKFLOW_TASK] / took
            rss, children, children_pss = family_rss_mb(worker_pid)
            drift = [client.get_schedule_handle(f"drift-{env}") for env in ("dev", "prod")]
            for schedule in drift:  # what the watchers alone cost: the drift checks paused for a window
                await schedule.pause(note="gates_bench: idle CPU without the drift checks")
            idle_no_drift = await idle_cpu(processes, window)
            for schedule in drift:
                await schedule.unpause()
            figures: dict[str, object] = {
                "apps": apps,
                "to_the_gates_s": round(t_gated - t0, 1),
                "cpu_s_to_the_gates": {k: round(v - cpu0[k], 1) for k, v in cpu_gated.items()},
                "waiting": waiting,
                "ended_before_the_gate": len(ended),
                "worker_rss_mb_no_gates": round(empty_rss, 1),
                "worker_rss_mb": round(rss, 1),
                "worker_rss_kib_per_gate": round((rss - empty_rss) * 1024 / apps),
                "worker_children_rss_mb": round(children, 1),
                "worker_children_pss_mb": round(children_pss, 1),
                # measured: every activity heartbeat the server received over the window (the drift checks' too)
                "settled_s": round(settled, 1),
                "heartbeats_per_s": round(beats_per_s, 1),
                "workflow_tasks_per_s_while_idle": round(tasks_per_s, 2),
                "watcher_heartbeats_per_s_designed": round(designed_heartbeats_per_s(apps), 1),
                f"idle_cpu_pct_of_one_core_over_{window:g}s": {
                    "no_gates": empty_cpu,
                    "gates_waiting": idle,
                    "gates_waiting_drift_paused": idle_no_drift,
                },
            }
            print(json.dumps(figures), flush=True)
            if wait_only:
                print(f"gates: {apps} waiting, worker {rss:.0f} MiB, server {idle['temporal']} % idle CPU")
                return

            ids = [f"promote-{n}" for n in names if f"promote-{n}" not in ended]
            names = [n for n in names if f"promote-{n}" not in ended]
            apps = len(names)
            by_cli, by_http = ids[: apps // 2], ids[apps // 2 :]
            origin = str(info["repo_url"])
            env = {**os.environ, "PROMOTER_STATE_DIR": str(stack.dir)}
            cpu_a, sdk_a = usage(processes), sdk_figures(metrics_port)
            t_a = time.perf_counter()
            pace = MergePace(origin, base, apps, t_a)
            pace.start()
            cli = subprocess.Popen(
                [sys.executable, "-m", "promoter", "approve", "--env", "prod", "--as", "alice", *by_cli],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            with concurrent.futures.ThreadPoolExecutor(HTTP_AT_ONCE) as pool:
                http_failed = [
                    e for e in pool.map(lambda w: http_approve(str(info["temporal_http_url"]), w), by_http) if e
                ]
            t_http = time.perf_counter()
            cli_out, cli_err = cli.communicate()
            t_cli = time.perf_counter()
            print(f"approvals sent: HTTP half {t_http - t_a:.1f} s, CLI half {t_cli - t_a:.1f} s", flush=True)
            # an approval that failed (the CLI names it and exits 1; an HTTP update without an outcome) is
            # sent again, as docs/approving.md tells the operator: the gates still waiting, by one more
            # `promoter approve` each round, while none of them has merged yet
            again: list[int] = []
            for _ in range(3):
                waiting_ids = await still_waiting(client)
                if not waiting_ids:
                    break
                again.append(len(waiting_ids))
                print(f"{len(waiting_ids)} gates still wait: approving them again", flush=True)
                subprocess.run(
                    [sys.executable, "-m", "promoter", "approve", "--env", "prod", "--as", "alice", *waiting_ids],
                    env=env,
                    capture_output=True,
                    check=False,
                )
            await asyncio.to_thread(pace.join)
            last_merge = pace.last
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(h.result()) for h in handles],  # type: ignore[attr-defined]
                timeout=max(60.0, 2400 - (time.perf_counter() - t_a)),
            )
            results = [t.result() for t in done if not t.exception()]
            t_end = time.perf_counter()
            cpu_b = usage(processes)

            states = collections.Counter(r.state.value for r in results)
            merged = merges_by_app(origin, base)
            prs = prs_by_family(str(stack.dir / "forge.sqlite"))
            person.git.pull("-q", "--rebase", "origin", "main")
            lost = [
                n
                for n in names
                if not image_of(
                    (tmp / "person" / "environments" / "prod" / n / "deployment.yaml").read_text()
                ).endswith(f":{tag}")
            ]
            duplicated = sorted({n for n, k in merged.items() if k > 1} | {f for f, k in prs.items() if k > 1})
            burst = {
                "cli_exit": cli.returncode,
                "cli_lines": len(cli_out.splitlines()),
                "cli_errors": cli_err.strip().splitlines()[:5],
                "http_failed": len(http_failed),
                "http_errors": http_failed[:5],
                "approved_again": again,  # gates still waiting after each round, approved again
                "http_half_s": round(t_http - t_a, 1),
                "cli_half_s": round(t_cli - t_a, 1),
                "approved_to_merges_s": pace.pace,
                "approved_to_last_merge_s": round(last_merge - t_a, 1) if last_merge else None,
                "approved_to_last_end_s": round(t_end - t_a, 1),
                "cpu_s_burst": {k: round(v - cpu_a[k], 1) for k, v in cpu_b.items()},
                "states": dict(states),
                "workflow_tasks": await task_troubles(client, ids),
                "worker_tasks_in_the_burst": {k: round(v - sdk_a[k], 1) for k, v in sdk_figures(metrics_port).items()},
                "not_ended": len(handles) - len(results),
                "merges_on_main": sum(merged.values()),
                "lost": len(lost),
                "duplicated": len(duplicated),
            }
            print(json.dumps(burst), flush=True)
            if lost or duplicated:
                print("lost: " + ", ".join(lost[:10]) + "; duplicated: " + ", ".join(duplicated[:10]))
            took = f"{last_merge - t_a:.1f}" if last_merge else "(not all merged)"
            print(
                f"gates: {apps} waiting, worker {rss:.0f} MiB, server {idle['temporal']} % idle CPU, "
                f"approved to last merge in {took} s, {len(lost)} lost, {len(duplicated)} duplicated"
            )
        finally:
            stack.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to let the waiting gates settle")
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which idle CPU is sampled")
    parser.add_argument("--wait-only", action="store_true", help="stop after measuring the waiting gates")
    a = parser.parse_args()
    asyncio.run(main(a.apps, a.settle, a.window, a.wait_only))
