"""Forge activities: open (idempotent by head branch), comment, merge (once), close."""

from __future__ import annotations

from temporalio import activity

from activities import sorted_errors
from promoter.forges import Forge
from promoter.models import MergeResult, OpenPullRequestInput, PullRequest, PullRequestRef


class ForgeActivities:
    def __init__(self, forge: Forge) -> None:
        self.forge = forge

    @activity.defn(name="open_pull_request")
    @sorted_errors
    def open_pull_request(self, req: OpenPullRequestInput) -> PullRequest:
        return self.forge.open_pull_request(req.branch, req.title, req.body, labels=req.labels)

    @activity.defn(name="merge_pull_request")
    @sorted_errors
    def merge_pull_request(self, req: PullRequestRef) -> MergeResult:
        pr = self.forge.merge(req.number, req.comment or None)
        assert pr.merge_commit is not None
        return MergeResult(number=pr.number, merge_commit=pr.merge_commit)

    @activity.defn(name="close_pull_request")
    @sorted_errors
    def close_pull_request(self, req: PullRequestRef) -> PullRequest:
        return self.forge.close(req.number, req.comment)

    @activity.defn(name="comment_pull_request")
    @sorted_errors
    def comment_pull_request(self, req: PullRequestRef) -> None:
        self.forge.comment(req.number, req.comment)
