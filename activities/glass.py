"""The forge side of a break-glass (promoter.breakglass), for the lift gate's activities
(activities/forge.py): open its PR on promoter's request commit, and once its gate approved, seal it
(promoter writes and signs the commit that adds the break-glass file) before the merge."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from temporalio import activity

from promoter import breakglass, history, holds, signing
from promoter.errors import BadInput, TemporaryError
from promoter.forges import Forge
from promoter.models import (
    EnvironmentConfig,
    LiftHoldInput,
    MergePullRequest,
    MergeResult,
    OpenedLift,
    RulesRevision,
    Trust,
)

# the lift gate's merge message names the break-glass PR's branch (workflows/lift_hold.py)
MERGE = re.compile(r"Merge pull request #\d+ from (break-glass/\S+)")
SEEN_PUSH_TRIES = 30  # seconds a sealed commit may take to show on its PR before the merge step is retried


class GlassGit(Protocol):
    def push_break_glass_request(
        self,
        app: str,
        env: str,
        until: datetime,
        who: str,
        why: str,
        now: datetime,
        vet: Callable[[EnvironmentConfig, Trust], None] | None = None,
    ) -> tuple[str, str, str, EnvironmentConfig]: ...
    def break_glass_request(self, commit: str) -> dict[str, str]: ...
    def seal_break_glass(self, branch: str, request: str, approvals: Sequence[str], approved_by: list[str]) -> str: ...
    def rules(self, main: str | None = ...) -> RulesRevision: ...
    def trust(self, rev: str) -> Trust: ...


def open_pr(forge: Forge, repo: GlassGit, req: LiftHoldInput) -> OpenedLift:
    """Push the break-glass request and open its PR (both idempotent). Its gate is the environment's
    `break_glass` (its approvers, its quorum), never the promotion gate's; what verifies its signed
    approvals is trust/ at the same trusted rules revision of main its environment was read at."""
    assert req.until is not None
    asker: list[str] = []  # the fingerprint of the key that signed the request, once verified
    gid, branch, main, config = repo.push_break_glass_request(
        req.app,
        req.env,
        req.until,
        req.requested_by,
        req.reason,
        datetime.now(UTC),
        lambda c, t: asker.extend([vetted(req, c, t)]),
    )
    assert config.break_glass is not None
    until = breakglass.rfc3339(req.until)
    body = (
        f"Break-glass `{gid}`: lets **{req.app}**'s promotions into **{req.env}** through a freeze, and only "
        f"a freeze (never approvals, order, soak or the Kubernetes checks), until **{until}**.\n\n"
        f"- asked by {breakglass.one_line(req.requested_by, 120)}: {breakglass.one_line(req.reason)}\n"
        f"- needs {config.break_glass.required} approval(s) from {', '.join(config.break_glass.approvers)} "
        f"(`promoter approve <id> --env {req.env} --as <you>`)\n\n"
        "This branch only asks: the file `trust/break-glass/` that lets promotions through is written and "
        "signed by promoter after the approvals, so merging this PR by hand changes nothing. It stops "
        "counting at its end by itself."
    )
    pr = forge.open_pull_request(
        branch,
        f"Break-glass: {req.app} through a freeze in {req.env} until {until}",
        body,
        labels=["break-glass", f"env:{req.env}", f"app:{req.app}"],
    )
    gate = config.approval.model_copy(
        update={
            "approvers": list(config.break_glass.approvers),
            "required": config.break_glass.required,
            "pull_request_reviews": False,
            "require_review": False,
        }
    )
    environment = config.model_copy(update={"approval": gate})
    trust = repo.trust(repo.rules(main).commit)  # the revision push_break_glass_request read `config` at
    return OpenedLift(
        pr=pr,
        commit=main,
        author=req.requested_by,
        hold_reason=gid,
        environment=environment,
        trust=trust,
        asker_fingerprint=asker[0] if asker else "",
    )


def vetted(req: LiftHoldInput, config: EnvironmentConfig, trust: Trust) -> str:
    """The fingerprint of the key that signed the request ("" unsigned), its signature verified against
    `trust` for the principal who asks. Where the environment's approvals must be signed, so must the
    request be: who asked (whom `author_cannot_approve` refuses, whose key may not approve) is then
    proven, not a name typed by hand. Bad input saying how to sign otherwise."""
    from promoter import signing

    assert req.until is not None
    if not req.statement and not req.signature:
        if config.approval.require_signed:
            raise BadInput(
                f"{req.env} requires signed approvals, so a break-glass request must be signed too: add "
                f"--sign-key KEY (a key trust/allowed_signers lists for {req.requested_by})"
            )
        return ""
    at = breakglass.check_request(
        req.statement, req.app, req.env, req.until, req.requested_by, req.reason, datetime.now(UTC)
    )
    try:
        verified = signing.verify(
            req.statement.encode(),
            signing.line_to_armor(req.signature),
            principal=req.requested_by,
            allowed_signers=trust.allowed_signers,
            revoked_keys=trust.revoked_keys,
            at=at,
        )
    except signing.SignatureError as e:
        raise BadInput(f"the break-glass request's signature does not verify: {e}") from None
    return verified.fingerprint


def keys_still_trusted(repo: GlassGit, comment: str) -> None:
    """Refuse (BadInput) when a key that signed an approval in `comment`'s trailers is revoked now, in
    trust/revoked_keys at main's trusted rules revision: the gate verified each signature against trust/
    as it stood when the lift opened, and a key revoked since must not seal it."""
    trust = repo.trust(repo.rules().commit)
    revoked = signing.parse_revoked_keys(trust.revoked_keys)
    for key, value in holds.trailer_block(comment):
        parsed = history.parse_signed(value) if key == history.SIGNED else None
        if parsed is not None and signing.key_of(parsed[1]) in revoked:
            who = signing.Statement.parse(parsed[0]).approver
            raise BadInput(
                f"{who}'s key {signing.fingerprint(signing.key_of(parsed[1]))} has been revoked since they "
                f"approved (trust/revoked_keys at {trust.revision[:12]}): not sealed; ask for it again and "
                "approve with a valid key"
            )


def seal(forge: Forge, repo: GlassGit, req: MergePullRequest, branch: str) -> str | MergeResult:
    """The commit that puts an approved break-glass in place, pushed onto its PR to merge at once; the
    merge's result when the PR is merged already (a retry, or a hand merge: that one added nothing)."""
    if req.expected_head is None:
        raise BadInput(f"the break-glass PR #{req.number} must be merged at its approved head")
    repo.break_glass_request(req.expected_head)  # promoter's own request, else bad input
    pr = forge.get_pull_request(req.number)
    if pr.state == "merged":
        assert pr.merge_commit is not None
        return MergeResult(number=pr.number, merge_commit=pr.merge_commit)
    keys_still_trusted(repo, req.comment)
    approvals = [f"{k}: {v}" for k, v in holds.trailer_block(req.comment) if k == holds.APPROVAL]
    approved_by = [v.split(" via ", 1)[0] for k, v in holds.trailer_block(req.comment) if k == holds.APPROVAL]
    sealed = repo.seal_break_glass(branch, req.expected_head, approvals, approved_by)
    activity.heartbeat(f"break-glass {sealed[:12]} pushed")
    for _ in range(SEEN_PUSH_TRIES):
        if forge.get_pull_request(req.number).head_sha == sealed:
            return sealed
        time.sleep(1.0)
        activity.heartbeat(f"waiting for PR #{req.number} to show {sealed[:12]}")
    raise TemporaryError(f"the forge does not show PR #{req.number} at {sealed[:12]} yet; trying again")
