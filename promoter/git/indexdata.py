"""The index of main's records as data (promoter.git.index reads git into it, stores and loads it):
`Data`, the index as stored, and `View`, the index cut at one main, which the readers of main ask;
`extended` grows an index by the commits a new main brings, without making its maps again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from promoter.names import ENVIRONMENTS

VERSION = 2  # 2: `thrown`
DERIVED = ("number", "position", "rule_keys")  # made again from the stored fields as an index is read


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


def whole(data: Data) -> bool:
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


@dataclass
class New:
    line: list[str]  # the new first-parent commits, oldest first
    merged_by: dict[str, str] = field(default_factory=dict)  # a later parent of a new first-parent merge -> it
    landing: dict[str, tuple[int, int]] = field(default_factory=dict)  # record -> (offset in `line`, direct)
    commits: list[str] = field(default_factory=list)
    first: dict[str, set[str]] = field(default_factory=dict)
    later: dict[str, set[str]] = field(default_factory=dict)
    thrown: dict[str, set[str]] = field(default_factory=dict)  # a merge -> the folders it threw away (merged.py)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    merges: list[tuple[str, str, str, list[str]]] = field(default_factory=list)


def extended(old: Data, main: str, new: New) -> Data:
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
