"""How long finding the trusted rules revision takes (`GitClone.rules`): a repository whose main has
N commits since the trust root, R of them unsigned rule changes (a flood a person could push at once),
read cold, then again after one more commit on main (the walk goes on from where it was).

    .venv/bin/python bench/rules_bench.py [--commits 5000] [--rule-changes 2000]

Prints wall and CPU seconds for each. The commits are written with `git fast-import`, so building the
repository takes seconds, not the benchmark's time.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from promoter.gitrepo import GitClone


def build(origin: Path, commits: int, rule_changes: int) -> str:
    """A bare origin: a root with policies/, trust/ and environments/, then `commits` commits, every
    (commits // rule_changes)-th of them an unsigned change of policies/data.yaml. Returns the root."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    every = max(1, commits // max(1, rule_changes))
    lines = []

    def blob(text: str) -> list[str]:
        data = text.encode()
        return [f"data {len(data)}", text]

    def commit(n: int, files: dict[str, str]) -> None:
        lines.extend(["commit refs/heads/main", f"mark :{n + 1}"])
        lines.append(f"committer dana <dana@example.com> {1_700_000_000 + n} +0000")
        lines.extend(blob(f"change {n}\n"))
        if n:
            lines.append(f"from :{n}")
        for path, text in files.items():
            data = text.encode()
            lines.extend([f"M 100644 inline {path}", f"data {len(data)}", text])

    commit(
        0,
        {
            "policies/data.yaml": "groups: {}\n",
            "trust/allowed_signers": "",
            "environments/dev/environment.yaml": "name: dev\norder: 1\n",
            "environments/dev/demo/app.yaml": "v: 0\n",
        },
    )
    for n in range(1, commits + 1):
        if n % every == 0:
            commit(n, {"policies/data.yaml": f"groups: {{}}\nrevision: {n}\n"})
        else:
            commit(n, {"environments/dev/demo/app.yaml": f"v: {n}\n"})
    subprocess.run(["git", "fast-import", "--quiet"], cwd=origin, input="\n".join(lines) + "\n", text=True, check=True)
    return subprocess.run(
        ["git", "rev-list", "--max-parents=0", "main"], cwd=origin, capture_output=True, text=True, check=True
    ).stdout.strip()


def timed(what: str, fn: object) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()  # type: ignore[operator]
    print(
        f"{what}: {time.perf_counter() - wall:.3f} s wall, {time.process_time() - cpu:.3f} s CPU (this process; "
        f"git's own runs are not counted), untrusted listed {len(result.untrusted)} + {result.more_untrusted} more"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--rule-changes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        origin = Path(tmp) / "origin.git"
        root = build(origin, args.commits, args.rule_changes)
        changes = args.commits // max(1, args.commits // max(1, args.rule_changes))
        print(f"{args.commits} commits since the trust root, {changes} of them unsigned rule changes")
        clone = GitClone(str(origin), Path(tmp) / "cache", trust_root=root)
        timed("cold", clone.rules)
        work = Path(tmp) / "work"
        subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True)
        (work / "policies" / "data.yaml").write_text("groups: {}\nrevision: last\n")
        for cmd in (["add", "-A"], ["-c", "user.name=dana", "-c", "user.email=d@x", "commit", "-qm", "one more"]):
            subprocess.run(["git", *cmd], cwd=work, check=True)
        subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, check=True)
        timed("one more commit on main (the walk goes on)", clone.rules)


if __name__ == "__main__":
    main()
