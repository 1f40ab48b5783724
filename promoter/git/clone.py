"""Git plumbing: one persistent working clone per remote, driven through GitPython; its fetches,
its reads of trees and files at a commit, its pushes, and the commits it writes and signs.

Concurrency, so that a hundred apps promoted at once do not queue behind one lock:
- reads work on commit IDs, which never change, from a `git.Repo` per thread (GitPython's object
  reader is a `cat-file` process that must not be shared);
- fetches are coalesced: a caller that needs the remote as it is now waits for the next fetch to
  start after its call, so one fetch serves every caller waiting at that moment (`fresh`);
- a stage's branch is pushed by URL, so no local ref is written beside a fetch;
- only the update of main is serialised (`main_lock` and the file lock `<key>.main.lock`, held by
  `promoter.git.writing`), across threads and worker processes.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from promoter import signing, yamlsafe
from promoter.errors import BadInput, NotFound, TemporaryError
from promoter.git import commits, objects, trees
from promoter.git.objects import MAIN, SYMLINK, TREE, Entry, refuse_entry
from promoter.names import shown
from promoter.yamlsafe import MAX_FILE_BYTES

MAINTENANCE_EVERY_S = 60.0
ANCESTRY_WALK = 256  # commits an ancestry check walks in process before it runs `git merge-base`
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


def write_graph(path: Path, env: dict[str, str], writing: threading.Lock) -> None:
    """The clone's commit-graph, with changed-path Bloom filters, taken on by a layer for the commits
    fetched since (`--split`): ancestry, counts and `git log -- <path>` read it instead of parsing
    every commit (ten times faster over 20,000 commits). In the background (`Clone.maintain`), one at a
    time: the first after a big fetch takes seconds, and git reads without it meanwhile. A failure
    fails nothing."""
    if not writing.acquire(blocking=False):
        return
    try:
        subprocess.run(
            ["git", "commit-graph", "write", "--reachable", "--changed-paths", "--split", "--no-progress"],
            cwd=path, env=env, capture_output=True, timeout=900, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        pass
    finally:
        writing.release()


class Clone:
    """The working clone of one remote (a path, file://, https, ssh) and the objects it holds."""

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        author_name: str = "promoter",
        author_email: str = "promoter@localhost",
        auth_env: dict[str, str] | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.url = url
        self.max_file_bytes = max_file_bytes
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.path = Path(cache_dir) / key
        self._lock_path = Path(cache_dir) / f"{key}.lock"
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        self.identity = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
            "GIT_TERMINAL_PROMPT": "0",
            **(auth_env or {}),  # credentials reach git through its environment only (see auth_env())
        }
        self._local = threading.local()  # a git.Repo per thread
        self._clone_lock = threading.Lock()
        self.main_lock = threading.Lock()  # merges of main in this process (the file lock: across processes)
        self._fetches = threading.Condition()
        self._fetch_started = self._fetch_done = 0
        self._fetching = False
        self._maintained: float | None = None  # when `maintain` last ran git's housekeeping
        self._graphing = threading.Lock()  # held while the commit-graph is written (`write_graph`)
        self.pushed_main: str | None = None  # the main this process pushed last (MainWriter.merge_branch)
        self.signing_key: bytes | None = None  # promoter's commit signing key (sign_commits_with); None: unsigned

    def sign_commits_with(self, private_key: bytes) -> None:
        """Sign every commit this clone writes (merges, reverts, lifts of holds, promotion branches) with
        `private_key` (an unencrypted OpenSSH private key), as `git commit -S` with gpg.format ssh does.
        Checked here, so that a worker with a key it cannot use does not start."""
        try:
            signing.public_key_line(private_key)
        except signing.SignatureError as e:
            raise BadInput(f"the commit signing key (PROMOTER_COMMIT_SIGNING_KEY): {e}") from None
        self.signing_key = private_key

    @contextmanager
    def file_lock(self, suffix: str = "") -> Iterator[None]:
        """Exclusive across worker processes sharing the cache: `<key>.lock` guards fetches,
        `<key>.main.lock` the update of main (threads take a thread lock or the fetch condition first)."""
        with open(self._lock_path.with_suffix(suffix + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def open(self) -> git.Repo:
        """This thread's `git.Repo` over the clone (made once, atomically: a crash mid-clone never
        leaves a broken cache)."""
        repo: git.Repo | None = getattr(self._local, "repo", None)
        if repo is None:
            with self._clone_lock:
                if not (self.path / ".git").exists():
                    with self.file_lock():
                        if not (self.path / ".git").exists():
                            tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".clone-"))
                            try:
                                git.Repo.clone_from(self.url, tmp, no_checkout=True, env=self.identity)
                            except git.GitCommandError as e:
                                shutil.rmtree(tmp, ignore_errors=True)
                                raise TemporaryError(f"cannot clone {self.url}: {objects.stderr(e)}") from e
                            os.replace(tmp, self.path)
            repo = self._local.repo = git.Repo(self.path)
        return repo

    def fresh(self) -> git.Repo:
        """This thread's repo, fetched by a fetch that started after this call: the remote as it is
        now, at least. Callers that arrive while a fetch runs share the next one."""
        repo = self.open()
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
                    with self.file_lock():
                        self.fetch(repo)
                finally:
                    self._fetches.acquire()
                    self._fetching = False
                    self._fetches.notify_all()
                self._fetch_done = mine  # reached only when the fetch succeeded
        return repo

    def have(self, rev: str | None) -> git.Repo:
        """This thread's repo holding the commit `rev`, fetched only when it lacks it (a commit never
        changes): main, then, if that did not bring it (a commit pushed onto a PR's branch), every
        branch. Without `rev`: main as it is now (`_fresh`)."""
        repo = self.open()
        if rev is None:
            return self.fresh()
        if len(rev) == 40 and objects.rev(repo, rev) is not None:
            return repo
        repo = self.fresh()
        if objects.rev(repo, rev) is None:
            with self.file_lock():
                self.fetch(repo, everything=True)
        return repo

    def run(self, repo: git.Repo, *args: str) -> str:
        out: str = repo.git.execute(["git", *args], env=self.identity)
        return out

    def fetch(self, repo: git.Repo, everything: bool = False) -> None:
        """Fetch main (or every branch); callers hold the fetch lock."""
        refspec = (
            "+refs/heads/*:refs/remotes/origin/*" if everything else f"+refs/heads/{MAIN}:refs/remotes/origin/{MAIN}"
        )
        try:
            self.run(repo, "fetch", "--quiet", "--prune", "--no-auto-maintenance", "origin", refspec)
        except git.GitCommandError as e:
            raise TemporaryError(f"cannot fetch {self.url}: {objects.stderr(e)}") from e
        self.maintain(repo)

    def maintain(self, repo: git.Repo) -> None:
        """Git's housekeeping of the clone (`maintenance run --auto`, which every fetch would run: two
        more git runs each), and its commit-graph (`write_graph`): at most once every
        `MAINTENANCE_EVERY_S` seconds per process. Like a fetch's own, a failure of it fails nothing."""
        now = time.monotonic()
        if self._maintained is None or now - self._maintained >= MAINTENANCE_EVERY_S:
            self._maintained = now
            with contextlib.suppress(git.GitCommandError):
                self.run(repo, "maintenance", "run", "--auto", "--quiet")
            args = (self.path, {**os.environ, **self.identity}, self._graphing)
            threading.Thread(target=write_graph, args=args, daemon=True, name="commit-graph").start()

    def tree(self, repo: git.Repo, rev: str, folder: str) -> dict[str, Entry]:
        """Every file under `folder` at `rev`, from the raw tree objects (names as bytes: any name
        survives). An entry that can never be promoted is a `BadInput` naming it (see `refuse_entry`)."""
        found = self.entry(repo, rev, folder)
        if found is None or found.mode != TREE:
            return {}
        entries: dict[str, Entry] = {}
        for rel, mode, sha in trees.walk(repo, found.sha, ""):
            target = objects.raw(repo, sha).decode("utf-8", "surrogateescape") if mode == SYMLINK else None
            reason = refuse_entry(folder, rel, mode, target)
            if reason is not None:
                raise BadInput(reason)
            entries[rel] = Entry(mode, sha)
        return entries

    def entry(self, repo: git.Repo, rev: str, path: str) -> Entry | None:
        """The entry at `path` (a/b/c) in the commit `rev` (None: no such path), read in process."""
        commit = objects.rev(repo, rev)
        if commit is None:
            raise NotFound(f"revision {rev[:12]} not found in {self.url}")
        entry = Entry(TREE, objects.root(repo, commit))
        for part in path.split("/"):
            if entry.mode != TREE:
                return None
            child = trees.find(repo, entry.sha, part)
            if child is None:
                return None
            entry = child
        return entry

    def tree_id(self, repo: git.Repo, rev: str, folder: str) -> str:
        """The tree id of `folder` at `rev` ("" when it is no folder there)."""
        found = self.entry(repo, rev, folder)
        return found.sha if found is not None and found.mode == TREE else ""

    def folders(self, repo: git.Repo, rev: str, folder: str) -> list[str]:
        """The names of the folders directly under `folder` at `rev`."""
        found = self.entry(repo, rev, folder)
        if found is None or found.mode != TREE:
            return []
        return [name for mode, name, _ in trees.entries(repo, found.sha) if mode == TREE]

    def show(self, repo: git.Repo, rev: str, path: str) -> str | None:
        """The text of the file at `path` in `rev` (None: no such file)."""
        found = self.entry(repo, rev, path)
        if found is None or found.mode == TREE:
            return None
        # without the final newline: an error at the end of the file names its last line, not the one after
        return objects.raw(repo, found.sha).decode("utf-8", "replace").rstrip("\n")

    def messages(self, repo: git.Repo, shas: list[str]) -> dict[str, str]:
        """Each commit's message, read from its own object: never split out of one git run's output, where
        a message holding the separator could pass text off as another commit's (a signed lift's)."""
        return {  # bytes that are not UTF-8 as git's output gives them: surrogate escapes
            sha: objects.raw(repo, sha).partition(b"\n\n")[2].decode("utf-8", "surrogateescape").strip()
            for sha in dict.fromkeys(shas)
        }

    def is_ancestor(self, repo: git.Repo, sha: str, of: str) -> bool:
        """Whether `sha` is `of` or one of its ancestors: walked in process (`commits.reaches`), else git."""
        target, start = objects.rev(repo, sha), objects.rev(repo, of)
        if (walked := commits.reaches(repo, start, target, ANCESTRY_WALK) if target and start else None) is not None:
            return walked
        try:
            self.run(repo, "merge-base", "--is-ancestor", sha, of)
            return True
        except git.GitCommandError:
            return False

    def contents(self, repo: git.Repo, entries: dict[str, Entry]) -> dict[str, bytes]:
        """The content of each entry; a file over the size limit is refused before it is read."""
        contents: dict[str, bytes] = {}
        for path, entry in sorted(entries.items()):

            def size_ok(size: int, path: str = path) -> None:  # known before the content is read
                yamlsafe.check_size(shown(path, 80), size, self.max_file_bytes)

            contents[path] = objects.read(repo, entry.sha, size_ok)[1]
        return contents

    @staticmethod
    def extract(repo: git.Repo, rev: str, dest: Path) -> None:
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

    def main(self, repo: git.Repo) -> str:
        main = objects.rev(repo, f"origin/{MAIN}")
        if main is None:
            raise BadInput(f"{self.url} has no branch '{MAIN}'; push the GitOps repository's main branch first")
        return main

    def branch_head(self, branch: str) -> str | None:
        """The branch's head on the remote, asked of the remote itself (no fetch)."""
        try:
            out = self.run(self.open(), "ls-remote", "--heads", self.url, f"refs/heads/{branch}")
        except git.GitCommandError as e:
            raise TemporaryError(f"cannot read {branch} of {self.url}: {objects.stderr(e)}") from e
        return out.split()[0] if out else None

    def branch(self, repo: git.Repo, branch: str) -> str | None:
        """The branch's head on the remote (None: no such branch), its objects fetched when missing.
        Only main is tracked by the clone: branches are many and each is asked for alone."""
        head = self.branch_head(branch)
        if head is not None and objects.rev(repo, head) is None:
            try:  # objects only: no ref is written, so this may run beside any other fetch
                self.run(
                    repo,
                    "fetch",
                    "--quiet",
                    "--no-write-fetch-head",
                    "--no-auto-maintenance",
                    "origin",
                    f"refs/heads/{branch}",
                )
            except git.GitCommandError as e:
                raise TemporaryError(f"cannot fetch {branch} from {self.url}: {objects.stderr(e)}") from e
        return head

    def push_branch(self, repo: git.Repo, branch: str, head: str, expected: str | None) -> None:
        """Push `head` to `branch` if the remote's branch is still `expected` (None: absent). By URL,
        so that no local ref is written beside a concurrent fetch."""
        try:
            self.run(
                repo,
                "push",
                "--quiet",
                f"--force-with-lease=refs/heads/{branch}:{expected or ''}",
                self.url,
                f"{head}:refs/heads/{branch}",
            )
        except git.GitCommandError as e:
            raise TemporaryError(f"cannot push {branch} to {self.url}: {objects.stderr(e)}") from e

    def write_commit(self, repo: git.Repo, tree: str, parents: list[str], message: str) -> str:
        """A commit object by promoter's identity (as `git commit-tree -m` writes it), signed with
        promoter's key when it has one (as `git commit-tree -S` with gpg.format ssh signs it)."""
        when = f"{int(time.time())} +0000"
        author = f"{self.identity['GIT_AUTHOR_NAME']} <{self.identity['GIT_AUTHOR_EMAIL']}> {when}"
        committer = f"{self.identity['GIT_COMMITTER_NAME']} <{self.identity['GIT_COMMITTER_EMAIL']}> {when}"
        lines = [f"tree {tree}", *(f"parent {p}" for p in parents), f"author {author}", f"committer {committer}"]
        raw = ("\n".join(lines) + "\n\n" + (message if message.endswith("\n") else message + "\n")).encode()
        if self.signing_key is not None:
            raw = signing.sign_commit(raw, self.signing_key)
        return objects.store(repo, b"commit", raw)
