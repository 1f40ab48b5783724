"""A platform team's morning: N apps (default 100) changed in one commit, all promoted at once.

Starts the real embedded stack (`promoter up --detach`: Temporal dev server, worker process, local
origin and forge, simulated clusters with their 0.2 s rollout delay) in a temporary state directory,
with N copies of the sample app in every environment and prod's gate opening by itself
(approval.required: 0). One commit changes every app's image in dev; then, through the same API the
CLI uses, every app is resolved at once, every promotion started at once, and every result awaited.

It prints the resolve/start/run seconds, the promotions' end states, the merges on main, the lost
changes (a prod or staging folder not carrying its new image at the end), and the worker's and the
policy engine processes' peak RSS. The last line is
`scale: <N> apps in <s> s, <k> not succeeded, <l> lost` (seconds from the first resolve to the last result).

    .venv/bin/python bench/scale_bench.py [--apps 100]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import git
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.promotion_bench import child_peaks, peak_rss_mb  # noqa: E402
from promoter import api  # noqa: E402
from promoter.models import PromotionState  # noqa: E402
from promoter.settings import Settings, connect  # noqa: E402
from promoter.stack import Stack  # noqa: E402

ENVS = ("dev", "staging", "prod")
TARGETS = ("staging", "prod")


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


def image_of(text: str) -> str:
    found = re.search(r"image: (\S+)", text)
    return found.group(1) if found else ""


async def main(apps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="promoter-scale-") as tmp_s:
        tmp = Path(tmp_s)
        stack = Stack(tmp / "state")
        t_up = time.perf_counter()
        info = stack.up(gitops_with_apps(tmp, apps), ready_timeout_s=120)
        print(f"stack up in {time.perf_counter() - t_up:.1f} s")
        try:
            settings = Settings.load(str(stack.dir))
            client = await connect(settings)
            person = git.Repo.clone_from(str(info["repo_url"]), tmp / "person")
            names = [app_name(i) for i in range(apps)]
            tag = f"scale-{time.time_ns()}"
            for name in names:
                deployment = tmp / "person" / "environments" / "dev" / name / "deployment.yaml"
                deployment.write_text(re.sub(r"(image: \S+):\S+", rf"\1:{tag}", deployment.read_text()))
            person.git.execute(
                ["git", "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"{apps} apps to {tag}"]
            )
            person.git.push("-q", "origin", "main")
            base = person.head.commit.hexsha

            processes = {name: psutil.Process(int(pid)) for name, pid in info["pids"].items()}  # type: ignore[union-attr]
            cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
            t0 = time.perf_counter()
            plans = await asyncio.gather(*(api.resolve(client, settings.task_queue, n) for n in names))
            t1 = time.perf_counter()
            handles = await asyncio.gather(*(api.start(client, settings.task_queue, p, "bench") for p in plans))
            t2 = time.perf_counter()
            results = await asyncio.gather(*(h.result() for h in handles))
            t3 = time.perf_counter()

            cpu = {
                name: {k: round(v - cpu_before[name][k], 1) for k, v in cpu_seconds(p).items()}
                for name, p in processes.items()
            }
            states = collections.Counter(r.state.value for r in results)
            not_succeeded = [r for r in results if r.state != PromotionState.SUCCEEDED]
            for r in not_succeeded[:5]:
                print(f"  {r.app}: {r.state.value}: {r.message}")

            person.git.pull("-q", "--rebase", "origin", "main")
            merges = int(person.git.rev_list("--count", "--merges", f"{base}..HEAD") or 0)
            commits = int(person.git.rev_list("--count", f"{base}..HEAD") or 0)
            lost = []
            for name in names:
                for env in TARGETS:
                    text = (tmp / "person" / "environments" / env / name / "deployment.yaml").read_text()
                    if not image_of(text).endswith(f":{tag}"):
                        lost.append(f"{env}/{name}")
            worker_pid = int(info["pids"]["worker"])  # type: ignore[index]
            rss = peak_rss_mb(worker_pid)
            engine_rss, git_rss, _ = child_peaks(worker_pid)
            total = t3 - t0
            print(
                json.dumps(
                    {
                        "apps": apps,
                        "resolve_s": round(t1 - t0, 3),
                        "start_s": round(t2 - t1, 3),
                        "run_s": round(t3 - t2, 3),
                        "total_s": round(total, 3),
                        "states": dict(states),
                        "merges_on_main": merges,
                        "commits_on_main": commits,
                        "lost": len(lost),
                        "cpu_s": cpu,
                        "worker_peak_rss_mb": round(rss, 1),
                        "policy_engine_processes_peak_rss_mb": round(engine_rss, 1),
                        "git_reader_processes_pss_mb": round(git_rss, 1),
                    }
                )
            )
            if lost:
                print("lost: " + ", ".join(lost[:10]))
            print(f"scale: {apps} apps in {total:.1f} s, {len(not_succeeded)} not succeeded, {len(lost)} lost")
        finally:
            stack.down()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=100)
    asyncio.run(main(parser.parse_args().apps))
