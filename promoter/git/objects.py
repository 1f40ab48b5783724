"""Git's objects, read and written in process over a `git.Repo` (no git run, no working tree): the
raw commits and trees, the names an entry may carry, and the trees and objects a change is written as.

Every change is built as objects, so no working tree or index is ever half-updated: a worker killed
at any point leaves the clone usable. Functions only: the state (the clone, its locks, its remote)
lives in `promoter.git.clone`.

An object never changes once its ID names it, so the objects read or written here are kept in a cache
per object store (`ObjectCache`, least recently used out first): a hundred promotions read the same
root and `environments/<env>` trees again and again, each read a round trip to git's `cat-file`.
Objects are written as loose objects by this process itself (zlib, a temporary file renamed into
place, as git writes them): no `git hash-object` run per tree or commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import git

from promoter.errors import TemporaryError
from promoter.names import shown

MAIN = "main"
SYMLINK, GITLINK, TREE = "120000", "160000", "040000"
FORBIDDEN_NAMES = {"", ".", "..", ".git"}
SHA = re.compile(r"[0-9a-f]{40}")
REF_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")  # a plain ref name: no ^ ~ : @ or other revision syntax


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


# what a parsed tree entry (a tuple of three str) takes in memory, about: eight times its raw bytes, so
# an environment's folder of 1,000 apps is 34 KB as git stores it and 271 KB parsed
TREE_ENTRY_BYTES = 272


class ObjectCache:
    """Objects by (object store, ID): their kind, their bytes and, for a tree, its parsed entries; at
    most `max_bytes` of object data and parsed entries together (each entry counted as
    `TREE_ENTRY_BYTES`), the least recently used dropped first. An object is only ever put after it was
    read from, or written into, that store: a hit means the store holds it."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], tuple[str, bytes]] = OrderedDict()
        self._trees: dict[tuple[str, str], tuple[tuple[str, str, str], ...]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[str, bytes] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], kind: str, data: bytes) -> None:
        if len(data) > self.max_bytes // 16:
            return  # a big blob is read when asked, not kept
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (kind, data)
            self._size += len(data)
            self._shrink()

    def _shrink(self) -> None:
        """Drop the least recently used objects (and their parsed entries) until within the bound."""
        while self._size > self.max_bytes and self._items:
            old, (_, dropped) = self._items.popitem(last=False)
            self._size -= len(dropped) + len(self._trees.pop(old, ())) * TREE_ENTRY_BYTES

    def tree(self, key: tuple[str, str]) -> tuple[tuple[str, str, str], ...] | None:
        with self._lock:
            return self._trees.get(key)

    def put_tree(self, key: tuple[str, str], items: tuple[tuple[str, str, str], ...]) -> None:
        with self._lock:
            if key in self._items and key not in self._trees:  # parsed entries live only as long as the object
                self._trees[key] = items
                self._size += len(items) * TREE_ENTRY_BYTES
                self._items.move_to_end(key)
                self._shrink()


CACHE = ObjectCache()


def cache_key(repo: git.Repo, sha: str) -> tuple[str, str]:
    return (str(repo.common_dir), sha)


# what every read of an object runs under (`read`): nothing here; the worker makes it hold back the SDK's
# cancel of a thread activity, which is raised into the thread at any point, until the read is done
READ_GUARD: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext


def typed(repo: git.Repo, sha: str) -> tuple[str, bytes]:
    """(kind, bytes) of the object `sha` (40 hex digits), from the cache or git's object reader."""
    key = cache_key(repo, sha)
    found = CACHE.get(key)
    if found is not None:
        return found
    kind, data = read(repo, sha)
    CACHE.put(key, kind, data)
    return kind, data


def read(repo: git.Repo, sha: str, check_size: Callable[[int], None] | None = None) -> tuple[str, bytes]:
    """(kind, bytes) of the object `sha` from git's object reader (one `cat-file --batch` per thread's
    repo), `check_size` asked first (it may refuse the object before it is read).

    The reader answers in order, so an object left half read puts it out of step for good: a refusal,
    a missing object, or the SDK's cancel of a thread activity, raised into the thread at any point
    (an activity timed out, a worker shutting down). Then the next read would get the rest of that
    object, or another object's content for this ID (a sync applied another app's manifests). So any
    error mid-read starts a new reader, and content that does not hash to `sha` is refused, never
    returned nor cached. `READ_GUARD` holds the SDK's cancel back until the read is done (the worker
    sets it), and a half-read object is marked read, so that no thread (the event loop's included)
    ever blocks draining it from a reader that will not send it."""
    stream = None
    try:
        with READ_GUARD():
            stream = repo.odb.stream(bytes.fromhex(sha))
            if check_size is not None:
                check_size(stream.size)
            kind = stream.type.decode() if isinstance(stream.type, bytes) else str(stream.type)
            data: bytes = stream.read()
    except BaseException:  # any error mid-read, a cancel raised into the thread too: the reader is out of step
        if stream is not None and hasattr(stream, "stream"):
            inner = stream.stream  # GitPython's CatFileContentStream: its __del__ drains what is left
            inner._nbr = getattr(inner, "_size", 0)
        repo.git.clear_cache()
        raise
    if len(sha) == 40 and hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest() != sha:
        repo.git.clear_cache()
        raise TemporaryError(f"git's object reader answered {sha[:12]} with another object; reading again")
    return kind, data


def rev(repo: git.Repo, name: str) -> str | None:
    """The commit `rev` names, or None; read in process (refs and the object reader), no git run."""
    if SHA.fullmatch(name):  # an ID: one read of the object (often none: it is cached)
        sha: str | None = name
    elif REF_NAME.fullmatch(name) and ".." not in name and not name.endswith((".", "/", ".lock")):
        sha = ref(repo, name)  # a ref's file (or packed-refs) read directly: rev_parse reads them slowly
    else:
        sha = None
    if sha is not None:
        try:
            kind, _ = typed(repo, sha)
        except (git.BadName, git.BadObject, ValueError, IndexError, KeyError):
            return None
        if kind != "tag":  # a tag is peeled below
            return sha if kind == "commit" else None
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


def ref(repo: git.Repo, name: str) -> str | None:
    """The object ID the ref `name` points at, looked up where git looks, in git's order (`name`,
    refs/`name`, refs/tags/, refs/heads/, refs/remotes/, refs/remotes/`name`/HEAD), symbolic refs
    followed; None when none of them exists."""
    for candidate in (name, f"refs/{name}", f"refs/tags/{name}", f"refs/heads/{name}", f"refs/remotes/{name}"):
        found = _ref_file(repo, candidate, 0)
        if found is not None:
            return found
    return _ref_file(repo, f"refs/remotes/{name}/HEAD", 0)


def _ref_file(repo: git.Repo, name: str, depth: int) -> str | None:
    if depth > 5:
        return None
    try:
        with open(os.path.join(repo.git_dir, name), "rb") as f:
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:  # no such file (or a name no file can have): packed, or no such ref
        return _packed_refs(repo).get(name) if name.startswith("refs/") else None
    if text.startswith("ref: "):
        return _ref_file(repo, text[5:].strip(), depth + 1)
    return text if SHA.fullmatch(text) else None


_PACKED: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}  # packed-refs file -> (its stat, its refs)


def _packed_refs(repo: git.Repo) -> dict[str, str]:
    path = os.path.join(repo.common_dir, "packed-refs")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    known = _PACKED.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    refs: dict[str, str] = {}
    with open(path, "rb") as f:
        for line in f.read().decode("utf-8", "replace").splitlines():
            sha, _, refname = line.partition(" ")
            if SHA.fullmatch(sha) and refname:
                refs[refname] = sha
    _PACKED[path] = (stamp, refs)
    return refs


def raw(repo: git.Repo, sha: str) -> bytes:
    return typed(repo, sha)[1]


def store(repo: git.Repo, kind: bytes, data: bytes) -> str:
    """Write an object into the clone's object store (a loose object, written atomically by this
    process: compressed into a temporary file beside it, then renamed into place, read-only, as git
    does); an object the store already holds as a loose one is not written again."""
    whole = kind + b" " + str(len(data)).encode() + b"\0" + data
    sha = hashlib.sha1(whole).hexdigest()
    key = cache_key(repo, sha)
    if CACHE.get(key) is None:
        folder = os.path.join(key[0], "objects", sha[:2])
        path = os.path.join(folder, sha[2:])
        if not os.path.exists(path):
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="tmp_obj_", dir=folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(zlib.compress(whole, 1))
                os.chmod(tmp, 0o444)
                os.replace(tmp, path)
            except BaseException:  # even a cancel: no temporary file is left beside the objects
                os.unlink(tmp)
                raise
        CACHE.put(key, kind.decode(), data)
    return sha


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
