"""The Git adapter: one persistent working clone per remote, driven through GitPython.

Every change is built as objects (trees and commits written in process, `merge-tree --write-tree`
for merges), so no working tree or index is ever half-updated: a worker killed at any point leaves
the clone usable, and the next activity simply fetches again.

Concurrency, so that a hundred apps promoted at once do not queue behind one lock:
- reads work on commit IDs, which never change, from a `git.Repo` per thread (GitPython's object
  reader is a `cat-file` process that must not be shared);
- fetches are coalesced: a caller that needs the remote as it is now waits for the next fetch to
  start after its call, so one fetch serves every caller waiting at that moment (`_fresh`);
- a stage's branch is pushed by URL, so no local ref is written beside a fetch;
- only the update of main (merge and push) is serialised, by a lock held across threads and worker
  processes (a file lock), and a push that lost the race is merged again on top of the new main.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import fcntl
import hashlib
import io
import os
import posixpath
import re
import shlex
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import git
from gitdb.base import IStream

from promoter import history, holds, layout, proofs, signing, yamlsafe
from promoter.environments import parse_environment
from promoter.errors import BadInput, Conflict, NotFound, TemporaryError
from promoter.models import (
    DiffSummary,
    EnvironmentConfig,
    PlanInput,
    PlannedEnvironment,
    PrepareInput,
    PrepareResult,
    PromotedFolder,
    PromotionPlan,
    RuleChange,
    RulesRevision,
    Trust,
    UnpromotedChange,
)
from promoter.names import ALLOWED_SIGNERS, ENVIRONMENTS, REVOKED_KEYS, app_folder, check, env_folder, shown
from promoter.yamlsafe import MAX_FILE_BYTES

MAIN = "main"
PUSH_ATTEMPTS = 8
SYMLINK, GITLINK, TREE = "120000", "160000", "040000"
FORBIDDEN_NAMES = {"", ".", "..", ".git"}


@dataclass(frozen=True)
class Entry:
    mode: str
    sha: str


MAX_AUTHOR_COMMITS = 10_000  # commits of a promoted range read for its authors; past that they are unknown
MAX_SIGNERS_BYTES = 1_000_000  # trust/allowed_signers, as the authors' signatures are verified against it
_SHA = re.compile(r"[0-9a-f]{40}")
# one commit's people, as `git log` prints them: commit, author, committer, signature (status, signer, key)
_PEOPLE = "%H%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%G?%x1f%GS%x1f%GK%x1e"


@dataclass(frozen=True)
class Touch:
    """A commit of a promoted range that touched an app's folder, and the people on it."""

    commit: str
    author: str  # "Name <email>", as the commit says (never mapped through a .mailmap)
    committer: str  # "Name <email>"
    signer: str = ""  # an SSH signature's principal (else its key's fingerprint), a GPG signature's signer; "" unsigned


@dataclass(frozen=True)
class Authorship:
    """Who shaped what a promotion brings to an environment (`GitClone.authors`)."""

    touches: list[Touch]  # each commit once, newest first (app by app for a release set)
    since: dict[str, str]  # app -> the commit deployed in the environment its range starts after (none: all history)
    unknown: str = ""  # why `touches` is not the whole range ("": it is); the policies then deny (fail closed)


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


class GitRepository(Protocol):
    url: str

    def plan(self, req: PlanInput) -> PromotionPlan: ...
    def prepare(self, req: PrepareInput) -> PrepareResult: ...
    def push_branch(self, req: PrepareInput) -> PrepareResult: ...
    def change_files(self, req: PrepareInput, base: str | None = None) -> dict[str, bytes]: ...
    def export_change(self, req: PrepareInput, dest: Path, base: str | None = None) -> Path: ...
    def policy_revision(self, base: str | None = None) -> tuple[str, str]: ...
    def policy_files(self, commit: str | None = None) -> tuple[str, dict[str, str]]: ...
    def folder_files(self, rev: str, folder: str) -> dict[str, bytes]: ...
    def export_tree(self, rev: str, dest: Path) -> None: ...
    def push_revert(
        self, app: str, env: str, merge_commit: str, reason: str, members: Sequence[str] = ..., held: str = ...
    ) -> tuple[str, str]: ...
    def held_trees(self, commit: str, apps: Sequence[str]) -> dict[str, str]: ...
    def change_patch(self, req: PrepareInput, limit: int = ...) -> str: ...
    def held(self, app: str, env: str, commit: str) -> tuple[holds.Hold, EnvironmentConfig, str]: ...
    def authors(self, commit: str, env: str, apps: Sequence[str], head: str | None = None) -> Authorship: ...
    def environment_apps(self, env: str) -> tuple[str, EnvironmentConfig, list[str]]: ...
    def promoted_folder(self, env: str, app: str) -> PromotedFolder: ...
    def environments(self) -> list[EnvironmentConfig]: ...
    def push_release(self, hold: holds.Hold, who: str, why: str) -> tuple[str, str]: ...
    def release_request(self, commit: str) -> tuple[str, str, str, str]: ...
    def seal_release(self, branch: str, request: str, approvals: Sequence[str] = ...) -> str: ...
    def branch_head(self, branch: str) -> str | None: ...
    def folder_trees(self, rev: str, folders: list[str]) -> dict[str, str]: ...
    def trust(self, rev: str) -> Trust: ...
    def rules(self, main: str | None = None) -> RulesRevision: ...
    def unsigned_source(
        self, commit: str, source: str, target: str, apps: Sequence[str], head: str | None = None
    ) -> list[RuleChange]: ...
    def outside_folders(self, head: str, folders: Sequence[str]) -> list[str]: ...
    def merge_branch(self, branch: str, message: str, expected_head: str | None = None) -> str: ...


HistoryEvent = history.Event  # (in the class, `history` is the method)
RULE_PATHS = ("policies", "trust", f":(glob){ENVIRONMENTS}/*/environment.yaml")  # the rule files, as pathspecs
MAX_UNTRUSTED_SHOWN = 20  # untrusted rule changes named; more are counted (a flood must not fill the plan)


def _cut(text: str, limit: int) -> str:
    """One line of at most `limit` characters (an author or a reason that someone else wrote)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class _RulesWalk:
    """How far rules() followed main from the trust root: the trusted revision reached, its rule files'
    digest, and the untrusted changes since it."""

    root: str
    main: str
    trusted: str
    digest: tuple[str, ...]
    untrusted: list[RuleChange] = field(default_factory=list)
    more: int = 0

    def copy(self) -> _RulesWalk:
        return dataclasses.replace(self, untrusted=list(self.untrusted))


PROMOTER_PRINCIPAL = "promoter"  # the principal of promoter's own commit signing key in trust/allowed_signers
MAX_TRUST_BYTES = 1_000_000  # trust/allowed_signers or trust/revoked_keys: thousands of keys
MAX_PATCH_CHARS = 200_000  # of one environment's change, as `promoter plan --diff` shows it
GIT_USERS = {"github": "x-access-token", "gitlab": "oauth2"}  # the HTTPS user that goes with a forge's token


def auth_env(token: str | None = None, username: str = "x-access-token", ssh_key: str | None = None) -> dict[str, str]:
    """Environment for git that authenticates HTTPS with `token` (an `http.extraHeader` given through
    GIT_CONFIG_* variables) and SSH with `ssh_key`. Nothing is written to `.git/config` and the URL
    stays free of credentials, so neither a log line nor an error message can carry them."""
    env: dict[str, str] = {}
    if token:
        basic = base64.b64encode(f"{username}:{token}".encode()).decode()
        env.update(
            {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            }
        )
    if ssh_key:
        env["GIT_SSH_COMMAND"] = f"ssh -i {shlex.quote(ssh_key)} -o IdentitiesOnly=yes -o BatchMode=yes"
    return env


class GitClone:
    """A `GitRepository` over any URL git can fetch (a path, file://, https, ssh)."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        author_name: str = "promoter",
        author_email: str = "promoter@localhost",
        auth_env: dict[str, str] | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
        trust_root: str | None = None,
    ) -> None:
        self.url = url
        self.max_file_bytes = max_file_bytes
        self.trust_root = trust_root  # None: main's rule files are used as they stand (see rules())
        self._rules: dict[str, RulesRevision] = {}  # main's commit -> its trusted rules revision
        self._walks: list[_RulesWalk] = []  # where rules() reached on recent mains, to go on from
        self._trusts: dict[str, Trust] = {}  # trust/ at a few trusted revisions
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.path = Path(cache_dir) / key
        self._lock_path = Path(cache_dir) / f"{key}.lock"
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        self._identity = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
            "GIT_TERMINAL_PROMPT": "0",
            **(auth_env or {}),  # credentials reach git through its environment only (see auth_env())
        }
        self._local = threading.local()  # a git.Repo per thread
        self._clone_lock = threading.Lock()
        self._main_lock = threading.Lock()  # merges of main in this process (the file lock: across processes)
        self._fetches = threading.Condition()
        self._fetch_started = self._fetch_done = 0
        self._fetching = False
        self._pushed_main: str | None = None  # the main this process pushed last (merge_branch)
        self._signing_key: bytes | None = None  # promoter's commit signing key (sign_commits_with); None: unsigned

    def sign_commits_with(self, private_key: bytes) -> None:
        """Sign every commit this clone writes (merges, reverts, releases, promotion branches) with
        `private_key` (an unencrypted OpenSSH private key), as `git commit -S` with gpg.format ssh does.
        Checked here, so that a worker with a key it cannot use does not start."""
        try:
            signing.public_key_line(private_key)
        except signing.SignatureError as e:
            raise BadInput(f"the commit signing key (PROMOTER_COMMIT_SIGNING_KEY): {e}") from None
        self._signing_key = private_key

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _file_lock(self, suffix: str = "") -> Iterator[None]:
        """Exclusive across worker processes sharing the cache: `<key>.lock` guards fetches,
        `<key>.main.lock` the update of main (threads take a thread lock or the fetch condition first)."""
        with open(self._lock_path.with_suffix(suffix + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _open(self) -> git.Repo:
        """This thread's `git.Repo` over the clone (made once, atomically: a crash mid-clone never
        leaves a broken cache)."""
        repo: git.Repo | None = getattr(self._local, "repo", None)
        if repo is None:
            with self._clone_lock:
                if not (self.path / ".git").exists():
                    with self._file_lock():
                        if not (self.path / ".git").exists():
                            tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".clone-"))
                            try:
                                git.Repo.clone_from(self.url, tmp, no_checkout=True, env=self._identity)
                            except git.GitCommandError as e:
                                shutil.rmtree(tmp, ignore_errors=True)
                                raise TemporaryError(f"cannot clone {self.url}: {_stderr(e)}") from e
                            os.replace(tmp, self.path)
            repo = self._local.repo = git.Repo(self.path)
        return repo

    def _fresh(self) -> git.Repo:
        """This thread's repo, fetched by a fetch that started after this call: the remote as it is
        now, at least. Callers that arrive while a fetch runs share the next one."""
        repo = self._open()
        with self._fetches:
            ticket = self._fetch_started + 1
            while self._fetch_done < ticket:
                if self._fetching:
                    self._fetches.wait()
                    continue
                self._fetching = True
                self._fetch_started += 1
                mine = self._fetch_started
                self._fetches.release()
                try:
                    with self._file_lock():
                        self._fetch(repo)
                finally:
                    self._fetches.acquire()
                    self._fetching = False
                    self._fetches.notify_all()
                self._fetch_done = mine  # reached only when the fetch succeeded
        return repo

    def _have(self, rev: str | None) -> git.Repo:
        """This thread's repo holding the commit `rev`, fetched only when it lacks it (a commit never
        changes): main, then, if that did not bring it (a commit pushed onto a PR's branch), every
        branch. Without `rev`: main as it is now (`_fresh`)."""
        repo = self._open()
        if rev is None:
            return self._fresh()
        if len(rev) == 40 and self._rev(repo, rev) is not None:
            return repo
        repo = self._fresh()
        if self._rev(repo, rev) is None:
            with self._file_lock():
                self._fetch(repo, everything=True)
        return repo

    def _git(self, repo: git.Repo, *args: str) -> str:
        out: str = repo.git.execute(["git", *args], env=self._identity)
        return out

    def _fetch(self, repo: git.Repo, everything: bool = False) -> None:
        """Fetch main (or every branch); callers hold the fetch lock."""
        refspec = (
            "+refs/heads/*:refs/remotes/origin/*" if everything else f"+refs/heads/{MAIN}:refs/remotes/origin/{MAIN}"
        )
        try:
            self._git(repo, "fetch", "--quiet", "--prune", "origin", refspec)
        except git.GitCommandError as e:
            raise TemporaryError(f"cannot fetch {self.url}: {_stderr(e)}") from e

    @staticmethod
    def _rev(repo: git.Repo, rev: str) -> str | None:
        """The commit `rev` names, or None; read in process (refs and the object reader), no git run."""
        try:
            obj = repo.rev_parse(rev)
            while obj.type == "tag":
                obj = obj.object
        except (git.BadName, git.BadObject, ValueError, IndexError, KeyError):
            return None
        if obj.binsha == git.Object.NULL_BIN_SHA:  # GitPython answers the all-zero ID without looking it up
            return None
        return obj.hexsha if obj.type == "commit" else None

    def _tree(self, repo: git.Repo, rev: str, folder: str) -> dict[str, Entry]:
        """Every file under `folder` at `rev`, from the raw tree objects (names as bytes: any name
        survives). An entry that can never be promoted is a `BadInput` naming it (see `refuse_entry`)."""
        found = self._path(repo, rev, folder)
        if found is None or found.mode != TREE:
            return {}
        entries: dict[str, Entry] = {}
        for rel, mode, sha in self._walk(repo, found.sha, ""):
            target = self._raw(repo, sha).decode("utf-8", "surrogateescape") if mode == SYMLINK else None
            reason = refuse_entry(folder, rel, mode, target)
            if reason is not None:
                raise BadInput(reason)
            entries[rel] = Entry(mode, sha)
        return entries

    def _path(self, repo: git.Repo, rev: str, path: str) -> Entry | None:
        """The entry at `path` (a/b/c) in the commit `rev` (None: no such path), read in process."""
        commit = self._rev(repo, rev)
        if commit is None:
            raise NotFound(f"revision {rev[:12]} not found in {self.url}")
        entry = Entry(TREE, self._root(repo, commit))
        for part in path.split("/"):
            if entry.mode != TREE:
                return None
            child = next((Entry(m, sha) for m, name, sha in self._entries(repo, entry.sha) if name == part), None)
            if child is None:
                return None
            entry = child
        return entry

    def _root(self, repo: git.Repo, commit: str) -> str:
        """The root tree of a commit (its object's first line: `tree <sha>`)."""
        return self._raw(repo, commit).split(b"\n", 1)[0].split()[1].decode()

    @staticmethod
    def _raw(repo: git.Repo, sha: str) -> bytes:
        data: bytes = repo.odb.stream(bytes.fromhex(sha)).read()
        return data

    def _entries(self, repo: git.Repo, tree: str) -> Iterator[tuple[str, str, str]]:
        """(mode, name, sha) of each entry of a tree object, as `ls-tree` shows them."""
        data = self._raw(repo, tree)
        i = 0
        while i < len(data):
            space = data.index(b" ", i)
            nul = data.index(b"\0", space)
            mode = data[i:space].decode().zfill(6)
            yield mode, data[space + 1 : nul].decode("utf-8", "surrogateescape"), data[nul + 1 : nul + 21].hex()
            i = nul + 21

    def _walk(self, repo: git.Repo, tree: str, prefix: str) -> Iterator[tuple[str, str, str]]:
        for mode, name, sha in self._entries(repo, tree):
            if mode == TREE:
                yield from self._walk(repo, sha, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", mode, sha

    def _messages(self, repo: git.Repo, shas: list[str]) -> dict[str, str]:
        """Each commit's message, read in one git run (the branch commits that merges bring in)."""
        if not shas:
            return {}
        messages: dict[str, str] = {}
        shown = self._git(repo, "show", "-s", "--no-walk=unsorted", "--format=%H%x1f%B%x1e", *shas)
        for entry in shown.split("\x1e"):
            sha, sep, message = entry.strip().partition("\x1f")
            if sep:
                messages[sha] = message
        return messages

    def _is_ancestor(self, repo: git.Repo, sha: str, of: str) -> bool:
        try:
            self._git(repo, "merge-base", "--is-ancestor", sha, of)
            return True
        except git.GitCommandError:
            return False

    def _show(self, repo: git.Repo, rev: str, path: str) -> str | None:
        """The text of the file at `path` in `rev` (None: no such file)."""
        found = self._path(repo, rev, path)
        if found is None or found.mode == TREE:
            return None
        # without the final newline: an error at the end of the file names its last line, not the one after
        return self._raw(repo, found.sha).decode("utf-8", "replace").rstrip("\n")

    # ------------------------------------------------------------ planning

    def plan(self, req: PlanInput) -> PromotionPlan:
        check(req.app, "app")
        for member in req.members:
            check(member, "app")
        if req.members and (len(set(req.members)) != len(req.members) or len(req.members) < 2):
            raise BadInput("a release set is two apps or more, each named once")
        if req.to_env is not None:
            check(req.to_env, "environment")
        if req.commit is not None:
            from promoter.names import check_revision

            check_revision(req.commit)
        repo = self._fresh()
        main = self._main(repo)
        rules = self.rules(main)  # environment.yaml and trust/ as the trusted rules revision has them
        envs = self._environments(repo, rules.commit)
        source = envs[0].config.name
        if req.to_env is not None:
            names = [e.config.name for e in envs]
            if req.to_env not in names:
                raise BadInput(f"unknown environment '{req.to_env}'; environments: {', '.join(names)}")
            envs = envs[: names.index(req.to_env) + 1]
        apps_here = self._apps(repo, main, source)
        if req.members and req.app in apps_here:
            raise BadInput(f"the release set's name '{req.app}' is an app's; give the set another --name")
        for app in req.apps:
            if app not in apps_here:
                raise BadInput(
                    f"unknown app '{app}': no {app_folder(source, app)} on {MAIN}; "
                    f"apps in {source}: {', '.join(apps_here) or 'none'}"
                )
        if req.commit is None:  # the newest commit that changed the app (any member of a set)
            folders = [app_folder(source, app) + "/" for app in req.apps]
            sha = self._git(repo, "log", "-1", "--format=%H", main, "--", *folders)
        else:
            sha = self._rev(repo, req.commit) or ""
            if not sha:
                raise BadInput(f"commit '{req.commit}' does not exist in {self.url}; give a commit of {MAIN}")
            if not self._is_ancestor(repo, sha, main):
                raise BadInput(f"commit {sha[:12]} is not on {MAIN}; promote only commits of {MAIN}")
        for app in req.apps:
            folder = app_folder(source, app)
            if not self._tree(repo, sha, folder):  # also refuses entries that can never be promoted
                raise BadInput(
                    f"unknown app '{app}': {folder} does not exist at {sha[:12]}; "
                    f"apps in {source}: {', '.join(apps_here) or 'none'}"
                )
            held = self._holds(repo, main, app)
            for env in envs[1:]:  # held: that commit, or the same content of the app's folder as a held one
                hold = holds.find(held, env.config.name, sha, lambda folder: self._tree_id(repo, sha, folder))
                if hold is not None:
                    raise BadInput(hold.refusal(sha))
        info = self._git(repo, "log", "-1", "--format=%an <%ae>%n%s", sha).split("\n", 1)
        return PromotionPlan(
            app=req.app,
            members=req.members,
            commit=sha,
            short_commit=sha[:7],
            author=info[0],
            message=info[1] if len(info) > 1 else "",
            environments=envs,
            trust=self._trust(repo, rules.commit),
            rules=rules,
        )

    def trust(self, rev: str) -> Trust:
        """`trust/allowed_signers` and `trust/revoked_keys` at `rev` (a commit of main)."""
        return self._trust(self._have(rev), rev)

    def _trust(self, repo: git.Repo, rev: str) -> Trust:
        texts: dict[str, str] = {}
        for name in (ALLOWED_SIGNERS, REVOKED_KEYS):
            found = self._path(repo, rev, name)
            if (
                found is not None
                and found.mode != TREE
                and repo.odb.info(bytes.fromhex(found.sha)).size > MAX_TRUST_BYTES
            ):
                raise BadInput(f"{name} at {rev[:12]} is larger than {MAX_TRUST_BYTES} bytes; list fewer keys")
            texts[name] = self._show(repo, rev, name) or ""
        return Trust(
            revision=self._rev(repo, rev) or rev,
            allowed_signers=texts[ALLOWED_SIGNERS],
            revoked_keys=texts[REVOKED_KEYS],
        )

    # ------------------------------------------------------------ the trusted rules revision

    def rules(self, main: str | None = None) -> RulesRevision:
        """The revision of the rule files that judges a promotion on `main` (as it is now by default):
        from the trust root (`PROMOTER_TRUST_ROOT`), main's first-parent commits that change a rule file
        (policies/, trust/, any environment.yaml) are followed while each is trusted: a commit whose rules
        are the trusted ones already, one signed by a key that trust/allowed_signers *of the trusted
        revision before it* lists for `git` (as `git verify-commit` checks it; never a key listed for the
        principal `promoter`, which signs promoter's own merges), or a merge whose second parent is such a
        signed commit made on top of the trusted revision, with the same rules. An untrusted change is not
        used, and is reported. Without a trust root, main's rule files are used as they stand
        (RulesRevision.root is None). The walk goes on from the last main it reached, so a new commit on
        main costs what it changed, not the whole history since the root."""
        repo = self._have(main)
        main = main or self._main(repo)
        cached = self._rules.get(main)
        if cached is not None:
            return cached
        if self.trust_root is None:  # the rules are main's, named by the last commit that changed them
            last = self._git(repo, "log", "-1", "--first-parent", "--format=%H", main, "--", *RULE_PATHS).strip()
            return self._remember(main, RulesRevision(commit=last or main))
        root = self._rev(repo, self.trust_root)
        if root is None or not self._is_ancestor(repo, root, main):
            raise BadInput(
                f"the trust root {self.trust_root[:12]} (PROMOTER_TRUST_ROOT) is not a commit of {MAIN} in "
                f"{self.url}; pin a commit of {MAIN} whose rule files you trust"
            )
        walk = self._walk_from(repo, root, main)
        for line in self._git(
            repo,
            "log",
            "--first-parent",
            "--reverse",
            "--format=%H%x1f%an <%ae>",
            f"{walk.main}..{main}",
            "--",
            *RULE_PATHS,
        ).splitlines():
            commit, _, author = line.partition("\x1f")
            here = self._rules_digest(repo, commit)
            if here == walk.digest:
                walk.trusted = commit  # the same rules: a newer name for them
                continue
            reason = self._vouched(repo, commit, walk.trusted, here)
            if reason is None:
                walk.trusted, walk.digest, walk.untrusted, walk.more = commit, here, [], 0  # took in all before it
            elif len(walk.untrusted) < MAX_UNTRUSTED_SHOWN:
                walk.untrusted.append(RuleChange(commit=commit, author=_cut(author, 120), reason=_cut(reason, 300)))
            else:
                walk.more += 1
        walk.main = main
        self._walks = [*self._walks[-7:], walk.copy()]
        undone = self._rules_digest(repo, main) == walk.digest  # what was changed unsigned has been changed back
        return self._remember(
            main,
            RulesRevision(
                commit=walk.trusted,
                root=root,
                untrusted=[] if undone else list(walk.untrusted),
                more_untrusted=0 if undone else walk.more,
            ),
        )

    def _remember(self, main: str, found: RulesRevision) -> RulesRevision:
        self._rules = {**dict(list(self._rules.items())[-15:]), main: found}  # a few recent mains
        return found

    def _walk_from(self, repo: git.Repo, root: str, main: str) -> _RulesWalk:
        """Where to go on following main from: the walk of an earlier main on `main`'s first-parent line
        (the newest such), or the trust root."""
        for walk in reversed(self._walks):
            if walk.root != root or not self._is_ancestor(repo, walk.main, main):
                continue
            oldest = self._git(repo, "log", "--first-parent", "--reverse", "--format=%H %P", f"{walk.main}..{main}")
            first = oldest.split("\n", 1)[0].split()
            if len(first) >= 2 and first[1] == walk.main:  # the walk's main is on this main's first-parent line
                return walk.copy()
        return _RulesWalk(root=root, main=root, trusted=root, digest=self._rules_digest(repo, root))

    def unsigned_source(
        self, commit: str, source: str, target: str, apps: Sequence[str], head: str | None = None
    ) -> list[RuleChange]:
        """The commits of the promoted range (after the commit deployed in `target`, and after the trust
        root, which is trusted as it is) that touched an app's folder in `source`, and with `head` (the
        stage's PR head) the commits pushed onto the PR after promoter's own first one, that carry no git
        SSH signature by a key trust/allowed_signers lists for `git` at the trusted rules revision
        (`source.require_signed`, as Flux and Argo CD verify a source's commits)."""
        repo = self._have(head or commit)
        main = self._main(repo)
        trust = self._trust(repo, self.rules(main).commit)
        since = self.authors(commit, target, apps).since
        found: list[RuleChange] = []
        selections = [
            [commit, *(f"^{rev}" for rev in (since.get(app), self.trust_root) if rev), "--", app_folder(source, app)]
            for app in apps
        ]
        if head:  # the PR's commits but its first, which promoter wrote (signed by its key, when it has one)
            pushed = self._git(repo, "log", "--reverse", "--format=%H", head, f"^{main}").split()
            selections += [[sha, "-1"] for sha in pushed[1:]]
        for selection in selections:
            out = self._git(repo, "log", "--format=%H%x1f%an <%ae>", *selection)
            for line in out.splitlines():
                sha, _, author = line.partition("\x1f")
                try:
                    signing.commit_signer(self._raw(repo, sha), trust.allowed_signers, trust.revoked_keys)
                except signing.SignatureError as e:
                    found.append(RuleChange(commit=sha, author=author, reason=str(e)))
        return found

    def outside_folders(self, head: str, folders: Sequence[str]) -> list[str]:
        """The paths a branch's `head` changes, since it left main, outside `folders` (a promotion's PR
        may change its app folders only: anything else would ride along, unjudged, into main)."""
        repo = self._have(head)
        base = self._git(repo, "merge-base", self._main(repo), head).strip()
        changed = self._git(repo, "diff", "--name-only", "--no-renames", "-z", base, head).split("\0")
        return [p for p in changed if p and not any(p.startswith(f.rstrip("/") + "/") for f in folders)]

    def _only_folders(self, repo: git.Repo, head: str, main: str, folders: Sequence[str]) -> bool:
        """Whether `head` is one commit on a commit of main that changes nothing outside `folders`:
        the only kind of branch promoter takes up again instead of writing its own."""
        parents = [
            line.split()[1].decode()
            for line in self._raw(repo, head).split(b"\n\n", 1)[0].split(b"\n")
            if line.startswith(b"parent ")
        ]
        if len(parents) != 1 or not self._is_ancestor(repo, parents[0], main):
            return False
        changed = self._git(repo, "diff", "--name-only", "--no-renames", "-z", parents[0], head).split("\0")
        return all(any(p.startswith(f.rstrip("/") + "/") for f in folders) for p in changed if p)

    def _rules_digest(self, repo: git.Repo, commit: str) -> tuple[str, ...]:
        """The rule files at `commit`, as the ids of their trees and blobs."""
        parts = []
        for path in ("policies", "trust"):
            found = self._path(repo, commit, path)
            parts.append(found.sha if found is not None else "")
        for name in self._folders(repo, commit, ENVIRONMENTS):
            found = self._path(repo, commit, f"{ENVIRONMENTS}/{name}/environment.yaml")
            parts.append(f"{name}:{found.sha if found is not None else ''}")
        return tuple(parts)

    def _vouched(self, repo: git.Repo, commit: str, trusted: str, digest: tuple[str, ...]) -> str | None:
        """None when a key trusted at `trusted` vouches for `commit`'s rules; else why not (one phrase)."""
        trust = self._trust_cached(repo, trusted)
        reason = self._signed_by_rules_key(repo, commit, trust)
        if reason is None:
            return None
        parents = self._raw(repo, commit).split(b"\n\n", 1)[0].split(b"\n")
        second = [line.split()[1].decode() for line in parents if line.startswith(b"parent ")][1:2]
        if (
            second
            and self._rules_digest(repo, second[0]) == digest  # a merge that brings exactly a signed change
            and self._is_ancestor(repo, trusted, second[0])  # made on top of today's rules, never an old one
            and self._signed_by_rules_key(repo, second[0], trust) is None
        ):
            return None
        return reason

    def _trust_cached(self, repo: git.Repo, rev: str) -> Trust:
        found = self._trusts.get(rev)
        if found is None:
            found = self._trust(repo, rev)
            self._trusts = {**dict(list(self._trusts.items())[-7:]), rev: found}
        return found

    def _signed_by_rules_key(self, repo: git.Repo, commit: str, trust: Trust) -> str | None:
        try:
            signer = signing.commit_signer(self._raw(repo, commit), trust.allowed_signers, trust.revoked_keys)
            promoters = [
                s for s in signing.parse_allowed_signers(trust.allowed_signers) if PROMOTER_PRINCIPAL in s.principals
            ]
        except signing.SignatureError as e:
            return "unsigned" if "not signed" in str(e) else str(e)
        if any(signing.fingerprint(s.key_blob) == signer.fingerprint for s in promoters):
            return "signed by promoter's own key, which signs its merges, never rule changes"
        return None

    def folder_trees(self, rev: str, folders: list[str]) -> dict[str, str]:
        """Each folder's git tree id at `rev` ("" when it has none): the digest of exactly what a
        branch would merge there, which a signed approval names."""
        repo = self._have(rev)
        trees: dict[str, str] = {}
        for folder in folders:
            found = self._path(repo, rev, folder)
            trees[folder] = found.sha if found is not None and found.mode == TREE else ""
        return trees

    def history(self, app: str) -> list[history.Event]:
        """The app's promotions, reverts and released holds per environment, newest first, read from
        main's commits alone (see promoter.history)."""
        check(app, "app")
        repo = self._fresh()
        main = self._main(repo)
        glob = f":(glob){ENVIRONMENTS}/*/{app}/**"
        out = self._git(
            repo, "log", "--first-parent", "--merges", "--format=%H%x1f%P%x1f%cI%x1f%B%x1e", main, "--", glob
        )
        merges = []
        for entry in out.split("\x1e"):
            parts = entry.strip().split("\x1f")
            if len(parts) == 4:
                sha, parents, at, message = parts
                merges.append({"sha": sha, "parent": (parents.split() + ["", ""])[1], "at": at, "message": message})
        branches = self._messages(repo, [m["parent"] for m in merges if m["parent"]])
        for m in merges:
            m["branch_message"] = branches.get(m["parent"], "")
        out = self._git(repo, "log", "--format=%H%x1f%cI%x1f%B%x1e", f"--grep=^{holds.RELEASE}: ", main)
        claims = [p for p in (entry.strip().split("\x1f") for entry in out.split("\x1e")) if len(p) == 3]
        signers = self._promoter_signers(repo, main) if claims else ("", "")
        releases = [  # only those that lift a hold: promoter's signed releases (promoter.holds)
            {"sha": p[0], "at": p[1], "message": p[2]}
            for p in claims
            if holds.is_release(p[2]) and self._signed_by_promoter(repo, p[0], signers)
        ]
        # newest first by main's own order (first parents), not by the clock: a release merged within
        # the same second as the revert before it still comes after it
        position = {sha: i for i, sha in enumerate(self._git(repo, "rev-list", "--first-parent", main).split())}
        merged_by: dict[str, str] = {}
        for line in self._git(repo, "log", "--first-parent", "--merges", "--format=%H %P", main).splitlines():
            parts = line.split()
            merged_by.update({p: parts[0] for p in parts[2:]})
        for m in merges:
            m["rank"] = str(position.get(m["sha"], len(position)))
        for r in releases:
            landed = r["sha"] if r["sha"] in position else merged_by.get(r["sha"], r["sha"])
            r["rank"], r["sha"] = str(position.get(landed, len(position))), landed
        events = history.events(app, merges, releases)
        self._verify_approvals(repo, main, app, events, {m["sha"]: (m["message"], m["parent"]) for m in merges})
        return events

    def _verify_approvals(
        self, repo: git.Repo, main: str, app: str, events: list[HistoryEvent], merges: dict[str, tuple[str, str]]
    ) -> None:
        """Each promotion's approvals, verified again from Git alone (promoter.proofs): against the
        trust/ of the revision its merge names, which must be on main before that merge."""
        revoked_now = self._trust(repo, main).revoked_keys
        trusts: dict[tuple[str, str], proofs.TrustAt] = {}
        for event in events:
            if event.kind != "promoted":
                continue
            message, head = merges.get(event.main_commit, ("", ""))
            fields = holds.parse_trailers(message)
            rev = dict(fields).get(history.TRUST, "")
            if (rev, event.main_commit) not in trusts:
                trusts[rev, event.main_commit] = self._trust_at(repo, rev, event.main_commit, revoked_now)
            merge = event.main_commit

            def trees(folders: list[str], at: str = merge) -> dict[str, str]:
                return self.folder_trees(at, folders)

            event.approvals = proofs.check(event, fields, app, trusts[rev, merge], trees, head)

    def _trust_at(self, repo: git.Repo, rev: str, merge: str, revoked_now: str) -> proofs.TrustAt:
        if not rev:
            return proofs.TrustAt(None, f"the merge names no {history.TRUST} revision to verify against")
        sha = self._rev(repo, rev) if len(rev) == 40 else None
        if sha is None or not self._is_ancestor(repo, sha, f"{merge}^1"):  # main before it, not the PR branch
            return proofs.TrustAt(None, f"{history.TRUST} {rev[:12]} is not a commit of main before this merge")
        if self.trust_root is not None and self._is_ancestor(repo, self.trust_root, sha):
            if self.rules(sha).commit != sha:  # a revision whose trust/ nobody trusted verifies nothing
                return proofs.TrustAt(None, f"{history.TRUST} {rev[:12]} is not a trusted rules revision")
        return proofs.TrustAt(self._trust(repo, sha), revoked_now=revoked_now)

    def environment_apps(self, env: str) -> tuple[str, EnvironmentConfig, list[str]]:
        """(main's commit, the environment's configuration, its apps) as main has them now."""
        check(env, "environment")
        repo = self._fresh()
        main = self._main(repo)
        return main, self._environment(repo, self.rules(main).commit, env), self._apps(repo, main, env)

    def environments(self) -> list[EnvironmentConfig]:
        """Every environment's configuration, as the trusted rules revision of main has it."""
        repo = self._fresh()
        return [e.config for e in self._environments(repo, self.rules(self._main(repo)).commit)]

    def held(self, app: str, env: str, commit: str) -> tuple[holds.Hold, EnvironmentConfig, str]:
        """The hold that keeps `app` @ `commit` out of `env` on main (one of that commit, or of the same
        content), with the environment's configuration and the held commit's author; `BadInput` when
        there is none."""
        check(app, "app")
        check(env, "environment")
        repo = self._fresh()
        main = self._main(repo)
        config = self._environment(repo, self.rules(main).commit, env)
        sha = self._rev(repo, commit) or ""
        hold = None
        if sha:
            in_force = self._holds(repo, main, app)
            hold = holds.find(in_force, env, sha, lambda folder: self._tree_id(repo, sha, folder))
        if hold is None:
            raise BadInput(f"{app} @ {commit[:12]} is not held in {env}; `promoter history {app}` shows the holds")
        held = self._rev(repo, hold.commit) or sha
        author = self._git(repo, "log", "-1", "--format=%an <%ae>", held)
        return hold, config, author

    def push_release(self, hold: holds.Hold, who: str, why: str) -> tuple[str, str]:
        """The release PR's first commit: an empty commit on main that asks for the release of `hold`
        and lifts nothing (see promoter.holds), pushed as `release-hold/<app>/<env>/<short>`. The
        commit that lifts the hold is written only once the gate approved (`seal_release`). Idempotent:
        promoter's own unmerged request for that hold is reused. (branch, head)"""
        if self._signing_key is None:  # fail closed: an unsigned release would lift nothing
            raise BadInput(
                "promoter has no commit signing key (PROMOTER_COMMIT_SIGNING_KEY), and a hold is lifted only by "
                "a release promoter signed; set the key, list its public key for the principal `promoter` "
                '(namespaces="git") in trust/allowed_signers, and ask again'
            )
        branch = layout.release_branch(hold.app, hold.env, hold.commit)
        repo = self._fresh()
        main = self._main(repo)
        existing = self._branch(repo, branch)
        if existing is not None and not self._is_ancestor(repo, existing, main):
            asked = self._request(repo, existing)
            if (
                asked is not None
                and asked[:3] == (hold.app, hold.env, hold.commit)
                and self._only_folders(repo, existing, main, [])  # promoter's empty request, nothing else
            ):
                return branch, existing
        message = f"release-hold({hold.app}): {hold.env} may take {hold.commit[:7]} again\n\n" + (
            f"Asked by {who}; lifts nothing until {hold.env}'s approvers approve it.\n\n"
            + holds.request_trailers(hold.app, hold.env, hold.commit, who, why)
        )
        head = self._write_commit(repo, self._root(repo, main), [main], message)
        self._push_branch(repo, branch, head, existing)
        return branch, head

    def release_request(self, commit: str) -> tuple[str, str, str, str]:
        """(app, environment, held commit, `who: why`) of a release PR's request commit, which promoter
        wrote and signed with its own key; `BadInput` for any other commit."""
        repo = self._have(commit)
        asked = self._request(repo, commit)
        if asked is None:
            raise BadInput(
                f"{commit[:12]} is not a release request promoter wrote and signed; run `promoter release-hold` again"
            )
        return asked

    def seal_release(self, branch: str, request: str, approvals: Sequence[str] = ()) -> str:
        """After the gate's approvals: the commit that lifts the hold `request` asks to release, written
        and signed by promoter on top of it and pushed to `branch`, for the caller to merge at once (with
        that commit as the expected head). `approvals` (`Promoter-Approval: ...` lines) are recorded in it.
        Idempotent: a retry finds the commit it pushed. `Conflict` when the branch moved past `request`."""
        repo = self._have(request)
        app, env, held, asked_by = self.release_request(request)
        head = self._branch(repo, branch)
        if head is None:
            raise NotFound(f"branch {branch} not found in {self.url}")
        if head != request:
            if self._parents(repo, head) == [request] and self._ours(repo, head):
                released = holds.release(holds.Record(head, self._commit_message(repo, head), signed=True))
                if released == (app, env, held):
                    return head  # pushed by an earlier attempt whose merge did not happen yet
            raise Conflict(
                f"branch {branch} is at {head[:12]}, not the approved {request[:12]}; the hold stays, "
                "run `promoter release-hold` again"
            )
        who, _, why = asked_by.partition(": ")
        message = f"release-hold({app}): {env} may take {held[:7]} again\n\n" + (
            "Approved on the release's pull request; promoter signed this commit after the approvals.\n\n"
            + holds.release_trailers(app, env, held, who, why, approvals)
        )
        sealed = self._write_commit(repo, self._root(repo, request), [request], message)
        self._push_branch(repo, branch, sealed, request)
        return sealed

    def _request(self, repo: git.Repo, commit: str) -> tuple[str, str, str, str] | None:
        """A release request in `commit` that this promoter signed (its own key), else None."""
        if not self._ours(repo, commit):
            return None
        return holds.release_request(self._commit_message(repo, commit))

    def _ours(self, repo: git.Repo, commit: str) -> bool:
        """Whether `commit` is signed with this clone's own signing key."""
        if self._signing_key is None:
            return False
        mine = f'{holds.PRINCIPAL} namespaces="git" {signing.public_key_line(self._signing_key)}\n'
        try:
            signing.commit_signer(self._raw(repo, commit), mine)
        except BadInput:  # SignatureError: unsigned, or another key
            return False
        return True

    def _commit_message(self, repo: git.Repo, commit: str) -> str:
        """A commit's message, read in process."""
        return self._raw(repo, commit).partition(b"\n\n")[2].decode("utf-8", "replace")

    def _parents(self, repo: git.Repo, commit: str) -> list[str]:
        head = self._raw(repo, commit).partition(b"\n\n")[0]
        return [line.split()[1].decode() for line in head.split(b"\n") if line.startswith(b"parent ")]

    def _tree_id(self, repo: git.Repo, rev: str, folder: str) -> str:
        """The tree id of `folder` at `rev` ("" when it is no folder there)."""
        found = self._path(repo, rev, folder)
        return found.sha if found is not None and found.mode == TREE else ""

    def held_trees(self, commit: str, apps: Sequence[str]) -> dict[str, str]:
        """What `commit` deploys of each app: the tree id of its folder in the source environment (the
        first), by folder. A revert holds these: any commit with the same content is held too."""
        repo = self._fresh()
        return self._held_trees(repo, self._main(repo), commit, apps)

    def _held_trees(self, repo: git.Repo, main: str, commit: str, apps: Sequence[str]) -> dict[str, str]:
        try:  # the source environment as the trusted rules name it: an unsigned change of main's cannot move it
            source = self._environments(repo, self.rules(main).commit)[0].config.name
        except BadInput:  # the environments do not parse: the revert still happens, held by its commit alone
            return {}
        if self._rev(repo, commit) is None:
            return {}
        return {app_folder(source, app): self._tree_id(repo, commit, app_folder(source, app)) for app in apps}

    def _environment(self, repo: git.Repo, main: str, env: str) -> EnvironmentConfig:
        """`env`'s configuration on `main`; `BadInput` naming the environments when there is none."""
        configs = {e.config.name: e.config for e in self._environments(repo, main)}
        if env not in configs:
            raise BadInput(f"unknown environment '{env}'; environments: {', '.join(configs)}")
        return configs[env]

    def _holds(self, repo: git.Repo, main: str, app: str) -> list[holds.Hold]:
        """The holds of `app` in force on `main` (see promoter.holds), read from main's commits: every hold
        counts, signed or not (fail closed); a release counts only when promoter's key signed it."""
        out = self._git(repo, "log", "--format=%H%x1f%B%x1e", f"--grep=^{holds.HELD}-App: {app}$", main)
        commits = [tuple(entry.strip().split("\x1f", 1)) for entry in out.split("\x1e") if "\x1f" in entry]
        signers: tuple[str, str] | None = None
        records = []
        for sha, message in commits:
            signed = False
            if holds.is_release(message):
                signers = signers or self._promoter_signers(repo, main)
                signed = self._signed_by_promoter(repo, sha, signers)
            records.append(holds.Record(sha, message, signed))
        return holds.current(app, records, lambda sha, of: self._is_ancestor(repo, sha, of))

    def _promoter_signers(self, repo: git.Repo, main: str) -> tuple[str, str]:
        """(allowed signers of the principal `promoter`, revoked keys), from trust/ as the trusted rules
        revision of `main` has it: a key a person lists for `promoter` in an unsigned change of trust/
        does not count."""
        trust = self._trust(repo, self.rules(main).commit)
        return holds.promoter_signers(trust.allowed_signers), trust.revoked_keys

    def _branch_signed(self, repo: git.Repo, commit: str, signers: tuple[str, str]) -> bool:
        return bool(_SHA.fullmatch(commit)) and self._signed_by_promoter(repo, commit, signers)

    def _signed_by_promoter(self, repo: git.Repo, commit: str, signers: tuple[str, str]) -> bool:
        """Whether `commit` carries a valid signature by a key listed for `promoter` (as git verify-commit)."""
        try:
            signing.commit_signer(self._raw(repo, commit), *signers)
        except BadInput:  # SignatureError: unsigned, another key, revoked; or a trust file that does not parse
            return False
        return True

    def _folders(self, repo: git.Repo, rev: str, folder: str) -> list[str]:
        """The names of the folders directly under `folder` at `rev`."""
        found = self._path(repo, rev, folder)
        if found is None or found.mode != TREE:
            return []
        return [name for mode, name, _ in self._entries(repo, found.sha) if mode == TREE]

    def _apps(self, repo: git.Repo, rev: str, env: str) -> list[str]:
        return [name for name in self._folders(repo, rev, env_folder(env)) if not name.startswith(".")]

    def _environments(self, repo: git.Repo, rev: str) -> list[PlannedEnvironment]:
        configs: list[EnvironmentConfig] = []
        for name in self._folders(repo, rev, ENVIRONMENTS):
            where = f"{ENVIRONMENTS}/{name}/environment.yaml"
            text = self._show(repo, rev, where)
            if text is not None:  # a folder without environment.yaml is not an environment
                configs.append(parse_environment(text, where, name))
        return layout.in_order(configs)

    # ------------------------------------------------------------ who shaped a change

    def authors(
        self, commit: str, env: str, apps: Sequence[str], head: str | None = None, limit: int = MAX_AUTHOR_COMMITS
    ) -> Authorship:
        """Everyone who shaped what promoting `commit` brings to `env`: the authors, committers and
        signers of every commit of the promoted range that touched one of the apps' folders (any
        `environments/<env>/<app>`, whichever environment: each could have shaped the promoted content).

        A commit touched a folder when it changed it against any of its parents (`--full-history`: a
        merge that only takes one side's folder still counts, and no side branch is skipped). SSH
        signatures are verified against `trust/allowed_signers` on main, so a known key gives its
        principal, any other its fingerprint. More than `limit` commits: `unknown` says so and the
        policies deny (fail closed), never a silently shortened list. With `head` (the stage's PR head),
        every commit pushed onto the PR's branch counts too, whatever it touched: a person who pushed
        onto the PR shaped what will merge."""
        check(env, "environment")
        for app in apps:
            check(app, "app")
        repo = self._have(head) if head else self._fresh()
        main = self._main(repo)
        sha = self._rev(repo, commit)
        if sha is None:
            raise NotFound(f"commit {commit[:12]} not found in {self.url}")
        commit = sha
        since = {app: d for app in apps if (d := self._deployed(repo, main, app, env, commit)) is not None}
        touches: dict[str, Touch] = {}
        with tempfile.TemporaryDirectory(prefix="promoter-signers-") as tmp:
            signers = Path(tmp) / "allowed_signers"
            signers.write_text(self._allowed_signers(repo, self.rules(main).commit))  # empty: git still names a key
            ranges = [
                [commit, *([f"^{since[app]}"] if app in since else []), "--", f":(glob){ENVIRONMENTS}/*/{app}/**"]
                for app in apps
            ]
            if head:  # the PR's own commits, on top of main
                ranges.append([head, f"^{main}"])
            for selection in ranges:
                out = self._git(
                    repo,
                    "-c",
                    f"gpg.ssh.allowedSignersFile={signers}",
                    "log",
                    "--full-history",
                    "--no-use-mailmap",
                    "--no-show-signature",
                    f"--max-count={limit + 1}",
                    f"--format={_PEOPLE}",
                    *selection,
                )
                for record in out.split("\x1e"):
                    if not record.strip():
                        continue
                    touch = _touch(record.lstrip("\n"))
                    if isinstance(touch, str):
                        return Authorship(list(touches.values()), since, touch)
                    touches.setdefault(touch.commit, touch)
                    if len(touches) > limit:
                        return Authorship(
                            [], since, f"the promoted range holds more than {limit:,} commits that touched its folders"
                        )
        return Authorship(list(touches.values()), since)

    def _deployed(self, repo: git.Repo, main: str, app: str, env: str, commit: str) -> str | None:
        """The commit deployed in `env` that `commit`'s range starts after (None: all history).

        Chosen: the newest commit promoter promoted into `env` for `app` (a merge of main's
        first-parent line whose message carries `Promoter-Promotion`, its second parent's
        `Promoted-Commit`), not reverted since, that is an ancestor of `commit`. Why: that content
        passed the gate, so only what came after it is new to the environment. A merge made by hand
        on the forge, a squash merge or a reverted promotion never narrows the range (fail closed:
        more authors, never fewer)."""
        glob = f":(glob){app_folder(env, app)}/**"
        out = self._git(
            repo, "log", "--first-parent", "--merges", "--format=%H%x1f%P%x1f%cI%x1f%B%x1e", main, "--", glob
        )
        merges: list[dict[str, str]] = []
        for entry in out.split("\x1e"):
            parts = entry.strip().split("\x1f")
            if len(parts) == 4:
                sha, parents, at, message = parts
                merges.append({"sha": sha, "parent": (parents.split() + ["", ""])[1], "at": at, "message": message})
        branches = self._messages(repo, [m["parent"] for m in merges if m["parent"]])
        for rank, m in enumerate(merges):  # newest first, as main's first parents have them
            m["branch_message"], m["rank"] = branches.get(m["parent"], ""), str(rank)
        reverted: set[str] = set()
        second_parents = {m["sha"]: m["parent"] for m in merges}
        signers = self._promoter_signers(repo, main) if self._signing_key is not None else None
        for event in history.events(app, merges, []):
            if event.env != env:
                continue
            if event.kind == "reverted":
                reverted.add(event.commit)
            elif (
                event.promotion
                and _SHA.fullmatch(event.commit)
                and event.commit not in reverted
                and self._rev(repo, event.commit) is not None
                and self._is_ancestor(repo, event.commit, commit)
                # promoter signs its branch commits: a look-alike merge a person pushed narrows nothing
                and (signers is None or self._branch_signed(repo, second_parents.get(event.main_commit, ""), signers))
            ):
                return event.commit
        return None

    def promoted_folder(self, env: str, app: str) -> PromotedFolder:
        """What drift compares `app`'s folder of `env` with and heals it to: the folder as promoter's own
        merge last wrote it, and every commit of main that changed the folder since (unpromoted).

        Read from main's first-parent line, newest first: a merge of a promotion (`Merge pull request #N
        from promote/<app>/<env>/…` carrying `Promoter-Promotion`, or a release set's naming the app) or
        of a revert counts; when promoter signs its commits, only one whose second parent promoter signed
        (a look-alike merge a person pushed counts for nothing). Anything else that changed the folder
        was pushed to main without a gate. Two exceptions: the source environment (the first) takes
        changes by a push, which its promotions then check, so there main's folder is what it has; and an
        app never promoted into `env` is compared with the commit that created its folder (the seed),
        which `promoted: False` marks so that drift reports it and never heals it."""
        check(env, "environment")
        check(app, "app")
        repo = self._fresh()
        main = self._main(repo)
        if self._environments(repo, self.rules(main).commit)[0].config.name == env:
            return PromotedFolder(revision=main, promoted=True)
        out = self._git(
            repo, "log", "--first-parent", "--format=%H%x1f%P%x1f%an <%ae>%x1f%B%x1e", main, "--", app_folder(env, app)
        )
        touched: list[tuple[str, str, str, str]] = []  # (sha, second parent, author, message), newest first
        for entry in out.split("\x1e"):
            parts = entry.strip().split("\x1f")
            if len(parts) == 4:
                touched.append((parts[0], (parts[1].split() + ["", ""])[1], parts[2], parts[3]))
        merges = [{"sha": sha, "at": "", "message": msg} for sha, second, _, msg in touched if second]
        branches = self._messages(repo, [second for _, second, _, _ in touched if second])
        second_of = {sha: second for sha, second, _, _ in touched}
        for m in merges:
            m["branch_message"] = branches.get(second_of[m["sha"]], "")
        signers = self._promoter_signers(repo, main) if self._signing_key is not None else None
        ours = {
            event.main_commit
            for event in history.events(app, merges, [])
            if event.env == env
            and (event.kind == "reverted" or event.promotion)
            and (signers is None or self._branch_signed(repo, second_of.get(event.main_commit, ""), signers))
        }
        unpromoted: list[UnpromotedChange] = []
        for sha, _, author, _ in touched:
            if sha in ours:
                return PromotedFolder(revision=sha, promoted=True, unpromoted=unpromoted)
            unpromoted.append(UnpromotedChange(commit=sha, author=author))
        if not unpromoted:  # the folder is not on main's first-parent line at all
            return PromotedFolder(revision=main, promoted=False)
        seed = unpromoted.pop()  # the oldest: the commit that created the folder
        return PromotedFolder(revision=seed.commit, promoted=False, unpromoted=unpromoted)

    def _allowed_signers(self, repo: git.Repo, main: str) -> str:
        """`trust/allowed_signers` on main ("" when there is none)."""
        found = self._path(repo, main, "trust/allowed_signers")
        if found is None or found.mode == TREE:
            return ""
        if repo.odb.info(bytes.fromhex(found.sha)).size > MAX_SIGNERS_BYTES:
            raise BadInput(f"trust/allowed_signers on {MAIN} is larger than {MAX_SIGNERS_BYTES} bytes; list fewer keys")
        return self._raw(repo, found.sha).decode("utf-8", "replace")

    # ------------------------------------------------------------ a stage's change

    def prepare(self, req: PrepareInput) -> PrepareResult:
        """What promoting would change in the target's app folder, with nothing pushed: the policy
        step judges this before any branch or pull request exists."""
        return self._prepare(req, push=False)

    def push_branch(self, req: PrepareInput) -> PrepareResult:
        """Commit the change on `promote/<app>/<env>/<short-sha>` and push it. Idempotent: a branch
        that already carries that content (and is not merged) is returned as it is."""
        return self._prepare(req, push=True)

    def _prepare(self, req: PrepareInput, push: bool) -> PrepareResult:
        """The target's app folder (each member's, for a release set) becomes the source's at the
        commit, except `local_files`: one commit on one branch."""
        branch = layout.promotion_branch(req.app, req.target_env, req.commit)
        repo = self._have(req.base)
        main, current, desired = self._desired(repo, req, req.base)
        diff = DiffSummary(
            added=sorted(p for p in desired if p not in current),
            modified=sorted(p for p in desired if p in current and current[p] != desired[p]),
            removed=sorted(p for p in current if p not in desired),
        )
        if diff.empty:
            return PrepareResult(changed=False, base=main, diff=diff)
        if not push:
            return PrepareResult(changed=True, branch=branch, base=main, diff=diff)
        existing = self._branch(repo, branch)
        folders = [app_folder(req.target_env, app) for app in req.apps]
        if (
            existing is not None
            and self._folders_at(repo, existing, req.target_env, req.apps) == desired
            and not self._is_ancestor(repo, existing, main)  # an old, merged branch is not reused
            and self._only_folders(repo, existing, main, folders)  # nor one that brings anything else
        ):
            return PrepareResult(changed=True, branch=branch, head=existing, base=main, diff=diff)
        head = self._commit_folders(repo, main, req.target_env, req.apps, desired, self._message(req, diff))
        self._push_branch(repo, branch, head, existing)
        return PrepareResult(changed=True, branch=branch, head=head, base=main, diff=diff)

    def change_patch(self, req: PrepareInput, limit: int = MAX_PATCH_CHARS) -> str:
        """The change `prepare` describes, as a unified diff of the target's app folder (nothing is
        written): what the PR would show. Binary files are named, not shown; cut at `limit`."""
        repo = self._have(req.base)
        _, current, desired = self._desired(repo, req, req.base)
        folder = app_folder(req.target_env, req.app) if not req.members else f"environments/{req.target_env}"
        changed = sorted(p for p in set(current) | set(desired) if current.get(p) != desired.get(p))
        olds = self._contents(repo, {p: current[p] for p in changed if p in current})
        news = self._contents(repo, {p: desired[p] for p in changed if p in desired})
        parts: list[str] = []
        for path in changed:
            old, new = olds.get(path, b""), news.get(path, b"")
            if not (_is_utf8(old) and _is_utf8(new)):
                parts.append(f"Binary file {folder}/{path} differs\n")
                continue
            a = f"a/{folder}/{path}" if path in current else "/dev/null"
            b = f"b/{folder}/{path}" if path in desired else "/dev/null"
            lines = difflib.unified_diff(
                old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True), a, b
            )
            parts.append("".join(line if line.endswith("\n") else line + "\n" for line in lines))
        patch = "".join(parts)
        return patch if len(patch) <= limit else patch[:limit] + f"\n… cut at {limit:,} characters\n"

    def _desired(
        self, repo: git.Repo, req: PrepareInput, base: str | None = None
    ) -> tuple[str, dict[str, Entry], dict[str, Entry]]:
        """(main, the target folder on main, the target folder after the change); `base` stands for
        main when given. The source stage's "change" is its own folder at the commit. For a release
        set, the members' folders together, each path under its app's name (`api/deployment.yaml`)."""
        if req.members:
            main = base or self._main(repo)
            current, desired = {}, {}
            for app in req.members:
                _, now, after = self._desired(repo, req.model_copy(update={"app": app, "members": []}), main)
                current.update({f"{app}/{p}": e for p, e in now.items()})
                desired.update({f"{app}/{p}": e for p, e in after.items()})
            return main, current, desired
        src = app_folder(req.source_env, req.app)
        dst = app_folder(req.target_env, req.app)
        if self._rev(repo, req.commit) is None:
            raise NotFound(f"commit {req.commit[:12]} not found in {self.url}")
        main = base or self._main(repo)
        if req.source_env == req.target_env:
            return main, self._tree(repo, main, dst), self._tree(repo, req.commit, src)
        local = set(req.local_files)
        current = self._tree(repo, main, dst)
        desired = {p: e for p, e in self._tree(repo, req.commit, src).items() if p not in local}
        if not desired:
            raise BadInput(f"{src} is empty at {req.commit[:12]}; nothing to promote from it")
        desired.update({p: e for p, e in current.items() if p in local})
        return main, current, desired

    def change_files(self, req: PrepareInput, base: str | None = None) -> dict[str, bytes]:
        """The files of the target's app folder after the change (relative paths → content), onto
        `base` (a commit of main, e.g. the one `prepare` saw) or main as it is now."""
        return self._change(req, base)[1]

    def _change(self, req: PrepareInput, base: str | None) -> tuple[str, dict[str, bytes]]:
        repo = self._have(base)
        main, _, desired = self._desired(repo, req, base)
        return main, self._contents(repo, desired)

    def export_change(self, req: PrepareInput, dest: Path, base: str | None = None) -> Path:
        """Main's whole tree in `dest` (`base`, or main as it is now), with the target's app folder as
        it is after the change (what kustomize needs when an overlay reaches a base elsewhere).
        Returns the app folder."""
        main, files = self._change(req, base)
        self._extract(self._open(), main, dest)
        folder = Path(dest) / app_folder(req.target_env, req.app)
        if folder.exists():
            shutil.rmtree(folder)
        for rel, content in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(content)
        return folder

    def folder_files(self, rev: str, folder: str) -> dict[str, bytes]:
        """The files under `folder` at `rev` (relative paths → content)."""
        repo = self._have(rev)
        if self._rev(repo, rev) is None:
            raise NotFound(f"revision {rev[:12]} not found in {self.url}")
        return self._contents(repo, self._tree(repo, rev, folder))

    def export_tree(self, rev: str, dest: Path) -> None:
        """The whole tree at `rev` into `dest` (for kustomize overlays that reach a base elsewhere)."""
        self._extract(self._have(rev), rev, dest)

    def _contents(self, repo: git.Repo, entries: dict[str, Entry]) -> dict[str, bytes]:
        """The content of each entry; a file over the size limit is refused before it is read."""
        contents: dict[str, bytes] = {}
        for path, entry in sorted(entries.items()):
            stream = repo.odb.stream(bytes.fromhex(entry.sha))  # its size is known before it is read
            yamlsafe.check_size(shown(path, 80), stream.size, self.max_file_bytes)
            contents[path] = stream.read()
        return contents

    @staticmethod
    def _extract(repo: git.Repo, rev: str, dest: Path) -> None:
        with tempfile.TemporaryFile() as tar:
            repo.archive(tar, treeish=rev, format="tar")
            tar.seek(0)
            with tarfile.open(fileobj=tar) as archive:
                try:
                    archive.extractall(dest, filter="data")
                except tarfile.FilterError as e:  # an absolute or escaping link elsewhere in the tree
                    raise BadInput(
                        f"the tree at {rev[:12]} holds {shown(e.tarinfo.name, 80)}, which cannot be "
                        f"checked out safely ({type(e).__name__}); remove it"
                    ) from None

    def push_revert(
        self, app: str, env: str, merge_commit: str, reason: str, members: Sequence[str] = (), held: str = ""
    ) -> tuple[str, str]:
        """Commit on `revert/<app>/<env>/<short>` that puts the app folder (every member's, for a
        release set) back as it was before `merge_commit`, and push it. With `held` (the promoted
        commit), the commit's trailers hold its content out of `env` (promoter.holds): this commit is
        promoter's own, signed, whoever merges it. Idempotent: an unmerged branch with that content is
        reused. Returns (branch, head)."""
        apps = list(members) or [app]
        branch = layout.revert_branch(app, env, merge_commit)
        repo = self._fresh()
        if self._rev(repo, merge_commit) is None:
            raise NotFound(f"merge commit {merge_commit[:12]} not found in {self.url}")
        before = self._folders_at(repo, f"{merge_commit}^1", env, apps)
        main = self._main(repo)
        existing = self._branch(repo, branch)
        if (
            existing is not None
            and self._folders_at(repo, existing, env, apps) == before
            and self._only_folders(repo, existing, main, [app_folder(env, a) for a in apps])  # nothing else
        ):
            return branch, existing
        message = (
            f"revert({app}): {env} back to before {merge_commit[:7]}\n\n{reason.strip() or 'unhealthy'}\n\n"
            f"Reverts: {merge_commit}\nTarget-Environment: {env}\n"
        )
        if held:  # the hold, in the trailer block of promoter's own commit
            message += holds.trailers(apps, env, held, reason, trees=self._held_trees(repo, main, held, apps))
        head = self._commit_folders(repo, main, env, apps, before, message)
        self._push_branch(repo, branch, head, existing)
        return branch, head

    def policy_revision(self, base: str | None = None) -> tuple[str, str]:
        """(tree id of policies/ at the trusted rules revision, commit of main) for main as it is now,
        or at `base` (a commit of main); `rules(main).commit` names the revision that judges."""
        repo = self._have(base)
        main = base or self._main(repo)
        return self._policy_tree(repo, self.rules(main).commit), main

    def _policy_tree(self, repo: git.Repo, commit: str) -> str:
        found = self._path(repo, commit, "policies")
        if found is None or found.mode != TREE:
            raise BadInput(f"{self.url} has no policies/ folder on {MAIN}; policies are required")
        return found.sha

    def policy_files(self, commit: str | None = None) -> tuple[str, dict[str, str]]:
        """(tree id, files) of policies/ at `commit` (by default main as it is now)."""
        repo = self._have(commit)
        commit = commit or self._main(repo)
        tree = self._policy_tree(repo, commit)
        contents = self._contents(repo, self._tree(repo, commit, "policies"))
        try:
            return tree, {p: data.decode() for p, data in contents.items()}
        except UnicodeDecodeError:
            bad = next(p for p, data in contents.items() if not _is_utf8(data))
            raise BadInput(f"policies/{bad} is not UTF-8 text; save it as UTF-8") from None

    def _message(self, req: PrepareInput, diff: DiffSummary) -> str:
        n = len(diff.added) + len(diff.modified) + len(diff.removed)
        where = ", ".join(app_folder(req.target_env, app) for app in req.apps)
        return (
            f"promote({req.app}): {req.target_env} <- {req.source_env} @ {req.commit[:7]}\n\n"
            f"{n} file(s) changed in {where}.\n\n"
            f"Promoted-Commit: {req.commit}\n"
            f"Source-Environment: {req.source_env}\n"
            f"Target-Environment: {req.target_env}\n" + "".join(f"Release-Set-App: {app}\n" for app in req.members)
        )

    def _folders_at(self, repo: git.Repo, rev: str, env: str, apps: list[str]) -> dict[str, Entry]:
        """The app folders of `env` at `rev`: one app's paths as they are, several under their names."""
        if len(apps) == 1:
            return self._tree(repo, rev, app_folder(env, apps[0]))
        return {f"{app}/{p}": e for app in apps for p, e in self._tree(repo, rev, app_folder(env, app)).items()}

    def _commit_folders(
        self, repo: git.Repo, base: str, env: str, apps: list[str], entries: dict[str, Entry], message: str
    ) -> str:
        """A commit on `base` whose app folders of `env` hold exactly `entries` (one app's paths as they
        are, several apps' under their names), in one tree."""
        if len(apps) == 1:
            return self._commit_folder(repo, base, app_folder(env, apps[0]), entries, message)
        tree: str | None = self._root(repo, base)
        for app in apps:
            mine = {p[len(app) + 1 :]: e for p, e in entries.items() if p.startswith(app + "/")}
            tree = self._replace(repo, tree, app_folder(env, app).split("/"), self._write_folder(repo, mine))
        return self._write_commit(repo, tree or self._store(repo, b"tree", b""), [base], message)

    def _commit_folder(self, repo: git.Repo, base: str, folder: str, entries: dict[str, Entry], message: str) -> str:
        """A commit on `base` whose `folder` holds exactly `entries`: its trees and the commit are
        written in process, as git would write them (no index, no git run)."""
        tree = self._replace(repo, self._root(repo, base), folder.split("/"), self._write_folder(repo, entries))
        return self._write_commit(repo, tree or self._store(repo, b"tree", b""), [base], message)

    def _write_folder(self, repo: git.Repo, files: dict[str, Entry]) -> str | None:
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
            sha = self._write_folder(repo, sub)
            assert sha is not None
            here.append((TREE, name, sha))
        return self._write_tree(repo, here)

    def _replace(self, repo: git.Repo, tree: str | None, parts: list[str], new: str | None) -> str | None:
        """`tree` with the entry at `parts` replaced by the tree `new` (removed when None); a tree
        left empty is removed from its parent, as git does."""
        entries = list(self._entries(repo, tree)) if tree else []
        name = parts[0]
        current = next((sha for mode, n, sha in entries if n == name and mode == TREE), None)
        child = new if len(parts) == 1 else self._replace(repo, current, parts[1:], new)
        entries = [e for e in entries if e[1] != name]
        if child is not None:
            entries.append((TREE, name, child))
        return self._write_tree(repo, entries) if entries else None

    def _write_tree(self, repo: git.Repo, entries: list[tuple[str, str, str]]) -> str:
        """A tree object of (mode, name, sha), in git's order (a folder's name sorts as if it ended in /)."""

        def key(entry: tuple[str, str, str]) -> bytes:
            return entry[1].encode("utf-8", "surrogateescape") + (b"/" if entry[0] == TREE else b"")

        data = b"".join(
            mode.lstrip("0").encode() + b" " + name.encode("utf-8", "surrogateescape") + b"\0" + bytes.fromhex(sha)
            for mode, name, sha in sorted(entries, key=key)
        )
        return self._store(repo, b"tree", data)

    def _write_commit(self, repo: git.Repo, tree: str, parents: list[str], message: str) -> str:
        """A commit object by promoter's identity (as `git commit-tree -m` writes it), signed with
        promoter's key when it has one (as `git commit-tree -S` with gpg.format ssh signs it)."""
        when = f"{int(time.time())} +0000"
        author = f"{self._identity['GIT_AUTHOR_NAME']} <{self._identity['GIT_AUTHOR_EMAIL']}> {when}"
        committer = f"{self._identity['GIT_COMMITTER_NAME']} <{self._identity['GIT_COMMITTER_EMAIL']}> {when}"
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents), f"author {author}", f"committer {committer}"]
        raw = ("\n".join(lines) + "\n\n" + (message if message.endswith("\n") else message + "\n")).encode()
        if self._signing_key is not None:
            raw = signing.sign_commit(raw, self._signing_key)
        return self._store(repo, b"commit", raw)

    @staticmethod
    def _store(repo: git.Repo, kind: bytes, data: bytes) -> str:
        """Write an object into the clone's object store (a loose object, written atomically)."""
        stored = repo.odb.store(IStream(kind, len(data), io.BytesIO(data)))
        return bytes(stored.binsha).hex()

    # ------------------------------------------------------------ merging

    def branch_head(self, branch: str) -> str | None:
        """The branch's head on the remote, asked of the remote itself (no fetch)."""
        try:
            out = self._git(self._open(), "ls-remote", "--heads", self.url, f"refs/heads/{branch}")
        except git.GitCommandError as e:
            raise TemporaryError(f"cannot read {branch} of {self.url}: {_stderr(e)}") from e
        return out.split()[0] if out else None

    def _branch(self, repo: git.Repo, branch: str) -> str | None:
        """The branch's head on the remote (None: no such branch), its objects fetched when missing.
        Only main is tracked by the clone: branches are many and each is asked for alone."""
        head = self.branch_head(branch)
        if head is not None and self._rev(repo, head) is None:
            try:  # objects only: no ref is written, so this may run beside any other fetch
                self._git(repo, "fetch", "--quiet", "--no-write-fetch-head", "origin", f"refs/heads/{branch}")
            except git.GitCommandError as e:
                raise TemporaryError(f"cannot fetch {branch} from {self.url}: {_stderr(e)}") from e
        return head

    def _main(self, repo: git.Repo) -> str:
        main = self._rev(repo, f"origin/{MAIN}")
        if main is None:
            raise BadInput(f"{self.url} has no branch '{MAIN}'; push the GitOps repository's main branch first")
        return main

    def _push_branch(self, repo: git.Repo, branch: str, head: str, expected: str | None) -> None:
        """Push `head` to `branch` if the remote's branch is still `expected` (None: absent). By URL,
        so that no local ref is written beside a concurrent fetch."""
        try:
            self._git(
                repo,
                "push",
                "--quiet",
                f"--force-with-lease=refs/heads/{branch}:{expected or ''}",
                self.url,
                f"{head}:refs/heads/{branch}",
            )
        except git.GitCommandError as e:
            raise TemporaryError(f"cannot push {branch} to {self.url}: {_stderr(e)}") from e

    def _find_merge(self, repo: git.Repo, head: str, main: str) -> str | None:
        if not self._is_ancestor(repo, head, main):
            return None
        out = self._git(repo, "rev-list", "--first-parent", "--parents", "-n", "2000", main)
        for line in out.splitlines():
            shas = line.split()
            if head in shas[2:]:
                return shas[0]
            if shas[0] == head:
                return head  # fast-forwarded
        return head

    def merge_branch(self, branch: str, message: str, expected_head: str | None = None) -> str:
        """Merge `branch` into main with a merge commit and push it, if main is still what it was
        merged onto; otherwise main is fetched and the merge redone on top of it, so no commit pushed
        by anyone else is lost. The first try merges onto the main this process pushed last (no
        fetch), since under load it is nearly always still main."""
        with self._main_lock, self._file_lock(".main"):
            last = ""
            repo = self._have(expected_head) if expected_head else self._open()  # no fetch yet: see below
            main = self._pushed_main if self._pushed_main and self._rev(repo, self._pushed_main) else None
            for _ in range(PUSH_ATTEMPTS):
                if main is None:
                    repo = self._fresh()
                    main = self._main(repo)
                # the reviewed head, when the forge has just checked that the PR is still at it: merged
                # as it is (no round trip to ask the remote again); otherwise the branch's head
                head = expected_head if expected_head and self._rev(repo, expected_head) else self._branch(repo, branch)
                if head is None:
                    raise NotFound(f"branch {branch} not found in {self.url}")
                if expected_head is not None and head != expected_head:
                    raise Conflict(
                        f"branch {branch} is at {head[:12]}, not the reviewed {expected_head[:12]}; "
                        "review the new commit first"
                    )
                done = self._find_merge(repo, head, main)
                if done is not None:
                    return done
                status, out, _ = repo.git.execute(
                    ["git", "merge-tree", "--write-tree", "--name-only", "--no-messages", main, head],
                    env=self._identity,
                    with_extended_output=True,
                    with_exceptions=False,
                )
                if status != 0:  # exit 1: conflicts; the lines after the tree name the files
                    files = sorted(set(out.splitlines()[1:])) or ["(unknown files)"]
                    raise Conflict(
                        f"{branch} conflicts with {MAIN} in {', '.join(files)}: that folder was changed on "
                        f"{MAIN} directly; reconcile it there, then promote again"
                    )
                tree = out.splitlines()[0]
                merge = self._write_commit(repo, tree, [main, head], message)
                try:  # by URL, and only if main is still the one merged onto
                    self._git(
                        repo,
                        "push",
                        "--quiet",
                        f"--force-with-lease=refs/heads/{MAIN}:{main}",
                        self.url,
                        f"{merge}:refs/heads/{MAIN}",
                    )
                    self._pushed_main = merge
                    return merge
                except git.GitCommandError as e:
                    last = _stderr(e)
                    main = None  # main moved under us: fetch and merge again on top of it
            raise TemporaryError(f"could not push {MAIN} of {self.url} after {PUSH_ATTEMPTS} attempts: {last}")


def _touch(record: str) -> Touch | str:
    """One commit's people from `git log --format=_PEOPLE`, or why they cannot be read (fail closed)."""
    parts = record.split("\x1f")
    if len(parts) != 8 or not _SHA.fullmatch(parts[0]):
        return f"a commit of the promoted range could not be read ({shown(record[:60], 80)})"
    sha, an, ae, cn, ce, status, signer, key = parts
    if status != "N" and not (signer or key):  # signed, but git cannot say by whom (no gpg, no ssh-keygen)
        return f"commit {sha[:7]} is signed, but its signer cannot be read (signature status {status})"
    return Touch(sha, f"{an} <{ae}>", f"{cn} <{ce}>", signer or key if status != "N" else "")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
        return True
    except UnicodeDecodeError:
        return False


def _stderr(e: git.GitCommandError) -> str:
    text = str(e.stderr or e).strip().replace("\n", " ")
    return text.removeprefix("stderr: ").strip("' ")
