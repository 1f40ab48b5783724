"""The git reads of one promotion on a monorepo, with the index of main's records and without it, in one
run (issue 32): the code of this tree against another checkout's (`--base DIR`, e.g. a `git worktree
add /tmp/base <rev>` of the code before the index), on the same repository.

Builds `--apps` apps x 3 environments (`bench/repo_scale_bench.py`'s `write_source`, seeded as
`promoter up` seeds) and keeps main at the seed; for each tree, in a fresh process with a fresh clone:

- the promotion's reads once on the seeded main (the worker's first promotion: the index is built);
- then main moved to `--commits` other teams' commits further (their push), and the reads again (the
  first promotion after the push);
- then one commit of demo's and the reads again (the next promotion);
- `promoter history demo` in a fresh process on the clone the reads left.

The reads of a promotion of demo dev -> staging -> prod, as the worker's activities ask them: resolve
(the newest commit, the holds, the trusted rules), then for each of staging and prod the trusted rules
and the authors of the promoted range (what the policies judge). Wall time and CPU seconds of the
process and its git runs (getrusage of itself and its children) per step, one JSON line each.

    .venv/bin/python bench/index_bench.py --base /tmp/base [--apps 5000] [--commits 20000]

`--stack` measures whole promotions instead, on this tree's code alone (run the script of each checkout
for before and after): `repo_scale_bench.py`'s monorepo part up to `promoter dry-run` (promoter up,
the push, the first promotion after it, `--rounds` next ones, history and dry-run from a fresh
process, CPU seconds per stack process), without its drift and idle parts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURE = """
import json, resource, sys, time
from pathlib import Path
from promoter.gitrepo import GitClone
from promoter.models import PromotionRequest

def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

clone = GitClone(sys.argv[1], Path(sys.argv[2]))
t, c = time.perf_counter(), cpu()
plan = clone.resolve(PromotionRequest(app="demo"))
for env in ("staging", "prod"):
    clone.rules()
    clone.authors(plan.commit, env, ["demo"])
print(json.dumps({"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(cpu() - c, 2)}))
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def reads(tree: Path, origin: Path, cache: Path) -> dict[str, float]:
    """The promotion's reads in a fresh process running `tree`'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(origin), str(cache)], cwd=tree, env=env, check=True, capture_output=True
    )
    found: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return found


def history(tree: Path, origin: Path, cache: Path) -> dict[str, float]:
    """`promoter history demo` in a fresh process, on the clone in `cache`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PROMOTER_REPO_URL": str(origin)}
    env["PROMOTER_CACHE_DIR"] = str(cache.parent)  # the CLI's clone is `cli` beneath it
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "promoter", "history", "demo"], cwd=tree, env=env, check=True, capture_output=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(cpu, 2)}


def run(label: str, tree: Path, origin: Path, work: Path, seed: str, pushed: str) -> None:
    cache = work / f"cache-{label}" / "cli"
    git(origin, "update-ref", "refs/heads/main", seed)
    steps = [("first promotion (index built)", None), ("first promotion after the push", pushed), ("next", "bump")]
    for name, move in steps:
        if move == "bump":
            git(origin, "update-ref", "refs/heads/main", bump(origin, pushed))
        elif move:
            git(origin, "update-ref", "refs/heads/main", move)
        print(json.dumps({f"{label}: {name}": reads(tree, origin, cache)}), flush=True)
    print(json.dumps({f"{label}: history demo (fresh process)": history(tree, origin, cache)}), flush=True)


def bump(origin: Path, parent: str) -> str:
    """One commit of demo's dev image on top of `parent` (the same for every tree)."""
    path = "environments/dev/demo/deployment.yaml"
    text = git(origin, "show", f"{parent}:{path}").replace("image: ", "image: bumped/", 1) + "\n"
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=origin, input=text, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "PATH": "/usr/bin:/bin"}
        subprocess.run(["git", "read-tree", parent], cwd=origin, env=index, check=True)
        subprocess.run(
            ["git", "update-index", "--cacheinfo", f"100644,{blob},{path}"], cwd=origin, env=index, check=True
        )
        tree = subprocess.run(
            ["git", "write-tree"], cwd=origin, env=index, check=True, capture_output=True, text=True
        ).stdout.strip()
    ident = {
        "GIT_AUTHOR_NAME": "dana",
        "GIT_AUTHOR_EMAIL": "d@x",
        "GIT_COMMITTER_NAME": "dana",
        "GIT_COMMITTER_EMAIL": "d@x",
    }
    return subprocess.run(
        ["git", "commit-tree", tree, "-p", parent, "-m", "demo bumped"],
        cwd=origin, env={**ident, "PATH": "/usr/bin:/bin", "GIT_COMMITTER_DATE": "1800000000 +0000",
                         "GIT_AUTHOR_DATE": "1800000000 +0000"}, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


async def stack(apps: int, commits: int, rounds: int) -> None:
    """Whole promotions of demo through the embedded stack (see the module), this tree's code."""
    from bench import repo_scale_bench as scale

    out: dict[str, object] = {}
    label = f"{apps} apps ({ROOT})"
    with tempfile.TemporaryDirectory(prefix="promoter-index-stack-") as tmp_s:
        tmp = Path(tmp_s)
        source = scale.write_source(tmp / "big", apps)

        async def run(client: object, task_queue: str, state: Path, info: dict[str, object], meter: object) -> None:
            person = tmp / "person-big"
            scale.git(tmp, "clone", "-q", str(info["repo_url"]), str(person))
            with meter.measure(f"{label}: push of {commits} other teams' commits", out):  # type: ignore[attr-defined]
                scale.other_teams_commits(person, commits, apps)
                scale.git(person, "push", "-q", "origin", "main")
            scale.git(person, "reset", "-q", "--hard")
            await scale.promotions(client, task_queue, person, meter, out, label, rounds)  # type: ignore[arg-type]
            for command in ("history", "dry-run"):
                with meter.measure(f"{label}: promoter {command} demo", out):  # type: ignore[attr-defined]
                    scale.cli(state, command, "demo", check=command == "history")

        await scale.on_stack(tmp, source, label, out, run)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--stack", action="store_true", help="whole promotions through promoter up, this tree")
    parser.add_argument("--rounds", type=int, default=3, help="next promotions with --stack")
    parser.add_argument("--apps", type=int, default=5000)
    parser.add_argument("--commits", type=int, default=20000)
    parser.add_argument("--origin", type=Path, help="a repository repo_scale_bench.py --build-only built")
    args = parser.parse_args()
    if args.stack:
        asyncio.run(stack(args.apps, args.commits, args.rounds))
        return
    if args.base is None or not (args.base / "promoter").is_dir():
        parser.error("give --base, a checkout of this repository (its promoter/ folder) to compare with, or --stack")
    from bench.repo_scale_bench import build_repository

    with tempfile.TemporaryDirectory(prefix="promoter-index-bench-") as tmp:
        work = Path(tmp)
        origin = args.origin
        if origin is None:
            t = time.perf_counter()
            _, origin = build_repository(work / "repo", args.apps, args.commits)
            print(f"built {args.apps} apps + {args.commits} commits in {time.perf_counter() - t:.0f} s", flush=True)
        pushed = git(origin, "rev-parse", "main")
        seed = git(origin, "rev-list", "--max-parents=0", "main")
        try:
            for label, tree in (("before", args.base.resolve()), ("after", ROOT)):
                run(label, tree, origin, work, seed, pushed)
        finally:
            git(origin, "update-ref", "refs/heads/main", pushed)


if __name__ == "__main__":
    main()
