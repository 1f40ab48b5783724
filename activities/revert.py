"""The revert activity: a stage's merge undone through a pull request merged without a gate (a
folder-level revert of the app in that environment). Idempotent: it finds its branch, its PR and
its merge again after a crash at any point.

The hold it puts on the promoted content (promoter.holds) is in the trailers of the revert commit,
which promoter writes and signs, and again in the merge's message with the PR's URL: on a hosted
forge the merge commit is the forge's, not promoter's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from temporalio import activity

from activities import classified
from promoter import holds
from promoter.forges import Forge
from promoter.models import RevertInput, RevertResult
from promoter.names import app_folder


class RevertingGit(Protocol):
    """What the revert needs of the git side (promoter.git.ports)."""

    def held_trees(self, commit: str, apps: Sequence[str]) -> dict[str, str]: ...
    def push_revert(
        self, app: str, env: str, merge_commit: str, reason: str, members: Sequence[str] = ..., held: str = ...
    ) -> tuple[str, str]: ...


class RevertActivities:
    def __init__(self, repo: RevertingGit, forge: Forge) -> None:
        self.repo = repo
        self.forge = forge

    @activity.defn(name="revert")
    @classified
    def revert(self, req: RevertInput) -> RevertResult:
        branch, _ = self.repo.push_revert(req.app, req.env, req.merge_commit, req.reason, req.members, req.commit)
        activity.heartbeat("revert branch pushed")
        folders = ", ".join(f"`{app_folder(req.env, app)}`" for app in req.apps)
        body = (
            f"Automatic revert of the merge {req.merge_commit} (PR #{req.pr_number}): "
            f"{folders} did not become healthy"
            + (f" (release set {req.app}: every member is reverted together)" if req.members else "")
            + ".\n\n"
            f"**Evidence:** {req.reason}\n\nMerged without a gate by promoter to restore the previous state."
        )
        pr = self.forge.open_pull_request(
            branch,
            f"Revert {req.app} in {req.env}: unhealthy after PR #{req.pr_number}",
            body,
            labels=["revert", f"env:{req.env}", f"app:{req.app}"],
        )
        activity.heartbeat(f"revert PR #{pr.number} open")
        message = f"Merge pull request #{pr.number} from {branch}\n\n{pr.title}\n\n"
        if req.commit:  # the record of the hold is on main: git, not Temporal
            trees = self.repo.held_trees(req.commit, req.apps)
            message += holds.trailers(req.apps, req.env, req.commit, req.reason, pr.url, trees)
        merged = self.forge.merge(pr.number, message=message)
        return RevertResult(
            reverted=True, revert_commit=merged.merge_commit, pr_number=pr.number, pr_url=pr.url, engine="git"
        )
