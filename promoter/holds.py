"""Held versions: what was reverted in an environment stays out of it, whichever commit carries it.

Git is the record, not Temporal. The commit of an automatic revert (written and signed by promoter on
`revert/<app>/<env>/<short>`) and the merge of its PR carry, as the last paragraph of their message:

    Promoter-Held: <the promoted commit>
    Promoter-Held-App: <app>                          (one line per member, for a release set)
    Promoter-Held-Env: <environment>
    Promoter-Held-Reason: <why it was reverted, one line>
    Promoter-Held-Tree: <tree id> <source folder>     (one line per member: what the commit deploys)
    Promoter-Held-PR: <the revert PR's URL>           (the merge only: the PR does not exist before)

Resolving a promotion into that environment of the held commit, or of any commit whose source folder
of the app has the same tree (the same content), is refused naming the revert. A hold without a
`Promoter-Held-Tree` line (written before holds were on content) holds its commit only. A hold counts
wherever it is found on main, signed or not: a hold is never ignored for lack of a signature (fail
closed; the worst a forged one does is refuse a promotion).

A hold is lifted only by a commit on main that promoter wrote and signed with its commit
signing key (a key trust/allowed_signers lists for the principal `promoter`, namespace `git`) *after*
the gate of a lift-hold PR was approved, carrying as its last paragraph (the trailers keep their first
names, which Git history holds):

    Promoter-Release-Hold: <the held commit>
    Promoter-Held-App: <app>
    Promoter-Held-Env: <environment>
    Promoter-Released-By: <who>: <why>
    Promoter-Approval: ...                            (the gate's approvals)

Such a commit lifts the holds of the held commit recorded before it (in its ancestors): an old lift
never lifts a newer hold of the same commit. The same lines written by a person (unsigned, signed by their
own key, or anywhere but the last paragraph) lift nothing. docs/approving.md ("Held versions") tells
why a person cannot get such a commit out of promoter without the gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

HELD = "Promoter-Held"
TREE = f"{HELD}-Tree"
LIFT = "Promoter-Release-Hold"
REQUEST = "Promoter-Release-Request"  # the lift-hold PR's first commit: asks, lifts nothing (see lift_request)
REQUESTED_BY = "Promoter-Requested-By"
LIFTED_BY = "Promoter-Released-By"
APPROVAL = "Promoter-Approval"
PRINCIPAL = "promoter"  # whose signature makes a lift count, in trust/allowed_signers

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_PR_NUMBER = re.compile(r"(\d+)/?$")


@dataclass(frozen=True)
class Hold:
    app: str
    env: str
    commit: str
    reason: str
    pr_url: str
    recorded_in: str  # the commit of main that holds it
    trees: tuple[tuple[str, str], ...] = ()  # (source folder, its tree id at `commit`) per member

    def tree(self, app: str) -> str:
        """The held tree of `app`'s source folder ("" when the hold does not say: it holds the commit only)."""
        return next((tree for folder, tree in self.trees if folder.rsplit("/", 1)[-1] == app), "")

    def folder(self, app: str) -> str:
        return next((folder for folder, _ in self.trees if folder.rsplit("/", 1)[-1] == app), "")

    @property
    def revert(self) -> str:
        """The revert that holds it, as a person finds it: its PR's number, else the commit that records it."""
        number = _PR_NUMBER.search(self.pr_url)
        return f"the revert in PR #{number.group(1)}" if number else f"the revert {self.recorded_in[:12]}"

    def refusal(self, commit: str | None = None) -> str:
        """Why `commit` (by default the held commit itself) may not be promoted into the environment."""
        why = f"({self.reason}; {self.pr_url})" if self.pr_url else f"({self.reason})"
        lift = (
            f"lift the hold with `promoter lift-hold {self.app} --env {self.env} --commit {self.commit[:12]} "
            "--as <you> --reason <why>`"
        )
        if commit is None or commit == self.commit:
            return (
                f"{self.app} @ {self.commit[:7]} is held out of {self.env}: it was reverted there by {self.revert} "
                f"{why}; promote a newer commit, or {lift}"
            )
        return (
            f"{self.app} @ {commit[:7]} has the same content as {self.commit[:7]}, held out of {self.env} by "
            f"{self.revert} {why}; promote a commit with other content, or {lift}"
        )


@dataclass(frozen=True)
class Record:
    """A commit of main that may hold or lift a hold: its message, and whether promoter's key signed it."""

    sha: str
    message: str
    signed: bool = False  # signed by a key trust/allowed_signers lists for the principal `promoter`


def _one_line(text: str) -> str:
    return " ".join(text.split())


def trailers(
    apps: str | list[str], env: str, commit: str, reason: str, pr_url: str = "", trees: dict[str, str] | None = None
) -> str:
    """The hold of `commit` in `env` for each of `apps` (a release set's revert holds every member), by
    the trees of their source folders (`trees`: folder -> tree id)."""
    named = "".join(f"{HELD}-App: {app}\n" for app in ([apps] if isinstance(apps, str) else apps))
    held = "".join(f"{TREE}: {tree} {folder}\n" for folder, tree in sorted((trees or {}).items()) if tree)
    pr = f"{HELD}-PR: {_one_line(pr_url)}\n" if pr_url else ""
    return f"{HELD}: {commit}\n{named}{HELD}-Env: {env}\n{HELD}-Reason: {_one_line(reason)[:500]}\n{held}{pr}"


def request_trailers(app: str, env: str, commit: str, who: str, why: str) -> str:
    """The lift-hold PR's first commit: it names the hold and who asks, and lifts nothing."""
    return (
        f"{REQUEST}: {commit}\n{HELD}-App: {app}\n{HELD}-Env: {env}\n"
        f"{REQUESTED_BY}: {_one_line(who)}: {_one_line(why)}\n"
    )


def lift_trailers(app: str, env: str, commit: str, who: str, why: str, approvals: Iterable[str] = ()) -> str:
    """The lift of the hold: counts only in a commit signed by promoter's key (see the module)."""
    by = f"{LIFTED_BY}: {_one_line(who)}: {_one_line(why)}"
    approved = "".join(f"{_one_line(line)}\n" for line in approvals)
    return f"{LIFT}: {commit}\n{HELD}-App: {app}\n{HELD}-Env: {env}\n{by}\n{approved}"


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """A commit message's `Key: value` lines (git trailers, and the like), in order, wherever they are.
    For holds and their lifts only `trailer_block` counts."""
    found = []
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and re.fullmatch(r"[A-Z][A-Za-z-]+", key):
            found.append((key, value.strip()))
    return found


def trailer_block(message: str) -> list[tuple[str, str]]:
    """The trailers of a message: its last paragraph, when every line of it is `Key: value` (else none).
    A line elsewhere in the message (a PR title, a revert's evidence, a comment) is never a trailer."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", message.replace("\r\n", "\n").strip("\n")) if p.strip()]
    if len(paragraphs) < 2:  # the subject alone is no trailer block
        return []
    found = []
    for line in paragraphs[-1].split("\n"):
        key, sep, value = line.partition(": ")
        if not sep or not _KEY.fullmatch(key):
            return []
        found.append((key, value.strip()))
    return found


def _first(fields: list[tuple[str, str]], key: str) -> str:
    return next((value for k, value in fields if k == key), "")


def _hold(app: str, record: Record) -> Hold | None:
    fields = trailer_block(record.message)
    apps = [value for key, value in fields if key == f"{HELD}-App"]
    commit, env = _first(fields, HELD), _first(fields, f"{HELD}-Env")
    if app not in apps or not commit or not env:
        return None
    trees = []
    for key, value in fields:
        tree, _, folder = value.partition(" ")
        if key == TREE and tree and folder:
            trees.append((folder.strip(), tree))
    return Hold(
        app, env, commit, _first(fields, f"{HELD}-Reason"), _first(fields, f"{HELD}-PR"), record.sha, tuple(trees)
    )


def lift(record: Record) -> tuple[str, str, str] | None:
    """(app, environment, held commit) whose hold a record lifts; None when it lifts nothing: not signed
    by promoter's key, or the lift's lines are not its trailer block."""
    if not record.signed:
        return None
    fields = trailer_block(record.message)
    found = (_first(fields, f"{HELD}-App"), _first(fields, f"{HELD}-Env"), _first(fields, LIFT))
    return found if all(found) and not _first(fields, HELD) else None


def is_lift(message: str) -> bool:
    """Whether the message's trailer block claims to lift a hold (its signature then decides)."""
    return any(key == LIFT for key, _ in trailer_block(message))


def current(app: str, records: Iterable[Record], is_ancestor: Callable[[str, str], bool]) -> list[Hold]:
    """The holds of `app` in force on main: every hold `records` carry (commits of main, in any order)
    that no lift of the same commit, environment and app lifts. A lift covers a hold recorded in its
    ancestors (`is_ancestor(hold's commit, lift's commit)`), never one recorded after it."""
    found: list[Hold] = []
    lifts: list[tuple[str, str, str]] = []  # (env, held commit, the lift's commit)
    for record in records:
        hold = _hold(app, record)
        if hold is not None:
            found.append(hold)
        lifted = lift(record)
        if lifted is not None and lifted[0] == app:
            lifts.append((lifted[1], lifted[2], record.sha))
    return [
        h
        for h in found
        if not any(
            env == h.env and commit == h.commit and sha != h.recorded_in and is_ancestor(h.recorded_in, sha)
            for env, commit, sha in lifts
        )
    ]


def find(in_force: list[Hold], env: str, commit: str, tree_at: Callable[[str], str]) -> Hold | None:
    """The hold that keeps `commit` out of `env`: one of that very commit, else one whose held tree of the
    app's source folder is the folder's tree at `commit` (`tree_at(folder)`). The one naming its PR first."""
    here = sorted((h for h in in_force if h.env == env), key=lambda h: not h.pr_url)
    exact = next((h for h in here if h.commit == commit), None)
    if exact is not None:
        return exact
    for h in here:
        tree, folder = h.tree(h.app), h.folder(h.app)
        if tree and tree_at(folder) == tree:
            return h
    return None


def promoter_signers(allowed_signers: str) -> str:
    """The lines of trust/allowed_signers that list the principal `promoter` by name (its comma-separated
    first field): the only keys whose signature makes a lift count."""
    kept = []
    for line in allowed_signers.splitlines():
        fields = line.strip().split(maxsplit=1)
        if fields and not fields[0].startswith("#") and PRINCIPAL in fields[0].strip('"').split(","):
            kept.append(line.strip())
    return "\n".join(kept) + ("\n" if kept else "")


def lift_request(message: str) -> tuple[str, str, str, str] | None:
    """(app, environment, held commit, `who: why`) of a lift-hold PR's request commit; None when it is not one."""
    fields = trailer_block(message)
    found = (_first(fields, f"{HELD}-App"), _first(fields, f"{HELD}-Env"), _first(fields, REQUEST))
    if not all(found):
        return None
    return (*found, _first(fields, REQUESTED_BY))
