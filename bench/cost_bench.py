"""CPU seconds per promotion, per process, beside wall time: what one dev -> staging -> prod costs.

Starts the real embedded stack (`promoter up --detach`) in a temporary state directory with N copies
(default 50) of the sample app in every environment and prod's gate opening by itself
(approval.required: 0), then commits a new image for every app in dev and promotes them all at once,
as bench/scale_bench.py does. Wall time on a shared 2-core machine varies twice over from run to run;
CPU seconds vary far less, so this script counts them, per part of the stack, as the sum over each
part's whole process tree: the process itself, its live descendants (the worker's policy-engine
processes, git's long-lived object readers) and the descendants that ended meanwhile (git runs,
kustomize: the kernel adds them to their parent's children times when it reaps them).

It pauses the drift schedules (their checks of every app are periodic, not per promotion), then
first measures `--idle` seconds (default 10) of the stack doing nothing (Prometheus scraping, the
clusters' controllers, the Temporal server's own timers), then the promotions. It prints one JSON line
per `--rounds` round with the CPU seconds per part (total and per promotion; of which the resolves
before the starts, each a workflow run of its own), the calls the Temporal server answered per
promotion (its API's and its database's, from its own metrics) and the idle rate per second; the last line is
`cost: <cpu> CPU s per promotion (<wall> s wall for <N>)`, the median round.

    .venv/bin/python bench/cost_bench.py [--apps 50] [--rounds 1] [--idle 10]

The parts: temporal (the dev server), worker (its own process), engine (the worker's policy-engine
processes: the forkserver and the evaluators it forks), git (the worker's git runs and readers, and any
other short child), clusters (the simulated clusters), prometheus, forge (the local forge).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import git
import psutil
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the stack's processes (`python -m promoter ...`) run this tree's code too, also from a `git worktree`
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

from promoter import api  # noqa: E402
from promoter.models import PromotionState  # noqa: E402
from promoter.settings import Settings, connect  # noqa: E402
from promoter.stack import Stack  # noqa: E402

ENVS = ("dev", "staging", "prod")


def server_calls(stack_dir: Path) -> collections.Counter[str]:
    """The calls the dev server has answered so far, from its own metrics (the address it printed at
    start, in the stack's temporal.log): `frontend:<operation>` for its API's, `persistence:<operation>`
    for its history service's writes and reads of its database."""
    log = (stack_dir / "logs" / "temporal.log").read_text()
    urls = re.findall(r"Temporal Metrics:\s+(\S+)", log)  # the last start's
    if not urls:
        raise SystemExit("the dev server's metrics address is not in its log")
    with urllib.request.urlopen(urls[-1], timeout=10) as answer:
        text = answer.read().decode()
    calls: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("service_requests{") and 'service_name="frontend"' in line:
            family = "frontend"
        elif line.startswith("persistence_requests{") and 'service_name="history"' in line:
            family = "persistence"
        else:
            continue
        if operation := re.search(r'operation="(\w+)"', line):
            calls[f"{family}:{operation.group(1)}"] += float(line.rsplit(" ", 1)[1])
    return calls


def app_name(i: int) -> str:
    return f"app-{i:03d}"


def gitops_with_apps(tmp: Path, apps: int) -> Path:
    """The sample repository with `apps` copies of `demo` (renamed) in every environment, prod's gate
    opening by itself (approval.required: 0), as bench/scale_bench.py builds it."""
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


Snapshot = dict[tuple[int, float], tuple[str, float]]  # (pid, start time) -> (part, CPU seconds)


def kind(root: str, proc: psutil.Process, engine_pids: set[int]) -> str:
    """The part a process of `root`'s tree is counted in."""
    if root != "worker":
        return root
    if proc.pid in engine_pids:
        return "engine"
    return "git"


def snapshot(roots: dict[str, int]) -> Snapshot:
    """Every live process of each root's tree: its CPU seconds, its own and its reaped descendants'."""
    out: Snapshot = {}
    for root, pid in roots.items():
        try:
            top = psutil.Process(pid)
            tree = [top, *top.children(recursive=True)]
        except psutil.Error:
            continue
        engine_pids: set[int] = set()
        if root == "worker":
            for child in top.children():
                try:
                    if "multiprocessing" in " ".join(child.cmdline()):  # the forkserver, the resource tracker
                        engine_pids |= {child.pid, *(c.pid for c in child.children(recursive=True))}
                except psutil.Error:
                    continue
        for proc in tree:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    started = proc.create_time()
            except psutil.Error:
                continue  # ended meanwhile: its parent's children times carry it
            if proc.pid == pid and root == "worker":  # its own CPU apart from its ended children's (git runs)
                out[(proc.pid, started)] = ("worker", t.user + t.system)
                out[(-proc.pid, started)] = ("git", t.children_user + t.children_system)
                continue
            part = root if proc.pid == pid else kind(root, proc, engine_pids)
            out[(proc.pid, started)] = (part, t.user + t.system + t.children_user + t.children_system)
    return out


def spent(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per part between two snapshots. A process that ended between them was reaped into its
    parent's children times (in `after`): its share before is taken off, so it is not counted twice."""
    parts: dict[str, float] = {}
    for key, (part, cpu) in after.items():
        parts[part] = parts.get(part, 0.0) + cpu - before.get(key, (part, 0.0))[1]
    for key, (part, cpu) in before.items():
        if key not in after:
            parts[part] = parts.get(part, 0.0) - cpu
    return parts


async def one_round(
    client: object,
    settings: Settings,
    roots: dict[str, int],
    repo_url: str,
    person: Path,
    names: list[str],
    stack_dir: Path,
) -> dict:
    """Commit a new image for `names` in dev, promote them all at once, count the CPU it took."""
    clone = git.Repo(person) if person.exists() else git.Repo.clone_from(repo_url, person)
    clone.git.pull("-q", "--rebase", "origin", "main")
    tag = f"cost-{time.time_ns()}"
    for name in names:
        deployment = person / "environments" / "dev" / name / "deployment.yaml"
        deployment.write_text(re.sub(r"(image: \S+):\S+", rf"\1:{tag}", deployment.read_text()))
    clone.git.execute(["git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"to {tag}"])
    clone.git.push("-q", "origin", "main")
    before, calls = snapshot(roots), server_calls(stack_dir)
    t0 = time.perf_counter()
    plans = await asyncio.gather(*(api.resolve(client, settings.task_queue, a) for a in names))  # type: ignore[arg-type]
    resolved = snapshot(roots)
    handles = await asyncio.gather(*(api.start(client, settings.task_queue, p, "bench") for p in plans))  # type: ignore[arg-type]
    results = await asyncio.gather(*(h.result() for h in handles))
    wall = time.perf_counter() - t0
    cpu = spent(before, snapshot(roots))
    calls = server_calls(stack_dir) - calls
    resolving = spent(before, resolved)
    failed = [r for r in results if r.state != PromotionState.SUCCEEDED]
    for r in failed[:5]:
        print(f"  {r.app}: {r.state.value}: {r.message}")
    total = sum(cpu.values())
    return {
        "apps": len(names),
        "wall_s": round(wall, 1),
        "not_succeeded": len(failed),
        "cpu_s": {k: round(v, 1) for k, v in sorted(cpu.items())},
        "cpu_s_per_promotion": {k: round(v / len(names), 3) for k, v in sorted(cpu.items())},
        "total_cpu_s": round(total, 1),
        "total_cpu_s_per_promotion": round(total / len(names), 3),
        "of_which_resolve_cpu_s_per_promotion": {k: round(v / len(names), 3) for k, v in sorted(resolving.items())},
        # what the server answered a promotion (long polls left out: they wait, they cost nothing)
        "server_calls_per_promotion": {
            k: round(v / len(names), 1) for k, v in calls.most_common() if "Poll" not in k and v >= len(names) / 2
        },
    }


async def pause_drift_checks(client: Client) -> list[str]:
    """Pause every `drift-<env>` schedule (each checks every app of its environment every 5 minutes, on
    the clock: a round that crossed the minute would count them). Waits for the worker to make them."""
    deadline = time.monotonic() + 30
    while True:
        ids = [s.id async for s in await client.list_schedules() if s.id.startswith("drift-")]
        if ids or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    for schedule in ids:
        await client.get_schedule_handle(schedule).pause(note="cost_bench")
    return sorted(ids)


async def main(apps: int, rounds: int, idle_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="promoter-cost-") as tmp_s:
        tmp = Path(tmp_s)
        stack = Stack(tmp / "state")
        info = stack.up(gitops_with_apps(tmp, apps), ready_timeout_s=120)
        try:
            settings = Settings.load(str(stack.dir))
            client = await connect(settings)
            roots = {name: int(pid) for name, pid in info["pids"].items()}  # type: ignore[union-attr]
            paused = await pause_drift_checks(client)
            print(f"paused the drift schedules {', '.join(paused)}: their checks of every app are no promotion's cost")
            person, url = tmp / "person", str(info["repo_url"])
            # one promotion first, so every part has loaded what it loads once (modules, schemas, engine)
            await one_round(client, settings, roots, url, person, [app_name(0)], stack.dir)
            before = snapshot(roots)
            await asyncio.sleep(idle_s)
            idle = {k: round(v / idle_s, 3) for k, v in sorted(spent(before, snapshot(roots)).items())}
            print(json.dumps({"idle_cpu_s_per_s": idle}))
            lines = []
            every = [app_name(i) for i in range(apps)]
            for _ in range(rounds):
                line = await one_round(client, settings, roots, url, person, every, stack.dir)
                print(json.dumps(line), flush=True)
                lines.append(line)
            mid = sorted(lines, key=lambda x: x["total_cpu_s_per_promotion"])[len(lines) // 2]
            print(
                f"cost: {statistics.median(x['total_cpu_s_per_promotion'] for x in lines):.3f} CPU s per promotion "
                f"({mid['wall_s']} s wall for {mid['apps']})"
            )
        finally:
            stack.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.apps, args.rounds, args.idle))
