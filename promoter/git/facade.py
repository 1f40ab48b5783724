"""`GitClone`: the whole git side over one remote (`GitRepository`), composed of its concerns so that
its callers (the worker, the settings, the CLI, the tests) keep one object to build and pass around.
Each method only hands the call to the part that owns it: plumbing (`clone`), the trusted rules
(`rules`), reading main (`reading`, `provenance`), a stage's change (`change`), writing (`writing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from promoter import holds, metrics
from promoter.errors import BadInput
from promoter.git.change import MAX_PATCH_CHARS, StageChange
from promoter.git.clone import Clone
from promoter.git.glass import BreakGlassWriter
from promoter.git.provenance import MAX_AUTHOR_COMMITS, Authorship, HistoryEvent, Provenance
from promoter.git.reading import GitOpsReader
from promoter.git.rules import TrustedRules
from promoter.git.writing import MainWriter
from promoter.models import (
    EnvironmentConfig,
    PrepareInput,
    PrepareResult,
    PromotedFolder,
    PromotionPlan,
    PromotionRequest,
    RuleChange,
    RulesRevision,
    Trust,
)
from promoter.yamlsafe import MAX_FILE_BYTES


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
        self.plumbing = Clone(url, cache_dir, author_name, author_email, auth_env, max_file_bytes)
        self.path = self.plumbing.path
        self.trusted = TrustedRules(self.plumbing, trust_root)
        self.reading = GitOpsReader(self.plumbing, self.trusted)
        self.provenance = Provenance(self.plumbing, self.trusted, self.reading)
        self.changes = StageChange(self.plumbing)
        self.writing = MainWriter(self.plumbing, self.reading, self.changes)
        self.glass = BreakGlassWriter(self.plumbing, self.reading)

    def push_break_glass_request(
        self,
        app: str,
        env: str,
        until: datetime,
        who: str,
        why: str,
        now: datetime,
        vet: Callable[[EnvironmentConfig, Trust], None] | None = None,
    ) -> tuple[str, str, str, EnvironmentConfig]:
        return self.glass.push_request(app, env, until, who, why, now, vet)

    def break_glass_request(self, commit: str) -> dict[str, str]:
        return self.glass.asked(commit)

    def seal_break_glass(self, branch: str, request: str, approvals: Sequence[str], approved_by: list[str]) -> str:
        return self.glass.seal(branch, request, approvals, approved_by)

    def sign_commits_with(self, private_key: bytes) -> None:
        """Sign every commit this clone writes (see `Clone.sign_commits_with`)."""
        self.plumbing.sign_commits_with(private_key)

    # ------------------------------------------------------------ the trusted rules

    def rules(self, main: str | None = None) -> RulesRevision:
        return self.trusted.rules(main)

    def trust(self, rev: str) -> Trust:
        return self.trusted.trust(rev)

    # ------------------------------------------------------------ reading main

    def resolve(self, req: PromotionRequest) -> PromotionPlan:
        return self.reading.resolve(req)

    def environments(self) -> list[EnvironmentConfig]:
        return self.reading.environments()

    def environment_apps(self, env: str) -> tuple[str, EnvironmentConfig, list[str]]:
        return self.reading.environment_apps(env)

    def held(self, app: str, env: str, commit: str) -> tuple[holds.Hold, EnvironmentConfig, str]:
        return self.reading.held(app, env, commit)

    def held_trees(self, commit: str, apps: Sequence[str]) -> dict[str, str]:
        return self.reading.held_trees(commit, apps)

    def folder_trees(self, rev: str, folders: list[str]) -> dict[str, str]:
        return self.reading.folder_trees(rev, folders)

    def folder_files(self, rev: str, folder: str) -> dict[str, bytes]:
        return self.reading.folder_files(rev, folder)

    def export_tree(self, rev: str, dest: Path) -> None:
        self.reading.export_tree(rev, dest)

    def policy_revision(self, base: str | None = None) -> tuple[str, str]:
        return self.reading.policy_revision(base)

    def policy_files(self, commit: str | None = None) -> tuple[str, dict[str, str]]:
        return self.reading.policy_files(commit)

    def history(self, app: str) -> list[HistoryEvent]:
        return self.provenance.history(app)

    def delivery(self, since: int | None = None) -> tuple[metrics.Delivery, list[str]]:
        """Main's promotions and reverts merged since `since` (Unix seconds), and the names of main's
        environments in their order, from one fetch, for `promoter metrics`. The names are main's as
        they stand (they only order and name what is shown; the trusted rules' walk would cost more
        than the figures): none when they do not parse."""
        repo = self.plumbing.fresh()
        main = self.plumbing.main(repo)
        try:
            envs = [e.config.name for e in self.reading.environments_at(repo, main)]
        except BadInput:
            envs = []
        return metrics.read(lambda *args: self.plumbing.run(repo, *args), main, since), envs

    def authors(
        self, commit: str, env: str, apps: Sequence[str], head: str | None = None, limit: int = MAX_AUTHOR_COMMITS
    ) -> Authorship:
        return self.provenance.authors(commit, env, apps, head, limit)

    def unsigned_source(
        self, commit: str, source: str, target: str, apps: Sequence[str], head: str | None = None
    ) -> list[RuleChange]:
        return self.provenance.unsigned_source(commit, source, target, apps, head)

    def promoted_folder(self, env: str, app: str) -> PromotedFolder:
        return self.provenance.promoted_folder(env, app)

    # ------------------------------------------------------------ a stage's change

    def prepare(self, req: PrepareInput) -> PrepareResult:
        return self.changes.prepare(req)

    def push_branch(self, req: PrepareInput) -> PrepareResult:
        return self.changes.push_branch(req)

    def change_files(self, req: PrepareInput, base: str | None = None) -> dict[str, bytes]:
        return self.changes.change_files(req, base)

    def export_change(self, req: PrepareInput, dest: Path, base: str | None = None) -> Path:
        return self.changes.export_change(req, dest, base)

    def change_patch(self, req: PrepareInput, limit: int = MAX_PATCH_CHARS) -> str:
        return self.changes.change_patch(req, limit)

    def outside_folders(self, head: str, folders: Sequence[str]) -> list[str]:
        return self.changes.outside_folders(head, folders)

    # ------------------------------------------------------------ writing

    def push_revert(
        self, app: str, env: str, merge_commit: str, reason: str, members: Sequence[str] = (), held: str = ""
    ) -> tuple[str, str]:
        return self.writing.push_revert(app, env, merge_commit, reason, members, held)

    def push_lift_request(self, hold: holds.Hold, who: str, why: str) -> tuple[str, str]:
        return self.writing.push_lift_request(hold, who, why)

    def lift_request(self, commit: str) -> tuple[str, str, str, str]:
        return self.writing.lift_request(commit)

    def seal_lift(self, branch: str, request: str, approvals: Sequence[str] = ()) -> str:
        return self.writing.seal_lift(branch, request, approvals)

    def branch_head(self, branch: str) -> str | None:
        return self.plumbing.branch_head(branch)

    def merge_branch(self, branch: str, message: str, expected_head: str | None = None) -> str:
        return self.writing.merge_branch(branch, message, expected_head)
