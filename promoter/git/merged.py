"""What main's merges bring in and what they throw away, for the index of main's records
(promoter.git.index): the folders each merge changed against its parents but the first, and the ones
a merge threw away. A merge pushed with an older first parent than the main it follows (`git
commit-tree <old>^{tree} -p <old> -p main`, a fast-forward, so no force-push) keeps `<old>`'s folders:
against its first parent it changed nothing, and main's first-parent line skips everything since
`<old>`. What its other parent brought (promotions, reverts, signed rule changes) is thrown away all
the same, so the index counts the merge as a change of each folder it threw away, and the readers of
main's history (a promoted folder's provenance, drift, an app's newest commit) judge it as one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable

import git


def later(
    repo: git.Repo, env: dict[str, str], key: Callable[[str], str], merges: list[tuple[str, list[str]]]
) -> dict[str, set[str]]:
    """Each merge's folders (`key` of each path) changed against its parents but the first
    (`--full-history` counts them)."""
    if not merges:
        return {}
    asked = "".join(f"{sha} {parent}\n" for sha, parents in merges for parent in parents)
    with tempfile.TemporaryFile() as stdin:
        stdin.write(asked.encode())
        stdin.seek(0)
        out = repo.git.execute(
            ["git", "diff-tree", "--stdin", "-z", "--no-renames", "--name-only", "-r"], env=env, istream=stdin
        )
    found: dict[str, set[str]] = {}
    wanted = {sha for sha, _ in merges}
    current: set[str] | None = None
    for token in str(out).split("\0"):
        name = token.strip("\n")
        if name in wanted:
            current = found.setdefault(name, set())
        elif name and current is not None:
            current.add(key(name))
    return found


def thrown_away(
    line: list[list[str]], parents: dict[str, list[str]], first: dict[str, set[str]], others: dict[str, set[str]]
) -> dict[str, set[str]]:
    """For each merge of `line` (main's new first-parent commits, oldest first, each followed by its
    parents): the folders it changed against another parent but not against its first, that a commit
    it brings changed (a commit of its other parents not reachable from its first parent). `parents`:
    every new commit's parents (a commit not in it was indexed before, so its first parent reaches it);
    `first` and `others`: the folders each new commit changed against its first parent, and a merge
    against the others. What a brought merge of main into its branch changed is counted against main
    (its parent that the first parent reaches): a branch brought up to date with main ("Update branch")
    brings main's own changes back, and throws nothing away by not keeping them."""
    seen: set[str] = set()  # the new commits reached by the first-parent commit before the one at hand
    found: dict[str, set[str]] = {}
    for sha, *its in line:
        brought: set[str] = set()
        stack = its[1:]
        while stack:
            commit = stack.pop()
            if commit in seen or commit not in parents or commit in brought:
                continue
            brought.add(commit)
            stack.extend(parents[commit])
        changed: set[str] = set()
        for commit in brought:
            on_main = any(p in seen or p not in parents for p in parents[commit][1:])
            changed |= others.get(commit, set()) if on_main else first.get(commit, set()) | others.get(commit, set())
        seen.update(brought)
        seen.add(sha)
        kept = others.get(sha, set()) - first.get(sha, set())
        if kept & changed:
            found[sha] = kept & changed
    return found
