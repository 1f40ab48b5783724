"""The local forge of the embedded default.

The origin is a bare repository on disk; a pull request is a real branch on it plus a record (number,
title, body, head, base, state, reviews, comments, merge commit) in a SQLite file beside it. Merging
is a real merge commit pushed to origin's main by the Git adapter.

Its web pages (`promoter.forges.site`, served by `promoter up`) list the pull requests and show each
one: its body, the diff of its environment folder, its reviews, and a form to review it. With their
address (`web_url`), a PR's URL is `<web_url>/pulls/N`; without, `local://<origin>/pulls/N`.

Where it differs from a hosted forge: there is no authentication (a review's author is whoever wrote
the record, through the page's form or the API; `authenticates` is False, so the gate marks such a
review unauthenticated and `approval.require_signed` refuses it), and no branch is deleted after a
merge. The pages' form is guarded against other sites (a per-page token, Origin and Host checks, no
framing), which stops a cross-site post, not a person typing another's name.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import git

from promoter.errors import BadInput, Conflict, NotFound
from promoter.forges import Review, already_merged, register
from promoter.gitrepo import MAIN, GitRepository
from promoter.models import PullRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS pulls (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL, body TEXT NOT NULL, head TEXT NOT NULL, base TEXT NOT NULL,
    state TEXT NOT NULL, head_sha TEXT, merge_commit TEXT, labels TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_pull_per_head ON pulls(head) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, number INTEGER NOT NULL, body TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT, number INTEGER NOT NULL, author TEXT NOT NULL,
    state TEXT NOT NULL, body TEXT NOT NULL, commit_id TEXT, at TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


MERGE_METHODS = (None, "merge")  # what `merge(method=...)` takes: None is the forge's default, a merge commit


class LocalForge:
    # a review's author is whatever name its form was given: nothing proves it (docs/approving.md)
    authenticates = False
    pins_reviews = True  # a review is stored with the PR's head when it was given

    def __init__(
        self, repo: GitRepository | None, db_path: str | Path, origin: str | None = None, web_url: str | None = None
    ) -> None:
        """`repo` merges; the web pages, which never merge, pass None and the `origin` they show."""
        self.repo = repo
        self.db_path = Path(db_path)
        self.web_url = web_url.rstrip("/") if web_url else None
        where = origin or (repo.url if repo is not None else "")
        self.origin = where if "://" in where else str(Path(where).resolve())
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
        self._local = threading.local()

    def _head(self, branch: str) -> str | None:
        """The branch's head as the origin has it: read from the origin's own refs when it is a
        repository on this disk (as a hosted forge reads its own), else asked of it over git."""
        if "://" in self.origin or not Path(self.origin).is_dir():
            assert self.repo is not None, "a remote origin is read through the git adapter"
            return self.repo.branch_head(branch)
        if ".." not in branch:  # a waiting gate reads its head every poll: the refs file itself, as git stores it
            loose = Path(self.origin, "refs", "heads", branch)
            try:
                text = loose.read_text().strip()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return self._packed().get(f"refs/heads/{branch}")
            except OSError:
                text = ""
            if len(text) == 40 and all(c in "0123456789abcdef" for c in text):
                return text
        origin: git.Repo | None = getattr(self._local, "origin", None)
        if origin is None:
            origin = self._local.origin = git.Repo(self.origin)
        try:
            sha: str = git.SymbolicReference.dereference_recursive(origin, f"refs/heads/{branch}")
            return sha
        except ValueError:  # no such ref
            return None

    def _packed(self) -> dict[str, str]:
        """The origin's packed refs (`packed-refs`: one `<sha> <ref>` a line, `^<sha>` peels the tag above),
        read again only when the file changed."""
        path = Path(self.origin, "packed-refs")
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached: tuple[tuple[int, int, int], dict[str, str]] | None = getattr(self._local, "packed", None)
        if cached is None or cached[0] != key:
            refs = {}
            for line in path.read_text().splitlines():
                if line and line[0] not in "#^":
                    sha, _, ref = line.partition(" ")
                    refs[ref] = sha
            cached = self._local.packed = (key, refs)
        return cached[1]

    def _read(self, query: str, args: tuple[object, ...]) -> list[sqlite3.Row]:
        """The rows of a read, on this thread's own connection, kept open (a waiting gate reads every poll)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
        return db.execute(query, args).fetchall()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    def _pr(self, row: sqlite3.Row) -> PullRequest:
        return PullRequest(
            number=row["number"],
            title=row["title"],
            body=row["body"],
            head=row["head"],
            base=row["base"],
            state=row["state"],
            url=f"{self.web_url or f'local://{self.origin}'}/pulls/{row['number']}",
            head_sha=row["head_sha"],
            merge_commit=row["merge_commit"],
        )

    def find_pull_request(self, head: str) -> PullRequest | None:
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM pulls WHERE head = ? ORDER BY (state = 'open') DESC, number DESC LIMIT 1", (head,)
            ).fetchone()
        return self._pr(row) if row else None

    def open_pull_request(
        self, head: str, title: str, body: str, base: str = MAIN, labels: list[str] | None = None
    ) -> PullRequest:
        sha = self._head(head)
        if sha is None:
            raise NotFound(f"cannot open a pull request: branch {head} does not exist on {self.origin}")
        if not self._read("SELECT 1 FROM pulls WHERE head = ? AND state = 'open'", (head,)):
            self._refuse_merged(head, sha, base)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT * FROM pulls WHERE head = ? AND state = 'open'", (head,)).fetchone()
            if row is None:
                now = _now()
                cur = db.execute(
                    "INSERT INTO pulls (title, body, head, base, state, head_sha, labels, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                    (title, body, head, base, sha, json.dumps(labels or []), now, now),
                )
                row = db.execute("SELECT * FROM pulls WHERE number = ?", (cur.lastrowid,)).fetchone()
            elif row["head_sha"] != sha:
                db.execute(
                    "UPDATE pulls SET head_sha = ?, updated_at = ? WHERE number = ?", (sha, _now(), row["number"])
                )
                row = db.execute("SELECT * FROM pulls WHERE number = ?", (row["number"],)).fetchone()
            db.execute("COMMIT")
        return self._pr(row)

    def _refuse_merged(self, head: str, sha: str, base: str) -> None:
        """As GitHub answers 422 "No commits between": a PR whose head the base has already (a branch
        merged before) is not opened again."""
        base_sha = self._head(base)
        if base_sha is None or "://" in self.origin or not Path(self.origin).is_dir():
            return
        try:
            git.Repo(self.origin).git.merge_base("--is-ancestor", sha, base_sha)
        except git.GitCommandError:  # not an ancestor (exit 1): the PR brings commits
            return
        raise Conflict(f"cannot open a pull request: no commits between {base} and {head} (merged already)")

    def get_pull_request(self, number: int) -> PullRequest:
        row = next(iter(self._read("SELECT * FROM pulls WHERE number = ?", (number,))), None)
        if row is None:
            raise NotFound(f"pull request #{number} does not exist on {self.origin}")
        if row["state"] == "open":  # a hosted forge follows pushes to the branch; read it from origin
            sha = self._head(row["head"])
            if sha is not None and sha != row["head_sha"]:
                with self._db() as db:
                    db.execute(
                        "UPDATE pulls SET head_sha = ?, updated_at = ? WHERE number = ? AND state = 'open'",
                        (sha, _now(), number),
                    )
                    row = db.execute("SELECT * FROM pulls WHERE number = ?", (number,)).fetchone()
        return self._pr(row)

    def update_body(self, number: int, body: str) -> PullRequest:
        with self._db() as db:
            updated = db.execute("UPDATE pulls SET body = ?, updated_at = ? WHERE number = ?", (body, _now(), number))
        if not updated.rowcount:
            raise NotFound(f"pull request #{number} does not exist on {self.origin}")
        return self.get_pull_request(number)

    def list_pull_requests(self, state: str | None = None) -> list[PullRequest]:
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM pulls WHERE ? IS NULL OR state = ? ORDER BY number", (state, state)
            ).fetchall()
        return [self._pr(r) for r in rows]

    def list_open(self, head_prefix: str) -> list[PullRequest]:
        """Open PRs whose head starts with `head_prefix`: a range of the open PRs' index on their head,
        not every open PR (opening a PR looks for its family's stale ones: with a thousand gates waiting,
        reading them all at each opening was most of a burst's work)."""
        last = head_prefix[-1:]
        if not last or ord(last) in (0xD7FF, 0x10FFFF):  # no successor to bound the range by: read them all
            return [pr for pr in self.list_pull_requests("open") if pr.head.startswith(head_prefix)]
        # in UTF-8 (SQLite's text order) every name starting with the prefix lies in [prefix, prefix's successor)
        end = head_prefix[:-1] + chr(ord(last) + 1)
        rows = self._read(
            "SELECT * FROM pulls WHERE state = 'open' AND head >= ? AND head < ? ORDER BY number", (head_prefix, end)
        )
        return [self._pr(r) for r in rows]

    def labels(self, number: int) -> list[str]:
        with self._db() as db:
            row = db.execute("SELECT labels FROM pulls WHERE number = ?", (number,)).fetchone()
        return list(json.loads(row["labels"])) if row else []

    def comment(self, number: int, body: str) -> None:
        self.get_pull_request(number)
        with self._db() as db:
            db.execute("INSERT INTO comments (number, body, at) VALUES (?, ?, ?)", (number, body, _now()))

    def comments(self, number: int) -> list[str]:
        with self._db() as db:
            return [r["body"] for r in db.execute("SELECT body FROM comments WHERE number = ? ORDER BY id", (number,))]

    def add_review(self, number: int, author: str, state: str, body: str = "") -> None:
        pr = self.get_pull_request(number)
        with self._db() as db:
            db.execute(
                "INSERT INTO reviews (number, author, state, body, commit_id, at) VALUES (?, ?, ?, ?, ?, ?)",
                (number, author, state, body, pr.head_sha, _now()),
            )

    def dismiss_review(self, number: int, review_id: str) -> None:
        """As a maintainer dismissing a review on a hosted forge."""
        with self._db() as db:
            db.execute("UPDATE reviews SET state = 'dismissed' WHERE number = ? AND id = ?", (number, int(review_id)))

    def reviews(self, number: int) -> list[Review]:
        rows = self._read("SELECT * FROM reviews WHERE number = ? ORDER BY id", (number,))
        return [
            Review(str(r["id"]), r["author"], r["state"], datetime.fromisoformat(r["at"]), r["commit_id"], r["body"])
            for r in rows
        ]

    def merge(
        self, number: int, message: str | None = None, expected_head: str | None = None, method: str | None = None
    ) -> PullRequest:
        """Merge once: a retry after a crash finds the merge already on main and records it. Always a
        merge commit: the local forge has no squash nor rebase, and refuses them (`BadInput`, one line)
        rather than merge otherwise than `merge.method` says."""
        if method not in MERGE_METHODS:
            raise BadInput(
                f"the local forge merges only with a merge commit, not {method}: set merge.method to merge (or "
                "null) in the environment's environment.yaml, or use a hosted forge"
            )
        pr = self.get_pull_request(number)
        if already_merged(pr, expected_head):
            return pr
        msg = message or f"Merge pull request #{number} from {pr.head}\n\n{pr.title}"
        assert self.repo is not None, "merging needs the git adapter"
        merge_commit = self.repo.merge_branch(pr.head, msg, expected_head)
        with self._db() as db:
            db.execute(
                "UPDATE pulls SET state = 'merged', merge_commit = ?, updated_at = ?"
                " WHERE number = ? AND state = 'open'",
                (merge_commit, _now(), number),
            )
        return self.get_pull_request(number)

    def commit_logins(self, sha: str) -> list[str]:
        """None: the local forge has no accounts (a commit's people are read from Git itself)."""
        return []

    def close(self, number: int, comment: str = "") -> PullRequest:
        """Close with an optional comment, in one transaction: a retry never comments twice."""
        self.get_pull_request(number)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            state = db.execute("SELECT state FROM pulls WHERE number = ?", (number,)).fetchone()["state"]
            if state == "open":
                if comment:
                    db.execute("INSERT INTO comments (number, body, at) VALUES (?, ?, ?)", (number, comment, _now()))
                db.execute("UPDATE pulls SET state = 'closed', updated_at = ? WHERE number = ?", (_now(), number))
            db.execute("COMMIT")
        return self.get_pull_request(number)


@register("local")
def _factory(
    repo: GitRepository, db_path: str | Path, origin: str | None = None, web_url: str | None = None
) -> LocalForge:
    return LocalForge(repo, db_path, origin, web_url)
