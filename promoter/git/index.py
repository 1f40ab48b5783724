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
import time
from pathlib import Path

import git

from promoter import history, holds, jsonfast
from promoter.errors import TemporaryError
from promoter.git import merged
from promoter.git.clone import Clone
from promoter.git.indexdata import VERSION, Data, New, View, extended, key, whole
from promoter.git.objects import SHA

SAVE_EVERY_S, SAVE_AFTER = 30.0, 500  # a grown index is written at most this often, or after this many commits
FILE = "promoter-index.json"
HELD_GREP = f"^{holds.HELD}-App: "  # as `git log --grep` reads it: a line that starts with it
LIFT_GREP = f"^{holds.LIFT}: "
HELD_LINE = re.compile(HELD_GREP, re.MULTILINE)
LIFT_LINE = re.compile(LIFT_GREP, re.MULTILINE)


class IndexUnavailable(TemporaryError):
    """The index cannot answer: the caller reads git itself, or tries again later."""


_INDEXES: dict[Path, MainIndex] = {}
_INDEXES_LOCK = threading.Lock()


def of(clone: Clone) -> MainIndex:
    """The index of `clone`, one per clone folder in this process (its lock guards its threads)."""
    with _INDEXES_LOCK:
        return _INDEXES.setdefault(clone.path, MainIndex(clone))


def _goes_on(data: Data, written: Data | None) -> bool:
    """Whether `data` goes on from the written index (its main is on `data`'s first-parent line)."""
    return written is None or data.at(written.main) is not None


def _base(written: Data | None, mine: Data | None) -> Data | None:
    """What to grow: this process's own index when it goes on from the written one, else the written
    one (another process wrote it since, further along main or after main was rewritten)."""
    return mine if mine is not None and _goes_on(mine, written) else written


class MainIndex:
    """The index of one clone's main, read, updated and rebuilt as the module says."""

    def __init__(self, clone: Clone) -> None:
        self.clone = clone
        self.path = clone.path / ".git" / FILE
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], Data] | None = None  # the file as last read or written
        self._newest: Data | None = None  # the newest this process made: ahead of the file by a few commits
        self._saved_at = 0.0

    def at(self, repo: git.Repo, main: str) -> View:
        """The index at `main` (a commit of main as fetched), updated or rebuilt first when it must be."""
        try:
            if (mine := self._newest) is not None and (view := mine.at(main)) is not None:
                return view
            if (data := self._load()) is not None and (view := data.at(main)) is not None:  # written since
                return view
            with self._lock, self.clone.file_lock(".index"):
                data = _base(self._load(), self._newest)
                view = data.at(main) if data is not None else None
                if view is None:
                    data = self._update(repo, data, main)
                    self._keep(data)
                    view = data.at(main)
        except (OSError, ValueError, KeyError, TypeError, IndexError, git.GitCommandError) as e:
            raise IndexUnavailable(str(e)) from e
        if view is None:
            raise IndexUnavailable(f"main {main[:12]} is not on the index's first-parent line")
        return view

    def _keep(self, data: Data) -> None:
        """`data` is the newest; written now when it was rebuilt, grew by `SAVE_AFTER` commits, or the
        last write is `SAVE_EVERY_S` old. A monorepo's index is megabytes and main moves at every merge:
        written at each, it was most of the index's cost. Another process reads what was written and
        grows it by the few commits since, as it would after any push."""
        self._newest = data
        written = self._cached[1] if self._cached is not None else None
        if (
            written is None
            or not _goes_on(data, written)
            or len(data.commits) - len(written.commits) >= SAVE_AFTER
            or time.monotonic() - self._saved_at >= SAVE_EVERY_S
        ):
            self._save(data)
            self._saved_at = time.monotonic()

    def forget(self) -> None:
        """Nothing kept in memory, as in a fresh process."""
        self._cached = self._newest = None

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
            if not whole(data):
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
                return extended(old, main, self._read(repo, f"^{old.main}", main, line))
        return extended(Data(main=""), main, self._read(repo, None, main, self._line(repo, main)))

    def _line(self, repo: git.Repo, selection: str) -> list[list[str]]:
        """The first-parent commits of `selection`, oldest first, each with its parents."""
        try:
            out = self.clone.run(repo, "rev-list", "--first-parent", "--parents", "--reverse", selection)
        except git.GitCommandError:  # the old main is gone from the clone: rebuilt
            return []
        return [[line.split()[0], *line.split()[1:]] for line in out.splitlines() if line.strip()]

    def _read(self, repo: git.Repo, since: str | None, main: str, line: list[list[str]]) -> New:
        """What the commits of `main` not reachable from `since` add: their changed folders, records
        and promotions' merges."""
        selection = [main, *([since] if since else [])]
        new = New(line=[entry[0] for entry in line])
        for entry in line:  # main's own order: the oldest merge of a commit took it in
            for parent in entry[2:]:
                new.merged_by.setdefault(parent, entry[0])
        out = self.clone.run(
            repo, "log", "-z", "--no-renames", "--name-only", "--root", "--diff-merges=first-parent",
            "--format=%x1e%H%x1f%P", *selection,
        )  # fmt: skip
        merges: list[tuple[str, list[str]]] = []
        parents_of: dict[str, list[str]] = {}
        expected = set(self.clone.run(repo, "rev-list", *selection).split())
        for chunk in out.split("\x1e")[1:]:
            names = chunk.split("\0")
            sha, _, parents = names[0].partition("\x1f")
            if not SHA.fullmatch(sha) or sha in parents_of or sha not in expected:  # a name holding \x1e
                raise ValueError(f"unexpected git log output near {sha[:50]!r}")
            if len(names) > 1:
                names[1] = names[1].removeprefix("\n")  # git puts a newline between a commit and its names
            new.commits.append(sha)
            new.first[sha] = {key(n) for n in names[1:] if n}
            parents_of[sha] = parents.split()
            if len(parents_of[sha]) > 1:
                merges.append((sha, parents_of[sha][1:]))
        if len(parents_of) != len(expected):
            raise ValueError(f"git log listed {len(parents_of)} commits of {len(expected)}")
        new.later = merged.later(repo, self.clone.identity, key, merges)
        new.thrown = merged.thrown_away(line, parents_of, new.first, new.later)
        new.records = self._records(repo, selection)
        new.merges = self._merges(repo, selection)
        new.landing = self._landings(repo, new)
        return new

    def _landings(self, repo: git.Repo, new: New) -> dict[str, tuple[int, int]]:
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
        out = self.clone.run(repo, "log", "--format=%H %cI", f"--grep={HELD_GREP}", f"--grep={LIFT_GREP}", *selection)
        found = [line.split(" ", 1) for line in out.splitlines() if SHA.match(line)]
        messages = self.clone.messages(repo, [sha for sha, _ in found])  # each from its own object
        return [(sha, at, messages[sha]) for sha, at in found]

    def _merges(self, repo: git.Repo, selection: list[str]) -> list[tuple[str, str, str, list[str]]]:
        """The promotions' and reverts' merges of the new first-parent commits, oldest first: sha,
        second parent, at, the apps it names."""
        out = self.clone.run(repo, "log", "--first-parent", "--merges", "--format=%H %cI %P", *selection)
        listed = [line.split() for line in out.splitlines() if SHA.match(line)]
        texts = self.clone.messages(repo, [parts[0] for parts in listed])  # each from its own object
        merges = []
        for sha, at, _, second, *_ in listed:
            if (named := history.merge_of(texts[sha])) is not None:
                merges.append((sha, second, at, texts[sha], named))
        branches = self.clone.messages(repo, [m[1] for m in merges])
        found = []
        for sha, parent, at, message, named in reversed(merges):
            members = history.set_members(named[1], {"message": message, "branch_message": branches.get(parent, "")})
            found.append((sha, parent, at, sorted({named[2], *members})))
        return found


def view(clone: Clone, repo: git.Repo, main: str) -> View | None:
    """The index of `clone` at `main`, or None when it cannot answer (the caller walks git)."""
    try:
        return of(clone).at(repo, main)
    except IndexUnavailable:
        return None
