"""A commit's parts read in process from its object, as git shows them (its author, its subject), and
ancestry walked over the cached commit objects: no git run for what a promotion asks again and again."""

from __future__ import annotations

from collections import deque

import git

from promoter.git.objects import commit_message, parents, raw


def author(repo: git.Repo, commit: str) -> str:
    """A commit's author as `git log --format='%an <%ae>'` shows it, read in process."""
    head = raw(repo, commit).partition(b"\n\n")[0]
    line = next((x[7:] for x in head.split(b"\n") if x.startswith(b"author ")), b"")
    opened, closed = line.find(b"<"), line.rfind(b">")
    if opened < 0 or closed < opened:
        return line.decode("utf-8", "replace")
    return (
        f"{line[:opened].strip().decode('utf-8', 'replace')} <{line[opened + 1 : closed].decode('utf-8', 'replace')}>"
    )


def subject(repo: git.Repo, commit: str) -> str:
    """A commit's subject as `git log --format=%s` shows it: the message's first paragraph, its lines
    joined by spaces (leading blank lines skipped, trailing blanks cut), read in process."""
    lines = commit_message(repo, commit).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    paragraph: list[str] = []
    for line in lines:
        if not line.strip():
            break
        paragraph.append(line.rstrip())
    return " ".join(paragraph)


def reaches(repo: git.Repo, start: str, target: str, limit: int) -> bool | None:
    """Whether the commit `target` is `start` or one of its ancestors, walking at most `limit` commits
    back from `start`, newest first; None when the walk cannot tell (longer, or a parent missing here:
    a shallow clone)."""
    seen, todo = {start}, deque([start])
    try:
        while todo and len(seen) <= limit:
            commit = todo.popleft()
            if commit == target:
                return True
            for parent in parents(repo, commit):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
    except (git.BadName, git.BadObject, ValueError, IndexError, KeyError):
        return None
    return False if not todo else None  # every ancestor of `start` seen, or the walk cut short
