"""An index of main's records kept beside the clone (`.git/promoter-index.json`), keyed by commit: main's
first-parent line, the folders each commit changed (`environments/<env>/<app>`, an environment's own
files, other top-level folders; against the first parent, and for a merge its other parents), the
commits carrying a hold or a lift, and the promotions' and reverts' merges (the apps each names). It is
updated from the last indexed commit and rebuilt when missing, unreadable (digest), of another version,
or when main's first-parent line no longer goes through its last commit (a force-push); updates run
under a file lock and land by atomic rename. Any doubt is `IndexUnavailable`: the caller walks git as
before. docs/architecture.md ("The index of main's records") tells why and how.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from promoter import history, holds, jsonfast
from promoter.errors import TemporaryError
from promoter.git import merged
from promoter.git.clone import Clone
from promoter.git.objects import SHA
from promoter.names import ENVIRONMENTS

VERSION = 2  # 2: `thrown`
DERIVED = ("number", "position", "rule_keys")  # made again from the stored fields as an index is read
FILE = "promoter-index.json"
HELD_GREP = f"^{holds.HELD}-App: "  # as `git log --grep` reads it: a line that starts with it
LIFT_GREP = f"^{holds.LIFT}: "
HELD_LINE = re.compile(HELD_GREP, re.MULTILINE)
LIFT_LINE = re.compile(LIFT_GREP, re.MULTILINE)


class IndexUnavailable(TemporaryError):
    """The index cannot answer: the caller reads git itself, or tries again later."""


def key(path: str) -> str:
    """The folder a changed path counts for: `environments/<env>/<app>` (or an environment's own file),
    else its top-level folder (`policies`, `trust`)."""
    parts = path.split("/")
    return "/".join(parts[:3]) if parts[0] == ENVIRONMENTS else parts[0]


def is_rule_key(name: str) -> bool:  # a key of promoter.git.rules.RULE_PATHS
    parts = name.split("/")
    return name in ("policies", "trust") or (
        len(parts) == 3 and parts[0] == ENVIRONMENTS and parts[2] == "environment.yaml"
    )


@dataclass
class Data:
    """The index as stored (see the module): commits by number, the first-parent line oldest first."""

    main: str
    commits: list[str] = field(default_factory=list)
    chain: list[int] = field(default_factory=list)
    first: dict[str, list[int]] = field(default_factory=dict)  # key -> commits that changed it (first parent)
    later: dict[str, list[int]] = field(default_factory=dict)  # key -> merges that changed it (another parent)
    thrown: dict[str, list[int]] = field(default_factory=dict)  # key -> merges that threw away its changes
    records: list[list[Any]] = field(default_factory=list)  # [commit, %cI, message, landing position, direct]
    merges: list[list[Any]] = field(default_factory=list)  # [position, second parent, %cI, [apps]]

    def __post_init__(self) -> None:
        self.number = {sha: i for i, sha in enumerate(self.commits)}
        self.position = {n: p for p, n in enumerate(self.chain)}  # commit number -> first-parent position
        self.rule_keys = [k for k in self.first if is_rule_key(k)]  # grown with the index (`_extended`)

    def at(self, main: str) -> View | None:
        """The index as it was at `main` (a commit of its first-parent line), else None."""
        n = self.number.get(main)
        p = self.position.get(n) if n is not None else None
        return View(self, p) if p is not None else None

    def as_json(self) -> dict[str, Any]:
        return {"version": VERSION, **{k: v for k, v in vars(self).items() if k not in DERIVED}}


@dataclass
class View:
    """The index cut at one main: the commit at first-parent position `top` and what it reaches."""

    data: Data
    top: int

    def sha(self, position: int) -> str:  # the first-parent commit at `position`
        return self.data.commits[self.data.chain[position]]

    def rank(self, sha: str) -> int | None:
        """How many first-parent commits came after `sha` on main (0: main itself); None: not on it."""
        n = self.data.number.get(sha)
        p = self.data.position.get(n) if n is not None else None
        return self.top - p if p is not None and p <= self.top else None

    def changed(self, keys: list[str]) -> list[int]:
        """The first-parent positions (up to main, oldest first) whose commit changed one of `keys`
        against its first parent, as `git log --first-parent main -- <keys>` selects them, or is a
        merge that threw away a change of one (promoter.git.merged)."""
        found: set[int] = set()
        for name in keys:
            for n in (*self.data.first.get(name, ()), *self.data.thrown.get(name, ())):
                p = self.data.position.get(n)
                if p is not None and p <= self.top:
                    found.add(p)
        return sorted(found)

    def thrown(self, name: str) -> set[str]:
        """The merges up to main that threw away a change of the folder `name` (promoter.git.merged)."""
        data = self.data
        return {data.commits[n] for n in data.thrown.get(name, ()) if data.position.get(n, self.top + 1) <= self.top}

    def app_keys(self, app: str) -> list[str]:
        """`environments/*/<app>` in every environment folder the index has seen."""
        return [
            k
            for k in self.data.first
            if k.count("/") == 2 and k.startswith(f"{ENVIRONMENTS}/") and k.endswith(f"/{app}")
        ]

    def rule_keys(self) -> list[str]:  # policies, trust, environments/*/environment.yaml
        return self.data.rule_keys

    def records(self, line: re.Pattern[str]) -> list[dict[str, str]]:
        """The commits main reaches whose message has a line `line` matches, newest first: sha, at,
        message, and `landed` (the first-parent commit that took it in, when it is one or merged it)."""
        found = []
        for n, at, message, landing, direct in self.data.records:
            if landing <= self.top and line.search(message):
                sha = self.data.commits[n]
                found.append({"sha": sha, "at": at, "message": message, "landed": self.sha(landing) if direct else sha})
        return found

    def merges(self, app: str) -> list[dict[str, str]]:
        """The promotions' and reverts' merges of main's first-parent line that name `app` (its own or
        a release set's), newest first: sha, second parent, at."""
        found = [(p, parent, at) for p, parent, at, apps in self.data.merges if p <= self.top and app in apps]
        return [{"sha": self.sha(p), "parent": parent, "at": at} for p, parent, at in found][::-1]

    def touching(self, keys: list[str]) -> set[str]:
        """Every indexed commit that changed one of `keys` against any of its parents (`--full-history`)."""
        numbers = {n for name in keys for table in (self.data.first, self.data.later) for n in table.get(name, ())}
        return {self.data.commits[n] for n in numbers}

    def changes(self, sha: str, keys: list[str]) -> bool:
        """Whether the commit `sha` changed one of `keys` against its first parent."""
        n = self.data.number.get(sha)
        return n is not None and any(n in self.data.first.get(name, ()) for name in keys)


_INDEXES: dict[Path, MainIndex] = {}
_INDEXES_LOCK = threading.Lock()


def of(clone: Clone) -> MainIndex:
    """The index of `clone`, one per clone folder in this process (its lock guards its threads)."""
    with _INDEXES_LOCK:
        return _INDEXES.setdefault(clone.path, MainIndex(clone))


def _whole(data: Data) -> bool:
    """Whether a stored index holds together: its numbers in range, its records and merges whole."""
    count, chain = len(data.commits), len(data.chain)
    return (
        chain > 0
        and data.commits[data.chain[-1]] == data.main
        and all(isinstance(n, int) and 0 <= n < count for n in data.chain)
        and all(
            isinstance(n, int) and 0 <= n < count
            for t in (data.first, data.later, data.thrown)
            for ns in t.values()
            for n in ns
        )
        and all(len(r) == 5 and 0 <= r[0] < count and 0 <= r[3] < chain for r in data.records)
        and all(len(m) == 4 and 0 <= m[0] < chain and isinstance(m[3], list) for m in data.merges)
    )


class MainIndex:
    """The index of one clone's main, read, updated and rebuilt as the module says."""

    def __init__(self, clone: Clone) -> None:
        self.clone = clone
        self.path = clone.path / ".git" / FILE
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], Data] | None = None

    def at(self, repo: git.Repo, main: str) -> View:
        """The index at `main` (a commit of main as fetched), updated or rebuilt first when it must be."""
        try:
            if (data := self._load()) is not None and (view := data.at(main)) is not None:
                return view
            with self._lock, self.clone.file_lock(".index"):
                data = self._load()
                view = data.at(main) if data is not None else None
                if view is None:
                    data = self._update(repo, data, main)
                    self._save(data)
                    view = data.at(main)
        except (OSError, ValueError, KeyError, TypeError, IndexError, git.GitCommandError) as e:
            raise IndexUnavailable(str(e)) from e
        if view is None:
            raise IndexUnavailable(f"main {main[:12]} is not on the index's first-parent line")
        return view

    def _load(self) -> Data | None:
        """The stored index, or None when there is none or it cannot be trusted (then it is rebuilt)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = self._cached
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            head, _, body = self.path.read_bytes().partition(b"\n")
            if json.loads(head) != {"version": VERSION, "sha256": hashlib.sha256(body).hexdigest()}:
                return None
            fields = jsonfast.loads(body)
            fields.pop("version")
            data = Data(**fields)
            if not _whole(data):
                return None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None
        self._cached = (signature, data)
        return data

    def _save(self, data: Data) -> None:
        body = jsonfast.dumps(data.as_json())  # megabytes in a monorepo: orjson's speed
        head = json.dumps({"version": VERSION, "sha256": hashlib.sha256(body).hexdigest()}).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".promoter-index-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(head + b"\n" + body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            stat = self.path.stat()  # kept as written: the next read need not parse it again
            self._cached = ((stat.st_ino, stat.st_size, stat.st_mtime_ns), data)
        except BaseException:
            # a cancel or an interrupt too: no half-written file is left beside the index
            Path(tmp).unlink(missing_ok=True)
            raise

    def _update(self, repo: git.Repo, old: Data | None, main: str) -> Data:
        """`old` taken on to `main` when main's first-parent line goes on from `old.main`, else rebuilt."""
        if old is not None:
            line = self._line(repo, f"{old.main}..{main}")
            if line and line[0][1:2] == [old.main]:
                return _extended(old, main, self._read(repo, f"^{old.main}", main, line))
        return _extended(Data(main=""), main, self._read(repo, None, main, self._line(repo, main)))

    def _line(self, repo: git.Repo, selection: str) -> list[list[str]]:
        """The first-parent commits of `selection`, oldest first, each with its parents."""
        try:
            out = self.clone.run(repo, "rev-list", "--first-parent", "--parents", "--reverse", selection)
        except git.GitCommandError:  # the old main is gone from the clone: rebuilt
            return []
        return [[line.split()[0], *line.split()[1:]] for line in out.splitlines() if line.strip()]

    def _read(self, repo: git.Repo, since: str | None, main: str, line: list[list[str]]) -> _New:
        """What the commits of `main` not reachable from `since` add: their changed folders, records
        and promotions' merges."""
        selection = [main, *([since] if since else [])]
        new = _New(line=[entry[0] for entry in line])
        for entry in line:  # main's own order: the oldest merge of a commit took it in
            for parent in entry[2:]:
                new.merged_by.setdefault(parent, entry[0])
        out = self.clone.run(
            repo, "log", "-z", "--no-renames", "--name-only", "--root", "--diff-merges=first-parent",
            "--format=%x1e%H%x1f%P", *selection,
        )  # fmt: skip
        merges: list[tuple[str, list[str]]] = []
        parents_of: dict[str, list[str]] = {}
        for chunk in out.split("\x1e")[1:]:
            names = chunk.split("\0")
            sha, _, parents = names[0].partition("\x1f")
            if not SHA.fullmatch(sha):
                raise ValueError(f"unexpected git log output near {sha[:50]!r}")
            if len(names) > 1:
                names[1] = names[1].removeprefix("\n")  # git puts a newline between a commit and its names
            new.commits.append(sha)
            new.first[sha] = {key(n) for n in names[1:] if n}
            parents_of[sha] = parents.split()
            if len(parents_of[sha]) > 1:
                merges.append((sha, parents_of[sha][1:]))
        new.later = merged.later(repo, self.clone.identity, key, merges)
        new.thrown = merged.thrown_away(line, parents_of, new.first, new.later)
        new.records = self._records(repo, selection)
        new.merges = self._merges(repo, selection)
        new.landing = self._landings(repo, new)
        return new

    def _landings(self, repo: git.Repo, new: _New) -> dict[str, tuple[int, int]]:
        """Where each new record came into main: (offset of the first new first-parent commit that
        reaches it, 1 when that is the record itself or the merge of it, else 0)."""
        offset = {sha: i for i, sha in enumerate(new.line)}
        found: dict[str, tuple[int, int]] = {}
        for sha, _, _ in new.records:
            if sha in offset or sha in new.merged_by:
                found[sha] = (offset[new.merged_by.get(sha, sha)] if sha not in offset else offset[sha], 1)
                continue
            low, high = 0, len(new.line) - 1  # the newest reaches it: the oldest that does, by bisection
            while low < high:
                middle = (low + high) // 2
                if self.clone.is_ancestor(repo, sha, new.line[middle]):
                    high = middle
                else:
                    low = middle + 1
            found[sha] = (low, 0)
        return found

    def _records(self, repo: git.Repo, selection: list[str]) -> list[tuple[str, str, str]]:
        out = self.clone.run(
            repo, "log", "--format=%H%x1f%cI%x1f%B%x1e", f"--grep={HELD_GREP}", f"--grep={LIFT_GREP}", *selection
        )
        entries = (entry.strip().split("\x1f", 2) for entry in out.split("\x1e"))
        return [(p[0], p[1], p[2]) for p in entries if len(p) == 3 and SHA.fullmatch(p[0])]

    def _merges(self, repo: git.Repo, selection: list[str]) -> list[tuple[str, str, str, list[str]]]:
        """The promotions' and reverts' merges of the new first-parent commits, oldest first: sha,
        second parent, at, the apps it names."""
        out = self.clone.run(
            repo, "log", "--first-parent", "--merges", "--format=%H%x1f%P%x1f%cI%x1f%B%x1e", *selection
        )
        merges = []
        for entry in out.split("\x1e"):
            parts = entry.strip().split("\x1f")
            if len(parts) == 4 and (named := history.merge_of(parts[3])) is not None:
                merges.append((parts[0], parts[1].split()[1], parts[2], parts[3], named))
        branches = self.clone.messages(repo, [m[1] for m in merges])
        found = []
        for sha, parent, at, message, named in reversed(merges):
            members = history.set_members(named[1], {"message": message, "branch_message": branches.get(parent, "")})
            found.append((sha, parent, at, sorted({named[2], *members})))
        return found


@dataclass
class _New:
    line: list[str]  # the new first-parent commits, oldest first
    merged_by: dict[str, str] = field(default_factory=dict)  # a later parent of a new first-parent merge -> it
    landing: dict[str, tuple[int, int]] = field(default_factory=dict)  # record -> (offset in `line`, direct)
    commits: list[str] = field(default_factory=list)
    first: dict[str, set[str]] = field(default_factory=dict)
    later: dict[str, set[str]] = field(default_factory=dict)
    thrown: dict[str, set[str]] = field(default_factory=dict)  # a merge -> the folders it threw away (merged.py)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    merges: list[tuple[str, str, str, list[str]]] = field(default_factory=list)


def _extended(old: Data, main: str, new: _New) -> Data:
    """`old` with the new commits, their first-parent line after `old.main`'s, records and merges: a new
    Data (`old` may be read meanwhile) sharing the lists of keys no new commit changed."""
    commits = [*old.commits, *reversed(new.commits)]
    number = {**old.number, **{sha: i for i, sha in enumerate(commits[len(old.commits) :], len(old.commits))}}
    tables = {"first": dict(old.first), "later": dict(old.later), "thrown": dict(old.thrown)}
    added = {k: 0 for keys in new.first.values() for k in keys if k not in old.first and is_rule_key(k)}
    for name, changed in (("first", new.first), ("later", new.later), ("thrown", new.thrown)):
        grown: dict[str, list[int]] = {}  # each list copied once before it grows: `old`'s is `old`'s
        for sha, keys in changed.items():
            for folder in keys:
                if folder not in grown:
                    grown[folder] = list(tables[name].get(folder, ()))
                grown[folder].append(number[sha])
        tables[name].update(grown)
    start = len(old.chain)
    chain = [*old.chain, *(number[sha] for sha in new.line)]
    position = {**old.position, **{n: p for p, n in enumerate(chain[start:], start)}}
    records = [
        [number[sha], at, message, start + new.landing[sha][0], new.landing[sha][1]] for sha, at, message in new.records
    ]
    offset = {sha: i for i, sha in enumerate(new.line)}
    merges = [[start + offset[sha], parent, at, apps] for sha, parent, at, apps in new.merges]
    data = Data.__new__(Data)  # its maps grown above, not made again from every commit (__post_init__)
    data.__dict__.update(
        number=number, position=position, main=main, commits=commits, chain=chain, **tables,
        records=[*records, *old.records], merges=[*old.merges, *merges], rule_keys=[*old.rule_keys, *added],
    )  # fmt: skip
    return data


def view(clone: Clone, repo: git.Repo, main: str) -> View | None:
    """The index of `clone` at `main`, or None when it cannot answer (the caller walks git)."""
    try:
        return of(clone).at(repo, main)
    except IndexUnavailable:
        return None
