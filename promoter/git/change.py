"""A stage's change: what promoting a commit into an environment would change in the target's app
folder (each member's, for a release set), judged by the policy step before anything exists, then
written as one commit on `promote/<app>/<env>/<short-sha>` and pushed; its files, its patch, and the
whole tree with it for kustomize.

The commit is written as objects on main (`promoter.git.objects`), never through a working tree, and a
branch is reused only when it carries exactly that content and nothing else.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Sequence
from pathlib import Path

import git

from promoter import names
from promoter.errors import BadInput, NotFound, TemporaryError
from promoter.git import objects, trees
from promoter.git.clone import Clone
from promoter.git.objects import Entry
from promoter.models import DiffSummary, PrepareInput, PrepareResult
from promoter.names import app_folder

MAX_PATCH_CHARS = 200_000  # of one environment's change, as `promoter dry-run --diff` shows it


class StageChange:
    """A stage's change of its target's app folders, and the folder commits a revert reuses."""

    def __init__(self, clone: Clone) -> None:
        self.clone = clone

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
        branch = names.promotion_branch(req.app, req.target_env, req.commit)
        repo = self.clone.have(req.base)
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
        head = self.commit_folders(repo, main, req.target_env, req.apps, desired, self._message(req, diff))
        try:  # the branch is new unless this is a retry: pushed expecting it absent, without asking first
            self.clone.push_branch(repo, branch, head, None)
            return PrepareResult(changed=True, branch=branch, head=head, base=main, diff=diff)
        except TemporaryError:
            pass  # it is there (or the push failed): asked, then reused or pushed over as it is
        existing = self.clone.branch(repo, branch)
        folders = [app_folder(req.target_env, app) for app in req.apps]
        if (
            existing is not None
            and self.folders_at(repo, existing, req.target_env, req.apps) == desired
            and not self.clone.is_ancestor(repo, existing, main)  # an old, merged branch is not reused
            and self.only_folders(repo, existing, main, folders)  # nor one that brings anything else
        ):
            return PrepareResult(changed=True, branch=branch, head=existing, base=main, diff=diff)
        self.clone.push_branch(repo, branch, head, existing)
        return PrepareResult(changed=True, branch=branch, head=head, base=main, diff=diff)

    def change_patch(self, req: PrepareInput, limit: int = MAX_PATCH_CHARS) -> str:
        """The change `prepare` describes, as a unified diff of the target's app folder (nothing is
        written): what the PR would show. Binary files are named, not shown; cut at `limit`."""
        repo = self.clone.have(req.base)
        _, current, desired = self._desired(repo, req, req.base)
        folder = app_folder(req.target_env, req.app) if not req.members else f"environments/{req.target_env}"
        changed = sorted(p for p in set(current) | set(desired) if current.get(p) != desired.get(p))
        olds = self.clone.contents(repo, {p: current[p] for p in changed if p in current})
        news = self.clone.contents(repo, {p: desired[p] for p in changed if p in desired})
        parts: list[str] = []
        for path in changed:
            old, new = olds.get(path, b""), news.get(path, b"")
            if not (objects.is_utf8(old) and objects.is_utf8(new)):
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
            main = base or self.clone.main(repo)
            current, desired = {}, {}
            for app in req.members:
                _, now, after = self._desired(repo, req.model_copy(update={"app": app, "members": []}), main)
                current.update({f"{app}/{p}": e for p, e in now.items()})
                desired.update({f"{app}/{p}": e for p, e in after.items()})
            return main, current, desired
        src = app_folder(req.source_env, req.app)
        dst = app_folder(req.target_env, req.app)
        if objects.rev(repo, req.commit) is None:
            raise NotFound(f"commit {req.commit[:12]} not found in {self.clone.url}")
        main = base or self.clone.main(repo)
        if req.source_env == req.target_env:
            return main, self.clone.tree(repo, main, dst), self.clone.tree(repo, req.commit, src)
        local = set(req.local_files)
        current = self.clone.tree(repo, main, dst)
        desired = {p: e for p, e in self.clone.tree(repo, req.commit, src).items() if p not in local}
        if not desired:
            raise BadInput(f"{src} is empty at {req.commit[:12]}; nothing to promote from it")
        desired.update({p: e for p, e in current.items() if p in local})
        return main, current, desired

    def change_files(self, req: PrepareInput, base: str | None = None) -> dict[str, bytes]:
        """The files of the target's app folder after the change (relative paths → content), onto
        `base` (a commit of main, e.g. the one `prepare` saw) or main as it is now."""
        return self._change(req, base)[1]

    def _change(self, req: PrepareInput, base: str | None) -> tuple[str, dict[str, bytes]]:
        repo = self.clone.have(base)
        main, _, desired = self._desired(repo, req, base)
        return main, self.clone.contents(repo, desired)

    def export_change(self, req: PrepareInput, dest: Path, base: str | None = None) -> Path:
        """Main's whole tree in `dest` (`base`, or main as it is now), with the target's app folder as
        it is after the change (what kustomize needs when an overlay reaches a base elsewhere).
        Returns the app folder."""
        main, files = self._change(req, base)
        self.clone.extract(self.clone.open(), main, dest)
        folder = Path(dest) / app_folder(req.target_env, req.app)
        if folder.exists():
            shutil.rmtree(folder)
        for rel, content in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(content)
        return folder

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

    def outside_folders(self, head: str, folders: Sequence[str]) -> list[str]:
        """The paths a branch's `head` changes, since it left main, outside `folders` (a promotion's PR
        may change its app folders only: anything else would ride along, unjudged, into main)."""
        repo = self.clone.have(head)
        base = self.clone.run(repo, "merge-base", self.clone.main(repo), head).strip()
        changed = self.clone.run(repo, "diff", "--name-only", "--no-renames", "-z", base, head).split("\0")
        return [p for p in changed if p and not any(p.startswith(f.rstrip("/") + "/") for f in folders)]

    def only_folders(self, repo: git.Repo, head: str, main: str, folders: Sequence[str]) -> bool:
        """Whether `head` is one commit on a commit of main that changes nothing outside `folders`:
        the only kind of branch promoter takes up again instead of writing its own."""
        parents = [
            line.split()[1].decode()
            for line in objects.raw(repo, head).split(b"\n\n", 1)[0].split(b"\n")
            if line.startswith(b"parent ")
        ]
        if len(parents) != 1 or not self.clone.is_ancestor(repo, parents[0], main):
            return False
        changed = self.clone.run(repo, "diff", "--name-only", "--no-renames", "-z", parents[0], head).split("\0")
        return all(any(p.startswith(f.rstrip("/") + "/") for f in folders) for p in changed if p)

    def folders_at(self, repo: git.Repo, rev: str, env: str, apps: list[str]) -> dict[str, Entry]:
        """The app folders of `env` at `rev`: one app's paths as they are, several under their names."""
        if len(apps) == 1:
            return self.clone.tree(repo, rev, app_folder(env, apps[0]))
        return {f"{app}/{p}": e for app in apps for p, e in self.clone.tree(repo, rev, app_folder(env, app)).items()}

    def commit_folders(
        self, repo: git.Repo, base: str, env: str, apps: list[str], entries: dict[str, Entry], message: str
    ) -> str:
        """A commit on `base` whose app folders of `env` hold exactly `entries` (one app's paths as they
        are, several apps' under their names), in one tree."""
        if len(apps) == 1:
            return self.commit_folder(repo, base, app_folder(env, apps[0]), entries, message)
        tree: str | None = objects.root(repo, base)
        for app in apps:
            mine = {p[len(app) + 1 :]: e for p, e in entries.items() if p.startswith(app + "/")}
            tree = trees.replace(repo, tree, app_folder(env, app).split("/"), trees.write_folder(repo, mine))
        return self.clone.write_commit(repo, tree or objects.store(repo, b"tree", b""), [base], message)

    def commit_folder(self, repo: git.Repo, base: str, folder: str, entries: dict[str, Entry], message: str) -> str:
        """A commit on `base` whose `folder` holds exactly `entries`: its trees and the commit are
        written in process, as git would write them (no index, no git run)."""
        tree = trees.replace(repo, objects.root(repo, base), folder.split("/"), trees.write_folder(repo, entries))
        return self.clone.write_commit(repo, tree or objects.store(repo, b"tree", b""), [base], message)
