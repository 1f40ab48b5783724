"""A monorepo: `--apps` apps (default 5,000) x 3 environments x 3 files, then `--commits` (default 20,000)
more commits pushed to main as other teams push, and what a promotion of one app costs there (issue 32).

Builds the GitOps repository (`write_source`: the sample's environments and policies, `demo` and
`apps - 1` renamed copies of it in every environment, prod's gate opening by itself), starts promoter's
own embedded stack on it (`promoter up`, a fresh process, on free ports), pushes the other teams'
commits (`other_teams_commits`: `git fast-import`, each commit changing one other app's dev image),
then measures, with CPU seconds per process beside wall time:

- `promoter up` (the whole of it, and `seed_origin` alone), and the push of the other teams' commits;
- the first promotion of `demo` after that push, then `--rounds` next ones (the median kept), each
  after a commit that changes demo's dev image, promoted dev -> staging -> prod through the same API the
  CLI uses; the same on the sample repository (demo alone) in the same run, for the ratio;
- `promoter history demo` and `promoter dry-run demo` (`plan`'s name now), each a fresh process;
- one environment's drift check (`--drift-env`, default staging) of every app, all in sync (each app's
  objects applied first as a sync applies them, labels, inventory and all), twice;
- the stack's idle CPU with drift every 5 minutes: its CPU over `--idle` seconds with the drift
  schedules paused, plus one scheduled drift round, per 300 s: the rounds of the `--sync-envs`
  (default staging, the apps of each applied first: minutes at 5,000 apps) triggered, their CPU
  counted for every environment.

The drift schedules are paused as soon as the stack is up (each checks every app of its environment
every 5 minutes: measured apart, last, not beside the promotions). CPU seconds are per process tree
(itself, its live descendants, and those it reaped): temporal, worker (with its policy engine and git
processes, less the local origin's side of them), origin (the bare repository's `receive-pack` and
`upload-pack`, which git runs under the worker's pushes and fetches and a hosted forge runs on its own
machines: `OriginSide`), clusters, forge, prometheus; a `promoter` CLI run's are its own and its children's
(getrusage, `cli`), this script's own are `bench`. Prints one JSON line per measure, then the table.

    .venv/bin/python bench/repo_scale_bench.py [--apps 5000] [--commits 20000] [--rounds 3] [--idle 60]
    .venv/bin/python bench/repo_scale_bench.py --build-only DIR [--apps N] [--commits N]

`--build-only DIR` starts nothing: it writes DIR/gitops (the source tree) and DIR/origin.git (a bare
repository seeded from it by `promoter.stack.seed_origin`, then the other teams' commits on main) and
prints their paths. `build_repository`, `write_source` and `other_teams_commits` are importable.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the stack's processes (`python -m promoter ...`) run this tree's code too, also from a `git worktree`
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

ENVS = ("dev", "staging", "prod")
IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def app_name(i: int) -> str:
    """The i-th app: `demo` first (the app promoted), then app-0001, app-0002..."""
    return "demo" if i == 0 else f"app-{i:04d}"


def write_source(dest: Path, apps: int) -> Path:
    """The GitOps repository's tree in `dest`: the sample's environments/ and policies/, `demo` and `apps
    - 1` renamed copies of it in every environment, prod's gate opening by itself (approval.required: 0)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "environments", dest / "environments")
    shutil.copytree(ROOT / "policies", dest / "policies")
    prod = dest / "environments" / "prod" / "environment.yaml"
    prod.write_text(re.sub(r"required: 1", "required: 0", prod.read_text()))
    for env in ENVS:
        demo = dest / "environments" / env / "demo"
        files = {f.name: f.read_text() for f in demo.iterdir()}
        for i in range(1, apps):
            name = app_name(i)
            folder = demo.parent / name
            folder.mkdir()
            for file, text in files.items():
                (folder / file).write_text(text.replace("demo", name))
    return dest


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def other_teams_commits(repo: Path, commits: int, apps: int, seed: int = 32) -> str:
    """`commits` commits on top of `repo`'s main (a clone or a bare repository), through one `git
    fast-import`: each by one of 50 teams, changing one other app's dev image (never demo's); returns
    main's new commit. Deterministic for a `seed`."""
    if commits <= 0 or apps < 2:
        return subprocess.run(
            ["git", "rev-parse", "main"], cwd=repo, check=True, capture_output=True, text=True
        ).stdout.strip()
    template = (ROOT / "environments" / "dev" / "demo" / "deployment.yaml").read_text()
    parent = subprocess.run(["git", "rev-parse", "main"], cwd=repo, check=True, capture_output=True, text=True)
    now, pick = int(time.time()), random.Random(seed)
    chunks = []
    for k in range(commits):
        name, team = app_name(pick.randrange(1, apps)), f"team-{k % 50:02d}"
        text = template.replace("demo", name).replace(":1.0.0", f":1.{k // 1000}.{k % 1000}")
        who = f"{team} <{team}@example.com> {now} +0000"
        chunks.append(f"commit refs/heads/main\nauthor {who}\ncommitter {who}\n".encode())
        chunks.append(_data(f"{name}: dev image 1.{k // 1000}.{k % 1000}"))
        if k == 0:
            chunks.append(f"from {parent.stdout.strip()}\n".encode())
        chunks.append(f"M 100644 inline environments/dev/{name}/deployment.yaml\n".encode())
        chunks.append(_data(text))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(chunks), check=True)
    head = subprocess.run(["git", "rev-parse", "main"], cwd=repo, check=True, capture_output=True, text=True)
    return head.stdout.strip()


def build_repository(dest: Path, apps: int, commits: int) -> tuple[Path, Path]:
    """`dest`/gitops (the source tree, `write_source`) and `dest`/origin.git (a bare repository seeded from
    it as `promoter up` seeds, then `commits` other teams' commits on main); (source, origin)."""
    from promoter.stack import seed_origin

    source = write_source(dest / "gitops", apps)
    origin = dest / "origin.git"
    seed_origin(source, origin)
    other_teams_commits(origin, commits, apps)
    return source, origin


# -- measuring ---------------------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process's whole tree: itself, its live descendants, and what each reaped."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class OriginSide:
    """The local origin's own side of the worker's pushes and fetches, counted apart from the worker.

    The embedded stack's origin is a bare repository the worker pushes to and fetches from by its path,
    so git runs the origin's `receive-pack` (unpacking, the connectivity check over the new objects
    against every ref) and `upload-pack` (enumerating the objects to send) as children of the worker's
    own git. A hosted forge runs them on its machines. The stack is started with GIT_EXEC_PATH on a copy
    of git's exec path whose `git-receive-pack` and `git-upload-pack` run git's own and add their CPU
    seconds (bash's `times`: their own and their children's) to a log; the meter takes them out of the
    worker's tree and shows them as `origin`."""

    def __init__(self, tmp: Path) -> None:
        self.path, self.log = tmp / "git-exec-path", tmp / "origin-cpu.log"
        real = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip())
        self.path.mkdir()
        for tool in real.iterdir():
            if tool.name not in ("git-receive-pack", "git-upload-pack"):
                (self.path / tool.name).symlink_to(tool)
        for name in ("git-receive-pack", "git-upload-pack"):
            wrapper = self.path / name
            wrapper.write_text(f'#!/bin/bash\n"{real / name}" "$@"\nrc=$?\ntimes >> "{self.log}"\nexit $rc\n')
            wrapper.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {"GIT_EXEC_PATH": str(self.path)}

    def cpu(self) -> float:
        """CPU seconds the origin's side has used so far (every `XmY.YYYs` bash's `times` wrote)."""
        text = self.log.read_text() if self.log.exists() else ""
        return sum(int(m) * 60 + float(sec) for m, sec in re.findall(r"(\d+)m([\d.]+)s", text))


class Meter:
    """Wall time and CPU seconds per stack process (and this process's reaped children: CLI runs); the
    local origin's side of the worker's git (`OriginSide`) apart from the worker's, when given."""

    def __init__(self, pids: dict[str, int], origin: OriginSide | None = None) -> None:
        self.pids, self.origin = pids, origin

    def now(self) -> dict[str, float]:
        cpu = {name: tree_cpu(pid) for name, pid in self.pids.items()}
        if self.origin is not None and "worker" in cpu:
            cpu["origin"] = self.origin.cpu()
            cpu["worker"] -= cpu["origin"]
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu["cli"] = kids.ru_utime + kids.ru_stime
        me = resource.getrusage(resource.RUSAGE_SELF)
        cpu["bench"] = me.ru_utime + me.ru_stime  # this process: seed_origin alone, the drift's client
        return cpu

    @contextmanager
    def measure(self, what: str, out: dict[str, Any]) -> Iterator[dict[str, Any]]:
        before, t0 = self.now(), time.perf_counter()
        figures: dict[str, Any] = {}
        yield figures
        wall, after = time.perf_counter() - t0, self.now()
        cpu = {k: round(after[k] - before.get(k, 0.0), 2) for k in after}
        out[what] = {"wall_s": round(wall, 2), "cpu_s": {k: v for k, v in cpu.items() if v}, **figures}
        print(json.dumps({what: out[what]}), flush=True)


def cli(
    state: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m promoter ARGS` against the stack in `state`, a fresh process (`env` added to ours)."""
    done = subprocess.run(
        [sys.executable, "-m", "promoter", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and done.returncode != 0:
        raise SystemExit(
            f"promoter {' '.join(args)} exited {done.returncode}: {done.stdout[-800:]}{done.stderr[-800:]}"
        )
    return done


def free_port() -> int:
    from promoter.stack import free_port as free

    return free()


def up(source: Path, state: Path, origin: OriginSide | None = None) -> dict[str, Any]:
    """`promoter up --detach` on `source`, a fresh process, on free ports (never Temporal's defaults);
    the stack's origin side counted apart (`OriginSide`) when given."""
    args = ["up", "--repo", str(source), "--detach", "--port", str(free_port()), "--ui-port", str(free_port())]
    cli(state, *args, env=origin.env() if origin is not None else None)
    info: dict[str, Any] = json.loads((state / "stack.json").read_text())
    return info


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **IDENTITY}
    )
    return done.stdout.strip()


def bump_demo(person: Path, tag: str) -> None:
    """One commit changing demo's dev image to `tag`, pushed."""
    git(person, "pull", "-q", "--rebase", "origin", "main")
    deployment = person / "environments" / "dev" / "demo" / "deployment.yaml"
    deployment.write_text(re.sub(r"(image: \S+):\S+", rf"\1:{tag}", deployment.read_text()))
    git(person, "commit", "-qam", f"demo to {tag}")
    git(person, "push", "-q", "origin", "main")


async def promote_demo(client: Any, task_queue: str) -> int:
    """One promotion of demo, resolved again (as a person would) while resolving times out (2 minutes);
    how many times it was resolved."""
    from promoter import api
    from promoter.errors import PromoterError
    from promoter.models import PromotionState

    for tries in range(1, 6):
        try:
            plan = await api.resolve(client, task_queue, "demo")
            break
        except PromoterError as e:
            if "timed out" not in str(e) or tries == 5:
                raise
            print(f"resolving demo timed out ({tries}); again", flush=True)
    handle = await api.start(client, task_queue, plan, "bench")
    result = await handle.result()
    if result.state != PromotionState.SUCCEEDED:
        raise SystemExit(f"demo's promotion ended {result.state.value}: {result.message}")
    return tries


def sync_environment(kubeconfig: str, env: str, source: Path, apps: int, revision: str, threads: int = 4) -> None:
    """Every app of `env` applied to its cluster as a sync applies it (labelled, annotated, server-side
    applied as the app's field manager, its inventory written), without a sync's checks of who owns what
    (each lists every inventory: quadratic over thousands of apps), so the environment starts in sync."""
    import yaml

    from promoter.cluster import KubeCluster
    from promoter.models import ClusterConfig
    from promoter.render import render_dir

    spec = yaml.safe_load((source / "environments" / env / "environment.yaml").read_text())["cluster"]
    cluster = KubeCluster.from_config(
        ClusterConfig(kubeconfig=kubeconfig, context=spec["context"], namespace=spec["namespace"])
    )
    cluster._ensure_namespace(cluster.default_namespace)

    def one(i: int) -> None:
        name = app_name(i)
        objects = [cluster._label(o, name, "bench-seed") for o in render_dir(source / "environments" / env / name)]
        for obj in objects:
            cluster._apply(obj)
        cluster._write_inventory(name, objects, revision, None)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(1, apps)))  # demo: promoted, so synced, already


async def drift_schedules(client: Any) -> list[str]:
    """The `drift-<env>` schedules' IDs, once the worker has made them."""
    deadline = time.monotonic() + 60
    while True:
        ids = sorted([s.id async for s in await client.list_schedules() if s.id.startswith("drift-")])
        if len(ids) >= len(ENVS) or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.5)


async def drift_round(client: Any, schedules: list[str]) -> int:
    """Trigger every drift schedule once, wait for the runs to end; how many apps they checked."""
    since = time.time()
    for sid in schedules:
        await client.get_schedule_handle(sid).trigger()
    checked, deadline = 0, time.monotonic() + 1800
    while time.monotonic() < deadline:
        runs = []
        for sid in schedules:
            desc = await client.get_schedule_handle(sid).describe()
            runs += [a for a in desc.info.recent_actions if a.started_at.timestamp() >= since - 1]
        if len(runs) >= len(schedules):
            ended = []
            for action in runs:
                handle = client.get_workflow_handle(
                    action.action.workflow_id, run_id=action.action.first_execution_run_id
                )
                if (await handle.describe()).status.name != "RUNNING":
                    ended.append(handle)
            if len(ended) == len(runs):
                for handle in ended:
                    report = await handle.result()
                    checked += len(getattr(report, "apps", None) or report.get("apps", []))
                return checked
        await asyncio.sleep(1)
    raise SystemExit("the drift round did not end within 30 minutes")


async def promotions(
    client: Any, task_queue: str, person: Path, meter: Meter, out: dict[str, Any], label: str, rounds: int
) -> None:
    """The first promotion of demo (after whatever was pushed before), then `rounds` next ones."""
    bump_demo(person, f"first-{time.time_ns()}")
    with meter.measure(f"{label}: first promotion", out) as figures:
        figures["resolved"] = await promote_demo(client, task_queue)
    for k in range(rounds):
        bump_demo(person, f"next-{time.time_ns()}")
        with meter.measure(f"{label}: next promotion {k + 1}", out):
            await promote_demo(client, task_queue)


def median_next(out: dict[str, Any], label: str) -> dict[str, float]:
    runs = [v for k, v in out.items() if k.startswith(f"{label}: next promotion")]
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "worker_cpu_s": round(statistics.median(r["cpu_s"].get("worker", 0.0) for r in runs), 2),
        "origin_cpu_s": round(statistics.median(r["cpu_s"].get("origin", 0.0) for r in runs), 2),
    }


async def on_stack(tmp: Path, source: Path, label: str, out: dict[str, Any], run: Callable[..., Any]) -> None:
    """`promoter up` on `source` (measured), `run(client, task_queue, state, info, meter)`, `promoter down`."""
    from promoter.settings import Settings, connect
    from promoter.stack import Stack

    state = tmp / f"state-{label}"
    (tmp / f"origin-side-{label}").mkdir()
    meter = Meter({}, OriginSide(tmp / f"origin-side-{label}"))
    try:
        with meter.measure(f"{label}: promoter up", out):
            info = up(source, state, meter.origin)
        meter.pids = {name: int(pid) for name, pid in info["pids"].items()}
        started = out[f"{label}: promoter up"]["cpu_s"]  # what the servers it started spent meanwhile
        started.update({name: round(cpu, 2) for name, cpu in meter.now().items() if name != "cli"})
        settings = Settings.load(str(state))
        client = await connect(settings)
        for sid in await drift_schedules(client):  # every app of every environment every 5 minutes: apart
            await client.get_schedule_handle(sid).pause(note="repo_scale_bench")
        await run(client, settings.task_queue, state, info, meter)
    finally:
        Stack(state).down()


async def sample(tmp: Path, rounds: int, out: dict[str, Any]) -> None:
    source = write_source(tmp / "sample", 1)

    async def run(client: Any, task_queue: str, state: Path, info: dict[str, Any], meter: Meter) -> None:
        person = tmp / "person-sample"
        git(tmp, "clone", "-q", str(info["repo_url"]), str(person))
        await promotions(client, task_queue, person, meter, out, "sample", rounds)

    await on_stack(tmp, source, "sample", out, run)


async def big(tmp: Path, args: argparse.Namespace, out: dict[str, Any]) -> None:
    from promoter import api
    from promoter.models import DriftInput
    from promoter.stack import seed_origin

    label = f"{args.apps} apps"
    t0 = time.perf_counter()
    source = write_source(tmp / "big", args.apps)
    print(f"wrote {args.apps} apps x {len(ENVS)} environments in {time.perf_counter() - t0:.1f} s", flush=True)
    with Meter({}).measure(f"{label}: seed_origin alone", out):
        seed_origin(source, tmp / "seed-alone.git")
    shutil.rmtree(tmp / "seed-alone.git")

    async def run(client: Any, task_queue: str, state: Path, info: dict[str, Any], meter: Meter) -> None:
        person = tmp / "person-big"
        git(tmp, "clone", "-q", str(info["repo_url"]), str(person))
        with meter.measure(f"{label}: push of {args.commits} other teams' commits", out):
            other_teams_commits(person, args.commits, args.apps)
            git(person, "push", "-q", "origin", "main")
        git(person, "reset", "-q", "--hard")  # fast-import moved main, not the work tree
        await promotions(client, task_queue, person, meter, out, label, args.rounds)
        with meter.measure(f"{label}: promoter history demo", out):  # its clone new: cloned, indexed
            cli(state, "history", "demo")
        with meter.measure(f"{label}: promoter history demo again", out):  # a fresh process, its clone kept
            cli(state, "history", "demo")
        with meter.measure(f"{label}: promoter dry-run demo", out):
            cli(state, "dry-run", "demo", check=False)  # exit 1 only when a stage would be denied
        schedules = await drift_schedules(client)  # paused since `up` (on_stack)
        t1 = time.perf_counter()
        for env in args.sync_envs:
            sync_environment(
                str(info["kubeconfig"]), env, source, args.apps, git(person, "rev-list", "--max-parents=0", "main")
            )
        print(f"applied every app to {', '.join(args.sync_envs)} in {time.perf_counter() - t1:.1f} s", flush=True)
        for when in ("first", "next"):  # the first check after the apps are applied, then the same again
            with meter.measure(f"{label}: drift check of {args.drift_env} ({when})", out) as figures:
                report = await api.drift(client, task_queue, DriftInput(env=args.drift_env))
                figures["apps_checked"] = len(report.apps)
                figures["apps_drifted"] = len(report.drifted)
        with meter.measure(f"{label}: idle, drift paused, {args.idle:g} s", out):
            await asyncio.sleep(args.idle)
        synced = [sid for sid in schedules if sid.removeprefix("drift-") in args.sync_envs]
        with meter.measure(f"{label}: one scheduled drift round", out) as figures:
            figures["apps_checked"] = await drift_round(client, synced)
        idle_cpu = sum(
            v for k, v in out[f"{label}: idle, drift paused, {args.idle:g} s"]["cpu_s"].items() if k != "cli"
        )
        drift_cpu = sum(v for k, v in out[f"{label}: one scheduled drift round"]["cpu_s"].items() if k != "cli")
        drift_cpu *= len(ENVS) / max(len(synced), 1)  # every environment's schedule, as the synced ones cost
        key = f"{label}: idle CPU with drift every 5 min"
        out[key] = {"core_pct": round(100 * (idle_cpu / args.idle + drift_cpu / 300), 1), "scaled_from": synced}
        print(json.dumps({key: out[key]}), flush=True)

    await on_stack(tmp, source, label, out, run)


def table(out: dict[str, Any], args: argparse.Namespace) -> str:
    label = f"{args.apps} apps"

    def cell(key: str) -> str:
        v = out.get(key)
        if not v:
            return "-"
        cpu = ", ".join(f"{k} {s:g}" for k, s in sorted(v["cpu_s"].items(), key=lambda kv: -kv[1]) if s >= 0.05)
        return f"{v['wall_s']:g} s (CPU s: {cpu})"

    s_next, b_next = median_next(out, "sample"), median_next(out, label)
    rows = [
        ("`promoter up` (seeding)", cell("sample: promoter up"), cell(f"{label}: promoter up")),
        ("`seed_origin` alone", "-", cell(f"{label}: seed_origin alone")),
        (f"push of {args.commits} commits", "-", cell(f"{label}: push of {args.commits} other teams' commits")),
        ("first promotion after the push", cell("sample: first promotion"), cell(f"{label}: first promotion")),
        (
            f"next promotion (median of {args.rounds})",
            f"{s_next['wall_s']:g} s",
            f"{b_next['wall_s']:g} s ({b_next['wall_s'] / s_next['wall_s']:.2f}x the sample)",
        ),
        (
            "worker CPU per promotion (next, median)",
            f"{s_next['worker_cpu_s']:g} s",
            f"{b_next['worker_cpu_s']:g} s ({b_next['worker_cpu_s'] / max(s_next['worker_cpu_s'], 0.01):.2f}x)",
        ),
        (
            "the local origin's side of its git (pushes received, fetches served), next, median",
            f"{s_next['origin_cpu_s']:g} s",
            f"{b_next['origin_cpu_s']:g} s",
        ),
        ("`promoter history demo`, fresh process, new clone", "-", cell(f"{label}: promoter history demo")),
        ("the same again (a fresh process, its clone kept)", "-", cell(f"{label}: promoter history demo again")),
        ("`promoter dry-run demo` (plan), fresh process", "-", cell(f"{label}: promoter dry-run demo")),
        (
            f"drift check of {args.drift_env}, all in sync",
            "-",
            cell(f"{label}: drift check of {args.drift_env} (first)"),
        ),
        ("the same check again", "-", cell(f"{label}: drift check of {args.drift_env} (next)")),
        (
            "idle CPU, drift every 5 min",
            "-",
            f"{out.get(f'{label}: idle CPU with drift every 5 min', {}).get('core_pct', '-')} % of a core",
        ),
    ]
    head = f"| figure | sample repository | {args.apps} apps + {args.commits} commits |\n|---|---|---|\n"
    return head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)


async def main(args: argparse.Namespace) -> None:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="promoter-repo-scale-") as tmp_s:
        tmp = Path(tmp_s)
        await sample(tmp, args.rounds, out)
        await big(tmp, args, out)
    print(table(out, args), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=5000, help="apps in every environment, demo included")
    parser.add_argument("--commits", type=int, default=20000, help="other teams' commits pushed to main")
    parser.add_argument("--rounds", type=int, default=3, help="next promotions measured (the median kept)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle stack measured")
    parser.add_argument("--drift-env", default="staging", help="the environment whose drift check is timed")
    parser.add_argument(
        "--sync-envs",
        default="staging",
        help="environments applied in sync before the drift checks (comma-separated); the idle figure counts "
        "every environment's drift as theirs costs",
    )
    parser.add_argument("--build-only", metavar="DIR", help="write DIR/gitops and DIR/origin.git only; start nothing")
    parsed = parser.parse_args()
    if parsed.apps < 1 or parsed.commits < 0 or parsed.rounds < 1:
        parser.error("--apps and --rounds must be 1 or more, --commits 0 or more")
    parsed.sync_envs = [e for e in parsed.sync_envs.split(",") if e]
    if unknown := sorted(set(parsed.sync_envs + [parsed.drift_env]) - set(ENVS)):
        parser.error(f"no environment {', '.join(unknown)}; the environments: {', '.join(ENVS)}")
    if parsed.build_only:
        where = Path(parsed.build_only)
        if where.exists() and any(where.iterdir()):
            parser.error(f"{where} is not empty; give --build-only a new or empty directory")
        t = time.perf_counter()
        src, origin = build_repository(where, parsed.apps, parsed.commits)
        print(f"built in {time.perf_counter() - t:.1f} s: source {src}, origin {origin}")
    else:
        asyncio.run(main(parsed))
