"""How long `promoter metrics` takes on a big GitOps repository: APPS apps in dev, staging and prod
(15,000 app folders by default) and COMMITS commits on main (20,000), of which PROMOTIONS promotions'
merges into staging or prod (each with its branch commit) and REVERTS reverts' merges, written with
promoter's own message writers (the branch commit's message of `promoter.git.change`, the merge's of
`promoter.report.merge_message`, the hold's `promoter.holds.trailers`); every other commit is a person's
change: of an app in dev before each promotion, of a note otherwise (so that the build does not
write a 5,000-entry tree 20,000 times: `promoter metrics` reads commits, never trees).

    .venv/bin/python bench/metrics_bench.py [--apps 5000] [--commits 20000] [--promotions 300] [--reverts 30]

Prints wall and CPU seconds of `promoter metrics` from a fresh process each time (CPU: the process and
its git runs): the first run (which clones the origin), then warm runs (fetch only) of every figure,
`--since 7d`, `--app`, and `--json`; and, for scale, a fresh `promoter --help`. The repository is
written with `git fast-import` (about three minutes on a loaded machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from promoter import holds, report
from promoter.git.change import StageChange
from promoter.models import AuditEntry, DiffSummary, PrepareInput

MANIFEST = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}\ndata:\n  version: '{v}'\n"


class Writer:
    """main, written through one `git fast-import` as it goes; each commit a minute after the one before."""

    def __init__(self, origin: Path, start: int) -> None:
        self.proc = subprocess.Popen(
            ["git", "fast-import", "--quiet"], cwd=origin, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.mark = 0
        self.clock = start

    def send(self, lines: list[str]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n".join(lines) + "\n")

    def commit(self, message: str, files: dict[str, str], parents: list[int], who: str = "dana") -> int:
        self.mark += 1
        self.clock += 60
        lines = ["commit refs/heads/main", f"mark :{self.mark}"]
        lines += [f"committer {who} <{who}@example.com> {self.clock} +0000", f"data {len(message.encode())}", message]
        if parents:
            lines.append(f"from :{parents[0]}")
            lines += [f"merge :{p}" for p in parents[1:]]
        for path, text in files.items():
            lines += [f"M 100644 inline {path}", f"data {len(text.encode())}", text]
        self.send(lines)
        return self.mark

    def sha(self, mark: int) -> str:
        """The commit ID of a mark written already (fast-import's `get-mark`, answered on its stdout)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.send([f"get-mark :{mark}"])
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait() == 0


def promotion(w: Writer, main: int, n: int, app: str, env: str, commit: str, source: str) -> int:
    """A promotion's branch commit (promoter's message) and its merge on main (report.merge_message)."""
    req = PrepareInput(app=app, commit=commit, source_env=source, target_env=env)
    message = StageChange(None)._message(req, DiffSummary(modified=["deployment.yaml"]))  # type: ignore[arg-type]
    branch = w.commit(message, {f"environments/{env}/{app}/deployment.yaml": MANIFEST.format(app=app, v=n)}, [main])
    at = datetime.fromtimestamp(w.clock, UTC)
    entries = [
        AuditEntry(at=at, env=env, kind="policy", detail=f"pre_pr: allowed by policies @ {'0' * 12}"),
        AuditEntry(at=at, env=env, kind="approval", actor="alice", via="cli"),
        AuditEntry(at=at, env=env, kind="merge"),
    ]
    title = f"promote({app}): {env} <- {source} @ {commit[:7]}"
    merge = report.merge_message(n, f"promote/{app}/{env}/{commit[:7]}", title, f"promote-{app}", entries)
    return w.commit(merge, {}, [main, branch], who="promoter")


def revert(w: Writer, main: int, n: int, app: str, env: str, commit: str, merged: str) -> int:
    """A revert's commit (as promoter's writer words it, with the hold) and its merge with the hold."""
    reason = "unhealthy: Deployment apps/x: ProgressDeadlineExceeded"
    message = (
        f"revert({app}): {env} back to before {merged[:7]}\n\n{reason}\n\n"
        f"Reverts: {merged}\nTarget-Environment: {env}\n" + holds.trailers(app, env, commit, reason)
    )
    branch = w.commit(message, {f"environments/{env}/{app}/deployment.yaml": MANIFEST.format(app=app, v=0)}, [main])
    title = f"Revert {app} in {env}: unhealthy after PR #{n - 1}"
    pr = f"http://forge.local/pulls/{n}"
    merge = f"Merge pull request #{n} from revert/{app}/{env}/{merged[:7]}\n\n{title}\n\n"
    return w.commit(merge + holds.trailers(app, env, commit, reason, pr), {}, [main, branch], who="promoter")


def build(origin: Path, apps: int, commits: int, promotions: int, reverts: int) -> None:
    """The origin: a seed, then people's changes of apps in dev, every so often the promotion of one
    of them into staging or prod (and now and then its revert), up to `commits` commits, the last an
    hour ago."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    w = Writer(origin, int(time.time()) - 3600 - 60 * commits)
    files = {}
    for i, env in enumerate(("dev", "staging", "prod")):
        files[f"environments/{env}/environment.yaml"] = f"name: {env}\norder: {i + 1}\n"
        for a in range(apps):
            files[f"environments/{env}/app-{a}/deployment.yaml"] = MANIFEST.format(app=f"app-{a}", v=0)
    main = w.commit("seed", files, [])
    every = max(4, commits // max(1, promotions + reverts))
    revert_every = max(1, promotions // max(1, reverts))
    pending: list[tuple[int, str]] = []  # (mark of a person's commit, its app)
    number = done = 0
    while w.mark < commits - 4:
        app = f"app-{(w.mark * 7919) % apps}"
        if w.mark % every == every - 1:  # a person's change of an app in dev, promoted next
            change = {f"environments/dev/{app}/deployment.yaml": MANIFEST.format(app=app, v=w.mark)}
            main = w.commit(f"{app}: a change", change, [main])
            pending.append((main, app))
            continue
        if w.mark % every or not pending:  # a note (a tree of 5,000 apps written for each of 20,000
            # commits would make the build, not the benchmark, take many minutes)
            main = w.commit(f"notes {w.mark}", {f"notes/{w.mark % 500}.md": f"{w.mark}\n"}, [main])
            continue
        mark, _ = pending.pop()
        number, done = number + 1, done + 1
        promoted = f"app-{done // 2 % 25}"  # a few busy apps: each goes to staging, then prod, again and again
        env = "prod" if done % 2 == 0 else "staging"
        commit = w.sha(mark)
        main = promotion(w, main, number, promoted, env, commit, "dev" if env == "staging" else "staging")
        if reverts and done // 2 % revert_every == 0:
            number += 1
            main = revert(w, main, number, promoted, env, commit, w.sha(main))
    w.close()


def timed(what: str, args: list[str], env: dict[str, str], command: str = "metrics") -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "promoter", command, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert done.returncode == 0, done.stderr
    print(f"{what}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    if command == "metrics" and (not args or args == ["--since", "7d"]):
        print("  " + "\n  ".join(done.stdout.splitlines()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=5000)
    parser.add_argument("--commits", type=int, default=20000)
    parser.add_argument("--promotions", type=int, default=300)
    parser.add_argument("--reverts", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        origin = Path(tmp) / "origin.git"
        started = time.perf_counter()
        build(origin, args.apps, args.commits, args.promotions, args.reverts)
        count = subprocess.run(["git", "rev-list", "--count", "main"], cwd=origin, capture_output=True, text=True)
        merges = subprocess.run(
            ["git", "rev-list", "--count", "--merges", "main"], cwd=origin, capture_output=True, text=True
        )
        built = time.perf_counter() - started
        print(
            f"{args.apps} apps x 3 environments, {count.stdout.strip()} commits on main, {merges.stdout.strip()} "
            f"of them promotions' and reverts' merges (built in {built:.1f} s)"
        )
        env = {
            **os.environ,
            "PROMOTER_REPO_URL": str(origin),
            "PROMOTER_CACHE_DIR": str(Path(tmp) / "cache"),
            "PROMOTER_STATE_DIR": str(Path(tmp) / "no-stack"),
        }
        timed("for scale, a fresh `promoter --help` (Python and promoter's imports alone)", [], env, "--help")
        timed("first run (clones the origin)", [], env)
        for _ in range(3):
            timed("warm: every figure", [], env)
        timed("warm: --since 7d", ["--since", "7d"], env)
        timed("warm: --app app-1 --json", ["--app", "app-1", "--json"], env)


if __name__ == "__main__":
    main()
