"""What proves who gave a gate's decision: nothing (declared), the forge (a review read from a forge that
authenticates its users), or an SSH signature over the gate's own statement, verified against
trust/allowed_signers as main had it when the promotion started. Deterministic: workflow code only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from promoter import signing
    from promoter.models import Decision, Proof, StageStatus
    from workflows.recorder import Promotion

SIGNATURE_SKEW = timedelta(minutes=10)  # a signed statement's time may be this far off the workflow's clock


@dataclass(frozen=True)
class Proven:
    """What proves who gave a decision (see `Proof`), and for a signed one the signature's record."""

    proof: Proof = "declared"
    fingerprint: str = ""
    statement: str = ""
    signature: str = ""  # on one line


FORGE = Proven("forge")
DECLARED = Proven()


def proven(p: Promotion, d: Decision, approving: bool) -> tuple[Proven, str | None]:
    """What proves a sent decision: its SSH signature over this gate's statement, verified against
    trust/allowed_signers as main had it when the promotion started (or nothing, unsigned); with the
    reason it is refused, if it is."""
    if not d.statement and not d.signature:
        return DECLARED, None
    if not d.statement or not d.signature:
        return (
            DECLARED,
            "a signed decision needs both `statement` and `signature`; make them with `--print-payload`",
        )
    stage = p.stage_by_env[d.env]
    trust = p.plan.trust
    try:
        said = signing.Statement.parse(d.statement)
        armored = d.signature if "BEGIN SSH SIGNATURE" in d.signature else signing.line_to_armor(d.signature)
        verified = signing.verify(
            d.statement.encode(),
            armored,
            principal=d.approver,
            allowed_signers=trust.allowed_signers,
            revoked_keys=trust.revoked_keys,
            at=said.at,
        )
    except signing.SignatureError as e:
        return DECLARED, str(e)
    mismatch = _mismatch(p, said, d, approving, stage)
    if mismatch is not None:
        return DECLARED, f"the signature is for {mismatch}; sign this gate's statement again"
    off = abs(workflow.now() - said.at)
    if off > SIGNATURE_SKEW:
        return DECLARED, (
            f"the signature was made at {said.at:%Y-%m-%dT%H:%M:%SZ}, {int(off.total_seconds() // 60)} minutes "
            f"off the workflow's clock (at most {int(SIGNATURE_SKEW.total_seconds() // 60)}); sign again now"
        )
    return Proven("signed", verified.fingerprint, d.statement, signing.armor_to_line(armored)), None


def _mismatch(p: Promotion, said: signing.Statement, d: Decision, approving: bool, stage: StageStatus) -> str | None:
    """What a verified statement names that this decision is not (None: it is this decision)."""
    decision = "approve" if approving else "reject"
    trees = tuple(sorted(stage.trees.items()))
    head = (stage.head_sha or "?")[:7]
    checks = [
        (said.promotion, p.status.id, f"promotion {said.promotion}, not {p.status.id}"),
        (said.run, p.status.run_id, f"another run of {said.promotion} ({said.run[:8]}), not this one"),
        (said.env, d.env, f"environment {said.env}, not {d.env}"),
        (said.commit, p.plan.commit, f"commit {said.commit[:12]}, not {p.plan.commit[:12]}"),
        (
            said.head,
            stage.head_sha or "",
            f"PR head {said.head[:7]}, not {head} (a commit was pushed onto the PR since)",
        ),
        (
            said.trees,
            trees,
            f"a tree that is not what would merge now (PR head {head}: a commit pushed onto the PR changes it)",
        ),
        (said.decision, decision, f"a decision to {said.decision}, not to {decision}"),
        (said.approver, d.approver, f"approver {said.approver}, not {d.approver}"),
        (said.comment, d.comment, "another comment"),
    ]
    return next((why for theirs, ours, why in checks if theirs != ours), None)
