"""The engine's own time for a promotion of `demo` on the embedded stack, in a line, in a graph and in waves.

The line: dev -> staging -> prod. The graph: dev -> staging-eu and staging-us side by side -> prod
after both (`after:`, docs/gitops-repository.md). The waves: the line with prod as three clusters
synced one wave at a time with no pause (`clusters:`, `waves: {size: 1}`), on simulated clusters this
script starts beside the stack's. For each case it starts the real stack (`promoter up
--detach`: Temporal dev server, worker process, local origin and forge, a simulated cluster per
environment) in a temporary state directory, makes prod's gate open by itself (approval.required: 0)
so no human time is counted, then runs 5 promotions, each of a fresh commit to dev. For each it
measures the wall time from the workflow's start to its result (resolving the request excluded, printed
apart), and the worker process's peak RSS; the graph case also the time its two staging stages overlap,
the wave case the time from one prod cluster's sync to the next one's. Each case prints one JSON line
(`case`: line, graph or waves); the last line is `median <seconds> s` of the line, and the ones before
it the other cases'.

    .venv/bin/python bench/promotion_bench.py [--runs 5] [--case line|graph|waves|all]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import git
import psutil
import yaml
from temporalio.api.enums.v1 import EventType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promoter import api  # noqa: E402
from promoter.models import PromotionState, StageStatus  # noqa: E402
from promoter.settings import Settings, connect  # noqa: E402
from promoter.sim.kube import KubeSim, kubeconfig  # noqa: E402
from promoter.stack import Stack  # noqa: E402


def auto_approving_copy(tmp: Path) -> Path:
    import shutil

    src = tmp / "gitops"
    shutil.copytree(ROOT / "environments", src / "environments")
    shutil.copytree(ROOT / "policies", src / "policies")
    prod = src / "environments" / "prod" / "environment.yaml"
    prod.write_text(re.sub(r"required: 1", "required: 0", prod.read_text()))
    return src


def graph_copy(tmp: Path) -> Path:
    """The auto-approving sample as a graph: staging becomes staging-eu and staging-us (each `after:
    [dev]`, each its own cluster), prod comes after both, dev is the source (no `order` anywhere)."""
    import shutil

    src = auto_approving_copy(tmp)
    envs = src / "environments"
    for name in ("staging-eu", "staging-us"):
        shutil.copytree(envs / "staging", envs / name)
        config = envs / name / "environment.yaml"
        text = re.sub(r"\bstaging\b", name, config.read_text())
        config.write_text(re.sub(r"(?m)^order: .*$", "after: [dev]", text))
    shutil.rmtree(envs / "staging")
    dev, prod = envs / "dev" / "environment.yaml", envs / "prod" / "environment.yaml"
    dev.write_text(re.sub(r"(?m)^order: .*\n", "", dev.read_text()))
    prod.write_text(re.sub(r"(?m)^order: .*$", "after: [staging-eu, staging-us]", prod.read_text()))
    return src


WAVE_CONTEXTS = ["prod-eu-1", "prod-eu-2", "prod-us-1"]
STARTED: list[KubeSim] = []  # the wave case's own simulated clusters, stopped with its stack


def waves_copy(tmp: Path) -> Path:
    """The auto-approving sample (a line) with prod as three clusters in waves of one, no pause
    (`clusters:`, `waves:`): simulated clusters this process starts, named in a kubeconfig of their
    own that each entry names (the stack simulates one cluster per environment)."""
    src = auto_approving_copy(tmp)
    sims = [KubeSim(env=context, rollout_delay_s=0.2).start() for context in WAVE_CONTEXTS]
    STARTED.extend(sims)
    config = tmp / "waves-kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig({s.env: s.url for s in sims})))
    prod = src / "environments" / "prod" / "environment.yaml"
    doc = yaml.safe_load(prod.read_text())
    first = doc.pop("cluster")
    doc["clusters"] = [{**first, "context": c, "kubeconfig": str(config)} for c in WAVE_CONTEXTS]
    doc["waves"] = {"size": 1}
    prod.write_text(yaml.safe_dump(doc, sort_keys=False))
    return src


CASES = {  # case -> (the repository, the environments a promotion goes through)
    "line": (auto_approving_copy, ["dev", "staging", "prod"]),
    "graph": (graph_copy, ["dev", "staging-eu", "staging-us", "prod"]),
    "waves": (waves_copy, ["dev", "staging", "prod"]),
}
DRAWN = {
    "graph": "dev -> (staging-eu | staging-us) -> prod",
    "waves": f"dev -> staging -> prod ({' then '.join(WAVE_CONTEXTS)})",
}


async def history_shape(handle: Any) -> dict[str, int]:
    """What one promotion costs the server: its history's events, ordinary and local activities."""
    events = (await handle.fetch_history()).events
    kinds = [e.event_type for e in events]
    return {
        "history_events": len(events),
        "activities": kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        "local_activities": kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED),
        "search_attribute_upserts": kinds.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
    }


def child_peaks(worker_pid: int) -> tuple[float, float, int]:
    """(the policy engine processes' peak RSS, git's long-lived object readers' proportional set size
    now, engine processes): the worker's children, told apart by their command lines. The readers
    (`git cat-file`, two per worker thread) share nearly all their pages: their peak RSS summed would
    count git's binary and libraries once per process, so they are measured by PSS."""
    engine = git_readers = 0.0
    engines = 0
    for child in psutil.Process(worker_pid).children(recursive=True):
        try:
            if " ".join(child.cmdline()).startswith("git"):
                git_readers += child.memory_full_info().pss / 2**20
            else:
                engine += peak_rss_mb(child.pid)
                engines += 1
        except (psutil.Error, OSError):
            continue  # ended meanwhile
    return engine, git_readers, engines


def peak_rss_mb(pid: int) -> float:
    # VmHWM: the process's high-water mark of resident memory, as the kernel counts it
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return psutil.Process(pid).memory_info().rss / 2**20


async def case(name: str, runs: int) -> float:
    """Run `runs` promotions on a stack of its own for case `name`; print its JSON line; its median."""
    seed, envs = CASES[name]
    with tempfile.TemporaryDirectory(prefix="promoter-bench-") as tmp_s:
        tmp = Path(tmp_s)
        stack = Stack(tmp / "state")
        info = stack.up(seed(tmp))
        try:
            settings = Settings.load(str(stack.dir))
            client = await connect(settings)
            person = git.Repo.clone_from(str(info["repo_url"]), tmp / "person")
            deployment = tmp / "person" / "environments" / "dev" / "demo" / "deployment.yaml"
            totals, plans, overlaps, gaps = [], [], [], []
            for i in range(runs):
                person.git.pull("-q", "--rebase", "origin", "main")
                text = deployment.read_text()
                deployment.write_text(re.sub(r"(image: \S+):\S+", rf"\1:bench-{i}-{time.time_ns()}", text))
                person.git.execute(
                    ["git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"bench {i}"]
                )
                person.git.push("-q", "origin", "main")
                t0 = time.perf_counter()
                plan = await api.resolve(client, settings.task_queue, "demo")
                t1 = time.perf_counter()
                handle = await api.start(client, settings.task_queue, plan, "bench")
                result = await handle.result()
                t2 = time.perf_counter()
                assert result.state == PromotionState.SUCCEEDED, result.message
                assert [s.env for s in result.stages] == envs
                assert [s.state.value for s in result.stages] == ["healthy"] * len(envs)
                plans.append(t1 - t0)
                totals.append(t2 - t1)
                overlaps += [overlap(result.stages[1], result.stages[2])] if name == "graph" else []
                gaps += wave_gaps(result.stages[-1]) if name == "waves" else []
                print(f"{name} run {i + 1}: promotion {t2 - t1:.3f} s (resolve {t1 - t0:.3f} s)")
            shape = await history_shape(handle)
            worker_pid = int(info["pids"]["worker"])  # type: ignore[index]
            rss = peak_rss_mb(worker_pid)
            # the policy engine runs in child processes of the worker (the fork server, one per revision)
            engine_rss, git_rss, engines = child_peaks(worker_pid)
            median = statistics.median(totals)
            figures: dict[str, Any] = {
                "case": name,
                "environments": DRAWN.get(name, " -> ".join(envs)),
                "runs": runs,
                "median_s": round(median, 3),
                "min_s": round(min(totals), 3),
                "max_s": round(max(totals), 3),
                "per_environment_s": round(median / len(envs), 3),
                "resolve_median_s": round(statistics.median(plans), 3),
                "worker_peak_rss_mb": round(rss, 1),
                "policy_engine_processes_peak_rss_mb": round(engine_rss, 1),
                "git_reader_processes_pss_mb": round(git_rss, 1),
                **shape,
            }
            if overlaps:  # how long both staging stages ran at once (0: one after the other)
                figures["staging_overlap_median_s"] = round(statistics.median(overlaps), 3)
            if gaps:  # from one prod cluster's sync to the next one's: a wave's sync, health and step overhead
                figures["wave_gap_median_s"] = round(statistics.median(gaps), 3)
            print(json.dumps(figures))
            print(
                f"{name}: worker peak RSS {rss:.1f} MiB (+ {engine_rss:.1f} MiB in {engines} policy engine processes)"
            )
            return median
        finally:
            stack.down()
            while STARTED:
                STARTED.pop().stop()


def overlap(a: StageStatus, b: StageStatus) -> float:
    """Seconds during which stages `a` and `b` both ran (their started_at..finished_at intersected)."""
    assert a.started_at and a.finished_at and b.started_at and b.finished_at
    return max(0.0, (min(a.finished_at, b.finished_at) - max(a.started_at, b.started_at)).total_seconds())


def wave_gaps(stage: StageStatus) -> list[float]:
    """Seconds from each cluster's sync to the next wave's (the clusters in wave order)."""
    synced = [c.synced_at for c in stage.clusters]
    assert all(synced) and len(synced) == len(WAVE_CONTEXTS), stage.clusters
    return [(b - a).total_seconds() for a, b in zip(synced, synced[1:], strict=False) if a and b]


async def main(runs: int, cases: list[str]) -> None:
    medians = {name: await case(name, runs) for name in cases}
    for name in sorted(medians, key=lambda n: n == "line"):  # the line's median last, as before
        print(f"median {medians[name]:.3f} s" if name == "line" else f"{name} median {medians[name]:.3f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    args = parser.parse_args()
    asyncio.run(main(args.runs, list(CASES) if args.case == "all" else [args.case]))
