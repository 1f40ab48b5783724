"""Git's objects, read and written in process over a `git.Repo` (no git run, no working tree): the
raw commits and trees, the names an entry may carry, and the trees and objects a change is written as.

Every change is built as objects, so no working tree or index is ever half-updated: a worker killed
at any point leaves the clone usable. Functions only: the state (the clone, its locks, its remote)
lives in `promoter.git.clone`.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

import git
from gitdb.base import IStream

from promoter.names import shown

MAIN = "main"
SYMLINK, GITLINK, TREE = "120000", "160000", "040000"
FORBIDDEN_NAMES = {"", ".", "..", ".git"}
SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Entry:
    mode: str
    sha: str


def refuse_entry(folder: str, path: str, mode: str, link_target: str | None = None) -> str | None:
    """Why a tree entry can never be promoted (None: it can): a component git itself should never
    carry (`..`, `.`, `.git`), a name that is not UTF-8, a submodule, or a symlink that is absolute or
    leaves the repository. Such an entry is bad input naming its path, never something to retry."""
    where = f"{folder}/{path}"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return f"{shown(where, 80)}: a file name that is not UTF-8; rename it"
    for part in path.split("/"):
        if part.lower() in FORBIDDEN_NAMES or part.lower().rstrip(". ") == ".git":
            return f"{shown(where, 80)}: a path component named {part!r} cannot be promoted; remove it from the tree"
    if mode == GITLINK:
        return f"{shown(where, 80)}: a submodule cannot be promoted; vendor its files instead"
    if mode == SYMLINK and link_target is not None:
        if link_target.startswith("/"):
            return f"{shown(where, 80)}: a symlink to the absolute path {shown(link_target)}; use a relative one"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(where), link_target))
        if resolved == ".." or resolved.startswith("../"):
            return f"{shown(where, 80)}: a symlink to {shown(link_target)} leaves the repository; keep it inside"
    return None


def rev(repo: git.Repo, name: str) -> str | None:
    """The commit `rev` names, or None; read in process (refs and the object reader), no git run."""
    try:
        obj = repo.rev_parse(name)
        while obj.type == "tag":
            obj = obj.object
    except (git.BadName, git.BadObject, ValueError, IndexError, KeyError):
        return None
    if obj.binsha == git.Object.NULL_BIN_SHA:  # GitPython answers the all-zero ID without looking it up
        return None
    return obj.hexsha if obj.type == "commit" else None


def root(repo: git.Repo, commit: str) -> str:
    """The root tree of a commit (its object's first line: `tree <sha>`)."""
    return raw(repo, commit).split(b"\n", 1)[0].split()[1].decode()


def raw(repo: git.Repo, sha: str) -> bytes:
    data: bytes = repo.odb.stream(bytes.fromhex(sha)).read()
    return data


def entries(repo: git.Repo, tree: str) -> Iterator[tuple[str, str, str]]:
    """(mode, name, sha) of each entry of a tree object, as `ls-tree` shows them."""
    data = raw(repo, tree)
    i = 0
    while i < len(data):
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        mode = data[i:space].decode().zfill(6)
        yield mode, data[space + 1 : nul].decode("utf-8", "surrogateescape"), data[nul + 1 : nul + 21].hex()
        i = nul + 21


def walk(repo: git.Repo, tree: str, prefix: str) -> Iterator[tuple[str, str, str]]:
    for mode, name, sha in entries(repo, tree):
        if mode == TREE:
            yield from walk(repo, sha, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", mode, sha


def store(repo: git.Repo, kind: bytes, data: bytes) -> str:
    """Write an object into the clone's object store (a loose object, written atomically)."""
    stored = repo.odb.store(IStream(kind, len(data), io.BytesIO(data)))
    return bytes(stored.binsha).hex()


def write_tree(repo: git.Repo, items: list[tuple[str, str, str]]) -> str:
    """A tree object of (mode, name, sha), in git's order (a folder's name sorts as if it ended in /)."""

    def key(entry: tuple[str, str, str]) -> bytes:
        return entry[1].encode("utf-8", "surrogateescape") + (b"/" if entry[0] == TREE else b"")

    data = b"".join(
        mode.lstrip("0").encode() + b" " + name.encode("utf-8", "surrogateescape") + b"\0" + bytes.fromhex(sha)
        for mode, name, sha in sorted(items, key=key)
    )
    return store(repo, b"tree", data)


def write_folder(repo: git.Repo, files: dict[str, Entry]) -> str | None:
    """The tree of `files` (relative paths), subfolders included; None when there are none."""
    if not files:
        return None
    here: list[tuple[str, str, str]] = []
    below: dict[str, dict[str, Entry]] = {}
    for path, entry in files.items():
        head, nested, rest = path.partition("/")
        if nested:
            below.setdefault(head, {})[rest] = entry
        else:
            here.append((entry.mode, head, entry.sha))
    for name, sub in below.items():
        sha = write_folder(repo, sub)
        assert sha is not None
        here.append((TREE, name, sha))
    return write_tree(repo, here)


def replace(repo: git.Repo, tree: str | None, parts: list[str], new: str | None) -> str | None:
    """`tree` with the entry at `parts` replaced by the tree `new` (removed when None); a tree
    left empty is removed from its parent, as git does."""
    items = list(entries(repo, tree)) if tree else []
    name = parts[0]
    current = next((sha for mode, n, sha in items if n == name and mode == TREE), None)
    child = new if len(parts) == 1 else replace(repo, current, parts[1:], new)
    items = [e for e in items if e[1] != name]
    if child is not None:
        items.append((TREE, name, child))
    return write_tree(repo, items) if items else None


def commit_message(repo: git.Repo, commit: str) -> str:
    """A commit's message, read in process."""
    return raw(repo, commit).partition(b"\n\n")[2].decode("utf-8", "replace")


def parents(repo: git.Repo, commit: str) -> list[str]:
    head = raw(repo, commit).partition(b"\n\n")[0]
    return [line.split()[1].decode() for line in head.split(b"\n") if line.startswith(b"parent ")]


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
        return True
    except UnicodeDecodeError:
        return False


def stderr(e: git.GitCommandError) -> str:
    """What git said on failing, on one line (for an error message)."""
    text = str(e.stderr or e).strip().replace("\n", " ")
    return text.removeprefix("stderr: ").strip("' ")
