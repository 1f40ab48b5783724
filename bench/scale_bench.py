"""A platform team's morning: N apps (default 100) changed in one commit, all promoted at once, by one
worker or several, one of which may be lost on the way.

Starts the real embedded stack (`promoter up --detach`: Temporal dev server, worker process, local
origin and forge, simulated clusters with their 0.2 s rollout delay) in a temporary state directory,
with N copies of the sample app in every environment and prod's gate opening by itself
(approval.required: 0). With `--workers W` (default 1) W - 1 more worker processes join the stack's
own on its task queue, each with a cache directory of its own (PROMOTER_CACHE_DIR), as an operator
scales out. One commit changes every app's image in dev; then, through the same API the CLI uses,
every app is resolved at once, every promotion started at once, and every result awaited.

`--kill-after S` SIGKILLs one of the added workers S seconds after the first resolve (a lost
machine); `--term-after S` sends it SIGTERM instead (a rolling deploy: it stops taking work, lets what
it runs end for its graceful period and hands back the rest). `--compare` first runs the same promotions
without the fault, on a fresh stack, and prints the extra wall time the fault cost.

Each run prints one JSON line: the resolve/start/run seconds, the promotions' end states, the merges on
main, the PRs the local forge holds per app and environment (none opened twice), the merges on main per
app and environment (exactly one each), the lost changes (a prod or staging folder not carrying its new
image at the end), CPU seconds per process (each worker with its whole process tree: the policy-engine
processes, git's readers and the git runs that ended; sampled every half second, so a killed worker's
figure is its last sample), CPU seconds per promotion, and the first worker's and its policy engine
processes' peak RSS. Then `scale: <N> apps, <W> workers[, <fault>] in <s> s, <k> not succeeded, <l>
lost, <d> PRs or merges not exactly once` (seconds from the first resolve to the last result), and with
`--compare`, `extra wall time of the <fault>: <s> s`.

With a fault, a last line tells its own cost apart from the load's (under load a survivor's tasks time
out too): `the <fault> cost: the worker held <n> activities, <k> started again elsewhere (the last <s> s
after the signal); <m> of its workflow tasks timed out (<n> <timeout type>, ...; the longest timeout
after the signal <s> s)`, by the worker identity the server records for each attempt and workflow
task (`FaultCost`).

    .venv/bin/python bench/scale_bench.py [--apps 100] [--workers 1] [--kill-after S | --term-after S] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
import psutil
from temporalio.api.enums.v1 import EventType, PendingActivityState, TimeoutType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the stack's processes (`python -m promoter ...`) run this tree's code too, also from a `git worktree`
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

from bench.promotion_bench import child_peaks, peak_rss_mb  # noqa: E402
from promoter import api  # noqa: E402
from promoter.forges.local import LocalForge  # noqa: E402
from promoter.models import PromotionState  # noqa: E402
from promoter.settings import Settings, connect  # noqa: E402
from promoter.stack import Stack, wait_until  # noqa: E402

ENVS = ("dev", "staging", "prod")
TARGETS = ("staging", "prod")
_PROMOTE = re.compile(r"promote/([^/]+)/([^/]+)/")


def app_name(i: int) -> str:
    return f"app-{i:03d}"


def gitops_with_apps(tmp: Path, apps: int) -> Path:
    """The sample repository with `apps` copies of `demo` (renamed) in every environment."""
    src = tmp / "gitops"
    shutil.copytree(ROOT / "environments", src / "environments")
    shutil.copytree(ROOT / "policies", src / "policies")
    prod = src / "environments" / "prod" / "environment.yaml"
    prod.write_text(re.sub(r"required: 1", "required: 0", prod.read_text()))
    for env in ENVS:
        demo = src / "environments" / env / "demo"
        for i in range(apps):
            folder = demo.parent / app_name(i)
            folder.mkdir()
            for f in demo.iterdir():
                (folder / f.name).write_text(f.read_text().replace("demo", app_name(i)))
    return src


def cpu_seconds(p: psutil.Process) -> dict[str, float]:
    """CPU seconds of a process itself and of its children that ended (git, kustomize, ...)."""
    t = p.cpu_times()
    return {"self": t.user + t.system, "children": t.children_user + t.children_system}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process's whole tree now: itself and every live descendant (the worker's
    policy-engine processes and git readers live as long as it does, which `children_*` never counts),
    each with the children it reaped (the git runs that ended)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue  # ended meanwhile: its parent counts it once reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total


def image_of(text: str) -> str:
    found = re.search(r"image: (\S+)", text)
    return found.group(1) if found else ""


class Sampler:
    """The CPU seconds of each named process tree, sampled every half second while it runs (a killed
    process keeps its last sample)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.last: dict[str, float] = {}
        self.signalled: float | None = None  # when a fault's signal was sent (epoch seconds)
        self.sample()
        self.first = dict(self.last)

    def sample(self) -> None:
        for name, pid in self.pids.items():
            try:
                # never less than before: a killed worker, not yet reaped, reads as a zombie with no times
                self.last[name] = max(tree_cpu(pid), self.last.get(name, 0.0))
            except psutil.Error:
                continue

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
        self.sample()

    def spent(self) -> dict[str, float]:
        return {name: round(self.last.get(name, 0.0) - self.first.get(name, 0.0), 1) for name in self.pids}


def add_workers(stack: Stack, info: dict[str, Any], count: int) -> list[subprocess.Popen[bytes]]:
    """`count` more workers on the stack's task queue, configured as its own worker is, each with a
    cache directory of its own."""
    env = psutil.Process(int(info["pids"]["worker"])).environ()
    started = []
    for i in range(1, count + 1):
        ready = stack.dir / f"worker-{i}.ready"
        with open(stack.dir / f"worker-{i}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "promoter", "worker", "--ready-file", str(ready)],
                env={**env, "PROMOTER_CACHE_DIR": str(stack.dir / f"cache-{i}")},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=stack.dir,
            )
        started.append(proc)
        wait_until(lambda: ready.exists() or proc.poll() is not None, 120, f"worker {i}")  # noqa: B023
        if proc.poll() is not None:
            raise SystemExit(f"worker {i} did not start; see {stack.dir / f'worker-{i}.log'}")
    return started


def once_each(counts: collections.Counter[tuple[str, str]], names: list[str]) -> list[str]:
    """The app/environment pairs not counted exactly once."""
    return [f"{env}/{n}: {counts[(n, env)]}" for n in names for env in TARGETS if counts[(n, env)] != 1]


def by_app_and_env(heads: list[str]) -> collections.Counter[tuple[str, str]]:
    found = (_PROMOTE.search(h) for h in heads)
    return collections.Counter((m.group(1), m.group(2)) for m in found if m)


@dataclass
class Fault:
    kind: str  # "kill" (SIGKILL) or "term" (SIGTERM)
    after_s: float

    def __str__(self) -> str:
        return f"SIG{self.kind.upper()} after {self.after_s:g} s"


async def fault_later(
    fault: Fault | None, victim: subprocess.Popen[bytes] | None, sampler: Sampler, handles: list[Any]
) -> tuple[float, set[tuple[str, str]]] | None:
    """Send the fault's signal to `victim` after its delay; the moment it was sent, and the activities
    the victim held then (of the promotions started by then, in `handles`; read just before and just
    after the signal)."""
    if fault is None or victim is None:
        return None
    await asyncio.sleep(fault.after_s)
    identity = worker_identity(victim.pid)
    before = await held_by(list(handles), identity)  # a SIGTERM hands back within seconds
    sampler.sample()  # a killed worker's last CPU figure
    victim.send_signal(signal.SIGKILL if fault.kind == "kill" else signal.SIGTERM)
    sent = sampler.signalled = time.time()
    return sent, before | await held_by(list(handles), identity)


def worker_identity(pid: int) -> str:
    """A worker's identity as the server records it (the SDK's default, `<pid>@<host>`)."""
    return f"{pid}@{socket.gethostname()}"


def push_release(person: git.Repo, tmp: Path, names: list[str]) -> tuple[str, str]:
    """One commit that changes every app's dev image, pushed; (its tag, the commit before it)."""
    base = person.head.commit.hexsha
    tag = f"scale-{time.time_ns()}"
    for name in names:
        deployment = tmp / "person" / "environments" / "dev" / name / "deployment.yaml"
        deployment.write_text(re.sub(r"(image: \S+):\S+", rf"\1:{tag}", deployment.read_text()))
    person.git.execute(
        ["git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"{len(names)} apps to {tag}"]
    )
    person.git.push("-q", "origin", "main")
    return tag, base


def outcome(tmp: Path, person: git.Repo, base: str, tag: str, names: list[str], forge: LocalForge) -> dict[str, Any]:
    """What main and the forge hold after the run: merges, PRs per app and environment, lost changes."""
    person.git.pull("-q", "--rebase", "origin", "main")
    subjects = person.git.log("--merges", "--format=%s", f"{base}..HEAD").splitlines()
    merges = by_app_and_env(subjects)
    prs = by_app_and_env([pr.head for pr in forge.list_pull_requests()])
    lost = [
        f"{env}/{name}"
        for name in names
        for env in TARGETS
        if not image_of((tmp / "person" / "environments" / env / name / "deployment.yaml").read_text()).endswith(
            f":{tag}"
        )
    ]
    return {
        "merges_on_main": len(subjects),
        "commits_on_main": int(person.git.rev_list("--count", f"{base}..HEAD") or 0),
        "merges_not_once": once_each(merges, names),
        "prs_not_once": once_each(prs, names),
        "lost": lost,
    }


async def promote_all(
    client: Any, task_queue: str, names: list[str], handles: list[Any]
) -> tuple[list[Any], list[float]]:
    """Resolve, start (each handle added to `handles` as it starts) and await every promotion;
    (results, [resolve s, start s, run s])."""

    async def start(plan: Any) -> Any:
        handle = await api.start(client, task_queue, plan, "bench")
        handles.append(handle)
        return handle

    t0 = time.perf_counter()
    plans = await asyncio.gather(*(api.resolve(client, task_queue, n) for n in names))
    t1 = time.perf_counter()
    started = await asyncio.gather(*(start(p) for p in plans))
    t2 = time.perf_counter()
    results = await asyncio.gather(*(h.result() for h in started))
    return results, [t1 - t0, t2 - t1, time.perf_counter() - t2]


async def held_by(handles: list[Any], identity: str) -> set[tuple[str, str]]:
    """The activities that the worker `identity` was running, as the server sees them just after its
    signal: (workflow ID, activity ID) of each pending activity whose last attempt it started."""
    gate = asyncio.Semaphore(32)

    async def one(handle: Any) -> list[tuple[str, str]]:
        async with gate:
            try:
                desc = await handle.describe()
            except Exception:  # noqa: BLE001 (a promotion that ended meanwhile holds nothing)
                return []
        return [
            (handle.id, p.activity_id)
            for p in desc.raw_description.pending_activities
            if p.last_worker_identity == identity and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ]

    return {pair for found in await asyncio.gather(*(one(h) for h in handles)) for pair in found}


def _after(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "last_s": round(max(values), 1) if values else None}


@dataclass
class FaultCost:
    """What a fault sent at `at` (epoch seconds, server clock) cost, read from the promotions'
    histories: every activity retried and workflow task timed out after it (under load a survivor's
    tasks time out too), and apart from those what the lost worker `victim` (its identity) held: its
    activities (`held`: read from the server around the signal) and how long after the signal each
    started again elsewhere; its workflow tasks that timed out (a task it had started, or one waiting on
    its sticky queue: the task before it was its) and each one's timeout, the time the fault itself
    cost that promotion (from the signal, or from the task's scheduling if later, to the timeout: the
    wait that follows in a busy queue is the load's, as for any task)."""

    at: float
    victim: str
    held: set[tuple[str, str]]
    retried: list[float] = field(default_factory=list)
    timed_out: list[float] = field(default_factory=list)
    own_retried: list[float] = field(default_factory=list)
    timeouts: collections.Counter[str] = field(default_factory=collections.Counter)  # by type
    own_timeouts: collections.Counter[str] = field(default_factory=collections.Counter)
    own_penalty: list[float] = field(default_factory=list)

    def read(self, workflow_id: str, events: list[Any], times: list[float]) -> None:
        last_worker, held_ids, scheduled = "", set(), 0.0
        for e, at in zip(events, times, strict=True):
            kind = e.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                scheduled = at
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                last_worker = e.workflow_task_started_event_attributes.identity
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT and at >= self.at:
                self.timed_out.append(at - self.at)
                kind_name = TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
                kind_name = kind_name.removeprefix("TIMEOUT_TYPE_").lower()
                self.timeouts[kind_name] += 1
                if last_worker == self.victim:
                    self.own_timeouts[kind_name] += 1
                    self.own_penalty.append(at - max(self.at, scheduled))
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                if (workflow_id, e.activity_task_scheduled_event_attributes.activity_id) in self.held:
                    held_ids.add(e.event_id)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = e.activity_task_started_event_attributes
                if at >= self.at and started.attempt > 1:
                    self.retried.append(at - self.at)
                if started.scheduled_event_id in held_ids and started.identity != self.victim and at >= self.at:
                    self.own_retried.append(at - self.at)  # (the attempt that ended: a later retry, if any)

    def figures(self) -> dict[str, Any]:
        return {
            "activities_retried": _after(self.retried),
            "workflow_tasks_timed_out": _after(self.timed_out),
            "workflow_task_timeouts_by_type": dict(self.timeouts),
            "victims_activities_restarted_after_fault": _after(self.own_retried),
            "victims_workflow_tasks_timed_out": dict(self.own_timeouts),
            "victims_workflow_task_timeouts_cost_s": _after(self.own_penalty),
        }


async def histories(handles: list[Any], cost: FaultCost | None) -> dict[str, Any]:
    """From the promotions' histories (server clocks): each one's longest stillness (the most seconds
    between two of its events), and with a fault what it cost (`FaultCost`)."""
    waits = []
    for handle in handles:
        events = list((await handle.fetch_history()).events)
        times = [e.event_time.ToMicroseconds() / 1e6 for e in events]
        waits.append(max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0))
        if cost is not None:
            cost.read(handle.id, events, times)
    waits.sort()
    return {
        "longest_wait_s": {"max": round(waits[-1], 1), "p90": round(waits[int(0.9 * (len(waits) - 1))], 1)},
        **(cost.figures() if cost else {}),
    }


async def run(apps: int, workers: int, fault: Fault | None) -> float:
    """One run on a stack of its own: prints its JSON line and its `scale:` line; its total seconds."""
    with tempfile.TemporaryDirectory(prefix="promoter-scale-") as tmp_s:
        tmp = Path(tmp_s)
        stack = Stack(tmp / "state")
        t_up = time.perf_counter()
        info = stack.up(gitops_with_apps(tmp, apps), ready_timeout_s=180)
        added: list[subprocess.Popen[bytes]] = []
        try:
            added = add_workers(stack, info, workers - 1)
            print(f"stack up with {workers} worker(s) in {time.perf_counter() - t_up:.1f} s", flush=True)
            return await measured(stack, info, tmp, apps, added, fault)
        finally:
            for proc in added:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=60)
            stack.down()


async def measured(
    stack: Stack, info: dict[str, Any], tmp: Path, apps: int, added: list[subprocess.Popen[bytes]], fault: Fault | None
) -> float:
    settings = Settings.load(str(stack.dir))
    client = await connect(settings)
    person = git.Repo.clone_from(str(info["repo_url"]), tmp / "person")
    names = [app_name(i) for i in range(apps)]
    tag, base = push_release(person, tmp, names)
    pids = {name: int(pid) for name, pid in info["pids"].items()}
    pids |= {f"worker-{i + 1}": p.pid for i, p in enumerate(added)}
    sampler = Sampler(pids)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    t0, started_at = time.perf_counter(), time.time()
    handles: list[Any] = []
    victim = added[0] if added else None
    signalled = asyncio.create_task(fault_later(fault, victim, sampler, handles))
    results, (resolve_s, start_s, run_s) = await promote_all(client, settings.task_queue, names, handles)
    total = time.perf_counter() - t0
    stop.set()
    await sampling
    if sampler.signalled:
        await signalled  # sent: wait for its reading of what the victim held
    else:
        signalled.cancel()  # the run ended before the signal was due: no fault
    signal_sent = signalled.result() if sampler.signalled else None
    sent, held = signal_sent if signal_sent else (None, set[tuple[str, str]]())
    not_succeeded = [r for r in results if r.state != PromotionState.SUCCEEDED]
    for r in not_succeeded[:5]:
        print(f"  {r.app}: {r.state.value}: {r.message}")
    found = outcome(tmp, person, base, tag, names, LocalForge(None, stack.dir / "forge.sqlite", str(info["repo_url"])))
    cpu = sampler.spent()
    # without a fault: every retry and timed-out workflow task since the start (the load's own)
    cost = FaultCost(sent, worker_identity(victim.pid), held) if sent and victim else FaultCost(started_at, "", set())
    seen = await histories(handles, cost)
    worker_pid = int(info["pids"]["worker"])
    engine_rss, git_rss, _ = child_peaks(worker_pid)
    figures = {
        "apps": apps,
        "workers": 1 + len(added),
        "fault": str(fault) if fault else None,
        "fault_sent_s": round(sent - started_at, 1) if sent else None,
        "victim_held_activities": len(held),
        "resolve_s": round(resolve_s, 3),
        "start_s": round(start_s, 3),
        "run_s": round(run_s, 3),
        "total_s": round(total, 3),
        "states": dict(collections.Counter(r.state.value for r in results)),
        **seen,
        **{k: (len(v) if isinstance(v, list) else v) for k, v in found.items()},
        "cpu_s": cpu,
        "cpu_s_per_promotion": round(sum(cpu.values()) / apps, 3),
        "worker_cpu_s_per_promotion": round(sum(v for k, v in cpu.items() if k.startswith("worker")) / apps, 3),
        "worker_peak_rss_mb": round(peak_rss_mb(worker_pid), 1),
        "policy_engine_processes_peak_rss_mb": round(engine_rss, 1),
        "git_reader_processes_pss_mb": round(git_rss, 1),
    }
    print(json.dumps(figures), flush=True)
    for key in ("lost", "merges_not_once", "prs_not_once"):
        if found[key]:
            print(f"{key}: " + ", ".join(found[key][:10]))
    twice = len(found["merges_not_once"]) + len(found["prs_not_once"])
    print(
        f"scale: {apps} apps, {1 + len(added)} workers{', ' + str(fault) if fault else ''} in {total:.1f} s, "
        f"{len(not_succeeded)} not succeeded, {len(found['lost'])} lost, {twice} PRs or merges not exactly once",
        flush=True,
    )
    if fault is not None and sent is None:
        print(f"the {fault} was not sent: every promotion ended before it was due", flush=True)
    elif fault is not None:
        own = cost.figures()
        acts, tasks = own["victims_activities_restarted_after_fault"], own["victims_workflow_task_timeouts_cost_s"]
        print(
            f"the {fault} cost: the worker held {len(held)} activities, {acts['count']} started again elsewhere "
            f"(the last {acts['last_s']} s after the signal); {tasks['count']} of its workflow tasks timed out "
            f"({', '.join(f'{n} {k}' for k, n in own['victims_workflow_tasks_timed_out'].items()) or 'none'}; "
            f"the longest timeout after the signal {tasks['last_s']} s)",
            flush=True,
        )
    return total


async def main(args: argparse.Namespace) -> None:
    fault = (
        Fault("kill", args.kill_after)
        if args.kill_after is not None
        else Fault("term", args.term_after)
        if args.term_after is not None
        else None
    )
    baseline = await run(args.apps, args.workers, None) if args.compare and fault else None
    total = await run(args.apps, args.workers, fault)
    if baseline is not None:
        print(f"extra wall time of the {fault}: {total - baseline:.1f} s ({total:.1f} s against {baseline:.1f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="worker processes on the one task queue")
    faults = parser.add_mutually_exclusive_group()
    faults.add_argument("--kill-after", type=float, metavar="S", help="SIGKILL a worker S s in")
    faults.add_argument("--term-after", type=float, metavar="S", help="SIGTERM a worker S s in")
    parser.add_argument("--compare", action="store_true", help="run without the fault first; print the extra time")
    parsed = parser.parse_args()
    if parsed.workers < 1:
        parser.error("--workers must be 1 or more")
    if (parsed.kill_after is not None or parsed.term_after is not None) and parsed.workers < 2:
        parser.error("--kill-after and --term-after stop one of the added workers: use --workers 2 or more")
    asyncio.run(main(parsed))
